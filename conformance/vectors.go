package conformance

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/kronos-gateway/kronos-gateway/internal/infer"
)

// Index is a vector set's index.json.
type Index struct {
	FormatVersion int               `json:"format_version"`
	Set           string            `json:"set"`
	Configs       map[string]Config `json:"configs"`
	Cases         []CaseEntry       `json:"cases"`
}

// Config is one model configuration of a vector set: where its tokenizer
// and predictor checkpoints are, relative to the set's folder.
type Config struct {
	TokenizerDir string `json:"tokenizer_dir"`
	PredictorDir string `json:"predictor_dir"`
}

// CaseEntry lists one case file of a vector set.
type CaseEntry struct {
	Config      string `json:"config"`
	Case        string `json:"case"`
	File        string `json:"file"` // relative to the set's folder
	API         string `json:"api"`  // "predict" or "predict_batch"
	MaxContext  int    `json:"max_context"`
	SampleCount int    `json:"sample_count"`
	Batch       int    `json:"batch"`
}

// Name is "<config>/<case>".
func (e CaseEntry) Name() string { return e.Config + "/" + e.Case }

// Case is one case file. Float fields hold float32 values written exactly
// (InputRows excepted: those are the float64 values of the CSV), so decoding
// them as float64 and converting to float32 is lossless.
type Case struct {
	FormatVersion int      `json:"format_version"`
	Config        string   `json:"config"`
	Case          string   `json:"case"`
	API           string   `json:"api"`
	Columns       []string `json:"columns"`
	Params        struct {
		Lookback    int     `json:"lookback"`
		PredLen     int     `json:"pred_len"`
		MaxContext  int     `json:"max_context"`
		Clip        float64 `json:"clip"`
		T           float64 `json:"T"`
		TopK        int     `json:"top_k"`
		TopP        float64 `json:"top_p"`
		SampleCount int     `json:"sample_count"`
		Batch       int     `json:"batch"`
	} `json:"params"`
	Series          []Series         `json:"series"`
	ModelBatch      ModelBatch       `json:"model_batch"`
	SamplingFilters []SamplingFilter `json:"sampling_filters"`
}

// Series is the per-series part of a case.
type Series struct {
	XTimestamps []string    `json:"x_timestamps"`
	YTimestamps []string    `json:"y_timestamps"`
	InputRows   [][]float64 `json:"input_rows"`
	XFilled     [][]float64 `json:"x_filled"`
	Mean        []float64   `json:"mean"`
	Std         []float64   `json:"std"`
	XNorm       [][]float64 `json:"x_norm"`
	XStamp      [][]int64   `json:"x_stamp"`
	YStamp      [][]int64   `json:"y_stamp"`
	PredsNorm   [][]float64 `json:"preds_norm"`
	Prediction  [][]float64 `json:"prediction"`
}

// ModelBatch is what happened inside the model, for all rows (series-major).
type ModelBatch struct {
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
	Steps                    []Step        `json:"steps"`
	GeneratedS1              [][]int64     `json:"generated_s1"`
	GeneratedS2              [][]int64     `json:"generated_s2"`
	FinalWindow              [2]int        `json:"final_window"`
	FinalS1                  [][]int64     `json:"final_s1"`
	FinalS2                  [][]int64     `json:"final_s2"`
	Decoded                  [][][]float64 `json:"decoded"`
}

// Step is one autoregressive step over all rows.
type Step struct {
	Step     int         `json:"step"`
	Window   [2]int      `json:"window"`
	S1Logits [][]float64 `json:"s1_logits"`
	S2Logits [][]float64 `json:"s2_logits"`
	S1       []int64     `json:"s1"`
	S2       []int64     `json:"s2"`
}

// SamplingFilter is one recorded filter setting applied to step 0's logits.
type SamplingFilter struct {
	T       float64     `json:"T"`
	TopK    int         `json:"top_k"`
	TopP    float64     `json:"top_p"`
	S1Probs [][]float64 `json:"s1_probs"`
	S1Kept  [][]int64   `json:"s1_kept"`
	S2Probs [][]float64 `json:"s2_probs"`
	S2Kept  [][]int64   `json:"s2_kept"`
}

// LoadIndex reads <dir>/index.json. A missing file is KindNotFound, a
// malformed one KindInvalid.
func LoadIndex(dir string) (*Index, error) {
	var ix Index
	if err := readJSON(filepath.Join(dir, "index.json"), &ix); err != nil {
		return nil, err
	}
	if ix.FormatVersion != 1 {
		return nil, infer.Errorf(infer.KindInvalid, "%s: unsupported format_version %d", dir, ix.FormatVersion)
	}
	for _, e := range ix.Cases {
		if _, ok := ix.Configs[e.Config]; !ok {
			return nil, infer.Errorf(infer.KindInvalid, "%s: case %s names an unknown config", dir, e.Name())
		}
	}
	return &ix, nil
}

// LoadCase reads one case file of the set in dir and checks its shape.
func LoadCase(dir string, e CaseEntry) (*Case, error) {
	var c Case
	if err := readJSON(filepath.Join(dir, e.File), &c); err != nil {
		return nil, err
	}
	if err := c.check(); err != nil {
		return nil, infer.Wrap(infer.KindInvalid, err, "%s", e.File)
	}
	return &c, nil
}

// parseCase decodes and checks a case file's content.
func parseCase(b []byte) (*Case, error) {
	var c Case
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, infer.Wrap(infer.KindInvalid, err, "conformance")
	}
	if err := c.check(); err != nil {
		return nil, infer.Wrap(infer.KindInvalid, err, "conformance")
	}
	return &c, nil
}

// check verifies every size the runner and Replay rely on, so that a
// malformed file is an error rather than a panic.
func (c *Case) check() error {
	p := &c.Params
	mb := &c.ModelBatch
	b, l, pl := len(c.Series), p.Lookback, p.PredLen
	switch {
	case c.FormatVersion != 1:
		return fmt.Errorf("unsupported format_version %d", c.FormatVersion)
	case b == 0 || p.SampleCount < 1 || l < 1 || pl < 1 || p.MaxContext < 1:
		return fmt.Errorf("empty case")
	case mb.Rows != b*p.SampleCount || len(mb.Steps) != pl:
		return fmt.Errorf("model_batch has %d rows and %d steps, want %d and %d", mb.Rows, len(mb.Steps), b*p.SampleCount, pl)
	}
	r := mb.Rows
	for i, se := range c.Series {
		if len(se.InputRows) != l || len(se.XTimestamps) != l || len(se.YTimestamps) != pl ||
			!matrix(se.XFilled, l, 6) || !matrix(se.XNorm, l, 6) || len(se.Mean) != 6 || len(se.Std) != 6 ||
			!matrix(se.XStamp, l, 5) || !matrix(se.YStamp, pl, 5) ||
			!matrix(se.PredsNorm, pl, 6) || !matrix(se.Prediction, pl, 6) {
			return fmt.Errorf("series %d: shapes differ from lookback %d / pred_len %d", i, l, pl)
		}
		for _, row := range se.InputRows {
			if len(row) != len(c.Columns) {
				return fmt.Errorf("series %d: input rows do not match the columns", i)
			}
		}
	}
	if len(mb.RowSeries) != r {
		return fmt.Errorf("row_series has %d entries for %d rows", len(mb.RowSeries), r)
	}
	for row, se := range mb.RowSeries {
		if se != row/p.SampleCount {
			return fmt.Errorf("rows are not series-major")
		}
	}
	if len(mb.Steps[0].S1Logits) != r || len(mb.Steps[0].S2Logits) != r || len(mb.QuantInput) != r ||
		len(mb.QuantInput[0]) != l || len(mb.InitialContextHiddenLast) != r || len(mb.InitialContextHiddenLast[0]) == 0 {
		return fmt.Errorf("model_batch: inconsistent rows")
	}
	v1, v2 := len(mb.Steps[0].S1Logits[0]), len(mb.Steps[0].S2Logits[0])
	d, dm := len(mb.QuantInput[0][0]), len(mb.InitialContextHiddenLast[0])
	w := mb.FinalWindow[1] - mb.FinalWindow[0]
	switch {
	case v1 < 2 || v1&(v1-1) != 0 || v2 < 2 || v2&(v2-1) != 0:
		return fmt.Errorf("vocabulary sizes %d, %d are not powers of two", v1, v2)
	case d == 0 || w < 1:
		return fmt.Errorf("model_batch: empty quant_input or final window")
	}
	for _, q := range mb.QuantInput {
		if !matrix(q, l, d) {
			return fmt.Errorf("quant_input: inconsistent shape")
		}
	}
	ok := matrix(mb.InitialS1Logits, r, v1) && matrix(mb.InitialS2Logits, r, v2) &&
		matrix(mb.InitialContextHiddenLast, r, dm) && len(mb.InitialS1Argmax) == r &&
		matrix(mb.ContextS1, r, l) && matrix(mb.ContextS2, r, l) &&
		matrix(mb.GeneratedS1, r, pl) && matrix(mb.GeneratedS2, r, pl) &&
		matrix(mb.FinalS1, r, w) && matrix(mb.FinalS2, r, w) && len(mb.Decoded) == r
	for _, dec := range mb.Decoded {
		ok = ok && matrix(dec, w, 6)
	}
	for _, st := range mb.Steps {
		ok = ok && matrix(st.S1Logits, r, v1) && matrix(st.S2Logits, r, v2) && len(st.S1) == r && len(st.S2) == r &&
			st.Window[0] >= 0 && st.Window[0] <= st.Window[1] && st.Window[1] <= l+pl
	}
	for _, sf := range c.SamplingFilters {
		ok = ok && matrix(sf.S1Probs, r, v1) && matrix(sf.S2Probs, r, v2) && len(sf.S1Kept) == r && len(sf.S2Kept) == r
	}
	if !ok {
		return fmt.Errorf("model_batch: shapes are inconsistent")
	}
	return nil
}

// matrix reports whether x is rows x cols.
func matrix[T any](x [][]T, rows, cols int) bool {
	if len(x) != rows {
		return false
	}
	for _, r := range x {
		if len(r) != cols {
			return false
		}
	}
	return true
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		if os.IsNotExist(err) {
			return infer.Wrap(infer.KindNotFound, err, "conformance")
		}
		return infer.Wrap(infer.KindInternal, err, "conformance")
	}
	if err := json.Unmarshal(b, v); err != nil {
		return infer.Wrap(infer.KindInvalid, err, "conformance: %s", path)
	}
	return nil
}
