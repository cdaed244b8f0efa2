package gateway

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kronos-gateway/kronos-gateway/internal/infer"
)

// Deps are the collaborators of an App.
type Deps struct {
	// Backend runs the model; required. The App does not close it.
	Backend infer.Backend
	// Logger receives the access log and errors; nil discards them.
	Logger *slog.Logger
	// Registry receives the gateway's metrics (metrics.go) and is what
	// GET /v1/metrics serves; nil gives the App a fresh registry of its
	// own. Run passes one that also holds the process and Go collectors.
	// Never the global registry.
	Registry *prometheus.Registry
}

// App is the HTTP service: a Fiber app with its routes, middleware and
// error mapping, independent of any listener, so that tests drive it with
// App.Test.
type App struct {
	opts    Options
	fiber   *fiber.App
	backend infer.Backend
	log     *slog.Logger
	// registry holds metrics, served on GET /v1/metrics.
	registry *prometheus.Registry
	metrics  *metrics
	// routes holds every registered path (all static), for route labels.
	routes map[string]bool
	// maxContext is the number of candles kept from a long input:
	// KRONOS_MAX_CONTEXT when set, else the model's context (0: no limit).
	maxContext int
	// draining is set when shutdown begins: new forecasts get 503.
	draining atomic.Bool
	// inflight counts running forecasts; closed (under mu) stops new ones
	// from starting once Shutdown waits for them. stop cancels them when
	// the shutdown grace period runs out.
	mu       sync.RWMutex
	closed   bool
	inflight sync.WaitGroup
	stopCtx  context.Context
	stop     context.CancelFunc
}

// New builds the App. opts must be valid (FromEnv validates; New checks
// again).
func New(opts Options, deps Deps) (*App, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if deps.Backend == nil {
		return nil, errors.New("gateway: Deps.Backend is required")
	}
	a := &App{opts: opts, log: deps.Logger}
	a.stopCtx, a.stop = context.WithCancel(context.Background())
	if a.log == nil {
		a.log = slog.New(slog.NewJSONHandler(io.Discard, nil))
	}
	a.registry = deps.Registry
	if a.registry == nil {
		a.registry = prometheus.NewRegistry()
	}
	a.metrics = newMetrics(a.registry)
	a.backend = a.metrics.instrument(deps.Backend)
	a.routes = make(map[string]bool)
	a.maxContext = opts.MaxContext
	if a.maxContext == 0 {
		a.maxContext = deps.Backend.Info().MaxContext
	}

	a.fiber = fiber.New(fiber.Config{
		AppName:               "kronos-gateway",
		BodyLimit:             int(opts.MaxBodyBytes),
		ErrorHandler:          a.handleError,
		DisableStartupMessage: true,
		CaseSensitive:         true,
		ReadTimeout:           opts.RequestTimeout,
		WriteTimeout:          opts.RequestTimeout,
		IdleTimeout:           opts.IdleTimeout,
		// Request ids and other header values are copied where they are
		// kept, so Fiber's zero-copy strings stay safe.
	})
	a.fiber.Use(a.withRequestID, a.accessLog, a.recoverPanic)
	a.route(http.MethodGet, RouteHealthz, a.healthz)
	a.route(http.MethodPost, RoutePredictSingle, a.predictSingle)
	a.route(http.MethodGet, RouteMetrics, a.serveMetrics())
	return a, nil
}

// route registers h under path, labelling its requests with the path for
// the access log and the metrics.
func (a *App) route(method, path string, h fiber.Handler) {
	a.routes[path] = true
	a.fiber.Add(method, path, func(c *fiber.Ctx) error {
		c.Locals(localRoute, path)
		return h(c)
	})
}

// Fiber returns the underlying Fiber app.
func (a *App) Fiber() *fiber.App { return a.fiber }

// Test serves one request in memory (see fiber.App.Test); timeoutMS -1
// waits for as long as the request takes.
func (a *App) Test(req *http.Request, timeoutMS int) (*http.Response, error) {
	return a.fiber.Test(req, timeoutMS)
}

// Serve serves HTTP on ln until Shutdown.
func (a *App) Serve(ln net.Listener) error { return a.fiber.Listener(ln) }

// Shutdown stops accepting connections, answers new forecasts on open
// connections with 503 and waits up to timeout for in-flight requests.
// Forecasts still running then are cancelled, and Shutdown returns once they
// have returned, so that the caller may close the backend. It returns the
// error of the HTTP server's shutdown (context.DeadlineExceeded when the
// grace period ran out).
func (a *App) Shutdown(timeout time.Duration) error {
	a.draining.Store(true)
	err := a.fiber.ShutdownWithTimeout(timeout)
	a.stop()
	a.mu.Lock()
	a.closed = true
	a.mu.Unlock()
	a.inflight.Wait()
	return err
}

// admit registers a forecast with the shutdown; the caller must call the
// returned release when the forecast is over. It is also the seam for the
// concurrency limit and queue of the next issue.
func (a *App) admit() (release func(), err error) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	if a.closed || a.draining.Load() {
		return nil, errDraining
	}
	a.inflight.Add(1)
	return a.inflight.Done, nil
}

var errDraining = rejected(ReasonDraining,
	infer.Errorf(infer.KindUnavailable, "the server is shutting down; retry on another instance"))
