package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/kronos-gateway/kronos-gateway/checkpoint"
	"github.com/kronos-gateway/kronos-gateway/export"
	"github.com/kronos-gateway/kronos-gateway/internal/graphs"
	"github.com/kronos-gateway/kronos-gateway/internal/infer"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("kronos-export", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var j export.Job
	fs.StringVar(&j.Tokenizer, "tokenizer", "", "tokenizer checkpoint: a local folder or a hub repository id (e.g. NeoQuasar/Kronos-Tokenizer-base)")
	fs.StringVar(&j.Predictor, "predictor", "", "predictor checkpoint: a local folder or a hub repository id (e.g. NeoQuasar/Kronos-small)")
	fs.StringVar(&j.Random, "random", "", "export random weights of a preset instead ("+fmt.Sprint(checkpoint.PresetNames())+")")
	fs.Uint64Var(&j.Seed, "seed", 1, "seed of the random weights (with --random)")
	fs.StringVar(&j.Options.Name, "name", "", "model name; the Triton models are NAME-<role> (required)")
	fs.StringVar(&j.Options.Dir, "out", export.DefaultDir, "model repository folder")
	fs.StringVar(&j.Options.Version, "version", export.DefaultVersion, "model version folder")
	fs.IntVar(&j.Options.MaxContext, "max-context", 0, "default_max_context written to the manifest (required unless --random)")
	fs.IntVar(&j.Options.Triton.MaxBatchSize, "max-batch-size", export.DefaultMaxBatchSize, "Triton max_batch_size")
	fs.BoolVar(&j.NoTriton, "no-triton", false, "skip the Triton backend's window graphs and Triton CPU/GPU configs (embedded backend only)")
	fs.StringVar(&j.Fetch.HubURL, "hub-url", checkpoint.DefaultHubURL, "hub base URL for repository ids")
	fs.StringVar(&j.Fetch.Revision, "revision", checkpoint.DefaultRevision, "hub revision (branch, tag or commit)")
	fs.StringVar(&j.Fetch.CacheDir, "cache-dir", "", "hub download cache (default: the user cache folder)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "kronos-export: unexpected arguments %q\n", fs.Args())
		return 2
	}
	j.Fetch.Token = os.Getenv("HF_TOKEN")

	m, opt, err := j.Run(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "kronos-export: %v\n", err)
		if infer.KindOf(err) == infer.KindInvalid && m == nil && isFlagError(err) {
			return 2
		}
		return 1
	}
	fmt.Fprintf(stdout, "exported %s (predictor %s, tokenizer %s) to %s:\n",
		opt.Name, m.Predictor.Version(), m.Tokenizer.Version(), opt.Dir)
	roles := graphs.Roles
	if !j.NoTriton {
		roles = append(roles[:len(roles):len(roles)], export.TritonRoles...)
	}
	for _, r := range roles {
		fmt.Fprintf(stdout, "  %s\n", filepath.Join(opt.Dir, graphs.ModelName(opt.Name, r), opt.Version, export.ModelFile))
	}
	return 0
}

// isFlagError reports errors about the flags themselves (FieldError).
func isFlagError(err error) bool {
	var fe *infer.FieldError
	return errors.As(err, &fe)
}
