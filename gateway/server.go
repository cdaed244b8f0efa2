package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

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
// configuration, opens the embedded ONNX Runtime backend (within
// StartupTimeout) and logs which model it serves, listens on Host:Port, and
// when ctx is done shuts down gracefully (ShutdownTimeout) and closes the
// backend last. It returns nil after a clean shutdown, including one
// requested while the model was still loading.
func Run(ctx context.Context, opts Options, logger *slog.Logger) error {
	return run(ctx, opts, logger, openEmbedded, nil)
}

// openEmbedded opens the default backend.
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

	start := time.Now()
	backend, err := openWithin(ctx, opts, open)
	if err != nil || backend == nil {
		return err
	}
	defer func() {
		if err := backend.Close(); err != nil {
			logger.Error("closing the backend", slog.String("error", err.Error()))
		}
		logger.Info("backend closed")
	}()
	info := backend.Info()
	logger.Info("model loaded",
		slog.String("model", info.Name),
		slog.String("repository_version", info.Version),
		slog.String("checkpoint", info.Checkpoint),
		slog.String("model_version", info.ModelVersion),
		slog.String("tokenizer_checkpoint", info.TokenizerCheckpoint),
		slog.String("tokenizer_version", info.TokenizerVersion),
		slog.Int("max_context", info.MaxContext),
		slog.String("backend", info.Backend),
		slog.String("device", info.Device),
		slog.Int64("load_ms", time.Since(start).Milliseconds()))

	app, err := New(opts, Deps{Backend: backend, Logger: logger})
	if err != nil {
		return err
	}
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

	select {
	case err := <-served:
		return fmt.Errorf("serving: %w", err)
	case <-ctx.Done():
	}
	logger.Info("shutting down", slog.String("grace", opts.ShutdownTimeout.String()))
	shutdownErr := app.Shutdown(opts.ShutdownTimeout)
	if err := <-served; err != nil {
		logger.Warn("server stopped with an error", slog.String("error", err.Error()))
	}
	if shutdownErr != nil {
		// Requests still running past the grace period were cancelled.
		logger.Warn("graceful shutdown incomplete", slog.String("error", shutdownErr.Error()))
	}
	logger.Info("server stopped")
	return nil
}

// openWithin opens the backend within StartupTimeout. A nil backend with a
// nil error means ctx was cancelled first (a clean stop). A backend that
// finishes loading after the deadline is closed.
func openWithin(ctx context.Context, opts Options, open func(Options) (infer.Backend, error)) (infer.Backend, error) {
	type opened struct {
		b   infer.Backend
		err error
	}
	ch := make(chan opened, 1)
	go func() {
		b, err := open(opts)
		ch <- opened{b, err}
	}()
	abandon := func() {
		go func() {
			if o := <-ch; o.b != nil {
				_ = o.b.Close()
			}
		}()
	}
	timer := time.NewTimer(opts.StartupTimeout)
	defer timer.Stop()
	select {
	case o := <-ch:
		if o.err != nil {
			return nil, fmt.Errorf("opening model %q (version %q) from %s: %w",
				opts.Model, opts.ModelVersion, opts.ModelRepository, o.err)
		}
		if o.b == nil {
			return nil, errors.New("opening the backend returned no backend")
		}
		return o.b, nil
	case <-timer.C:
		abandon()
		return nil, fmt.Errorf("loading model %q took longer than KRONOS_STARTUP_TIMEOUT (%v)", opts.Model, opts.StartupTimeout)
	case <-ctx.Done():
		abandon()
		return nil, nil
	}
}
