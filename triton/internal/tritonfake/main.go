// Command tritonfake serves a model repository's Kronos model through the
// fake Triton of triton/tritontest (KServe v2 gRPC, explicit model
// control), with the real exported graphs running on the embedded ONNX
// Runtime backend. scripts/triton-check.sh --self-test runs the real-Triton
// checks against it; it is not a Triton replacement.
//
//	go run ./triton/internal/tritonfake -addr 127.0.0.1:8001 -repo model_repository -model kronos-nano
package main

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"google.golang.org/protobuf/proto"

	"github.com/kronos-gateway/kronos-gateway/internal/graphs"
	"github.com/kronos-gateway/kronos-gateway/internal/onnxlocal"
	"github.com/kronos-gateway/kronos-gateway/internal/onnxpb"
	"github.com/kronos-gateway/kronos-gateway/triton/internal/kronostest"
	"github.com/kronos-gateway/kronos-gateway/triton/modelconfig"
	"github.com/kronos-gateway/kronos-gateway/triton/tritontest"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "tritonfake:", err)
		os.Exit(1)
	}
}

func run() error {
	addr := flag.String("addr", "127.0.0.1:8001", "gRPC listen address")
	repo := flag.String("repo", onnxlocal.DefaultRepoDir, "model repository")
	model := flag.String("model", onnxlocal.DefaultModel, "Kronos model name")
	maxQueue := flag.Uint("max-queue", 64, "max_queue_size of each model")
	concurrent := flag.Int("instances", 2, "concurrent executions per model")
	flag.Parse()

	b, err := onnxlocal.Open(onnxlocal.Options{RepoDir: *repo, Model: *model, IntraOpThreads: 1})
	if err != nil {
		return err
	}
	defer b.Close()
	info := b.Info()
	man, err := graphs.ReadManifest(filepath.Join(*repo, graphs.ModelName(*model, graphs.Prefill), info.Version, "kronos.json"))
	if err != nil {
		return err
	}
	models := tritontest.KronosModels(b)
	for _, r := range []graphs.Role{modelconfig.Window, modelconfig.WindowS2} {
		// Serve the exported window graphs when the repository has them;
		// otherwise compose them from the embedded prefill and s2 graphs.
		path := filepath.Join(*repo, graphs.ModelName(*model, r), info.Version, "model.onnx")
		raw, err := os.ReadFile(path)
		if err != nil {
			slog.Info("no exported window graph; composing it from prefill + s2", "role", r)
			continue
		}
		var mp onnxpb.ModelProto
		if err := proto.Unmarshal(raw, &mp); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		om, err := kronostest.NewONNXModel(&mp, raw)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		defer om.Close()
		models[r] = om
		slog.Info("serving the exported window graph", "path", path)
	}
	srv := tritontest.New(tritontest.Options{Explicit: true, MaxConcurrent: *concurrent})
	if err := tritontest.AddKronosModels(srv, man, info.Version, models, modelconfig.Params{CPUMaxQueue: uint32(*maxQueue)}, true); err != nil {
		return err
	}
	at, err := srv.StartAt(*addr)
	if err != nil {
		return err
	}
	defer srv.Stop()
	slog.Info("fake Triton serving", "addr", at, "model", *model, "version", info.Version)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	return nil
}
