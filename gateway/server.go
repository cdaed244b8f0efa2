package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/kronos-gateway/kronos-gateway/internal/infer"
	"github.com/kronos-gateway/kronos-gateway/internal/onnxlocal"
	"github.com/kronos-gateway/kronos-gateway/triton"
)

// NewLogger returns the JSON logger of the service at the given
// KRONOS_LOG_LEVEL (info when the level is not valid; Options.Validate
// reports that).
func NewLogger(w io.Writer, level string) *slog.Logger {
	lvl, err := parseLevel(level)
	if err != nil {
		lvl = slog.LevelInfo
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: lvl}))
}

// Run serves the gateway until ctx is cancelled: it logs the effective
// configuration, listens on Host:Port at once, and opens every model of
// Options.ModelNames on the backend of Options.BackendKind in the
// background (all within StartupTimeout), logging each: the embedded ONNX
// Runtime backend, or a Triton client behind a circuit breaker (with the
// embedded backend as its fallback when TritonFallback says so; the
// client's and the breaker's metrics go to the same registry). Until they
// are loaded,
// /v1/healthz answers 200, /v1/readyz 503 "loading" and forecasts 503
// (reason not_ready); a load that fails or times out stops the server and
// Run returns its error. Metrics go to a fresh registry (NewRegistry). When
// ctx is done it shuts down gracefully and closes the backends last:
//
//  1. the App starts draining: readiness answers 503, new forecasts get 503
//     with Retry-After, the listener closes (new connections are refused)
//     and keep-alive connections are closed after their current request;
//  2. every forecast already admitted (running or queued) finishes, within
//     ShutdownTimeout; those still running then are cancelled (503);
//  3. the backends are closed, and Run returns.
//
// It returns nil after a clean shutdown, including one requested while the
// models were still loading.
func Run(ctx context.Context, opts Options, logger *slog.Logger) error {
	return run(ctx, opts, logger, nil, nil)
}

// openEmbedded opens the backend of o.Model.
func openEmbedded(o Options) (infer.Backend, error) {
	b, err := onnxlocal.Open(onnxlocal.Options{
		RepoDir:        o.ModelRepository,
		Model:          o.Model,
		Version:        o.ModelVersion,
		LibPath:        o.ORTLib,
		IntraOpThreads: o.IntraOpThreads,
		MaxContext:     o.MaxContext,
	})
	if err != nil {
		return nil, err
	}
	return b, nil
}

// openTriton opens the Triton backend of o.Model behind its circuit
// breaker (and the embedded fallback when o.TritonFallback asks for it),
// within o.StartupTimeout. The clients' and the breaker's metrics go to
// reg.
func openTriton(ctx context.Context, o Options, reg prometheus.Registerer, logger *slog.Logger) (*tritonView, error) {
	ctx, cancel := context.WithTimeout(ctx, o.StartupTimeout)
	defer cancel()
	to := o.Triton
	to.Model, to.Registerer, to.Logger = o.Model, reg, logger
	control, err := triton.New(ctx, to)
	if err != nil {
		return nil, fmt.Errorf("connecting to Triton at %s: %w", orDefault(to.URL, triton.DefaultURL), err)
	}
	s := &tritonShared{opts: to, control: control}
	bo := o.Breaker
	bo.Registerer, bo.Logger = reg, logger
	if o.TritonFallback == BackendEmbedded {
		if s.fallback, err = openEmbedded(o); err != nil {
			_ = control.Close()
			return nil, fmt.Errorf("opening the embedded fallback (KRONOS_TRITON_FALLBACK): %w", err)
		}
		bo.Fallback = s.fallback
	}
	s.br = triton.NewBreaker(pinnedClient{s}, bo)
	v, err := s.open(ctx)
	if err != nil {
		s.close()
		return nil, err
	}
	return v, nil
}

// tritonShared is what the registry generations of one Triton model
// (tritonView) share across hot swaps: a control client for the admin API
// and the readiness of versions, the circuit breaker (its state outlives a
// swap: Triton's health does not depend on the version) and the embedded
// fallback. The last view closed closes them.
type tritonShared struct {
	opts     triton.Options // of the serving clients
	control  *triton.Backend
	br       *triton.Breaker
	fallback infer.Backend // nil without KRONOS_TRITON_FALLBACK
	views    atomic.Int64
}

// open connects a serving client, pinned to the highest version ready for
// the model's four Triton models now, and returns a view over it. The
// client never looks for another version by itself (only after an error
// that says its version is gone), so every call of a forecast that leased
// the view goes to that version: a hot swap is a new view.
func (s *tritonShared) open(ctx context.Context) (*tritonView, error) {
	o := s.opts
	o.VersionRefresh = math.MaxInt64
	c, err := triton.New(ctx, o)
	if err != nil {
		return nil, err
	}
	s.views.Add(1)
	return &tritonView{s: s, client: c, info: c.Info()}, nil
}

func (s *tritonShared) close() error {
	errs := []error{s.control.Close(), s.br.Close()}
	if s.fallback != nil {
		errs = append(errs, s.fallback.Close())
	}
	return errors.Join(errs...)
}

// tritonView is the infer.Backend the model registry holds for a Triton
// model: the breaker over the serving client of one version. A hot swap
// installs a new view; the old one closes its client once its last
// forecast has finished (Models.Swap).
type tritonView struct {
	s      *tritonShared
	client *triton.Backend
	info   infer.ModelInfo
	once   sync.Once
}

var _ infer.Backend = (*tritonView)(nil)

// Info describes the version the view's client is pinned to.
func (v *tritonView) Info() infer.ModelInfo { return v.info }

func (v *tritonView) Encode(ctx context.Context, x []float32, rows, length int) ([]float32, error) {
	return v.s.br.Encode(withClient(ctx, v.client), x, rows, length)
}

func (v *tritonView) Decode(ctx context.Context, s1, s2 []int64, rows, width int) ([]float32, error) {
	return v.s.br.Decode(withClient(ctx, v.client), s1, s2, rows, width)
}

func (v *tritonView) NewSession(ctx context.Context, rows int) (infer.Session, error) {
	return v.s.br.NewSession(withClient(ctx, v.client), rows)
}

// Ready is the breaker's readiness: Triton and the four models ready at
// the view's version, or the fallback while the breaker is open.
func (v *tritonView) Ready(ctx context.Context) error {
	return v.s.br.Ready(withClient(ctx, v.client))
}

// Close closes the view's client; the last view also closes the shared
// parts.
func (v *tritonView) Close() error {
	var err error
	v.once.Do(func() {
		err = v.client.Close()
		if v.s.views.Add(-1) == 0 {
			err = errors.Join(err, v.s.close())
		}
	})
	return err
}

// servingClientKey keys the serving client of a call in its context.
type servingClientKey struct{}

func withClient(ctx context.Context, c *triton.Backend) context.Context {
	return context.WithValue(ctx, servingClientKey{}, c)
}

// pinnedClient is the breaker's inner backend: it runs each call on the
// serving client that the calling view put into the context, so that one
// breaker guards every version of a model while each forecast stays on
// the version of the view it leased.
type pinnedClient struct{ s *tritonShared }

func (p pinnedClient) client(ctx context.Context) *triton.Backend {
	if c, ok := ctx.Value(servingClientKey{}).(*triton.Backend); ok {
		return c
	}
	return p.s.control
}

func (p pinnedClient) Info() infer.ModelInfo { return p.s.control.Info() }

func (p pinnedClient) Encode(ctx context.Context, x []float32, rows, length int) ([]float32, error) {
	return p.client(ctx).Encode(ctx, x, rows, length)
}

func (p pinnedClient) Decode(ctx context.Context, s1, s2 []int64, rows, width int) ([]float32, error) {
	return p.client(ctx).Decode(ctx, s1, s2, rows, width)
}

func (p pinnedClient) NewSession(ctx context.Context, rows int) (infer.Session, error) {
	return p.client(ctx).NewSession(ctx, rows)
}

func (p pinnedClient) Ready(ctx context.Context) error { return p.client(ctx).Ready(ctx) }

// Close does nothing: the views close their clients.
func (p pinnedClient) Close() error { return nil }

// run is Run with the backend opener (nil: the one of opts.BackendKind)
// and a hook that receives the bound address, for tests.
func run(ctx context.Context, opts Options, logger *slog.Logger,
	open func(Options) (infer.Backend, error), listening func(net.Addr)) error {
	if logger == nil {
		logger = slog.New(slog.NewJSONHandler(io.Discard, nil))
	}
	if err := opts.Validate(); err != nil {
		return err
	}
	logger.Info("configuration", slog.Any("config", opts.AsMap()))
	if _, err := opts.loadAPIKeys(); err != nil { // fail before the slow part
		return err
	}
	// The models load in the background under loadCtx, ended when run
	// returns.
	loadCtx, cancelLoad := context.WithCancel(ctx)
	defer cancelLoad()
	reg := NewRegistry()
	if open == nil {
		open = openEmbedded
		if opts.BackendKind() == BackendTriton {
			open = func(o Options) (infer.Backend, error) {
				v, err := openTriton(loadCtx, o, reg, logger)
				if err != nil {
					return nil, err
				}
				return v, nil
			}
		}
	}

	// Placeholders hold the models' slots while they load, so that the
	// server answers from the start: liveness 200, readiness 503 "loading",
	// forecasts 503 (reason not_ready).
	names := opts.ModelNames()
	pending := make([]infer.Backend, len(names))
	for i, name := range names {
		info := infer.ModelInfo{Name: name, Backend: opts.BackendKind()}
		if name == opts.Model {
			info.Version = opts.ModelVersion
		}
		pending[i] = pendingBackend{info: info}
	}
	models, err := NewModels(opts.Model, pending...)
	if err != nil {
		return err
	}
	defer func() {
		if err := models.Close(); err != nil {
			logger.Error("closing the backends", slog.String("error", err.Error()))
		}
		logger.Info("backend closed")
	}()
	app, err := New(opts, Deps{Models: models, Logger: logger, Registry: reg})
	if err != nil {
		return err
	}
	app.startLoading()
	ln, err := net.Listen("tcp", opts.addr())
	if err != nil {
		return fmt.Errorf("listening on %s: %w", opts.addr(), err)
	}
	logger.Info("listening", slog.String("addr", ln.Addr().String()))
	if listening != nil {
		listening(ln.Addr())
	}
	served := make(chan error, 1)
	go func() { served <- app.Serve(ln) }()

	// The models load in the background, within StartupTimeout; a failure
	// stops the server (a non-nil error from run, exit 1 in main).
	loaded := make(chan error, 1)
	logger.Info("loading models", slog.Any("models", names), slog.String("backend", opts.BackendKind()),
		slog.String("timeout", opts.StartupTimeout.String()))
	go func() { loaded <- loadModels(loadCtx, opts, open, app, logger) }()
	waitLoaded := func() {
		cancelLoad()
		if loaded != nil {
			<-loaded
		}
	}

	var runErr error
	for stop := false; !stop; {
		select {
		case err := <-served:
			_ = app.Shutdown(time.Millisecond)
			waitLoaded()
			return fmt.Errorf("serving: %w", err)
		case err := <-loaded:
			loaded = nil
			if err != nil {
				logger.Error("loading the models failed", slog.String("error", err.Error()))
				runErr, stop = err, true
			}
		case <-ctx.Done():
			stop = true
		}
	}
	logger.Info("shutting down", slog.String("grace", opts.ShutdownTimeout.String()))
	shutdownErr := app.Shutdown(opts.ShutdownTimeout)
	// A Shutdown that comes before Serve has registered the listener (a
	// load that fails at once) does not stop it; closing it does.
	_ = ln.Close()
	if err := <-served; err != nil {
		logger.Warn("server stopped with an error", slog.String("error", err.Error()))
	}
	if shutdownErr != nil {
		// Requests still running past the grace period were cancelled.
		logger.Warn("graceful shutdown incomplete", slog.String("error", shutdownErr.Error()))
	}
	waitLoaded()
	logger.Info("server stopped")
	return runErr
}

// NewRegistry returns the Prometheus registry Run serves on /v1/metrics: a
// fresh one (never the global registry) with the process and Go runtime
// collectors, for Deps.Registry.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), collectors.NewGoCollector())
	return reg
}

// loadModels opens the models (openWithin) and swaps each into its slot of
// app's registry in place of its placeholder, then ends the App's loading
// state and logs each model. It returns nil without loading when ctx is
// cancelled first.
func loadModels(ctx context.Context, opts Options, open func(Options) (infer.Backend, error), app *App,
	logger *slog.Logger) error {
	start := time.Now()
	backends, err := openWithin(ctx, opts, open)
	if err != nil || backends == nil {
		return err
	}
	for i, b := range backends {
		name := b.Info().Name
		if err := app.models.Swap(name, b); err != nil {
			closeAll(backends[i:])
			return fmt.Errorf("installing model %q: %w", name, err)
		}
	}
	app.finishLoading()
	for _, info := range app.models.Infos() {
		logger.Info("model loaded",
			slog.String("model", info.Name),
			slog.Bool("default", info.Name == opts.Model),
			slog.String("repository_version", info.Version),
			slog.String("checkpoint", info.Checkpoint),
			slog.String("model_version", info.ModelVersion),
			slog.String("tokenizer_checkpoint", info.TokenizerCheckpoint),
			slog.String("tokenizer_version", info.TokenizerVersion),
			slog.Int("max_context", info.MaxContext),
			slog.String("backend", info.Backend),
			slog.String("device", info.Device),
			slog.Int64("load_ms", time.Since(start).Milliseconds()))
	}
	return nil
}

// openWithin opens every model of opts.ModelNames, one after the other,
// within StartupTimeout: open gets opts with Model set to each name (and
// ModelVersion kept for the default model only), and each backend must
// report that name. A nil slice with a nil error means ctx was cancelled
// first (a clean stop). On any failure the backends already open are
// closed, as are those that finish loading after the deadline.
func openWithin(ctx context.Context, opts Options, open func(Options) (infer.Backend, error)) ([]infer.Backend, error) {
	type opened struct {
		bs  []infer.Backend
		err error
	}
	ch := make(chan opened, 1)
	go func() {
		var bs []infer.Backend
		for _, name := range opts.ModelNames() {
			o := opts
			o.Model = name
			if name != opts.Model {
				o.ModelVersion = ""
			}
			b, err := open(o)
			if err == nil && b == nil {
				err = errors.New("opening the backend returned no backend")
			}
			if err == nil && b.Info().Name != name {
				err = fmt.Errorf("the backend reports the model name %q", b.Info().Name)
				_ = b.Close()
			}
			if err != nil {
				closeAll(bs)
				ch <- opened{nil, fmt.Errorf("opening model %q (version %q) from %s: %w",
					name, o.ModelVersion, opts.ModelRepository, err)}
				return
			}
			bs = append(bs, b)
		}
		ch <- opened{bs, nil}
	}()
	abandon := func() {
		go func() { closeAll((<-ch).bs) }()
	}
	timer := time.NewTimer(opts.StartupTimeout)
	defer timer.Stop()
	select {
	case o := <-ch:
		return o.bs, o.err
	case <-timer.C:
		abandon()
		return nil, fmt.Errorf("loading the models %s took longer than KRONOS_STARTUP_TIMEOUT (%v)",
			strings.Join(opts.ModelNames(), ", "), opts.StartupTimeout)
	case <-ctx.Done():
		abandon()
		return nil, nil
	}
}

// closeAll closes backends, ignoring errors (a failed start).
func closeAll(bs []infer.Backend) {
	for _, b := range bs {
		_ = b.Close()
	}
}
