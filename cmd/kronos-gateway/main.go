// Command kronos-gateway serves Kronos forecasts over HTTP. It is configured
// by KRONOS_* environment variables (see gateway.Options) and stops
// gracefully on SIGTERM or SIGINT.
package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/kronos-gateway/kronos-gateway/gateway"
)

func main() { os.Exit(run()) }

func run() int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	opts, err := gateway.FromEnv(os.LookupEnv)
	logger := gateway.NewLogger(os.Stderr, opts.LogLevel)
	if err != nil {
		logger.Error("invalid configuration", slog.String("error", err.Error()))
		return 1
	}
	for _, name := range gateway.UnknownEnv(os.Environ()) {
		logger.Warn("ignoring unknown setting", slog.String("variable", name))
	}
	if err := gateway.Run(ctx, opts, logger); err != nil {
		logger.Error("kronos-gateway failed", slog.String("error", err.Error()))
		return 1
	}
	return 0
}
