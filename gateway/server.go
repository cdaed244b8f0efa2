package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/kronos-gateway/kronos-gateway/internal/infer"
	"github.com/kronos-gateway/kronos-gateway/internal/onnxlocal"
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
// Options.ModelNames on the embedded ONNX Runtime backend in the background
// (all within StartupTimeout), logging each. Until they are loaded,
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
	return run(ctx, opts, logger, openEmbedded, nil)
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

// run is Run with the backend opener and a hook that receives the bound
// address, for tests.
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

	// Placeholders hold the models' slots while they load, so that the
	// server answers from the start: liveness 200, readiness 503 "loading",
	// forecasts 503 (reason not_ready).
	names := opts.ModelNames()
	pending := make([]infer.Backend, len(names))
	for i, name := range names {
		info := infer.ModelInfo{Name: name, Backend: "embedded"}
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
	app, err := New(opts, Deps{Models: models, Logger: logger, Registry: NewRegistry()})
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
	loadCtx, cancelLoad := context.WithCancel(ctx)
	defer cancelLoad()
	loaded := make(chan error, 1)
	logger.Info("loading models", slog.Any("models", names), slog.String("timeout", opts.StartupTimeout.String()))
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
