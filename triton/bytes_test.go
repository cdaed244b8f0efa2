package triton

import (
	"context"
	"testing"
	"time"

	"github.com/kronos-gateway/kronos-gateway/checkpoint"
	"github.com/kronos-gateway/kronos-gateway/forecast"
	"github.com/kronos-gateway/kronos-gateway/internal/graphs"
	"github.com/kronos-gateway/kronos-gateway/internal/infer"
	"github.com/kronos-gateway/kronos-gateway/triton/modelconfig"
	"github.com/kronos-gateway/kronos-gateway/triton/tritontest"
)

// shapeOnly serves the four Triton models with zero outputs of the right
// shapes: enough to measure traffic at a model size we do not run here.
func shapeOnly(d modelconfig.GraphDims) map[graphs.Role]tritontest.Model {
	zeros := func(name string, shape ...int64) map[string]*tritontest.Tensor {
		n := int64(1)
		for _, s := range shape {
			n *= s
		}
		return map[string]*tritontest.Tensor{name: tritontest.F32Tensor(shape, make([]float32, n))}
	}
	return map[graphs.Role]tritontest.Model{
		graphs.Encoder: tritontest.ModelFunc(func(_ context.Context, in map[string]*tritontest.Tensor) (map[string]*tritontest.Tensor, error) {
			s := in[graphs.InX].Shape
			return zeros(graphs.OutQuant, s[0], s[1], int64(d.D)), nil
		}),
		graphs.Decoder: tritontest.ModelFunc(func(_ context.Context, in map[string]*tritontest.Tensor) (map[string]*tritontest.Tensor, error) {
			s := in[graphs.InS1].Shape
			return zeros(graphs.OutX, s[0], s[1], infer.CandleWidth), nil
		}),
		modelconfig.Window: tritontest.ModelFunc(func(_ context.Context, in map[string]*tritontest.Tensor) (map[string]*tritontest.Tensor, error) {
			return zeros(graphs.OutS1Logits, in[graphs.InS1].Shape[0], int64(d.V1)), nil
		}),
		modelconfig.WindowS2: tritontest.ModelFunc(func(_ context.Context, in map[string]*tritontest.Tensor) (map[string]*tritontest.Tensor, error) {
			return zeros(graphs.OutS2Logits, in[graphs.InS1].Shape[0], int64(d.V2)), nil
		}),
	}
}

// TestBytesPerForecastKronosSmall measures the gRPC payload of one
// forecast (400 candles -> 120 steps, one sample path) at Kronos-small
// sizes (V1 = V2 = 1024, D = 20, max context 512, buckets of 64) and checks
// it against the raw tensor bytes: the messages may add only a small
// per-call overhead (names, shapes), so a regression that doubles a tensor
// or falls back to typed contents fails here. The numbers are recorded in
// docs/triton.md.
func TestBytesPerForecastKronosSmall(t *testing.T) {
	p := checkpoint.Presets()["small"]
	man := &graphs.Manifest{FormatVersion: 1, Model: "kronos-small", Version: "1", Tokenizer: p.Tokenizer,
		Predictor: p.Predictor, DefaultMaxContext: p.MaxContext}
	d, err := modelconfig.DimsOf(man)
	if err != nil {
		t.Fatal(err)
	}
	srv := tritontest.New(tritontest.Options{})
	models := shapeOnly(d)
	for _, r := range modelconfig.TritonRoles {
		cfg, err := modelconfig.Build(man, r, modelconfig.CPU, modelconfig.Params{})
		if err != nil {
			t.Fatal(err)
		}
		srv.AddModel(cfg, "1", models[r], true)
	}
	if _, err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	b, reg := client(t, srv.Addr(), Options{Model: "kronos-small"})

	const lookback, pred = 400, 120
	start := time.Date(2024, 6, 18, 9, 30, 0, 0, time.UTC)
	job := forecast.Job{X: make([]float32, lookback*infer.CandleWidth), Params: forecast.Params{Temperature: 1, TopK: 1, TopP: 1, SampleCount: 1}}
	for i := range lookback {
		job.XTime = append(job.XTime, start.Add(time.Duration(i)*5*time.Minute))
		for c := range infer.CandleWidth {
			job.X[i*infer.CandleWidth+c] = float32(10 + i%7 + c)
		}
	}
	for i := range pred {
		job.YTime = append(job.YTime, start.Add(time.Duration(lookback+i)*5*time.Minute))
	}
	if _, err := (&forecast.Forecaster{Backend: b}).Predict(testCtx(t), []forecast.Job{job}); err != nil {
		t.Fatal(err)
	}

	// Raw tensor bytes the protocol must carry.
	buckets := modelconfig.DefaultBuckets(512)
	te := padLen(buckets, lookback)
	rawSent := te*infer.CandleWidth*4 + 2*512*8 // encoder x, decoder s1+s2 (W = 512)
	rawRecv := te*d.D*4 + 512*infer.CandleWidth*4
	for i := range pred {
		t := padLen(buckets, min(lookback+i, 512))
		window := t*8*2 + t*infer.StampWidth*8 + 8 // s1, s2, stamp, last
		rawSent += 2*window + 8                    // window, window_s2 (+ next_s1)
		rawRecv += 4 * (d.V1 + d.V2)
	}
	st := b.Stats()
	calls := int64(2 + 2*pred)
	if st.Calls != calls {
		t.Fatalf("%d calls, want %d", st.Calls, calls)
	}
	const perCall = 200 // names, datatypes, shapes, version, framing of repeated fields
	if st.BytesSent < int64(rawSent) || st.BytesSent > int64(rawSent)+perCall*calls {
		t.Fatalf("sent %d bytes, raw tensors %d (+ at most %d per call)", st.BytesSent, rawSent, perCall)
	}
	if st.BytesReceived < int64(rawRecv) || st.BytesReceived > int64(rawRecv)+perCall*calls {
		t.Fatalf("received %d bytes, raw tensors %d (+ at most %d per call)", st.BytesReceived, rawRecv, perCall)
	}
	if got := metricValue(t, reg, "kronos_triton_bytes_total", map[string]string{"direction": "sent"}); got != float64(st.BytesSent) {
		t.Fatalf("kronos_triton_bytes_total{sent} = %v, Stats %d", got, st.BytesSent)
	}
	if got := metricValue(t, reg, "kronos_triton_bytes_total", map[string]string{"direction": "received"}); got != float64(st.BytesReceived) {
		t.Fatalf("kronos_triton_bytes_total{received} = %v, Stats %d", got, st.BytesReceived)
	}
	if got := metricValue(t, reg, "kronos_triton_rpc_duration_seconds", map[string]string{"rpc": "window", "outcome": "ok"}); got != pred {
		t.Fatalf("window duration samples %v, want %d", got, pred)
	}
	t.Logf("Kronos-small 400 -> 120, 1 path: %d calls, sent %d bytes (%.2f MB), received %d bytes (%.2f MB); raw tensors %d / %d",
		st.Calls, st.BytesSent, float64(st.BytesSent)/1e6, st.BytesReceived, float64(st.BytesReceived)/1e6, rawSent, rawRecv)
}
