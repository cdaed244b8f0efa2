package forecast

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"math/bits"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/kronos-gateway/kronos-gateway/internal/infer"
)

// replayBackend serves a conformance case's recorded encoder output, logits
// and decoded candles, after checking that its inputs are the reference's.
type replayBackend struct {
	infer.Backend
	t       testing.TB
	c       *refCase
	session *recSession
}

func (b *replayBackend) Info() infer.ModelInfo {
	v1, v2 := b.c.vocab()
	return infer.ModelInfo{S1Bits: bits.Len(uint(v1)) - 1, S2Bits: bits.Len(uint(v2)) - 1, MaxContext: b.c.Params.MaxContext}
}

func (b *replayBackend) Encode(_ context.Context, x []float32, rows, length int) ([]float32, error) {
	c := b.c
	if rows != len(c.Series) || length != c.Params.Lookback {
		return nil, fmt.Errorf("encode of %d x %d, want %d x %d", rows, length, len(c.Series), c.Params.Lookback)
	}
	var out []float32
	for s := range c.Series {
		want := flat32(c.Series[s].XNorm)
		for i, v := range want {
			if got := x[s*len(want)+i]; math.Abs(float64(got-v)) > 2e-4 {
				return nil, fmt.Errorf("series %d: x_norm[%d] = %v, want %v", s, i, got, v)
			}
		}
		out = append(out, flat32(c.ModelBatch.QuantInput[s*c.Params.SampleCount])...)
	}
	return out, nil
}

func (b *replayBackend) NewSession(_ context.Context, rows int) (infer.Session, error) {
	mb := &b.c.ModelBatch
	if rows != mb.Rows {
		return nil, fmt.Errorf("session of %d rows, want %d", rows, mb.Rows)
	}
	v1, v2 := b.c.vocab()
	b.session = &recSession{
		v1: v1, v2: v2,
		s1: func(step, row int, w infer.Window) []float32 { return f32(mb.Steps[step].S1Logits[row]) },
		s2: func(step, row int, _ int64) []float32 { return f32(mb.Steps[step].S2Logits[row]) },
	}
	return b.session, nil
}

func (b *replayBackend) Decode(_ context.Context, s1, s2 []int64, rows, width int) ([]float32, error) {
	mb := &b.c.ModelBatch
	if rows != mb.Rows || width != mb.FinalWindow[1]-mb.FinalWindow[0] {
		return nil, fmt.Errorf("decode of %d x %d, want %d x %d", rows, width, mb.Rows, mb.FinalWindow[1]-mb.FinalWindow[0])
	}
	if !slices.Equal(s1, flatI(mb.FinalS1)) || !slices.Equal(s2, flatI(mb.FinalS2)) {
		return nil, errors.New("decode ids differ from final_s1/final_s2")
	}
	var out []float32
	for _, r := range mb.Decoded {
		out = append(out, flat32(r)...)
	}
	return out, nil
}

// caseJobs builds the jobs of a conformance case (greedy, as recorded).
func caseJobs(t testing.TB, c *refCase) []Job {
	jobs := make([]Job, len(c.Series))
	for s, se := range c.Series {
		jobs[s] = Job{
			X:      flat32(se.XFilled),
			XTime:  parseStamps(t, se.XTimestamps),
			YTime:  parseStamps(t, se.YTimestamps),
			Params: Params{Temperature: 1, TopK: 1, TopP: 1, SampleCount: c.Params.SampleCount},
		}
	}
	return jobs
}

// TestPredictReplay runs Predict on the recorded intermediate values of every
// carried case and checks ids, preds_norm and prediction against the
// reference with the README's tolerances.
func TestPredictReplay(t *testing.T) {
	for _, ref := range allCases {
		t.Run(ref.String(), func(t *testing.T) {
			c := ref.load(t)
			be := &replayBackend{t: t, c: c}
			tr := &Trace{}
			f := &Forecaster{Backend: be, Trace: tr}
			res, err := f.Predict(context.Background(), caseJobs(t, c))
			if err != nil {
				t.Fatal(err)
			}
			if !be.session.closed {
				t.Error("session not closed")
			}
			mb := &c.ModelBatch
			for r := range mb.Rows {
				if !slices.Equal(tr.FinalS1[r], mb.FinalS1[r]) || !slices.Equal(tr.FinalS2[r], mb.FinalS2[r]) {
					t.Fatalf("row %d: final ids differ", r)
				}
			}
			for s, se := range c.Series {
				if !slices.Equal(tr.ContextS1[s], mb.ContextS1[s*c.Params.SampleCount]) {
					t.Fatalf("series %d: context ids differ", s)
				}
				wantNorm := flat32(se.PredsNorm)
				scale := 1.0
				for _, v := range wantNorm {
					scale = max(scale, math.Abs(float64(v)))
				}
				for i, v := range tr.PredsNorm[s] {
					if d := math.Abs(float64(v - wantNorm[i])); d > 1e-4*scale {
						t.Fatalf("series %d: preds_norm[%d] = %v, want %v", s, i, v, wantNorm[i])
					}
				}
				got := res[s].Mean
				if len(got) != c.Params.PredLen*6 || res[s].ContextUsed != c.Params.Lookback {
					t.Fatalf("series %d: %d values, context %d", s, len(got), res[s].ContextUsed)
				}
				for i, want := range flat32(se.Prediction) {
					col := i % 6
					if col >= 4 {
						want = max(want, 0) // Result.Mean clamps volume and amount
					}
					tol := 1e-4 * (math.Abs(float64(want)) + se.Std[col] + 1e-5)
					if d := math.Abs(float64(got[i] - want)); d > tol {
						t.Fatalf("series %d: prediction[%d][%d] = %v, want %v (tolerance %.3g)", s, i/6, col, got[i], want, tol)
					}
				}
			}
		})
	}
}

// hashBackend is a deterministic fake model: logits are pseudo-random
// functions of the whole window, so that any change in a row's window or
// stamps changes its draws.
type hashBackend struct {
	infer.Backend
	maxContext int
	encodes    [][2]int // rows, length of every Encode call
	decodes    [][2]int
	sessions   []*hashSession
	decodeHook func([]float32)
	encodeErr  error
}

const hashBits = 3

func (b *hashBackend) Info() infer.ModelInfo {
	return infer.ModelInfo{S1Bits: hashBits, S2Bits: hashBits, MaxContext: b.maxContext}
}

func (b *hashBackend) Encode(_ context.Context, x []float32, rows, length int) ([]float32, error) {
	if b.encodeErr != nil {
		return nil, b.encodeErr
	}
	b.encodes = append(b.encodes, [2]int{rows, length})
	const d = 2 * hashBits
	out := make([]float32, rows*length*d)
	for p := range rows * length {
		for j := range d {
			out[p*d+j] = x[p*6+j%6] - 0.2*float32(j/6) + 0.05
		}
	}
	return out, nil
}

func (b *hashBackend) Decode(_ context.Context, s1, s2 []int64, rows, width int) ([]float32, error) {
	b.decodes = append(b.decodes, [2]int{rows, width})
	out := make([]float32, rows*width*6)
	for p := range rows * width {
		for c := range 6 {
			out[p*6+c] = float32(s1[p])/4 - float32(s2[p])/8 + 0.05*float32(c) + 0.01*float32(p%width)
		}
		out[p*6+4] -= 5 // pushes volume negative after de-normalisation
	}
	if b.decodeHook != nil {
		b.decodeHook(out)
	}
	return out, nil
}

func (b *hashBackend) NewSession(_ context.Context, rows int) (infer.Session, error) {
	s := &hashSession{rows: rows}
	b.sessions = append(b.sessions, s)
	return s, nil
}

type hashSession struct {
	infer.Session
	rows   int
	last   []uint64
	closed bool
}

func windowHash(w infer.Window) uint64 {
	h := fnv.New64a()
	fmt.Fprint(h, w.Start, w.S1, w.S2, w.Stamps)
	return h.Sum64()
}

func hashLogits(h uint64, v int) []float32 {
	out := make([]float32, v)
	for j := range out {
		x := splitmix64(h + uint64(j)*0x9e3779b97f4a7c15)
		out[j] = float32(x%1000)/250 - 2
	}
	return out
}

func (s *hashSession) S1Logits(_ context.Context, windows []infer.Window) ([]float32, error) {
	const v = 1 << hashBits
	s.last = make([]uint64, len(windows))
	out := make([]float32, 0, len(windows)*v)
	for r, w := range windows {
		if len(w.S1) == 0 {
			out = append(out, make([]float32, v)...)
			continue
		}
		s.last[r] = windowHash(w)
		out = append(out, hashLogits(s.last[r], v)...)
	}
	return out, nil
}

func (s *hashSession) S2Logits(_ context.Context, s1 []int64) ([]float32, error) {
	const v = 1 << hashBits
	out := make([]float32, 0, len(s1)*v)
	for r, id := range s1 {
		out = append(out, hashLogits(s.last[r]^uint64(id+1)*31, v)...)
	}
	return out, nil
}

func (s *hashSession) Close() error { s.closed = true; return nil }

// synthJob builds a job of l candles and p prediction steps.
func synthJob(l, p int, params Params, phase float64) Job {
	x := make([]float32, l*6)
	t0 := time.Date(2024, 3, 1, 9, 30, 0, 0, time.FixedZone("", 8*3600))
	var xt, yt []time.Time
	for i := range l {
		v := 10 + math.Sin(float64(i)*0.7+phase)
		x[i*6+0] = float32(v)
		x[i*6+1] = float32(v + 0.2)
		x[i*6+2] = float32(v - 0.2)
		x[i*6+3] = float32(v + 0.05*math.Cos(float64(i)))
		x[i*6+4] = float32(1 + 5*math.Abs(math.Sin(float64(i)*1.3+phase))) // std large vs mean
		x[i*6+5] = x[i*6+4] * float32(v)
		xt = append(xt, t0.Add(time.Duration(i)*5*time.Minute))
	}
	for i := range p {
		yt = append(yt, t0.Add(time.Duration(l+i)*5*time.Minute))
	}
	return Job{X: x, XTime: xt, YTime: yt, Params: params}
}

func sampled(seed uint64, s int) Params {
	return Params{Temperature: 1, TopK: 0, TopP: 0.9, SampleCount: s, Seed: seed}
}

// TestPredictBatchIndependence checks that a job's output depends only on
// itself: batching it with jobs of other lengths and parameters (which
// changes its row index and session) gives bit-identical results.
func TestPredictBatchIndependence(t *testing.T) {
	a := synthJob(10, 5, sampled(7, 4), 0)
	a.Quantiles = []float64{0.1, 0.5, 0.9}
	a.ReturnPaths = true
	b := synthJob(15, 8, Params{Temperature: 0.8, TopK: 3, TopP: 1, SampleCount: 2, Seed: 1}, 1)
	c := synthJob(10, 3, greedyParams, 2)

	run := func(jobs ...Job) []Result {
		t.Helper()
		f := &Forecaster{Backend: &hashBackend{maxContext: 12}}
		res, err := f.Predict(context.Background(), jobs)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	alone := run(a)
	batched := run(b, a, c)
	if !reflect.DeepEqual(alone[0], batched[1]) {
		t.Fatalf("job A changed when batched:\nalone   %v\nbatched %v", alone[0].Paths, batched[1].Paths)
	}
	if again := run(a); !reflect.DeepEqual(alone, again) {
		t.Fatal("same seed gave different results")
	}
	a2 := a
	a2.Params.Seed = 8
	if other := run(a2); slices.Equal(other[0].Paths, alone[0].Paths) {
		t.Fatal("seeds 7 and 8 gave identical paths")
	}
	// The four paths of one job are different streams.
	const pw = 5 * 6
	p := alone[0].Paths
	if slices.Equal(p[:pw], p[pw:2*pw]) && slices.Equal(p[:pw], p[2*pw:3*pw]) {
		t.Error("all sample paths are identical")
	}
}

func TestPredictOutputs(t *testing.T) {
	job := synthJob(20, 6, sampled(3, 5), 0.5)
	job.Quantiles = []float64{0, 0.25, 0.5, 1}
	job.ReturnPaths = true
	be := &hashBackend{maxContext: 16}
	tr := &Trace{}
	f := &Forecaster{Backend: be, Trace: tr}
	res, err := f.Predict(context.Background(), []Job{job, synthJob(20, 6, greedyParams, 1), synthJob(11, 2, greedyParams, 2)})
	if err != nil {
		t.Fatal(err)
	}
	// Encoder calls grouped by L, decoder calls by width (min(L+P, 16)):
	// widths 16 (jobs 0, 1) and 13 (job 2).
	if want := [][2]int{{2, 20}, {1, 11}}; !slices.Equal(be.encodes, want) {
		t.Errorf("encode calls %v, want %v", be.encodes, want)
	}
	if want := [][2]int{{6, 16}, {1, 13}}; !slices.Equal(be.decodes, want) {
		t.Errorf("decode calls %v, want %v", be.decodes, want)
	}
	if len(be.sessions) != 1 || be.sessions[0].rows != 7 || !be.sessions[0].closed {
		t.Errorf("want one closed session of 7 rows")
	}
	if len(tr.Steps) != 6 || len(tr.FinalS1) != 7 || len(tr.Decoded) != 7 || len(tr.PredsNorm) != 3 || len(tr.XNorm) != 3 {
		t.Errorf("trace shape: %d steps, %d final, %d decoded, %d preds", len(tr.Steps), len(tr.FinalS1), len(tr.Decoded), len(tr.PredsNorm))
	}
	if tr.Steps[2].WindowStart[6] != -1 || tr.Steps[1].WindowEnd[6] != 12 {
		t.Errorf("trace of the short job: %v %v", tr.Steps[2].WindowStart, tr.Steps[1].WindowEnd)
	}

	r := res[0]
	const s, p = 5, 6
	if len(r.Paths) != s*p*6 || len(r.Quantiles) != 4 || len(r.Mean) != p*6 || r.Seed != 3 || r.ContextUsed != 20 {
		t.Fatalf("result shape: paths %d, quantiles %d, mean %d, seed %d", len(r.Paths), len(r.Quantiles), len(r.Mean), r.Seed)
	}
	negatives := 0
	for i := range p * 6 {
		col := i % 6
		var vals []float32
		for k := range s {
			vals = append(vals, r.Paths[k*p*6+i])
		}
		if col >= 4 {
			for _, v := range append(slices.Clone(vals), r.Mean[i]) {
				if v < 0 {
					t.Fatalf("negative volume/amount %v at %d", v, i)
				}
				if v == 0 {
					negatives++
				}
			}
		}
		q := r.Quantiles
		if q[0][i] != slices.Min(vals) || q[3][i] != slices.Max(vals) {
			t.Fatalf("quantiles 0/1 at %d: %v %v, paths %v", i, q[0][i], q[3][i], vals)
		}
		if !(q[0][i] <= q[1][i] && q[1][i] <= q[2][i] && q[2][i] <= q[3][i]) {
			t.Fatalf("quantiles not monotone at %d", i)
		}
	}
	if negatives == 0 {
		t.Error("the fake decoder should have produced clamped volumes")
	}
	// The mean is the de-normalised mean of the normalised paths, so it
	// lies within the (unclamped) path range for price columns.
	for i := range p * 6 {
		if i%6 < 4 {
			lo, hi := r.Quantiles[0][i], r.Quantiles[3][i]
			if r.Mean[i] < lo-1e-4 || r.Mean[i] > hi+1e-4 {
				t.Fatalf("mean %v outside the path range [%v, %v] at %d", r.Mean[i], lo, hi, i)
			}
		}
	}
	if res[1].Paths != nil || res[1].Quantiles != nil {
		t.Error("paths/quantiles returned without being asked for")
	}
}

func TestPredictValidation(t *testing.T) {
	good := func() Job { return synthJob(8, 3, DefaultParams(), 0) }
	tests := []struct {
		name  string
		jobs  func() []Job
		field string
	}{
		{"no jobs", func() []Job { return nil }, "items"},
		{"no candles", func() []Job { j := good(); j.X, j.XTime = nil, nil; return []Job{j} }, "candles"},
		{"ragged candles", func() []Job { j := good(); j.X = j.X[:len(j.X)-1]; return []Job{j} }, "candles"},
		{"NaN candle", func() []Job { j := good(); j.X[6*2+3] = nan32(); return []Job{j} }, "candles[2].close"},
		{"Inf candle", func() []Job { j := good(); j.X[5] = float32(math.Inf(1)); return []Job{j} }, "candles[0].amount"},
		{"timestamps", func() []Job { j := good(); j.XTime = j.XTime[1:]; return []Job{j} }, "timestamps"},
		{"no prediction timestamps", func() []Job { j := good(); j.YTime = nil; return []Job{j} }, "prediction_timestamps"},
		{"quantile above 1", func() []Job { j := good(); j.Quantiles = []float64{0.5, 1.5}; return []Job{j} }, "quantiles[1]"},
		{"quantile NaN", func() []Job { j := good(); j.Quantiles = []float64{math.NaN()}; return []Job{j} }, "quantiles[0]"},
		{"temperature 0", func() []Job { j := good(); j.Params.Temperature = 0; return []Job{j} }, "overrides.temperature"},
		{"second item", func() []Job { j := good(); j.Params.TopP = 0; return []Job{good(), j} }, "items[1].overrides.top_p"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			be := &hashBackend{maxContext: 16}
			_, err := (&Forecaster{Backend: be}).Predict(context.Background(), tt.jobs())
			var fe *infer.FieldError
			if !errors.As(err, &fe) || fe.Field != tt.field || !errors.Is(err, infer.ErrInvalid) {
				t.Fatalf("err = %v, want a FieldError on %q", err, tt.field)
			}
			if len(be.encodes) != 0 {
				t.Error("backend called for an invalid request")
			}
		})
	}
}

func TestPredictFailures(t *testing.T) {
	job := synthJob(8, 3, DefaultParams(), 0)
	tests := []struct {
		name string
		be   *hashBackend
		f    func(*Forecaster)
		ctx  func() (context.Context, context.CancelFunc)
		kind infer.Kind
	}{
		{"encoder unavailable", &hashBackend{maxContext: 16, encodeErr: infer.Errorf(infer.KindUnavailable, "down")}, nil, nil, infer.KindUnavailable},
		{"NaN decoded", &hashBackend{maxContext: 16, decodeHook: func(x []float32) { x[7] = nan32() }}, nil, nil, infer.KindInternal},
		{"overflow to Inf", &hashBackend{maxContext: 16, decodeHook: func(x []float32) { x[len(x)-1] = 3e38 }}, nil, nil, infer.KindInternal},
		{"no max context", &hashBackend{}, nil, nil, infer.KindInternal},
		{"bad clip", &hashBackend{maxContext: 16}, func(f *Forecaster) { f.Clip = -1 }, nil, infer.KindInternal},
		{"canceled", &hashBackend{maxContext: 16}, nil, func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx, cancel
		}, infer.KindCanceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.Background(), func() {}
			if tt.ctx != nil {
				ctx, cancel = tt.ctx()
			}
			defer cancel()
			f := &Forecaster{Backend: tt.be}
			if tt.f != nil {
				tt.f(f)
			}
			res, err := f.Predict(ctx, []Job{job})
			if infer.KindOf(err) != tt.kind || res != nil {
				t.Fatalf("err = %v (kind %q), want kind %q", err, infer.KindOf(err), tt.kind)
			}
			for _, s := range tt.be.sessions {
				if !s.closed {
					t.Error("session left open")
				}
			}
		})
	}
}

// TestPredictMaxContextOverride checks that Forecaster.MaxContext replaces
// the backend's value.
func TestPredictMaxContextOverride(t *testing.T) {
	be := &hashBackend{maxContext: 64}
	tr := &Trace{}
	f := &Forecaster{Backend: be, MaxContext: 6, Trace: tr}
	if _, err := f.Predict(context.Background(), []Job{synthJob(8, 3, greedyParams, 0)}); err != nil {
		t.Fatal(err)
	}
	if got := tr.Steps[2].WindowStart[0]; got != 4 {
		t.Errorf("step 2 window start %d, want 4", got)
	}
	if want := [][2]int{{1, 6}}; !slices.Equal(be.decodes, want) {
		t.Errorf("decode calls %v, want %v", be.decodes, want)
	}
}

// TestPredictStepsBeyondMaxContext: more prediction steps than the max
// context cannot be decoded (the final window holds maxContext positions); it
// is a field error before any backend work, not a panic.
func TestPredictStepsBeyondMaxContext(t *testing.T) {
	for _, tc := range []struct {
		name  string
		jobs  int
		field string
	}{
		{"single", 1, "prediction_timestamps"},
		{"batch", 2, "items[1].prediction_timestamps"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const maxContext = 8
			mk := func(p int) Job {
				base := time.Date(2024, 1, 1, 9, 0, 0, 0, time.UTC)
				j := Job{X: make([]float32, 4*6), Params: Params{Temperature: 1, TopK: 1, TopP: 1, SampleCount: 1}}
				for i := range j.X {
					j.X[i] = 1 + float32(i%6)
				}
				for i := 0; i < 4; i++ {
					j.XTime = append(j.XTime, base.Add(time.Duration(i)*time.Minute))
				}
				for i := 0; i < p; i++ {
					j.YTime = append(j.YTime, base.Add(time.Duration(4+i)*time.Minute))
				}
				return j
			}
			jobs := []Job{mk(maxContext + 1)}
			if tc.jobs == 2 {
				jobs = []Job{mk(maxContext), mk(maxContext + 1)}
			}
			f := &Forecaster{Backend: noCallBackend{t: t}, MaxContext: maxContext}
			_, err := f.Predict(context.Background(), jobs)
			var fe *infer.FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field {
				t.Fatalf("err = %v, want a field error on %s", err, tc.field)
			}
		})
	}
}

// noCallBackend fails the test on any backend call.
type noCallBackend struct {
	infer.Backend
	t *testing.T
}

func (b noCallBackend) Info() infer.ModelInfo {
	return infer.ModelInfo{S1Bits: 4, S2Bits: 4, MaxContext: 8}
}

func (b noCallBackend) Encode(context.Context, []float32, int, int) ([]float32, error) {
	b.t.Fatal("backend called")
	return nil, nil
}
