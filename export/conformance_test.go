package export

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/kronos-gateway/kronos-gateway/checkpoint"
)

// Conformance vectors of the original PyTorch Kronos (see
// testdata/conformance/README.md for the fields and tolerances).
const testdata = "../testdata"

// confConfig names one model of the carried conformance sets.
type confConfig struct {
	name  string // config name, e.g. "tiny"
	dir   string // testdata folder holding models/ and cases/
	cases []string
}

var (
	tiny        = confConfig{"tiny", "conformance", []string{"short", "slide", "long_ctx", "batch3", "samples3"}}
	tinyFixedTE = confConfig{"tiny-fixedte", "conformance", []string{"short", "slide"}}
	nano        = confConfig{"kronos-nano", "conformance-nano", []string{"nano_short", "nano_slide"}}
	allConfigs  = []confConfig{tiny, tinyFixedTE, nano}
)

func (c confConfig) modelDir(part string) string {
	return filepath.Join(testdata, c.dir, "models", c.name, part)
}

// confCase is the subset of a case file the exporter tests use.
type confCase struct {
	Config string `json:"config"`
	Case   string `json:"case"`
	Params struct {
		Lookback   int `json:"lookback"`
		PredLen    int `json:"pred_len"`
		MaxContext int `json:"max_context"`
	} `json:"params"`
	Series []struct {
		XNorm  [][]float64 `json:"x_norm"`
		XStamp [][]int64   `json:"x_stamp"`
		YStamp [][]int64   `json:"y_stamp"`
	} `json:"series"`
	MB struct {
		Rows                     int           `json:"rows"`
		RowSeries                []int         `json:"row_series"`
		ContextLen               int           `json:"context_len"`
		QuantInput               [][][]float64 `json:"quant_input"`
		ContextS1                [][]int64     `json:"context_s1"`
		ContextS2                [][]int64     `json:"context_s2"`
		InitialS1Logits          [][]float64   `json:"initial_s1_logits"`
		InitialS1Argmax          []int64       `json:"initial_s1_argmax"`
		InitialS2Logits          [][]float64   `json:"initial_s2_logits"`
		InitialContextHiddenLast [][]float64   `json:"initial_context_hidden_last"`
		Steps                    []struct {
			Window   [2]int      `json:"window"`
			S1Logits [][]float64 `json:"s1_logits"`
			S2Logits [][]float64 `json:"s2_logits"`
			S1       []int64     `json:"s1"`
			S2       []int64     `json:"s2"`
		} `json:"steps"`
		GeneratedS1 [][]int64     `json:"generated_s1"`
		GeneratedS2 [][]int64     `json:"generated_s2"`
		FinalS1     [][]int64     `json:"final_s1"`
		FinalS2     [][]int64     `json:"final_s2"`
		Decoded     [][][]float64 `json:"decoded"`
	} `json:"model_batch"`
}

func loadCase(t testing.TB, c confConfig, name string) *confCase {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testdata, c.dir, "cases", c.name, name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var cc confCase
	if err := json.Unmarshal(b, &cc); err != nil {
		t.Fatalf("%s/%s: %v", c.name, name, err)
	}
	return &cc
}

// stampRows returns the time features of positions [begin, end) of the full
// token sequence of series s (context stamps, then prediction stamps).
func (cc *confCase) stampRows(s, begin, end int) []int64 {
	var out []int64
	ser := cc.Series[s]
	for p := begin; p < end; p++ {
		if p < len(ser.XStamp) {
			out = append(out, ser.XStamp[p]...)
		} else {
			out = append(out, ser.YStamp[p-len(ser.XStamp)]...)
		}
	}
	return out
}

// tokens returns ids of positions [begin, end) of row r's full sequence
// (context ids, then generated ids).
func (cc *confCase) tokens(r, begin, end int) (s1, s2 []int64) {
	l := cc.MB.ContextLen
	for p := begin; p < end; p++ {
		if p < l {
			s1 = append(s1, cc.MB.ContextS1[r][p])
			s2 = append(s2, cc.MB.ContextS2[r][p])
		} else {
			s1 = append(s1, cc.MB.GeneratedS1[r][p-l])
			s2 = append(s2, cc.MB.GeneratedS2[r][p-l])
		}
	}
	return s1, s2
}

// loadModel loads the tokenizer + predictor pair of a config.
func loadModel(t testing.TB, c confConfig) *Model {
	t.Helper()
	tok, err := checkpoint.Load(c.modelDir("tokenizer"), "")
	if err != nil {
		t.Fatal(err)
	}
	pred, err := checkpoint.Load(c.modelDir("predictor"), "")
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewModel(tok, pred)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// compare checks got against the reference ref with an absolute tolerance
// of rel * scale, scale = max(1, max |ref|) (the conformance rule).
func compare(t testing.TB, field string, got []float32, ref []float64, rel float64) {
	t.Helper()
	if len(got) != len(ref) {
		t.Fatalf("%s: %d values, want %d", field, len(got), len(ref))
	}
	scale := 1.0
	for _, v := range ref {
		scale = math.Max(scale, math.Abs(v))
	}
	tol := rel * scale
	worst, at := 0.0, -1
	for i := range ref {
		d := math.Abs(float64(got[i]) - ref[i])
		if math.IsNaN(d) {
			d = math.Inf(1)
		}
		if d > worst {
			worst, at = d, i
		}
	}
	if testing.Verbose() {
		t.Logf("%s: max |got - ref| = %.3g (%.2g of the tolerance)", field, worst, worst/tol)
	}
	if worst > tol {
		t.Errorf("%s: max |got - ref| = %.3g at %d (got %v, want %v), tolerance %.3g", field, worst, at, got[at], ref[at], tol)
	}
}

func flat2(v [][]float64) []float64 {
	var out []float64
	for _, r := range v {
		out = append(out, r...)
	}
	return out
}

func argmax(v []float32) int64 {
	best := 0
	for i := range v {
		if v[i] > v[best] {
			best = i
		}
	}
	return int64(best)
}

func name(c confConfig, cs string) string { return fmt.Sprintf("%s/%s", c.name, cs) }
