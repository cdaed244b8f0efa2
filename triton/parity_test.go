package triton

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/kronos-gateway/kronos-gateway/forecast"
	"github.com/kronos-gateway/kronos-gateway/triton/internal/kronostest"
	"github.com/kronos-gateway/kronos-gateway/triton/modelconfig"
	"github.com/kronos-gateway/kronos-gateway/triton/tritontest"
)

// confCase is the part of a conformance case these tests use (see
// testdata/conformance/README.md).
type confCase struct {
	Params struct {
		SampleCount int `json:"sample_count"`
	} `json:"params"`
	Series []struct {
		XTimestamps []string    `json:"x_timestamps"`
		YTimestamps []string    `json:"y_timestamps"`
		XFilled     [][]float64 `json:"x_filled"`
		Std         []float64   `json:"std"`
		Prediction  [][]float64 `json:"prediction"`
	} `json:"series"`
	ModelBatch struct {
		Steps []struct {
			S1 []int64 `json:"s1"`
			S2 []int64 `json:"s2"`
		} `json:"steps"`
		FinalS1 [][]int64 `json:"final_s1"`
		FinalS2 [][]int64 `json:"final_s2"`
	} `json:"model_batch"`
}

func loadCase(t testing.TB, c kronostest.Config, name string) *confCase {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(c.CasesDir(moduleRoot), name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var cc confCase
	if err := json.Unmarshal(b, &cc); err != nil {
		t.Fatal(err)
	}
	return &cc
}

func (c *confCase) jobs(t testing.TB) []forecast.Job {
	t.Helper()
	parse := func(s []string) []time.Time {
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
	jobs := make([]forecast.Job, len(c.Series))
	for i, s := range c.Series {
		var x []float32
		for _, row := range s.XFilled {
			for _, v := range row {
				x = append(x, float32(v))
			}
		}
		jobs[i] = forecast.Job{X: x, XTime: parse(s.XTimestamps), YTime: parse(s.YTimestamps),
			Params: forecast.Params{Temperature: 1, TopK: 1, TopP: 1, SampleCount: c.Params.SampleCount}}
	}
	return jobs
}

// TestConformanceThroughTriton runs the public conformance cases through
// the Triton path (client -> gRPC -> fake Triton -> real exported graphs on
// ONNX Runtime: the window and window_s2 graphs, and for comparison the
// embedded prefill + s2 graphs composed) and checks that every generated token id equals the
// reference, the final windows too, and that the prediction is within the
// README's tolerance. It also checks that the embedded path gives the same
// ids, and that every window request was padded to a bucket.
func TestConformanceThroughTriton(t *testing.T) {
	cases := []struct {
		conf    kronostest.Config
		name    string
		buckets []int
	}{
		{kronostest.Tiny, "short", []int{16, 32, 48, 64}},
		{kronostest.Tiny, "slide", []int{16, 32, 48, 64}}, // the window slides past max_context
		{kronostest.Tiny, "batch3", []int{64}},
		{kronostest.Tiny, "samples3", nil}, // default buckets (64)
		{kronostest.TinyFixedTE, "long_ctx", []int{16, 32, 48, 64}},
		{kronostest.Nano, "nano_short", nil}, // 64, 128, 192, 256
	}
	for _, tc := range cases {
		for _, windowGraphs := range []bool{true, false} {
			mode := "window graphs"
			if !windowGraphs {
				mode = "composed prefill+s2"
			}
			t.Run(tc.conf.Name+"/"+tc.name+"/"+mode, func(t *testing.T) {
				testConformanceCase(t, tc.conf, tc.name, tc.buckets, windowGraphs)
			})
		}
	}
}

// testConformanceCase runs one case through a fake Triton.
func testConformanceCase(t *testing.T, conf kronostest.Config, name string, buckets []int, windowGraphs bool) {
	srv, emb, _ := fakeTritonWith(t, conf, tritontest.Options{}, modelconfig.Params{}, windowGraphs)
	b, _ := client(t, srv.Addr(), Options{Model: conf.Name, Buckets: buckets})
	ref := loadCase(t, conf, name)
	ctx := testCtx(t)

	tr := &forecast.Trace{}
	res, err := (&forecast.Forecaster{Backend: b, Trace: tr}).Predict(ctx, ref.jobs(t))
	if err != nil {
		t.Fatal(err)
	}
	mb := &ref.ModelBatch
	if len(tr.Steps) != len(mb.Steps) {
		t.Fatalf("%d steps, reference %d", len(tr.Steps), len(mb.Steps))
	}
	for i, st := range tr.Steps {
		if !slices.Equal(st.S1, mb.Steps[i].S1) || !slices.Equal(st.S2, mb.Steps[i].S2) {
			t.Fatalf("step %d: ids s1 %v s2 %v, reference s1 %v s2 %v", i, st.S1, st.S2, mb.Steps[i].S1, mb.Steps[i].S2)
		}
	}
	for r := range tr.FinalS1 {
		if !slices.Equal(tr.FinalS1[r], mb.FinalS1[r]) || !slices.Equal(tr.FinalS2[r], mb.FinalS2[r]) {
			t.Fatalf("row %d: final window differs from the reference", r)
		}
	}
	for s, se := range ref.Series {
		for p, row := range se.Prediction {
			for c, want := range row {
				got := float64(res[s].Mean[p*6+c])
				if math.Abs(got-want) > 1e-4*(math.Abs(want)+se.Std[c]+1e-5) {
					t.Fatalf("series %d prediction[%d][%d] = %v, reference %v", s, p, c, got, want)
				}
			}
		}
	}

	// The embedded path on the same graphs gives the same ids.
	etr := &forecast.Trace{}
	if _, err := (&forecast.Forecaster{Backend: emb, Trace: etr}).Predict(ctx, ref.jobs(t)); err != nil {
		t.Fatal(err)
	}
	for i := range etr.Steps {
		if !slices.Equal(etr.Steps[i].S1, tr.Steps[i].S1) || !slices.Equal(etr.Steps[i].S2, tr.Steps[i].S2) {
			t.Fatalf("step %d: embedded and Triton paths differ", i)
		}
	}

	// Every window request was padded to a bucket and pinned.
	if buckets == nil {
		buckets = modelconfig.DefaultBuckets(conf.MaxContext)
	}
	n := 0
	for _, call := range srv.Calls() {
		if call.Version != "1" {
			t.Fatalf("call to %s version %q, want the pinned 1", call.Model, call.Version)
		}
		if sh, ok := call.Shapes["last"]; ok {
			n++
			if tl := call.Shapes["s1"][1]; !slices.Contains(buckets, int(tl)) {
				t.Fatalf("%s sent T=%d, not a bucket of %v", call.Model, tl, buckets)
			}
			if sh[1] != 1 {
				t.Fatalf("last sent with shape %v, want [B,1]", sh)
			}
		}
	}
	if want := 2 * len(mb.Steps); n != want {
		t.Fatalf("%d window calls, want %d (one window and one window_s2 per step)", n, want)
	}
	if st := b.Stats(); st.Calls != int64(n+2) || st.BytesSent <= 0 || st.BytesReceived <= 0 {
		t.Fatalf("stats %+v after %d window calls + encode + decode", st, n)
	}
}

// TestSessionPaddingIsExact compares the Triton session with the embedded
// session row by row on windows of different lengths (right padding to a
// bucket, finished rows left out): the logits must agree to rounding and
// skipped rows must stay zero.
func TestSessionPaddingIsExact(t *testing.T) {
	srv, emb, _ := fakeTriton(t, kronostest.Tiny, tritontest.Options{}, modelconfig.Params{CPUMaxBatch: 2})
	b, _ := client(t, srv.Addr(), Options{Buckets: []int{8, 64}})
	ctx := testCtx(t)
	info := b.Info()
	v1, v2 := 1<<info.S1Bits, 1<<info.S2Bits
	ws := windowsOf([]int{5, 0, 64, 30, 1}, v1, v2) // 4 active rows, max batch 2 -> two chunks
	ts, err := b.NewSession(ctx, len(ws))
	if err != nil {
		t.Fatal(err)
	}
	defer ts.Close()
	es, err := emb.NewSession(ctx, len(ws))
	if err != nil {
		t.Fatal(err)
	}
	defer es.Close()
	got1, err := ts.S1Logits(ctx, ws)
	if err != nil {
		t.Fatal(err)
	}
	want1, err := es.S1Logits(ctx, ws)
	if err != nil {
		t.Fatal(err)
	}
	next := []int64{3, 0, 7, 15, 1}
	got2, err := ts.S2Logits(ctx, next)
	if err != nil {
		t.Fatal(err)
	}
	want2, err := es.S2Logits(ctx, next)
	if err != nil {
		t.Fatal(err)
	}
	close := func(what string, got, want []float32, v int) {
		for i := range want {
			if d := math.Abs(float64(got[i] - want[i])); d > 1e-5 {
				t.Fatalf("%s row %d [%d]: triton %v, embedded %v", what, i/v, i%v, got[i], want[i])
			}
		}
		for i := range v {
			if got[v+i] != 0 {
				t.Fatalf("%s: skipped row 1 has logits", what)
			}
		}
	}
	close("s1", got1, want1, v1)
	close("s2", got2, want2, v2)
	var chunks int
	for _, c := range srv.Calls() {
		if c.Model == "tiny-window" {
			chunks++
			if c.Shapes["s1"][0] > 2 {
				t.Fatalf("window call with batch %d > max_batch_size 2", c.Shapes["s1"][0])
			}
		}
	}
	if chunks != 2 {
		t.Fatalf("%d window calls, want 2 chunks", chunks)
	}
}
