package onnxlocal

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/kronos-gateway/kronos-gateway/checkpoint"
	"github.com/kronos-gateway/kronos-gateway/export"
	"github.com/kronos-gateway/kronos-gateway/internal/infer"
)

// moduleRoot is the repository root (two levels above this package).
var moduleRoot = filepath.Join("..", "..")

// testLib returns the ONNX Runtime library for tests: $KRONOS_ORT_LIB, else
// the one `make ort` extracts. Without either the test is skipped.
func testLib(t testing.TB) string {
	t.Helper()
	if p := os.Getenv(LibPathEnv); p != "" {
		return p
	}
	p, _ := filepath.Abs(filepath.Join(moduleRoot, DefaultLibPath))
	if _, err := os.Stat(p); err != nil {
		t.Skipf("no ONNX Runtime library: run `make ort` or set %s", LibPathEnv)
	}
	return p
}

// Conformance configurations used by the tests.
type confConfig struct {
	name       string // config name, also the model name in the repository
	dir        string // conformance root holding models/ and cases/
	maxContext int
}

var (
	tinyConf = confConfig{"tiny", filepath.Join(moduleRoot, "testdata", "conformance"), 64}
	nanoConf = confConfig{"kronos-nano", filepath.Join(moduleRoot, "testdata", "conformance-nano"), 256}
)

// repos caches exported repositories per config for the whole test binary.
var repos struct {
	mu   sync.Mutex
	dirs map[string]string
	errs map[string]error
}

// repoFor returns a model repository holding version 1 of config c: the
// committed model_repository for kronos-nano when it is there, else graphs
// exported once per test binary into a temporary folder.
func repoFor(t testing.TB, c confConfig) string {
	t.Helper()
	if c.name == "kronos-nano" {
		committed := filepath.Join(moduleRoot, DefaultRepoDir)
		if _, err := resolveVersion(committed, c.name, ""); err == nil {
			return committed
		}
	}
	repos.mu.Lock()
	defer repos.mu.Unlock()
	if repos.dirs == nil {
		repos.dirs, repos.errs = map[string]string{}, map[string]error{}
	}
	if d, ok := repos.dirs[c.name]; ok {
		if err := repos.errs[c.name]; err != nil {
			t.Fatal(err)
		}
		return d
	}
	dir, err := os.MkdirTemp("", "onnxlocal-test-"+c.name+"-")
	if err == nil {
		tok, pred := filepath.Join(c.dir, "models", c.name, "tokenizer"), filepath.Join(c.dir, "models", c.name, "predictor")
		err = exportRepo(dir, c.name, "1", tok, pred, c.maxContext)
	}
	repos.dirs[c.name], repos.errs[c.name] = dir, err
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestMain removes the exported repositories.
func TestMain(m *testing.M) {
	code := m.Run()
	for _, d := range repos.dirs {
		os.RemoveAll(d)
	}
	os.Exit(code)
}

// exportRepo writes the five graphs of a checkpoint pair into repo as
// version ver of model name.
func exportRepo(repo, name, ver, tokDir, predDir string, maxContext int) error {
	tok, err := checkpoint.Load(tokDir, "")
	if err != nil {
		return err
	}
	pred, err := checkpoint.Load(predDir, "")
	if err != nil {
		return err
	}
	return exportPair(repo, name, ver, tok, pred, maxContext)
}

// exportPair writes the five graphs of loaded checkpoints with the
// exporter's own repository writer.
func exportPair(repo, name, ver string, tok, pred *checkpoint.Checkpoint, maxContext int) error {
	m, err := export.NewModel(tok, pred)
	if err != nil {
		return err
	}
	return export.WriteRepository(context.Background(), m, export.Options{Dir: repo, Name: name, Version: ver, MaxContext: maxContext})
}

// openConf opens the backend of config c with extra options.
func openConf(t testing.TB, c confConfig, opt Options) *Backend {
	t.Helper()
	opt.RepoDir = repoFor(t, c)
	opt.Model = c.name
	opt.LibPath = testLib(t)
	if opt.MaxContext == 0 {
		opt.MaxContext = c.maxContext
	}
	if opt.IntraOpThreads == 0 {
		opt.IntraOpThreads = 1
	}
	b, err := Open(opt)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// confCase is the part of a conformance case file the backend tests use.
type confCase struct {
	Config string `json:"config"`
	Case   string `json:"case"`
	Params struct {
		Lookback    int `json:"lookback"`
		PredLen     int `json:"pred_len"`
		MaxContext  int `json:"max_context"`
		SampleCount int `json:"sample_count"`
		Batch       int `json:"batch"`
	} `json:"params"`
	Series []struct {
		XNorm  [][]float32 `json:"x_norm"`
		XStamp [][]int64   `json:"x_stamp"`
		YStamp [][]int64   `json:"y_stamp"`
	} `json:"series"`
	ModelBatch struct {
		Rows          int           `json:"rows"`
		RowSeries     []int         `json:"row_series"`
		QuantInput    [][][]float32 `json:"quant_input"`
		ContextS1     [][]int64     `json:"context_s1"`
		ContextS2     [][]int64     `json:"context_s2"`
		InitialHidden [][]float32   `json:"initial_context_hidden_last"`
		Steps         []struct {
			Step     int         `json:"step"`
			Window   [2]int      `json:"window"`
			S1Logits [][]float32 `json:"s1_logits"`
			S2Logits [][]float32 `json:"s2_logits"`
			S1       []int64     `json:"s1"`
			S2       []int64     `json:"s2"`
		} `json:"steps"`
		GeneratedS1 [][]int64     `json:"generated_s1"`
		GeneratedS2 [][]int64     `json:"generated_s2"`
		FinalS1     [][]int64     `json:"final_s1"`
		FinalS2     [][]int64     `json:"final_s2"`
		Decoded     [][][]float32 `json:"decoded"`
	} `json:"model_batch"`
}

// cases caches parsed case files.
var cases sync.Map // path -> *confCase

func loadCase(t testing.TB, c confConfig, name string) *confCase {
	t.Helper()
	p := filepath.Join(c.dir, "cases", c.name, name+".json")
	if v, ok := cases.Load(p); ok {
		return v.(*confCase)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var cc confCase
	if err := json.Unmarshal(b, &cc); err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	cases.Store(p, &cc)
	return &cc
}

// window returns row r's predictor window at step i, built from the
// reference's context and generated ids.
func (cc *confCase) window(r, i int) infer.Window {
	mb := &cc.ModelBatch
	st := mb.Steps[i]
	ser := cc.Series[mb.RowSeries[r]]
	b, e := st.Window[0], st.Window[1]
	L := len(mb.ContextS1[r])
	w := infer.Window{Start: b}
	for p := b; p < e; p++ {
		var stamp []int64
		if p < L {
			w.S1 = append(w.S1, mb.ContextS1[r][p])
			w.S2 = append(w.S2, mb.ContextS2[r][p])
			stamp = ser.XStamp[p]
		} else {
			w.S1 = append(w.S1, mb.GeneratedS1[r][p-L])
			w.S2 = append(w.S2, mb.GeneratedS2[r][p-L])
			stamp = ser.YStamp[p-L]
		}
		w.Stamps = append(w.Stamps, stamp...)
	}
	return w
}

// flat2 flattens a matrix.
func flat2[T any](m [][]T) []T {
	var out []T
	for _, r := range m {
		out = append(out, r...)
	}
	return out
}

// checkClose reports the first few values of got that differ from want by
// more than tol * scale, scale = max(1, max |want|).
func checkClose(t testing.TB, what string, got, want []float32, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	scale := 1.0
	for _, v := range want {
		scale = math.Max(scale, math.Abs(float64(v)))
	}
	bad := 0
	worst := 0.0
	for i := range got {
		diff := math.Abs(float64(got[i]) - float64(want[i]))
		if !(diff <= tol*scale) { // also catches NaN
			if bad < 3 {
				t.Errorf("%s[%d] = %g, want %g (|diff| %.3g > %.3g)", what, i, got[i], want[i], diff, tol*scale)
			}
			bad++
		}
		worst = math.Max(worst, diff)
	}
	if bad > 0 {
		t.Errorf("%s: %d of %d values out of tolerance (worst |diff| %.3g)", what, bad, len(got), worst)
	}
}
