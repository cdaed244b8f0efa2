package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kronos-gateway/kronos-gateway/internal/infer"
)

// fakeBackend implements infer.Backend for handler tests. Every model call
// is counted and fails with err (an internal error when nil); with block
// set, a call first waits for its context to end (reporting on entered).
type fakeBackend struct {
	info    infer.ModelInfo
	err     error
	block   bool
	entered chan struct{} // receives once per blocking call, if non-nil

	calls        atomic.Int64
	running      atomic.Int64
	closed       atomic.Bool
	closedInCall atomic.Bool // Close ran while a call was running
}

func newFakeBackend() *fakeBackend {
	return &fakeBackend{info: infer.ModelInfo{
		Name: "kronos-fake", Version: "1", Checkpoint: "fake/Kronos-fake",
		ModelVersion: "fake/Kronos-fake@0000", TokenizerVersion: "fake/Tokenizer@0000",
		S1Bits: 2, S2Bits: 2, DModel: 4, MaxContext: 512, Backend: "fake", Device: "cpu",
	}}
}

func (f *fakeBackend) call(ctx context.Context) error {
	f.calls.Add(1)
	f.running.Add(1)
	defer f.running.Add(-1)
	if f.block {
		if f.entered != nil {
			f.entered <- struct{}{}
		}
		<-ctx.Done()
		return infer.FromContext(ctx.Err())
	}
	if f.err != nil {
		return f.err
	}
	return infer.Errorf(infer.KindInternal, "fake backend: unexpected call")
}

func (f *fakeBackend) Info() infer.ModelInfo { return f.info }

func (f *fakeBackend) Encode(ctx context.Context, _ []float32, _, _ int) ([]float32, error) {
	return nil, f.call(ctx)
}

func (f *fakeBackend) Decode(ctx context.Context, _, _ []int64, _, _ int) ([]float32, error) {
	return nil, f.call(ctx)
}

func (f *fakeBackend) NewSession(ctx context.Context, _ int) (infer.Session, error) {
	return nil, f.call(ctx)
}

func (f *fakeBackend) Close() error {
	if f.running.Load() > 0 {
		f.closedInCall.Store(true)
	}
	f.closed.Store(true)
	return nil
}

// testOptions are small limits so that limit cases stay cheap.
func testOptions() Options {
	o := NewOptions()
	o.MaxCandles = 64
	o.MaxPredictionSteps = 16
	o.MaxSampleCount = 8
	o.MaxBodyBytes = 64 << 10
	return o
}

func newTestApp(t testing.TB, o Options, b infer.Backend) *App {
	t.Helper()
	a, err := New(o, Deps{Backend: b})
	require.NoError(t, err)
	return a
}

// baseRequest is a valid request with n candles and p prediction steps, 5
// minutes apart, in UTC written with "Z".
func baseRequest(n, p int) map[string]any {
	t0 := time.Date(2024, 6, 18, 9, 30, 0, 0, time.UTC)
	candles := make([]any, n)
	ts := make([]any, n)
	for i := range n {
		price := 10 + 0.01*float64(i%7)
		candles[i] = map[string]any{"open": price, "high": price + 0.02, "low": price - 0.02,
			"close": price + 0.01, "volume": 100 + i, "amount": 1000 + 10*i}
		ts[i] = t0.Add(time.Duration(i) * 5 * time.Minute).Format(time.RFC3339)
	}
	pred := make([]any, p)
	for i := range p {
		pred[i] = t0.Add(time.Duration(n+i) * 5 * time.Minute).Format(time.RFC3339)
	}
	return map[string]any{"series_id": "TEST", "candles": candles, "timestamps": ts, "prediction_timestamps": pred}
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return b
}

// do sends body to route and returns the status, the headers and the body.
func do(t testing.TB, a *App, method, route string, body []byte, header map[string]string) (int, http.Header, []byte) {
	t.Helper()
	req := httptest.NewRequest(method, route, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := a.Test(req, -1)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, resp.Header, b
}

// envelope parses an error body strictly.
func envelope(t testing.TB, body []byte) errorBody {
	t.Helper()
	var e errorEnvelope
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(&e), "error body %s", body)
	require.NotEmpty(t, e.Error.Kind, "error body %s", body)
	require.NotEmpty(t, e.Error.Message, "error body %s", body)
	return e.Error
}

func fmtCase(name string, status int, e errorBody) string {
	return fmt.Sprintf("%s\n  %d %s field=%q\n  %s\n", name, status, e.Kind, e.Field, e.Message)
}

// prepareDefault validates r for the default model of a, as the handler
// does; the lease is released at once (the fakes need no lease).
func prepareDefault(t testing.TB, a *App, r *predictRequest) (*prepared, error) {
	t.Helper()
	l, err := a.models.acquire(r.Model)
	if err != nil {
		return nil, err
	}
	defer l.release()
	return a.prepare(r, l)
}

// testWait and testTick bound require.Eventually waits for a condition that
// the code under test makes true promptly; they are not performance
// thresholds.
const (
	testWait = 20 * time.Second
	testTick = time.Millisecond
)
