// Command kronos-bench measures end-to-end forecast latency (KV cache vs full
// recompute) and process memory on random-weight models; see BENCHMARKS.md.
//
//	go run ./cmd/kronos-bench -preset small -runs 5
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"

	"github.com/kronos-gateway/kronos-gateway/bench"
)

func main() {
	var o bench.Options
	var scen string
	flag.StringVar(&o.Preset, "preset", "small", "random-weight checkpoint preset (small, nano)")
	flag.Uint64Var(&o.Seed, "seed", 1, "seed of the random weights")
	flag.StringVar(&o.CSV, "csv", "testdata/data/regression_input.csv", "candles CSV")
	flag.StringVar(&scen, "scenarios", "392:120,400:120", "comma-separated context:steps pairs")
	flag.IntVar(&o.Runs, "runs", 5, "measured runs per scenario and backend")
	flag.IntVar(&o.IntraOpThreads, "threads", 0, "ONNX Runtime intra-op threads (0 = CPUs)")
	flag.BoolVar(&o.SkipRecompute, "kv-only", false, "skip the full-recompute backend")
	flag.Parse()
	for _, s := range strings.Split(scen, ",") {
		a, b, ok := strings.Cut(s, ":")
		l, err1 := strconv.Atoi(a)
		p, err2 := strconv.Atoi(b)
		if !ok || err1 != nil || err2 != nil || l < 1 || p < 1 {
			fmt.Fprintf(os.Stderr, "kronos-bench: bad scenario %q (want context:steps)\n", s)
			os.Exit(2)
		}
		o.Scenarios = append(o.Scenarios, bench.Scenario{Context: l, Steps: p})
	}
	o.Log = os.Stderr
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	rep, err := bench.Run(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kronos-bench:", err)
		os.Exit(1)
	}
	fmt.Print(rep.Markdown())
}
