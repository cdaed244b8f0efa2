package gateway

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/kronos-gateway/kronos-gateway/internal/infer"
)

// This file defines every Prometheus metric of the gateway. The names and
// labels are a contract: the Grafana dashboard (grafana/dashboards), the
// alert rules (prometheus/rules) and the catalogue in prometheus/catalog.go
// use them, and testdata/metrics.prom pins them (TestMetricsGolden).
// kronos_breaker_state{backend} belongs to the Triton circuit breaker
// (triton.BreakerOptions.Registerer), not to this file.

// Rejection reasons, the values of kronos_rejections_total{reason}. A
// request is counted once, by whoever turns it away.
const (
	// ReasonQueueFull: the admission queue is full (429).
	ReasonQueueFull = "queue_full"
	// ReasonRateLimited: the caller exceeded its rate limit (429).
	ReasonRateLimited = "rate_limited"
	// ReasonDraining: the server is shutting down (503).
	ReasonDraining = "draining"
	// ReasonNotReady: the model is not loaded or no backend is usable (503).
	ReasonNotReady = "not_ready"
	// ReasonBodyTooLarge: the body exceeds KRONOS_MAX_BODY_BYTES (413).
	ReasonBodyTooLarge = "body_too_large"
	// ReasonUnauthorized: a missing or wrong API key (401).
	ReasonUnauthorized = "unauthorized"
)

// rejectionReasons lists every reason; each starts at 0 so that rate()
// over kronos_rejections_total works before the first rejection.
var rejectionReasons = []string{ReasonQueueFull, ReasonRateLimited, ReasonDraining,
	ReasonNotReady, ReasonBodyTooLarge, ReasonUnauthorized}

// Histogram buckets.
var (
	// durationBuckets (seconds) reach past the longest timeouts: a CPU
	// forecast of 400 -> 120 candles takes tens of seconds, and the request
	// timeout defaults to 60 s.
	durationBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300}
	// candleBuckets count candles per series; 400 is the usual lookback,
	// 512 the context of Kronos-small and 2048 KRONOS_MAX_CANDLES.
	candleBuckets = []float64{16, 32, 64, 128, 256, 400, 512, 1024, 2048, 4096}
	// rowBuckets count rows (sample paths) per backend session.
	rowBuckets = prometheus.ExponentialBuckets(1, 2, 12) // 1 .. 2048
)

// metrics are the gateway's Prometheus metrics, registered on the
// Registerer given to newMetrics (Deps.Registry; never the global one).
// The fields are named after the metrics. Methods are safe for concurrent
// use.
type metrics struct {
	// requests is kronos_requests_total{route,status,outcome}: every
	// response, by route pattern (never the raw path), HTTP status and
	// outcome ("ok" or the infer.Kind of the error). The request
	// middleware (accessLog) updates it.
	requests *prometheus.CounterVec
	// requestDuration is kronos_request_duration_seconds{route}: the time
	// from the first middleware to the response, queueing included.
	requestDuration *prometheus.HistogramVec
	// inferenceSeconds is kronos_model_inference_seconds{endpoint}: the
	// time of one forecast on the backend (the sampling loop and its
	// backend calls), once admitted; queueing, decoding and encoding the
	// JSON are not included. Failed forecasts are observed too.
	inferenceSeconds *prometheus.HistogramVec
	// concurrent is kronos_concurrent_requests: forecasts running on the
	// backend now (admitted, not queued).
	concurrent prometheus.Gauge
	// queueDepth is kronos_queue_depth: requests waiting for admission.
	// The admission queue updates it (queued / dequeued).
	queueDepth prometheus.Gauge
	// rejections is kronos_rejections_total{reason}: requests turned away
	// before any inference, by reason (the Reason* constants).
	rejections *prometheus.CounterVec
	// timeouts is kronos_timeouts_total{endpoint}: forecasts that ran out
	// of KRONOS_INFERENCE_TIMEOUT or KRONOS_REQUEST_TIMEOUT (504).
	timeouts *prometheus.CounterVec
	// inputSize is kronos_prediction_input_size{endpoint}: candles per
	// series sent (before the context cut), one observation per series.
	inputSize *prometheus.HistogramVec
	// batchRows is kronos_batch_rows: rows (sample paths of one or several
	// series) per backend session.
	batchRows prometheus.Histogram
	// modelInfo is kronos_model_info{model,model_version,tokenizer_version,
	// backend,device}: 1 per loaded model.
	modelInfo *prometheus.GaugeVec
	// backendReady is kronos_backend_ready{backend,model}: 1 while the
	// model's backend can serve forecasts, 0 while it loads or after it
	// failed.
	backendReady *prometheus.GaugeVec
}

// newMetrics creates the metrics and registers them on reg. It panics if a
// metric is already registered there (a programming error: one registry
// per App).
func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kronos_requests_total",
			Help: "HTTP requests answered, by route pattern, HTTP status and outcome (ok or the error kind).",
		}, []string{"route", "status", "outcome"}),
		requestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "kronos_request_duration_seconds",
			Help:    "Time from receiving a request to answering it, by route pattern.",
			Buckets: durationBuckets,
		}, []string{"route"}),
		inferenceSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "kronos_model_inference_seconds",
			Help:    "Time of one forecast on the backend once admitted (sampling loop and model calls), by endpoint.",
			Buckets: durationBuckets,
		}, []string{"endpoint"}),
		concurrent: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kronos_concurrent_requests",
			Help: "Forecasts running on the backend now.",
		}),
		queueDepth: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kronos_queue_depth",
			Help: "Forecast requests waiting for admission.",
		}),
		rejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kronos_rejections_total",
			Help: "Requests turned away before inference, by reason (queue_full, rate_limited, draining, not_ready, body_too_large, unauthorized).",
		}, []string{"reason"}),
		timeouts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kronos_timeouts_total",
			Help: "Forecasts that exceeded the inference or request timeout, by endpoint.",
		}, []string{"endpoint"}),
		inputSize: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "kronos_prediction_input_size",
			Help:    "Candles per input series, by endpoint.",
			Buckets: candleBuckets,
		}, []string{"endpoint"}),
		batchRows: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "kronos_batch_rows",
			Help:    "Rows (sample paths) decoded together per backend session.",
			Buckets: rowBuckets,
		}),
		modelInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "kronos_model_info",
			Help: "Loaded models and the weights they serve (value 1).",
		}, []string{"model", "model_version", "tokenizer_version", "backend", "device"}),
		backendReady: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "kronos_backend_ready",
			Help: "Whether a model's backend can serve forecasts (1) or not (0).",
		}, []string{"backend", "model"}),
	}
	reg.MustRegister(m.requests, m.requestDuration, m.inferenceSeconds, m.concurrent, m.queueDepth,
		m.rejections, m.timeouts, m.inputSize, m.batchRows, m.modelInfo, m.backendReady)
	for _, r := range rejectionReasons {
		m.rejections.WithLabelValues(r)
	}
	for _, e := range []string{RoutePredictSingle, RoutePredictBatch} {
		m.timeouts.WithLabelValues(e)
	}
	return m
}

// RouteMetrics serves the Prometheus exposition of Deps.Registry.
const RouteMetrics = "/v1/metrics"

// serveMetrics is GET /v1/metrics: the text exposition (or OpenMetrics or
// protobuf, as negotiated) of the App's registry.
func (a *App) serveMetrics() fiber.Handler {
	return adaptor.HTTPHandler(promhttp.HandlerFor(a.registry, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(a.log.Handler(), slog.LevelWarn),
		ErrorHandling: promhttp.ContinueOnError,
	}))
}

// observeRequest records one answered request, from the request middleware:
// route is the route pattern (routeUnmatched for none), outcome "ok" or an
// infer.Kind, and err the error of the chain (nil for a success). A
// rejection error (see rejected) is counted in kronos_rejections_total, and a
// timeout on a forecast route in kronos_timeouts_total, so that each is
// counted exactly once, wherever it was raised.
func (m *metrics) observeRequest(route string, status int, outcome string, d time.Duration, err error) {
	m.requests.WithLabelValues(route, strconv.Itoa(status), outcome).Inc()
	m.requestDuration.WithLabelValues(route).Observe(d.Seconds())
	if err == nil {
		return
	}
	var r *rejection
	if errors.As(err, &r) {
		m.reject(r.reason)
	}
	if outcome == string(infer.KindTimeout) && strings.HasPrefix(route, forecastRoutePrefix) {
		m.timeouts.WithLabelValues(route).Inc()
	}
}

// forecastRoutePrefix starts the routes that run forecasts (the endpoint
// label of the forecast metrics).
const forecastRoutePrefix = "/v1/predict/"

// reject counts a request turned away for reason (a Reason* constant). Use
// it only for requests that never reach the request middleware with an
// error; errors made by rejected are counted there.
func (m *metrics) reject(reason string) { m.rejections.WithLabelValues(reason).Inc() }

// rejection marks an error as a request turned away before inference.
type rejection struct {
	reason string
	err    error
}

// rejected wraps err (which keeps its kind, e.g. KindOverloaded for 429) as
// a rejection for reason, a Reason* constant. Return it up the handler
// chain: the request middleware counts it once in
// kronos_rejections_total{reason}.
func rejected(reason string, err error) error { return &rejection{reason: reason, err: err} }

func (r *rejection) Error() string { return r.err.Error() }
func (r *rejection) Unwrap() error { return r.err }

// queued and dequeued track kronos_queue_depth: call queued when a request
// starts waiting for admission and dequeued exactly once when it stops
// waiting (admitted, rejected or gone).
func (m *metrics) queued()   { m.queueDepth.Inc() }
func (m *metrics) dequeued() { m.queueDepth.Dec() }

// startForecast marks a forecast as running on the backend for endpoint
// (the route pattern); the returned function ends it, observing
// kronos_model_inference_seconds. Call it exactly once, when the backend
// work is over (successful or not). Timeouts are counted by
// observeRequest.
func (m *metrics) startForecast(endpoint string) (done func()) {
	m.concurrent.Inc()
	start := time.Now()
	return func() {
		m.concurrent.Dec()
		m.inferenceSeconds.WithLabelValues(endpoint).Observe(time.Since(start).Seconds())
	}
}

// observeInput records the candle count of one input series.
func (m *metrics) observeInput(endpoint string, candles int) {
	m.inputSize.WithLabelValues(endpoint).Observe(float64(candles))
}

// setModel records the model served by one backend: kronos_model_info = 1
// and kronos_backend_ready = 1 when ready, 0 otherwise.
func (m *metrics) setModel(info infer.ModelInfo, ready bool) {
	m.modelInfo.WithLabelValues(info.Name, info.ModelVersion, info.TokenizerVersion, info.Backend, info.Device).Set(1)
	m.setReady(info.Backend, info.Name, ready)
}

// setReady sets kronos_backend_ready{backend,model}.
func (m *metrics) setReady(backend, model string, ready bool) {
	v := 0.0
	if ready {
		v = 1
	}
	m.backendReady.WithLabelValues(backend, model).Set(v)
}

// dropModel removes a model that is no longer served (hot swap, unload)
// from kronos_model_info and kronos_backend_ready.
func (m *metrics) dropModel(info infer.ModelInfo) {
	m.modelInfo.DeleteLabelValues(info.Name, info.ModelVersion, info.TokenizerVersion, info.Backend, info.Device)
	m.backendReady.DeleteLabelValues(info.Backend, info.Name)
}

// instrument wraps b so that every session it opens is observed in
// kronos_batch_rows.
func (m *metrics) instrument(b infer.Backend) infer.Backend {
	if b == nil {
		return nil
	}
	return &instrumentedBackend{Backend: b, m: m}
}

// instrumentedBackend is an infer.Backend that counts rows per session.
type instrumentedBackend struct {
	infer.Backend
	m *metrics
}

func (b *instrumentedBackend) NewSession(ctx context.Context, rows int) (infer.Session, error) {
	s, err := b.Backend.NewSession(ctx, rows)
	if err == nil {
		b.m.batchRows.Observe(float64(rows))
	}
	return s, err
}

// unwrapBackend returns the backend that b instruments, or b.
func unwrapBackend(b infer.Backend) infer.Backend {
	for {
		ib, ok := b.(*instrumentedBackend)
		if !ok {
			return b
		}
		b = ib.Backend
	}
}
