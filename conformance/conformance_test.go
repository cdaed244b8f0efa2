package conformance

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kronos-gateway/kronos-gateway/forecast"
	"github.com/kronos-gateway/kronos-gateway/internal/infer"
	"github.com/kronos-gateway/kronos-gateway/internal/onnxlocal"
	"github.com/kronos-gateway/kronos-gateway/preprocess"
)

// The vector sets carried in the repository.
var sets = []string{
	filepath.Join("..", "testdata", "conformance"),
	filepath.Join("..", "testdata", "conformance-nano"),
}

func caseCount(t *testing.T, dir string) int {
	t.Helper()
	ix, err := LoadIndex(dir)
	if err != nil {
		t.Fatal(err)
	}
	return len(ix.Cases)
}

// freshCase loads the case file of c again (a copy the test may change).
func freshCase(t *testing.T, dir string, c *Case) *Case {
	t.Helper()
	fc, err := LoadCase(dir, CaseEntry{File: filepath.Join("cases", c.Config, c.Case+".json")})
	if err != nil {
		t.Fatal(err)
	}
	return fc
}

// TestReplay runs every carried case on its recorded model outputs: it must
// pass, which checks preprocessing, the loop, the averaging and the harness.
func TestReplay(t *testing.T) {
	for _, dir := range sets {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			var out bytes.Buffer
			r := &Runner{Out: &out, Backend: func(_ context.Context, c *Case) (infer.Backend, error) { return Replay(c), nil }}
			sum, err := r.Run(context.Background(), dir)
			if err != nil {
				t.Fatal(err)
			}
			if n := caseCount(t, dir); sum.Failed != 0 || sum.Passed != n {
				t.Fatalf("%v, want %d passed:\n%s", sum, n, out.String())
			}
			for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
				if !strings.HasPrefix(line, "PASS ") {
					t.Errorf("line %q", line)
				}
			}
		})
	}
}

// TestReplayDetects changes either what the "model" returns or the
// reference, and checks that the case fails on the right field.
func TestReplayDetects(t *testing.T) {
	dir := sets[0]
	tests := []struct {
		name    string
		model   func(c *Case) // changes the replayed outputs
		ref     func(c *Case) // changes the reference compared with
		field   string        // expected first mismatch ("" = an error)
		errText string
	}{
		{name: "s1 logit", model: func(c *Case) { c.ModelBatch.Steps[3].S1Logits[0][argmin(c.ModelBatch.Steps[3].S1Logits[0])] += 0.01 }, field: "steps[3].s1_logits"},
		{name: "s2 logit", model: func(c *Case) { c.ModelBatch.Steps[7].S2Logits[0][argmin(c.ModelBatch.Steps[7].S2Logits[0])] -= 0.01 }, field: "steps[7].s2_logits"},
		{name: "initial s1 logit", model: func(c *Case) { c.ModelBatch.Steps[0].S1Logits[0][argmin(c.ModelBatch.Steps[0].S1Logits[0])] += 0.01 }, field: "initial_s1_logits"},
		{name: "hidden", model: func(c *Case) { c.ModelBatch.InitialContextHiddenLast[0][3] += 0.01 }, field: "initial_context_hidden_last"},
		{name: "quant_input sign", model: func(c *Case) { flipLargest(c.ModelBatch.QuantInput[0][10]) },
			errText: "step 0 row 0: window ids differ"},
		{name: "quant_input small", model: func(c *Case) { c.ModelBatch.QuantInput[0][4][2] += 2e-3 }, field: "quant_input"},
		{name: "decoded", model: func(c *Case) { c.ModelBatch.Decoded[0][len(c.ModelBatch.Decoded[0])-1][3] += 0.01 }, field: "decoded"},
		{name: "decoded before the prediction", model: func(c *Case) { c.ModelBatch.Decoded[0][0][0] += 0.01 }, field: "decoded"},
		{name: "argmax changes", model: func(c *Case) { c.ModelBatch.Steps[5].S1Logits[0][argmin(c.ModelBatch.Steps[5].S1Logits[0])] = 100 },
			errText: "step 5: s1 ["},
		{name: "x_filled", ref: func(c *Case) { c.Series[0].XFilled[7][2] += 1e-3 }, field: "x_filled"},
		{name: "std", ref: func(c *Case) { c.Series[0].Std[1] *= 1.0000001 }, field: "std"},
		{name: "x_stamp", ref: func(c *Case) { c.Series[0].XStamp[0][1]++ }, field: "x_stamp"},
		{name: "y_stamp", ref: func(c *Case) { c.Series[0].YStamp[11][4]++ }, field: "y_stamp"},
		{name: "window", ref: func(c *Case) { c.ModelBatch.Steps[2].Window[0]++ }, field: "steps[2].window"},
		{name: "generated", ref: func(c *Case) { c.ModelBatch.GeneratedS2[0][4]++ }, field: "generated_s2"},
		{name: "final ids", ref: func(c *Case) { c.ModelBatch.FinalS1[0][0]++ }, field: "final_s1"},
		{name: "preds_norm", ref: func(c *Case) { c.Series[0].PredsNorm[2][1] += 1e-3 }, field: "preds_norm"},
		{name: "prediction", ref: func(c *Case) { c.Series[0].Prediction[2][0] *= 1.001 }, field: "prediction (before the volume clamp)"},
		{name: "filter probs", ref: func(c *Case) { c.SamplingFilters[0].S1Probs[0][0] += 2e-5 }, field: "sampling_filters[0].s1_probs"},
		{name: "filter kept", ref: func(c *Case) { c.SamplingFilters[3].S2Kept[0][0]++ }, field: "sampling_filters[3].s2_kept (rows separated by -1)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &Runner{
				Match: func(name string) bool { return name == "tiny/short" },
				Backend: func(_ context.Context, c *Case) (infer.Backend, error) {
					model := freshCase(t, dir, c)
					if tt.model != nil {
						tt.model(model)
					}
					if tt.ref != nil {
						tt.ref(c)
					}
					return Replay(model), nil
				},
			}
			sum, err := r.Run(context.Background(), dir)
			if err != nil {
				t.Fatal(err)
			}
			if sum.Failed != 1 || len(sum.Cases) != 1 {
				t.Fatalf("%v, want the case to fail", sum)
			}
			res := sum.Cases[0]
			switch {
			case tt.field != "" && (res.Mismatch == nil || res.Mismatch.Field != tt.field):
				t.Fatalf("got %v, want a mismatch on %s", res, tt.field)
			case tt.field == "" && (res.Err == nil || !strings.Contains(res.Err.Error(), tt.errText)):
				t.Fatalf("got %v, want an error containing %q", res, tt.errText)
			}
		})
	}
}

func argmin(x []float64) int {
	best := 0
	for i, v := range x {
		if v < x[best] {
			best = i
		}
	}
	return best
}

// flipLargest flips the sign of the largest-magnitude entry of x.
func flipLargest(x []float64) {
	best := 0
	for i, v := range x {
		if abs(v) > abs(x[best]) {
			best = i
		}
	}
	x[best] = -x[best]
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}

func TestChecker(t *testing.T) {
	tests := []struct {
		name  string
		run   func(*checker)
		index string // "" = no mismatch
	}{
		{"exact ok", func(c *checker) { c.exactF("f", []int{2}, []float32{1, 0.1}, []float64{1, float64(float32(0.1))}) }, ""},
		{"exact off by an ulp", func(c *checker) {
			c.exactF("f", []int{2}, []float32{1, math.Nextafter32(0.1, 1)}, []float64{1, float64(float32(0.1))})
		}, "[1]"},
		{"abs", func(c *checker) { c.absF("f", []int{1, 3}, []float32{0, 1, 2}, []float64{0, 1.0009, 2.002}, 1e-3) }, "[0][2]"},
		{"scaled uses the field's max", func(c *checker) { c.scaledF("f", []int{2}, []float32{100, 0.004}, []float64{100, 0}) }, ""},
		{"scaled at least 1", func(c *checker) { c.scaledF("f", []int{2}, []float32{0.5, 0.0002}, []float64{0.5, 0}) }, "[1]"},
		{"signs", func(c *checker) { c.signs("f", []int{3}, []float32{1e-9, -1, 0}, []float64{1, -1, 1e-9}) }, "[2]"},
		{"ints", func(c *checker) { c.ints("f", []int{2, 2}, []int64{1, 2, 3, 4}, []int64{1, 2, 3, 5}) }, "[1][1]"},
		{"shape", func(c *checker) { c.ints("f", []int{3}, []int64{1, 2}, []int64{1, 2, 3}) }, ""},
		{"prediction per column", func(c *checker) {
			std := [][]float64{{1, 1, 1, 1, 0, 0}}
			c.prediction("f", []int{1, 6}, []float32{10.001, 0, 0, 0, 0, 2e-9}, []float64{10, 0, 0, 0, 0, 0}, std)
		}, "[0][5]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c checker
			tt.run(&c)
			if tt.name == "shape" {
				if c.first == nil || c.first.Tolerance != "shape" {
					t.Fatalf("mismatch %v, want a shape error", c.first)
				}
				return
			}
			switch {
			case tt.index == "" && c.first != nil:
				t.Fatalf("unexpected mismatch %v", c.first)
			case tt.index != "" && (c.first == nil || c.first.Index != tt.index):
				t.Fatalf("mismatch %v, want one at %s", c.first, tt.index)
			}
		})
	}
}

func TestIndexFormat(t *testing.T) {
	tests := []struct {
		shape []int
		i     int
		want  string
	}{
		{[]int{5}, 3, "[3]"},
		{[]int{2, 3}, 4, "[1][1]"},
		{[]int{3, 4, 6}, 6*4 + 6 + 5, "[1][1][5]"},
	}
	for _, tt := range tests {
		if got := index(tt.shape, tt.i); got != tt.want {
			t.Errorf("index(%v, %d) = %s, want %s", tt.shape, tt.i, got, tt.want)
		}
	}
}

func TestLoadErrors(t *testing.T) {
	tmp := t.TempDir()
	if _, err := LoadIndex(tmp); infer.KindOf(err) != infer.KindNotFound {
		t.Errorf("missing index: %v", err)
	}
	os.WriteFile(filepath.Join(tmp, "index.json"), []byte(`{"format_version": 1, "configs": {}, "cases": [{"config": "x", "case": "y"}]}`), 0o644)
	if _, err := LoadIndex(tmp); infer.KindOf(err) != infer.KindInvalid {
		t.Errorf("unknown config: %v", err)
	}
	os.WriteFile(filepath.Join(tmp, "c.json"), []byte(`{"format_version": 1, "params": {"lookback": 2}}`), 0o644)
	if _, err := LoadCase(tmp, CaseEntry{File: "c.json"}); infer.KindOf(err) != infer.KindInvalid {
		t.Errorf("empty case: %v", err)
	}
}

// FuzzCase feeds arbitrary case files to the loader and, when they load,
// to the whole harness on Replay: a malformed file must give an error,
// never a panic.
func FuzzCase(f *testing.F) {
	seed, err := os.ReadFile(filepath.Join(sets[0], "cases", "tiny", "short.json"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	var c Case
	if err := json.Unmarshal(seed, &c); err != nil {
		f.Fatal(err)
	}
	c.ModelBatch.Steps = c.ModelBatch.Steps[:3]
	c.Params.PredLen = 3
	small, _ := json.Marshal(&c)
	f.Add(small)
	f.Add([]byte(`{"format_version": 1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 1<<20 {
			return
		}
		c, err := parseCase(b)
		if err != nil {
			return
		}
		if o, err := predict(context.Background(), Replay(c), c); err == nil {
			compare(c, o)
		}
	})
}

// TestEmbedded is the end-to-end conformance test: export, embedded ONNX
// Runtime backend, Predict, every field. It needs the ONNX Runtime library.
func TestEmbedded(t *testing.T) {
	lib := ortLib(t)
	for _, dir := range sets {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			var out bytes.Buffer
			r := &Runner{LibPath: lib, IntraOpThreads: 1, Out: &out}
			sum, err := r.Run(context.Background(), dir)
			if err != nil {
				t.Fatal(err)
			}
			if n := caseCount(t, dir); sum.Failed != 0 || sum.Passed != n {
				t.Fatalf("%v, want %d passed:\n%s", sum, n, out.String())
			}
			t.Logf("%s: %v", dir, sum)
		})
	}
}

// ortLib returns the ONNX Runtime library for tests ($KRONOS_ORT_LIB, else
// the one `make ort` extracts) or skips the test.
func ortLib(t *testing.T) string {
	t.Helper()
	lib := os.Getenv(onnxlocal.LibPathEnv)
	if lib == "" {
		lib, _ = filepath.Abs(filepath.Join("..", onnxlocal.DefaultLibPath))
		if _, err := os.Stat(lib); err != nil {
			t.Skipf("no ONNX Runtime library: run `make ort` or set %s", onnxlocal.LibPathEnv)
		}
	}
	return lib
}

// TestEmbeddedSeeded checks, on kronos-nano and the embedded backend, the
// sampling guarantees forecast documents: with a seed, the same request gives
// bit-identical paths, and batching the job with another one (other lengths,
// other parameters, other row indices) does not change them either.
func TestEmbeddedSeeded(t *testing.T) {
	dir := sets[1]
	ix, err := LoadIndex(dir)
	if err != nil {
		t.Fatal(err)
	}
	pool := &backendPool{r: &Runner{LibPath: ortLib(t), IntraOpThreads: 1}, dir: dir, ix: ix}
	defer pool.close()
	be, err := pool.get(context.Background(), "kronos-nano", 256)
	if err != nil {
		t.Fatal(err)
	}
	c, err := LoadCase(dir, ix.Cases[0])
	if err != nil {
		t.Fatal(err)
	}
	job := func(l, p int, params forecast.Params) forecast.Job {
		se := c.Series[0]
		cs, err := candles(c.Columns, se.InputRows[:l])
		if err != nil {
			t.Fatal(err)
		}
		xt, err := parseTimes(se.XTimestamps[:l])
		if err != nil {
			t.Fatal(err)
		}
		var yt []time.Time
		for i := range p {
			yt = append(yt, xt[l-1].Add(time.Duration(i+1)*5*time.Minute))
		}
		return forecast.Job{X: preprocess.Fill(cs, true, true), XTime: xt, YTime: yt, Params: params, ReturnPaths: true}
	}
	a := job(150, 16, forecast.Params{Temperature: 1, TopP: 0.9, SampleCount: 3, Seed: 7})
	b := job(100, 24, forecast.Params{Temperature: 0.7, TopK: 20, TopP: 1, SampleCount: 2, Seed: 1})
	f := &forecast.Forecaster{Backend: be}
	predict := func(jobs ...forecast.Job) []forecast.Result {
		res, err := f.Predict(context.Background(), jobs)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	alone := predict(a)
	if again := predict(a); !slices.Equal(alone[0].Paths, again[0].Paths) {
		t.Fatal("the same seeded request gave different paths")
	}
	if batched := predict(b, a); !slices.Equal(alone[0].Paths, batched[1].Paths) || !slices.Equal(alone[0].Mean, batched[1].Mean) {
		t.Fatal("batching changed a seeded job's paths")
	}
	a.Params.Seed = 8
	if other := predict(a); slices.Equal(alone[0].Paths, other[0].Paths) {
		t.Fatal("seeds 7 and 8 gave identical paths")
	}
}
