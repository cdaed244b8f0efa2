package forecast

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Conformance vectors carried in the repository (see
// testdata/conformance/README.md for the format).
const (
	tinyCases = "../testdata/conformance/cases"
	nanoCases = "../testdata/conformance-nano/cases"
)

// refCase is the part of a conformance case file these tests use. Floats are
// float32 values written exactly, so float64 -> float32 is lossless.
type refCase struct {
	Config  string   `json:"config"`
	Case    string   `json:"case"`
	Columns []string `json:"columns"`
	Params  struct {
		Lookback    int `json:"lookback"`
		PredLen     int `json:"pred_len"`
		MaxContext  int `json:"max_context"`
		SampleCount int `json:"sample_count"`
		Batch       int `json:"batch"`
	} `json:"params"`
	Series []struct {
		XTimestamps []string    `json:"x_timestamps"`
		YTimestamps []string    `json:"y_timestamps"`
		XFilled     [][]float64 `json:"x_filled"`
		XNorm       [][]float64 `json:"x_norm"`
		Std         []float64   `json:"std"`
		XStamp      [][]int64   `json:"x_stamp"`
		YStamp      [][]int64   `json:"y_stamp"`
		PredsNorm   [][]float64 `json:"preds_norm"`
		Prediction  [][]float64 `json:"prediction"`
	} `json:"series"`
	ModelBatch struct {
		Rows       int           `json:"rows"`
		RowSeries  []int         `json:"row_series"`
		QuantInput [][][]float64 `json:"quant_input"`
		ContextS1  [][]int64     `json:"context_s1"`
		ContextS2  [][]int64     `json:"context_s2"`
		Steps      []struct {
			Window   [2]int      `json:"window"`
			S1Logits [][]float64 `json:"s1_logits"`
			S2Logits [][]float64 `json:"s2_logits"`
			S1       []int64     `json:"s1"`
			S2       []int64     `json:"s2"`
		} `json:"steps"`
		GeneratedS1 [][]int64     `json:"generated_s1"`
		GeneratedS2 [][]int64     `json:"generated_s2"`
		FinalWindow [2]int        `json:"final_window"`
		FinalS1     [][]int64     `json:"final_s1"`
		FinalS2     [][]int64     `json:"final_s2"`
		Decoded     [][][]float64 `json:"decoded"`
	} `json:"model_batch"`
	SamplingFilters []struct {
		T      float64     `json:"T"`
		TopK   int         `json:"top_k"`
		TopP   float64     `json:"top_p"`
		S1Prob [][]float64 `json:"s1_probs"`
		S1Kept [][]int     `json:"s1_kept"`
		S2Prob [][]float64 `json:"s2_probs"`
		S2Kept [][]int     `json:"s2_kept"`
	} `json:"sampling_filters"`
}

// loadCase reads cases/<config>/<name>.json under dir.
func loadCase(t testing.TB, dir, config, name string) *refCase {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, config, name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var c refCase
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatalf("%s/%s: %v", config, name, err)
	}
	return &c
}

// caseRef names one carried case.
type caseRef struct{ dir, config, name string }

func (r caseRef) String() string { return r.config + "/" + r.name }

func (r caseRef) load(t testing.TB) *refCase { return loadCase(t, r.dir, r.config, r.name) }

// allCases are the cases carried in testdata.
var allCases = []caseRef{
	{tinyCases, "tiny", "short"}, {tinyCases, "tiny", "slide"}, {tinyCases, "tiny", "long_ctx"},
	{tinyCases, "tiny", "ohlc_only"}, {tinyCases, "tiny", "vol_no_amount"},
	{tinyCases, "tiny", "batch3"}, {tinyCases, "tiny", "samples3"},
	{tinyCases, "tiny-fixedte", "short"}, {tinyCases, "tiny-fixedte", "slide"},
	{tinyCases, "tiny-fixedte", "long_ctx"}, {tinyCases, "tiny-fixedte", "ohlc_only"},
	{tinyCases, "tiny-fixedte", "vol_no_amount"}, {tinyCases, "tiny-fixedte", "batch3"},
	{tinyCases, "tiny-fixedte", "samples3"},
	{nanoCases, "kronos-nano", "nano_short"}, {nanoCases, "kronos-nano", "nano_slide"},
}

func f32(x []float64) []float32 {
	out := make([]float32, len(x))
	for i, v := range x {
		out[i] = float32(v)
	}
	return out
}

func flat32(x [][]float64) []float32 {
	var out []float32
	for _, r := range x {
		out = append(out, f32(r)...)
	}
	return out
}

func flatI(x [][]int64) []int64 {
	var out []int64
	for _, r := range x {
		out = append(out, r...)
	}
	return out
}

// parseStamps parses the cases' zone-less ISO timestamps (as UTC).
func parseStamps(t testing.TB, s []string) []time.Time {
	t.Helper()
	out := make([]time.Time, len(s))
	for i, v := range s {
		ts, err := time.Parse("2006-01-02T15:04:05", v)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = ts
	}
	return out
}

// vocab returns V1, V2 of a case from its logits.
func (c *refCase) vocab() (int, int) {
	st := c.ModelBatch.Steps[0]
	return len(st.S1Logits[0]), len(st.S2Logits[0])
}

// fullSeq returns row r's reference full token sequence (context then
// generated ids).
func (c *refCase) fullSeq(r int) (s1, s2 []int64) {
	mb := &c.ModelBatch
	s1 = append(append([]int64(nil), mb.ContextS1[r]...), mb.GeneratedS1[r]...)
	s2 = append(append([]int64(nil), mb.ContextS2[r]...), mb.GeneratedS2[r]...)
	return s1, s2
}

// fullStamps returns series b's stamps: context then prediction.
func (c *refCase) fullStamps(b int) []int64 {
	return append(flatI(c.Series[b].XStamp), flatI(c.Series[b].YStamp)...)
}
