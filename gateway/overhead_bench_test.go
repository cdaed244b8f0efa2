package gateway

import (
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/kronos-gateway/kronos-gateway/internal/infer"
)

// The gateway's own overhead per forecast request of 400 candles (the
// usual lookback) and 120 prediction steps, without the model: the
// benchmarks report the mean (ns/op) and the 50th and 99th percentiles of
// the per-request times (p50-ns, p99-ns). The target is p99 < 1 ms.
//
//	go test ./gateway -run '^$' -bench Overhead -benchmem -count 6
//
// Requests come from the real candle CSV (testdata/data), so prices and
// volumes look like a market's.

// overheadRequest is the body of the benchmarks: 400 candles -> 120 steps.
func overheadRequest(b *testing.B) []byte {
	return mustJSON(b, csvRequest(b, 100, 400, 120))
}

// reportPercentiles sorts the per-iteration durations and reports p50 and
// p99 in nanoseconds.
func reportPercentiles(b *testing.B, d []time.Duration) {
	if len(d) == 0 {
		return
	}
	slices.Sort(d)
	at := func(q float64) float64 { return float64(d[min(len(d)-1, int(q*float64(len(d))))].Nanoseconds()) }
	b.ReportMetric(at(0.50), "p50-ns")
	b.ReportMetric(at(0.99), "p99-ns")
}

// BenchmarkOverheadPredictSingle400 serves POST /v1/predict/single through
// the whole Fiber handler (the same call fasthttp makes for a request it
// has read: middleware, request id, access log, metrics, decoding,
// validation, admission, normalisation, the sampling loop and the JSON
// response) on instantBackend, whose model calls return at once. Only the
// network and the model are left out: what remains is the gateway's own
// cost, plus the sampling loop's bookkeeping for 120 steps.
func BenchmarkOverheadPredictSingle400(b *testing.B) {
	a, err := New(NewOptions(), Deps{Backend: newInstantBackend()})
	if err != nil {
		b.Fatal(err)
	}
	handler := a.Fiber().Handler()
	var req fasthttp.Request
	req.Header.SetMethod(http.MethodPost)
	req.SetRequestURI(RoutePredictSingle)
	req.Header.SetContentType("application/json")
	req.SetBody(overheadRequest(b))

	var ctx fasthttp.RequestCtx
	durations := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		ctx.Init(&req, nil, nil) // copies the request; not timed
		start := time.Now()
		handler(&ctx)
		durations = append(durations, time.Since(start))
		if ctx.Response.StatusCode() != http.StatusOK {
			b.Fatalf("status %d: %s", ctx.Response.StatusCode(), ctx.Response.Body())
		}
	}
	b.StopTimer()
	reportPercentiles(b, durations)
}

// BenchmarkOverheadDecodeValidate400 is the part before the forecast:
// decoding the body (one pass, field paths only on error), validating it,
// filling volume/amount and the statistics checks, up to the Forecaster
// call.
func BenchmarkOverheadDecodeValidate400(b *testing.B) {
	a, err := New(NewOptions(), Deps{Backend: newInstantBackend()})
	if err != nil {
		b.Fatal(err)
	}
	body := overheadRequest(b)
	durations := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		req, err := decodePredict(body, a.decodeLimits())
		if err != nil {
			b.Fatal(err)
		}
		l, err := a.models.acquire(req.Model)
		if err != nil {
			b.Fatal(err)
		}
		p, err := a.prepare(req, l)
		l.release()
		durations = append(durations, time.Since(start))
		if err != nil || len(p.job.X) != 400*infer.CandleWidth {
			b.Fatalf("prepare: %v", err)
		}
	}
	b.StopTimer()
	reportPercentiles(b, durations)
}

// BenchmarkOverheadDecode400, decoding alone by the decoder and by the
// encoding/json one it replaced, is in decode_legacy_test.go.
