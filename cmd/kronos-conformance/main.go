package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"regexp"
	"syscall"

	"github.com/kronos-gateway/kronos-gateway/conformance"
	"github.com/kronos-gateway/kronos-gateway/internal/infer"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("kronos-conformance", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: kronos-conformance [flags] <dir> [<dir> ...]")
		fs.PrintDefaults()
	}
	var r conformance.Runner
	fs.StringVar(&r.LibPath, "lib", "", "ONNX Runtime library (default $KRONOS_ORT_LIB, else third_party/onnxruntime/libonnxruntime.so.1)")
	fs.IntVar(&r.IntraOpThreads, "threads", 0, "ONNX Runtime intra-op threads (0 = number of CPUs)")
	fs.BoolVar(&r.DisableKVCache, "no-kv-cache", false, "recompute every window instead of using the KV cache")
	pattern := fs.String("run", "", "run only the cases whose \"<config>/<case>\" matches this regular expression")
	replay := fs.Bool("replay", false, "play the recorded model outputs back instead of running a model")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	if *pattern != "" {
		re, err := regexp.Compile(*pattern)
		if err != nil {
			fmt.Fprintf(stderr, "kronos-conformance: -run: %v\n", err)
			return 2
		}
		r.Match = re.MatchString
	}
	if *replay {
		r.Backend = func(_ context.Context, c *conformance.Case) (infer.Backend, error) { return conformance.Replay(c), nil }
	}

	r.Out = stdout
	var total conformance.Summary
	code := 0
	for _, dir := range fs.Args() {
		sum, err := r.Run(ctx, dir)
		if err != nil {
			fmt.Fprintf(stderr, "kronos-conformance: %s: %v\n", dir, err)
			code = 1
			continue
		}
		total.Add(sum)
	}
	fmt.Fprintln(stdout, total)
	if total.Failed > 0 {
		code = 1
	}
	return code
}
