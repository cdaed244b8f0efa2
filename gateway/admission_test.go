package gateway

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"github.com/kronos-gateway/kronos-gateway/internal/infer"
)

// gatedBackend holds every session at a gate: NewSession reports on
// entered, then waits until gate is closed (its context is ignored, so that
// a test decides when the slot frees).
type gatedBackend struct {
	infer.Backend
	gate    chan struct{}
	entered chan struct{}
}

func newGated(b infer.Backend) *gatedBackend {
	return &gatedBackend{Backend: b, gate: make(chan struct{}), entered: make(chan struct{}, 16)}
}

func (g *gatedBackend) NewSession(ctx context.Context, rows int) (infer.Session, error) {
	g.entered <- struct{}{}
	<-g.gate
	return g.Backend.NewSession(ctx, rows)
}

// Close does nothing: the wrapped backend is shared by the tests.
func (g *gatedBackend) Close() error { return nil }

type httpResult struct {
	status int
	header http.Header
	body   []byte
}

// post sends body to route in the background.
func post(t testing.TB, a *App, route string, body []byte) <-chan httpResult {
	ch := make(chan httpResult, 1)
	go func() {
		status, h, b := do(t, a, http.MethodPost, route, body, nil)
		ch <- httpResult{status, h, b}
	}()
	return ch
}

func TestAdmissionFIFO(t *testing.T) {
	q := newAdmission(1, 3, nil)
	first, err := q.acquire(context.Background())
	require.NoError(t, err)
	order := make(chan int, 3)
	for i := 1; i <= 3; i++ {
		go func() {
			release, err := q.acquire(context.Background())
			if err != nil {
				order <- -i
				return
			}
			order <- i
			release()
		}()
		require.Eventually(t, func() bool { _, w := q.state(); return w == i }, testWait, testTick)
	}
	_, err = q.acquire(context.Background())
	require.ErrorIs(t, err, errQueueFull, "a fourth waiter finds the queue full")
	require.Equal(t, infer.KindOverloaded, infer.KindOf(err))

	first()
	first() // idempotent: does not free a second slot
	require.Equal(t, []int{1, 2, 3}, []int{<-order, <-order, <-order}, "slots go to waiters in arrival order")
	running, waiting := q.state()
	require.Equal(t, 0, running)
	require.Equal(t, 0, waiting)
}

func TestAdmissionWaitEnds(t *testing.T) {
	q := newAdmission(1, 1, nil)
	held, err := q.acquire(context.Background())
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := q.acquire(ctx)
		done <- err
	}()
	require.Eventually(t, func() bool { _, w := q.state(); return w == 1 }, testWait, testTick)
	cancel()
	err = <-done
	require.Equal(t, infer.KindCanceled, infer.KindOf(err))
	_, waiting := q.state()
	require.Zero(t, waiting, "a waiter that gave up leaves the queue")

	ctx, cancel = context.WithTimeout(context.Background(), 0)
	defer cancel()
	_, err = q.acquire(ctx)
	require.Equal(t, infer.KindTimeout, infer.KindOf(err))

	held()
	running, _ := q.state()
	require.Zero(t, running)

	// No queue at all: the second forecast is refused at once.
	q = newAdmission(1, 0, nil)
	held, err = q.acquire(context.Background())
	require.NoError(t, err)
	_, err = q.acquire(context.Background())
	require.ErrorIs(t, err, errQueueFull)
	held()
}

// TestAdmissionHTTP: with one slot and a queue of one, a third concurrent
// forecast is answered 429 with Retry-After while the first two are still
// pending (excess load is answered at once), and the queued one is served
// after the running one, both 200. Queue depth, concurrency and
// rejections are counted.
func TestAdmissionHTTP(t *testing.T) {
	g := newGated(embeddedBackend(t))
	o := NewOptions()
	o.MaxConcurrency, o.QueueSize = 1, 1
	a := newTestApp(t, o, g)
	body := mustJSON(t, csvRequest(t, 0, 32, 3))

	first := post(t, a, RoutePredictSingle, body)
	<-g.entered // the first forecast holds the slot
	require.Equal(t, 1.0, metricValue(t, a.metrics.concurrent))
	second := post(t, a, RoutePredictSingle, body)
	require.Eventually(t, func() bool { _, w := a.admission.state(); return w == 1 }, testWait, testTick)
	require.Equal(t, 1.0, metricValue(t, a.metrics.queueDepth))

	status, h, b := do(t, a, http.MethodPost, RoutePredictSingle, body, nil)
	require.Equal(t, http.StatusTooManyRequests, status, "%s", b)
	e := envelope(t, b)
	require.Equal(t, infer.KindOverloaded, e.Kind)
	require.Contains(t, e.Message, "KRONOS_QUEUE_SIZE")
	require.Equal(t, "1", h.Get("Retry-After"))
	require.Equal(t, 1.0, metricValue(t, a.metrics.rejections.WithLabelValues(ReasonQueueFull)))
	require.Empty(t, first, "the 429 came while the first forecast was still running")
	require.Empty(t, second)

	close(g.gate)
	for _, ch := range []<-chan httpResult{first, second} {
		r := <-ch
		require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	}
	require.Len(t, g.entered, 1, "the queued forecast ran once the slot was free")
	running, waiting := a.admission.state()
	require.Zero(t, running)
	require.Zero(t, waiting)
	require.Zero(t, metricValue(t, a.metrics.queueDepth))
	require.Zero(t, metricValue(t, a.metrics.concurrent))
}

// TestAdmissionQueueTimeout: a forecast that cannot get a slot within the
// request timeout is answered 504 and never reaches the backend; so is a
// batch. The request that held the slot is not disturbed by it.
func TestAdmissionQueueTimeout(t *testing.T) {
	g := newGated(embeddedBackend(t))
	o := NewOptions()
	o.MaxConcurrency, o.QueueSize = 1, 4
	o.RequestTimeout, o.InferenceTimeout = 300e6, 300e6 // 300ms: only the trigger
	a := newTestApp(t, o, g)
	body := mustJSON(t, csvRequest(t, 0, 32, 3))

	first := post(t, a, RoutePredictSingle, body)
	<-g.entered
	for _, route := range []string{RoutePredictSingle, RoutePredictBatch} {
		b := body
		if route == RoutePredictBatch {
			b = mustJSON(t, map[string]any{"items": []any{csvRequest(t, 0, 32, 3)}})
		}
		status, _, resp := do(t, a, http.MethodPost, route, b, nil)
		require.Equal(t, http.StatusGatewayTimeout, status, "%s", resp)
		e := envelope(t, resp)
		require.Equal(t, infer.KindTimeout, e.Kind)
		require.Contains(t, e.Message, "no forecast slot became free within KRONOS_REQUEST_TIMEOUT")
		require.Equal(t, 1.0, metricValue(t, a.metrics.timeouts.WithLabelValues(route)), route)
	}
	_, waiting := a.admission.state()
	require.Zero(t, waiting)
	require.Empty(t, g.entered, "the timed-out requests never reached the backend")
	close(g.gate)
	r := <-first
	// The first request's own deadline passed while it was held at the
	// gate: it is cancelled (504) rather than served late.
	require.Equal(t, http.StatusGatewayTimeout, r.status, "%s", r.body)
	running, _ := a.admission.state()
	require.Zero(t, running)
}

// TestAdmissionDraining: a draining server answers forecasts 503 with
// Retry-After before any work, counted as rejections{reason="draining"}.
func TestAdmissionDraining(t *testing.T) {
	fb := newFakeBackend()
	a := newTestApp(t, testOptions(), fb)
	a.draining.Store(true)
	for _, tc := range []struct{ route, body string }{
		{RoutePredictSingle, string(mustJSON(t, baseRequest(4, 2)))},
		{RoutePredictBatch, `{"items":[` + string(mustJSON(t, baseRequest(4, 2))) + `]}`},
	} {
		status, h, b := do(t, a, http.MethodPost, tc.route, []byte(tc.body), nil)
		require.Equal(t, http.StatusServiceUnavailable, status, "%s", b)
		require.Equal(t, infer.KindUnavailable, envelope(t, b).Kind)
		require.Equal(t, "5", h.Get("Retry-After"))
	}
	require.Zero(t, fb.calls.Load())
	require.Equal(t, 2.0, metricValue(t, a.metrics.rejections.WithLabelValues(ReasonDraining)))

	// admit itself refuses too (a request that passed the handler's check
	// just before the drain began).
	_, err := a.admit(context.Background())
	require.True(t, errors.Is(err, infer.ErrUnavailable))
}

// metricValue reads the value of a single gauge or counter.
func metricValue(t testing.TB, c prometheus.Collector) float64 {
	t.Helper()
	ch := make(chan prometheus.Metric, 1)
	c.Collect(ch)
	close(ch)
	var d dto.Metric
	n := 0
	for m := range ch {
		require.NoError(t, m.Write(&d))
		n++
	}
	require.Equal(t, 1, n, "one metric")
	switch {
	case d.Gauge != nil:
		return d.Gauge.GetValue()
	case d.Counter != nil:
		return d.Counter.GetValue()
	}
	t.Fatalf("not a gauge or counter: %v", &d)
	return 0
}
