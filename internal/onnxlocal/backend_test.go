package onnxlocal

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kronos-gateway/kronos-gateway/internal/graphs"
	"github.com/kronos-gateway/kronos-gateway/internal/infer"
)

// tokenizerCases are the cases whose Encode/Decode are checked.
var tokenizerCases = []struct {
	conf confConfig
	name string
}{
	{tinyConf, "short"},
	{tinyConf, "slide"},
	{tinyConf, "long_ctx"},
	{tinyConf, "ohlc_only"},
	{tinyConf, "batch3"},
	{tinyConf, "samples3"},
	{nanoConf, "nano_short"},
	{nanoConf, "nano_slide"},
}

func TestEncode(t *testing.T) {
	for _, tc := range tokenizerCases {
		t.Run(tc.conf.name+"/"+tc.name, func(t *testing.T) {
			b := openConf(t, tc.conf, Options{})
			cc := loadCase(t, tc.conf, tc.name)
			var x []float32
			for _, s := range cc.Series {
				x = append(x, flat2(s.XNorm)...)
			}
			rows, L := len(cc.Series), cc.Params.Lookback
			got, err := b.Encode(context.Background(), x, rows, L)
			if err != nil {
				t.Fatal(err)
			}
			dq := b.Info().S1Bits + b.Info().S2Bits
			for s := range rows {
				want := flat2(cc.ModelBatch.QuantInput[s*cc.Params.SampleCount])
				g := got[s*L*dq : (s+1)*L*dq]
				checkClose(t, "quant_input", g, want, 1e-3)
				for i := range g {
					if (g[i] > 0) != (want[i] > 0) {
						t.Fatalf("series %d: quant_input[%d][%d] = %g, reference %g: sign differs", s, i/dq, i%dq, g[i], want[i])
					}
				}
			}
		})
	}
}

func TestDecode(t *testing.T) {
	for _, tc := range tokenizerCases {
		t.Run(tc.conf.name+"/"+tc.name, func(t *testing.T) {
			b := openConf(t, tc.conf, Options{})
			cc := loadCase(t, tc.conf, tc.name)
			mb := &cc.ModelBatch
			rows, w := len(mb.FinalS1), len(mb.FinalS1[0])
			got, err := b.Decode(context.Background(), flat2(mb.FinalS1), flat2(mb.FinalS2), rows, w)
			if err != nil {
				t.Fatal(err)
			}
			var want []float32
			for _, r := range mb.Decoded {
				want = append(want, flat2(r)...)
			}
			checkClose(t, "decoded", got, want, 1e-4)
		})
	}
}

func TestInfo(t *testing.T) {
	b := openConf(t, tinyConf, Options{})
	info := b.Info()
	m, err := graphs.ReadManifest(filepath.Join(repoFor(t, tinyConf), "tiny-prefill", "1", manifestFile))
	if err != nil {
		t.Fatal(err)
	}
	want := infer.ModelInfo{
		Name: "tiny", Version: "1",
		Checkpoint: m.Checkpoint, TokenizerCheckpoint: m.TokenizerCheckpoint,
		ModelVersion: m.ModelVersion, TokenizerVersion: m.TokenizerVersion,
		S1Bits: 4, S2Bits: 4, DModel: 32, MaxContext: 64,
		Backend: "embedded", Device: "cpu",
	}
	if info != want {
		t.Errorf("Info() = %+v\nwant %+v", info, want)
	}
	if info.ModelVersion == "" || info.TokenizerVersion == "" {
		t.Errorf("Info() lacks weight versions: %+v", info)
	}
	if got := openConf(t, tinyConf, Options{MaxContext: 48}).Info().MaxContext; got != 48 {
		t.Errorf("MaxContext option: Info().MaxContext = %d, want 48", got)
	}
}

// linkVersion makes version ver of model name in dst point at the files of
// version 1 in src, for the given roles.
func linkVersion(t *testing.T, src, dst, name, ver string, roles []graphs.Role) {
	t.Helper()
	for _, r := range roles {
		d := filepath.Join(dst, graphs.ModelName(name, r), ver)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{modelFile, manifestFile} {
			abs, err := filepath.Abs(filepath.Join(src, graphs.ModelName(name, r), "1", f))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(abs, filepath.Join(d, f)); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestVersionSelection(t *testing.T) {
	src := repoFor(t, tinyConf)
	repo := t.TempDir()
	linkVersion(t, src, repo, "tiny", "2", graphs.Roles)
	linkVersion(t, src, repo, "tiny", "10", graphs.Roles)
	// 11 lacks the s2 graph, "12x" is not a number: neither is selectable.
	linkVersion(t, src, repo, "tiny", "11", graphs.Roles[:4])
	linkVersion(t, src, repo, "tiny", "12x", graphs.Roles)
	for _, tc := range []struct {
		version, want string
		kind          infer.Kind
	}{
		{"", "10", ""},
		{"2", "2", ""},
		{"11", "", infer.KindNotFound},
		{"3", "", infer.KindNotFound},
	} {
		t.Run("version="+tc.version, func(t *testing.T) {
			b, err := Open(Options{RepoDir: repo, Model: "tiny", Version: tc.version, LibPath: testLib(t), MaxContext: 64})
			if tc.kind != "" {
				if k := infer.KindOf(err); k != tc.kind {
					t.Fatalf("Open: error %v (kind %q), want kind %q", err, k, tc.kind)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			if v := b.Info().Version; v != tc.want {
				t.Errorf("version %q, want %q", v, tc.want)
			}
		})
	}
}

func TestOpenErrors(t *testing.T) {
	repo := repoFor(t, tinyConf)
	lib := testLib(t)
	empty := t.TempDir()
	for _, tc := range []struct {
		name string
		opt  Options
		kind infer.Kind
	}{
		{"missing repository", Options{RepoDir: filepath.Join(empty, "nope"), Model: "tiny", LibPath: lib}, infer.KindNotFound},
		{"missing model", Options{RepoDir: repo, Model: "kronos-huge", LibPath: lib}, infer.KindNotFound},
		{"missing version", Options{RepoDir: repo, Model: "tiny", Version: "7", LibPath: lib}, infer.KindNotFound},
		{"no versions", Options{RepoDir: emptyModel(t, empty), Model: "tiny", LibPath: lib}, infer.KindNotFound},
		{"missing library", Options{RepoDir: repo, Model: "tiny", LibPath: filepath.Join(empty, "libonnxruntime.so.1")}, infer.KindUnavailable},
		{"not a library", Options{RepoDir: repo, Model: "tiny", LibPath: notALibrary(t, empty)}, infer.KindUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := Open(tc.opt)
			if err == nil {
				b.Close()
				t.Fatal("Open succeeded")
			}
			if k := infer.KindOf(err); k != tc.kind {
				t.Errorf("Open: %v: kind %q, want %q", err, k, tc.kind)
			}
		})
	}
}

// notALibrary writes a file that the dynamic loader rejects.
func notALibrary(t *testing.T, dir string) string {
	p := filepath.Join(dir, "libnot-onnxruntime.so.1")
	if err := os.WriteFile(p, []byte("not an ELF file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// emptyModel creates a repository with the five role folders of "tiny" and
// no version in them.
func emptyModel(t *testing.T, parent string) string {
	repo := filepath.Join(parent, "empty-repo")
	for _, r := range graphs.Roles {
		if err := os.MkdirAll(filepath.Join(repo, graphs.ModelName("tiny", r)), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return repo
}

func TestInvalidArguments(t *testing.T) {
	b := openConf(t, tinyConf, Options{})
	ctx := context.Background()
	x := make([]float32, 2*3*infer.CandleWidth)
	ids := make([]int64, 6)
	bad := []int64{0, 0, 16, 0, 0, 0} // 16 is outside the 4-bit vocabulary
	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"encode length", func() error { _, err := b.Encode(ctx, x[:5], 2, 3); return err }},
		{"encode rows", func() error { _, err := b.Encode(ctx, x, 0, 3); return err }},
		{"decode length", func() error { _, err := b.Decode(ctx, ids[:5], ids, 2, 3); return err }},
		{"decode s1 range", func() error { _, err := b.Decode(ctx, bad, ids, 2, 3); return err }},
		{"decode s2 range", func() error { _, err := b.Decode(ctx, ids, bad, 2, 3); return err }},
		{"session rows", func() error { _, err := b.NewSession(ctx, 0); return err }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if k := infer.KindOf(tc.call()); k != infer.KindInvalid {
				t.Errorf("kind %q, want %q", k, infer.KindInvalid)
			}
		})
	}
}

func TestContextErrors(t *testing.T) {
	b := openConf(t, tinyConf, Options{})
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	expired, cancel2 := context.WithDeadline(context.Background(), time.Unix(0, 0))
	defer cancel2()
	cc := loadCase(t, tinyConf, "short")
	x := flat2(cc.Series[0].XNorm)
	L := cc.Params.Lookback
	for _, tc := range []struct {
		name string
		ctx  context.Context
		kind infer.Kind
	}{
		{"canceled", canceled, infer.KindCanceled},
		{"deadline", expired, infer.KindTimeout},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := b.Encode(tc.ctx, x, 1, L)
			if k := infer.KindOf(err); k != tc.kind {
				t.Errorf("Encode: %v: kind %q, want %q", err, k, tc.kind)
			}
			if !errors.Is(err, tc.ctx.Err()) {
				t.Errorf("Encode: %v does not wrap %v", err, tc.ctx.Err())
			}
			_, err = b.Decode(tc.ctx, cc.ModelBatch.FinalS1[0], cc.ModelBatch.FinalS2[0], 1, len(cc.ModelBatch.FinalS1[0]))
			if k := infer.KindOf(err); k != tc.kind {
				t.Errorf("Decode: %v: kind %q, want %q", err, k, tc.kind)
			}
			s, err := b.NewSession(context.Background(), 1)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			_, err = s.S1Logits(tc.ctx, []infer.Window{cc.window(0, 0)})
			if k := infer.KindOf(err); k != tc.kind {
				t.Errorf("S1Logits: %v: kind %q, want %q", err, k, tc.kind)
			}
		})
	}
}

// TestTerminateRunning cancels the context after the run has been armed but
// before ORT starts: the run must stop through ORT's terminate flag (it would
// otherwise succeed), and the RunOptions must be usable again afterwards.
func TestTerminateRunning(t *testing.T) {
	b := openConf(t, tinyConf, Options{})
	cc := loadCase(t, tinyConf, "short")
	ctx, cancel := context.WithCancel(context.Background())
	terminated := make(chan struct{})
	b.testHookTerminated = func() { close(terminated) }
	b.testHookBeforeRun = func() {
		cancel()
		<-terminated // the flag is set before ORT starts
	}
	s, err := b.NewSession(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, err = s.S1Logits(ctx, []infer.Window{cc.window(0, 0)})
	if k := infer.KindOf(err); k != infer.KindCanceled {
		t.Fatalf("S1Logits with a context canceled during the run: %v (kind %q), want kind %q", err, k, infer.KindCanceled)
	}
	b.testHookBeforeRun, b.testHookTerminated = nil, nil
	got, err := s.S1Logits(context.Background(), []infer.Window{cc.window(0, 0)})
	if err != nil {
		t.Fatalf("S1Logits after a terminated run: %v", err)
	}
	checkClose(t, "s1_logits", got, flat2(cc.ModelBatch.Steps[0].S1Logits), 1e-4)
}

func TestClose(t *testing.T) {
	b := openConf(t, tinyConf, Options{})
	cc := loadCase(t, tinyConf, "short")
	s, err := b.NewSession(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	ctx := context.Background()
	if _, err := s.S1Logits(ctx, []infer.Window{cc.window(0, 0)}); infer.KindOf(err) != infer.KindUnavailable {
		t.Errorf("S1Logits after backend Close: %v, want kind %q", err, infer.KindUnavailable)
	}
	if _, err := b.Encode(ctx, flat2(cc.Series[0].XNorm), 1, cc.Params.Lookback); infer.KindOf(err) != infer.KindUnavailable {
		t.Errorf("Encode after Close: %v, want kind %q", err, infer.KindUnavailable)
	}
	if _, err := b.NewSession(ctx, 1); infer.KindOf(err) != infer.KindUnavailable {
		t.Errorf("NewSession after Close: %v, want kind %q", err, infer.KindUnavailable)
	}
}

// TestCommittedRepository opens the committed model_repository with the
// defaults (model kronos-nano, highest version, max context from the
// manifest).
func TestCommittedRepository(t *testing.T) {
	repo := filepath.Join(moduleRoot, DefaultRepoDir)
	if _, err := resolveVersion(repo, DefaultModel, ""); err != nil {
		t.Skipf("no committed %s repository: %v", DefaultModel, err)
	}
	b, err := Open(Options{RepoDir: repo, LibPath: testLib(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	m, err := graphs.ReadManifest(filepath.Join(repo, DefaultModel+"-step", b.Info().Version, manifestFile))
	if err != nil {
		t.Fatal(err)
	}
	info := b.Info()
	if info.Name != DefaultModel || info.MaxContext != m.DefaultMaxContext || info.ModelVersion != m.ModelVersion ||
		info.DModel != m.Predictor.DModel || info.Backend != "embedded" {
		t.Errorf("Info() = %+v, manifest %+v", info, m)
	}
	if o := b.Options(); o.IntraOpThreads <= 0 || o.InterOpThreads != 1 || o.Version != info.Version {
		t.Errorf("Options() = %+v: defaults not filled in", o)
	}
}
