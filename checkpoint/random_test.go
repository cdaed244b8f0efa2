package checkpoint

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/kronos-gateway/kronos-gateway/internal/graphs"
	"github.com/kronos-gateway/kronos-gateway/internal/infer"
)

// A random checkpoint made from a reference checkpoint's config has exactly
// its keys, dtypes and shapes, the same config.json bytes, and the same
// deterministic buffers (rotary inv_freq, BSQ basis).
func TestRandomMatchesReferenceStateDicts(t *testing.T) {
	for _, tc := range referenceDirs {
		t.Run(tc.name, func(t *testing.T) {
			ref := mustLoad(t, tc.dir)
			var got *Checkpoint
			if strings.HasSuffix(tc.name, "tokenizer") {
				cfg, err := ref.TokenizerConfig()
				if err != nil {
					t.Fatal(err)
				}
				got = RandomTokenizer(cfg, 1)
			} else {
				cfg, err := ref.PredictorConfig()
				if err != nil {
					t.Fatal(err)
				}
				got = RandomPredictor(cfg, 1)
			}
			if !bytes.Equal(got.Config, ref.Config) {
				t.Errorf("config.json\n%s\nwant\n%s", got.Config, ref.Config)
			}
			if g, w := keys(got), keys(ref); g != w {
				t.Fatalf("keys differ\n got %s\nwant %s", g, w)
			}
			for k, r := range ref.Tensors {
				g := got.Tensors[k]
				if g.DType != r.DType || !sameShape(g.Shape, r.Shape) {
					t.Errorf("%s: %s%v, want %s%v", k, g.DType, g.Shape, r.DType, r.Shape)
				}
				if strings.HasSuffix(k, "inv_freq") || r.DType == "I64" {
					if err := sameTensor(g, r); err != nil {
						t.Errorf("buffer differs from the reference: %v", err)
					}
				}
			}
		})
	}
}

func keys(c *Checkpoint) string {
	ks := make([]string, 0, len(c.Tensors))
	for k := range c.Tensors {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return strings.Join(ks, " ")
}

func TestRandomIsDeterministicPerSeed(t *testing.T) {
	p := Presets()["tiny"]
	a, b, c := RandomPredictor(p.Predictor, 3), RandomPredictor(p.Predictor, 3), RandomPredictor(p.Predictor, 4)
	if a.SHA256 != b.SHA256 {
		t.Errorf("same seed gave SHA-256 %s and %s", a.SHA256, b.SHA256)
	}
	for k := range a.Tensors {
		if err := sameTensor(a.Tensors[k], b.Tensors[k]); err != nil {
			t.Errorf("same seed: %v", err)
		}
	}
	if a.SHA256 == c.SHA256 {
		t.Errorf("seeds 3 and 4 gave the same weights")
	}
	w3, w4 := a.Tensors["transformer.0.self_attn.q_proj.weight"].F32, c.Tensors["transformer.0.self_attn.q_proj.weight"].F32
	if w3[0] == w4[0] && w3[1] == w4[1] {
		t.Errorf("seeds 3 and 4 share q_proj values")
	}
	// A tensor does not depend on which other tensors exist: adding layers
	// leaves the first layer alone.
	deeper := p.Predictor
	deeper.NLayers++
	d := RandomPredictor(deeper, 3)
	if err := sameTensor(d.Tensors["transformer.0.ffn.w1.weight"], a.Tensors["transformer.0.ffn.w1.weight"]); err != nil {
		t.Errorf("one more layer changed layer 0: %v", err)
	}
	// Tokenizer and predictor of one seed use different streams.
	tok := RandomTokenizer(p.Tokenizer, 3)
	if tok.Tensors["encoder.0.norm1.weight"].F32[0] == a.Tensors["transformer.0.norm1.weight"].F32[0] &&
		tok.Tensors["encoder.0.norm1.weight"].F32[1] == a.Tensors["transformer.0.norm1.weight"].F32[1] {
		t.Errorf("tokenizer and predictor norms share values")
	}
}

// The weights follow the documented init: Xavier-normal Linear weights,
// N(0, d^-1/2) embeddings, N(0, RandomBiasStd) biases, norm gains in
// [RandomGainLow, RandomGainHigh).
func TestRandomInitStatistics(t *testing.T) {
	p := Presets()["nano"]
	pred := RandomPredictor(p.Predictor, 1)
	tok := RandomTokenizer(p.Tokenizer, 1)
	d, ff := p.Predictor.DModel, p.Predictor.FFDim
	tests := []struct {
		c       *Checkpoint
		name    string
		wantStd float64
	}{
		{pred, "transformer.0.ffn.w1.weight", math.Sqrt(2 / float64(d+ff))},
		{pred, "embedding.fusion_proj.weight", math.Sqrt(2 / float64(3*d))},
		{pred, "head.proj_s1.weight", math.Sqrt(2 / float64(d+256))},
		{pred, "embedding.emb_s1.weight", 1 / math.Sqrt(float64(d))},
		{pred, "time_emb.minute_embed.weight", 1 / math.Sqrt(float64(d))},
		{pred, "head.proj_s1.bias", RandomBiasStd},
		{tok, "embed.weight", math.Sqrt(2 / float64(6+p.Tokenizer.DModel))},
		{tok, "encoder.0.self_attn.q_proj.bias", RandomBiasStd},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := tc.c.Tensors[tc.name].F32
			var sum, sq float64
			for _, x := range v {
				sum += float64(x)
				sq += float64(x) * float64(x)
			}
			n := float64(len(v))
			mean, std := sum/n, math.Sqrt(sq/n-(sum/n)*(sum/n))
			// The standard error of a sample std is std/sqrt(2n); allow 5 of them.
			if tol := 5 * tc.wantStd / math.Sqrt(2*n); math.Abs(std-tc.wantStd) > tol {
				t.Errorf("std %.5f, want %.5f ± %.5f", std, tc.wantStd, tol)
			}
			if tol := 5 * tc.wantStd / math.Sqrt(n); math.Abs(mean) > tol {
				t.Errorf("mean %.5f, want 0 ± %.5f", mean, tol)
			}
		})
	}
	for _, name := range []string{"norm.weight", "dep_layer.norm.weight", "transformer.3.norm2.weight"} {
		v := pred.Tensors[name].F32
		lo, hi := v[0], v[0]
		for _, x := range v {
			lo, hi = min(lo, x), max(hi, x)
		}
		if lo < RandomGainLow || hi >= RandomGainHigh || hi-lo < 0.3 {
			t.Errorf("%s: gains in [%v, %v], want spread over [%v, %v)", name, lo, hi, RandomGainLow, RandomGainHigh)
		}
	}
}

func TestRandomPair(t *testing.T) {
	for _, name := range PresetNames() {
		if name == "small" {
			continue // 25M parameters: generated once, by TestRandomGolden
		}
		t.Run(name, func(t *testing.T) {
			p := Presets()[name]
			tok, pred, maxCtx, err := RandomPair(name, 1)
			if err != nil {
				t.Fatal(err)
			}
			if maxCtx != p.MaxContext {
				t.Errorf("max context %d, want %d", maxCtx, p.MaxContext)
			}
			if want := "random-" + name + "-seed1"; pred.Name != want {
				t.Errorf("predictor name %q, want %q", pred.Name, want)
			}
			if want := "random-" + name + "-tokenizer-seed1"; tok.Name != want {
				t.Errorf("tokenizer name %q, want %q", tok.Name, want)
			}
			// Usable like a loaded checkpoint.
			tc, err := tok.TokenizerConfig()
			if err != nil || tc != p.Tokenizer {
				t.Errorf("TokenizerConfig() = %+v, %v; want %+v", tc, err, p.Tokenizer)
			}
			pc, err := pred.PredictorConfig()
			if err != nil || pc != p.Predictor {
				t.Errorf("PredictorConfig() = %+v, %v; want %+v", pc, err, p.Predictor)
			}
			d := p.Predictor.DModel
			if _, err := pred.F32("embedding.emb_s1.weight", 1<<p.Predictor.S1Bits, d); err != nil {
				t.Error(err)
			}
			if !strings.HasPrefix(pred.Version(), pred.Name+"@sha256:") {
				t.Errorf("Version() = %q", pred.Version())
			}
		})
	}
	_, _, _, err := RandomPair("huge", 1)
	wantKind(t, err, infer.KindNotFound)
}

// The "nano" preset is the kronos-nano checkpoint's sizes.
func TestNanoPresetMatchesCheckpoint(t *testing.T) {
	p := Presets()["nano"]
	tc, err := mustLoad(t, filepath.Join(nanoModel, "tokenizer")).TokenizerConfig()
	if err != nil {
		t.Fatal(err)
	}
	pc, err := mustLoad(t, filepath.Join(nanoModel, "predictor")).PredictorConfig()
	if err != nil {
		t.Fatal(err)
	}
	if tc != p.Tokenizer || pc != p.Predictor {
		t.Errorf("nano preset %+v / %+v, checkpoint %+v / %+v", p.Tokenizer, p.Predictor, tc, pc)
	}
}

func TestRandomPanicsOnInvalidConfig(t *testing.T) {
	tests := []struct {
		name string
		f    func()
	}{
		{"tokenizer odd head", func() {
			RandomTokenizer(graphs.TokenizerConfig{DModel: 30, NHeads: 2, FFDim: 8, NEncLayers: 1, NDecLayers: 1, S1Bits: 2, S2Bits: 2}, 1)
		}},
		{"predictor no layers", func() {
			RandomPredictor(graphs.PredictorConfig{DModel: 32, NHeads: 2, FFDim: 8, S1Bits: 2, S2Bits: 2}, 1)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			tc.f()
		})
	}
}

// The SHA-256 of the random checkpoints of every preset is pinned, so that a
// change of the generator (which changes every benchmark and export made
// with --random) is deliberate. This is also the one test that builds the
// "small" preset.
func TestRandomGolden(t *testing.T) {
	if testing.Short() {
		t.Skip("generates the small preset")
	}
	var b strings.Builder
	for _, name := range PresetNames() {
		seeds := []uint64{1}
		if name == "tiny" {
			seeds = append(seeds, 2)
		}
		for _, seed := range seeds {
			tok, pred, _, err := RandomPair(name, seed)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&b, "%s %s\n%s %s\n", tok.Name, tok.SHA256, pred.Name, pred.SHA256)
		}
	}
	path := filepath.Join("testdata", "random.golden")
	if *update {
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run `go test ./checkpoint -run TestRandomGolden -update` to create it)", err)
	}
	if b.String() != string(want) {
		t.Errorf("random checkpoints changed:\n%s\nwant\n%s\nIf the change is intended, run `go test ./checkpoint -run TestRandomGolden -update` and commit checkpoint/testdata/random.golden.", b.String(), want)
	}
}
