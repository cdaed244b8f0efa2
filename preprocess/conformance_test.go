package preprocess

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// conformanceSets are the vector sets carried in the repository's testdata
// (a subset of ../shared, see testdata/conformance/README.md).
var conformanceSets = []string{
	"../testdata/conformance",
	"../testdata/conformance-nano",
}

// confIndex is the part of a vector set's index.json the tests need.
type confIndex struct {
	Configs map[string]struct {
		Tokenizer struct {
			S1Bits int `json:"s1_bits"`
			S2Bits int `json:"s2_bits"`
		} `json:"tokenizer"`
	} `json:"configs"`
	Cases []struct {
		Config string `json:"config"`
		Case   string `json:"case"`
		File   string `json:"file"`
	} `json:"cases"`
}

// confCase is the part of a case file the tests need. Float fields hold
// float32 values written exactly (input_rows excepted), so decoding them as
// float64 and converting to float32 is lossless.
type confCase struct {
	Config  string   `json:"config"`
	Case    string   `json:"case"`
	Columns []string `json:"columns"`
	Params  struct {
		Lookback    int     `json:"lookback"`
		PredLen     int     `json:"pred_len"`
		Clip        float64 `json:"clip"`
		SampleCount int     `json:"sample_count"`
		Batch       int     `json:"batch"`
	} `json:"params"`
	Series []struct {
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
	} `json:"series"`
	ModelBatch struct {
		Rows       int           `json:"rows"`
		RowSeries  []int         `json:"row_series"`
		QuantInput [][][]float64 `json:"quant_input"`
		ContextS1  [][]int64     `json:"context_s1"`
		ContextS2  [][]int64     `json:"context_s2"`
	} `json:"model_batch"`

	// Filled in by loadConformance.
	name           string // "<config>/<case>"
	s1Bits, s2Bits int
}

// loadConformance reads every case of every carried vector set. It fails the
// test if a set's index and its cases directory disagree, so that no case
// can be skipped silently.
func loadConformance(t testing.TB) []*confCase {
	t.Helper()
	var cases []*confCase
	for _, set := range conformanceSets {
		var idx confIndex
		readJSON(t, filepath.Join(set, "index.json"), &idx)
		onDisk, err := filepath.Glob(filepath.Join(set, "cases", "*", "*.json"))
		if err != nil {
			t.Fatal(err)
		}
		var listed []string
		for _, e := range idx.Cases {
			p := filepath.Join(set, e.File)
			listed = append(listed, p)
			c := new(confCase)
			readJSON(t, p, c)
			cfg, ok := idx.Configs[e.Config]
			if !ok {
				t.Fatalf("%s: case %s names unknown config %q", set, e.File, e.Config)
			}
			c.name = e.Config + "/" + e.Case
			c.s1Bits, c.s2Bits = cfg.Tokenizer.S1Bits, cfg.Tokenizer.S2Bits
			cases = append(cases, c)
		}
		slices.Sort(listed)
		slices.Sort(onDisk)
		if !slices.Equal(listed, onDisk) {
			t.Fatalf("%s: index.json lists %v but cases/ holds %v", set, listed, onDisk)
		}
	}
	if len(cases) == 0 {
		t.Fatal("no conformance cases found")
	}
	return cases
}

func readJSON(t testing.TB, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// candles builds the predictor input of one series from its input_rows.
func (c *confCase) candles(b int) (cs []Candle, hasVolume, hasAmount bool) {
	col := map[string]int{}
	for i, name := range c.Columns {
		col[name] = i
	}
	vi, hasVolume := col["volume"]
	ai, hasAmount := col["amount"]
	for _, r := range c.Series[b].InputRows {
		k := Candle{Open: r[col["open"]], High: r[col["high"]], Low: r[col["low"]], Close: r[col["close"]]}
		if hasVolume {
			k.Volume = &r[vi]
		}
		if hasAmount {
			k.Amount = &r[ai]
		}
		cs = append(cs, k)
	}
	return cs, hasVolume, hasAmount
}

func flat32(m [][]float64) []float32 {
	var out []float32
	for _, r := range m {
		for _, v := range r {
			out = append(out, float32(v))
		}
	}
	return out
}

func flatInt(m [][]int64) []int64 {
	var out []int64
	for _, r := range m {
		out = append(out, r...)
	}
	return out
}

func vec6(t testing.TB, v []float64) [6]float32 {
	t.Helper()
	if len(v) != 6 {
		t.Fatalf("want 6 values, got %d", len(v))
	}
	var out [6]float32
	for i, x := range v {
		out[i] = float32(x)
	}
	return out
}

func parseNaive(t testing.TB, ss []string) []time.Time {
	t.Helper()
	out := make([]time.Time, len(ss))
	for i, s := range ss {
		ts, err := time.Parse("2006-01-02T15:04:05", s)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = ts
	}
	return out
}

// equalExact reports the first few elements where got and want differ
// (float32 ==, so -0 equals 0, and NaN never matches).
func equalExact[T int64 | float32](t *testing.T, what string, got, want []T, width int) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %d values, want %d", what, len(got), len(want))
	}
	bad := 0
	for i := range got {
		if got[i] != want[i] {
			if bad < 5 {
				t.Errorf("%s[%d][%d] = %v, want %v", what, i/width, i%width, got[i], want[i])
			}
			bad++
		}
	}
	if bad > 0 {
		t.Errorf("%s: %d of %d values differ", what, bad, len(got))
	}
}

func TestConformance(t *testing.T) {
	for _, c := range loadConformance(t) {
		t.Run(c.name, func(t *testing.T) {
			if len(c.Series) != c.Params.Batch {
				t.Fatalf("%d series, params.batch %d", len(c.Series), c.Params.Batch)
			}
			clip := float32(c.Params.Clip)
			for b, s := range c.Series {
				t.Run(fmt.Sprintf("series%d", b), func(t *testing.T) {
					cs, hasV, hasA := c.candles(b)
					L := len(cs)
					if L != c.Params.Lookback {
						t.Fatalf("%d input rows, lookback %d", L, c.Params.Lookback)
					}

					x := Fill(cs, hasV, hasA)
					equalExact(t, "x_filled", x, flat32(s.XFilled), 6)

					mean, std := Stats(flat32(s.XFilled), L)
					equalExact(t, "mean", mean[:], flat32([][]float64{s.Mean}), 6)
					equalExact(t, "std", std[:], flat32([][]float64{s.Std}), 6)

					refMean, refStd := vec6(t, s.Mean), vec6(t, s.Std)
					xn := Normalize(flat32(s.XFilled), L, refMean, refStd, clip)
					equalExact(t, "x_norm", xn, flat32(s.XNorm), 6)

					equalExact(t, "x_stamp", TimeFeatures(parseNaive(t, s.XTimestamps)), flatInt(s.XStamp), 5)
					equalExact(t, "y_stamp", TimeFeatures(parseNaive(t, s.YTimestamps)), flatInt(s.YStamp), 5)

					P := len(s.PredsNorm)
					if P != c.Params.PredLen {
						t.Fatalf("%d preds_norm rows, pred_len %d", P, c.Params.PredLen)
					}
					got := Denormalize(flat32(s.PredsNorm), P, refMean, refStd)
					want := flat32(s.Prediction)
					if len(got) != len(want) {
						t.Fatalf("prediction: got %d values, want %d", len(got), len(want))
					}
					for i := range got {
						j := i % 6
						tol := 1e-4 * (math.Abs(float64(want[i])) + float64(refStd[j]) + 1e-5)
						if d := math.Abs(float64(got[i]) - float64(want[i])); !(d <= tol) {
							t.Errorf("prediction[%d][%d] = %v, want %v (|diff| %.3g > %.3g)", i/6, j, got[i], want[i], d, tol)
						}
					}
				})
			}

			mb := c.ModelBatch
			if mb.Rows != c.Params.Batch*c.Params.SampleCount || len(mb.QuantInput) != mb.Rows {
				t.Fatalf("model_batch: %d rows, %d quant_input rows, want B*S = %d",
					mb.Rows, len(mb.QuantInput), c.Params.Batch*c.Params.SampleCount)
			}
			d := c.s1Bits + c.s2Bits
			for r := range mb.Rows {
				if want := r / c.Params.SampleCount; mb.RowSeries[r] != want {
					t.Errorf("row_series[%d] = %d, want %d (series-major)", r, mb.RowSeries[r], want)
				}
				q := flat32(mb.QuantInput[r])
				n := len(mb.QuantInput[r])
				if len(q) != n*d {
					t.Fatalf("quant_input[%d]: %d values, want %d*%d", r, len(q), n, d)
				}
				s1, s2 := BitsToIDs(q, n, c.s1Bits, c.s2Bits)
				equalExact(t, fmt.Sprintf("context_s1[%d]", r), s1, mb.ContextS1[r], n)
				equalExact(t, fmt.Sprintf("context_s2[%d]", r), s2, mb.ContextS2[r], n)
			}
		})
	}
}
