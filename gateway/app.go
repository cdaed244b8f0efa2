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
	// Models are the models served; the App does not close them (Run
	// does). When nil, Backend is served alone, as the default model.
	Models *Models
	// Backend runs the model when Models is nil. The App does not close
	// it.
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
	opts  Options
	fiber *fiber.App
	// models are the models served; backend is a view of the default one
	// (its Info follows hot swaps), for reports.
	models  *Models
	backend infer.Backend
	// admission bounds the forecasts running at once and queues the rest.
	admission *admission
	// auth checks API keys and rate limits.
	auth *auth
	// admin serves /v1/admin (admin.go); nil without admin keys.
	admin *admin
	log   *slog.Logger
	// registry holds metrics, served on GET /v1/metrics.
	registry *prometheus.Registry
	metrics  *metrics
	// routes holds every registered path (all static), for route labels.
	routes map[string]bool
	// draining is set when shutdown begins: new forecasts get 503.
	draining atomic.Bool
	// starting is set while Run loads the models (health.go): forecasts
	// get 503 not_ready and /v1/readyz 503 "loading".
	starting atomic.Bool
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
	a := &App{opts: opts, log: deps.Logger, models: deps.Models}
	if a.models == nil {
		if deps.Backend == nil {
			return nil, errors.New("gateway: Deps.Models or Deps.Backend is required")
		}
		m, err := NewModels(deps.Backend.Info().Name, deps.Backend)
		if err != nil {
			return nil, err
		}
		a.models = m
	}
	var err error
	if a.auth, err = newAuth(opts); err != nil {
		return nil, err
	}
	if a.admin, err = newAdmin(opts, a.auth); err != nil {
		return nil, err
	}
	a.stopCtx, a.stop = context.WithCancel(context.Background())
	if a.log == nil {
		a.log = slog.New(slog.NewJSONHandler(io.Discard, nil))
	}
	a.registry = deps.Registry
	if a.registry == nil {
		a.registry = prometheus.NewRegistry()
	}
	a.metrics = newMetrics(a.registry)
	a.models.adopt(a.metrics)
	a.backend = defaultView{a.models}
	a.admission = newAdmission(opts.MaxConcurrency, opts.QueueSize, a.metrics)
	a.routes = make(map[string]bool)

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
	a.fiber.Use(a.withRequestID, a.accessLog, a.recoverPanic, a.authenticate, a.notLoading)
	a.route(http.MethodGet, RouteHealthz, a.healthz)
	a.route(http.MethodPost, RoutePredictSingle, a.predictSingle)
	a.route(http.MethodPost, RoutePredictBatch, a.predictBatch)
	a.route(http.MethodGet, RouteMetrics, a.serveMetrics())
	a.routeHealth()
	a.routeDocs()
	a.routeAdmin()
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

// admit registers a forecast with the shutdown and takes a slot of the
// admission queue, waiting while ctx (the request's deadline) allows; the
// caller must call the returned release when the forecast is over. A
// draining server refuses (503); a full queue refuses at once (429); a wait
// that outlives ctx is a timeout (504), and one cut by the end of the
// shutdown grace period is answered 503.
func (a *App) admit(ctx context.Context) (release func(), err error) {
	a.mu.RLock()
	if a.closed || a.draining.Load() {
		a.mu.RUnlock()
		return nil, errDraining
	}
	a.inflight.Add(1)
	a.mu.RUnlock()

	qctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(a.stopCtx, cancel)()
	free, err := a.admission.acquire(qctx)
	if err != nil {
		a.inflight.Done()
		switch {
		case errors.Is(err, errQueueFull):
			return nil, rejected(ReasonQueueFull, err)
		case a.stopCtx.Err() != nil:
			return nil, errDraining
		}
		return nil, infer.Wrap(infer.KindOf(err), err,
			"no forecast slot became free within KRONOS_REQUEST_TIMEOUT (%v); %d forecasts run at once (KRONOS_MAX_CONCURRENCY)",
			a.opts.RequestTimeout, a.opts.MaxConcurrency)
	}
	return func() {
		free()
		a.inflight.Done()
	}, nil
}

var errDraining = rejected(ReasonDraining,
	infer.Errorf(infer.KindUnavailable, "the server is shutting down; retry on another instance"))
