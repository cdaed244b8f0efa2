package bench

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/kronos-gateway/kronos-gateway/export"
	"github.com/kronos-gateway/kronos-gateway/forecast"
	"github.com/kronos-gateway/kronos-gateway/internal/onnxlocal"
	"github.com/kronos-gateway/kronos-gateway/preprocess"
)

// Scenario is one forecast shape.
type Scenario struct {
	Context, Steps int
}

func (s Scenario) String() string { return fmt.Sprintf("%d->%d", s.Context, s.Steps) }

// Options configure a benchmark run.
type Options struct {
	// Preset is the checkpoint.RandomPair preset (default "small").
	Preset string
	// Seed seeds the random weights (default 1).
	Seed uint64
	// CSV is the candle file (default testdata/data/regression_input.csv).
	CSV string
	// Scenarios to run (default 392->120 and 400->120).
	Scenarios []Scenario
	// Runs per scenario and backend (default 5), after one warm-up run each.
	Runs int
	// IntraOpThreads for ONNX Runtime (0 = number of CPUs).
	IntraOpThreads int
	// WorkDir caches the exported repository (default os.TempDir()/kronos-bench).
	WorkDir string
	// SkipRecompute measures only the KV-cache path.
	SkipRecompute bool
	// Log receives progress lines (may be nil).
	Log io.Writer
}

// Stats summarises the latencies of one scenario on one backend.
type Stats struct {
	Runs             []time.Duration
	Median, Min, Max time.Duration
}

// Row is the result of one scenario.
type Row struct {
	Scenario  Scenario
	KV        Stats
	Recompute Stats // zero when SkipRecompute
}

// Report is the result of Run.
type Report struct {
	Options            Options
	Rows               []Row
	RSSBytes, HWMBytes int64 // after the runs: current and peak resident set
	LoadedRSSBytes     int64 // after opening the backends, before any forecast
}

// Run exports the preset (cached), opens the backends and measures.
func Run(ctx context.Context, o Options) (*Report, error) {
	if o.Preset == "" {
		o.Preset = "small"
	}
	if o.Seed == 0 {
		o.Seed = 1
	}
	if o.CSV == "" {
		o.CSV = filepath.Join("testdata", "data", "regression_input.csv")
	}
	if len(o.Scenarios) == 0 {
		o.Scenarios = []Scenario{{392, 120}, {400, 120}}
	}
	if o.Runs <= 0 {
		o.Runs = 5
	}
	if o.WorkDir == "" {
		o.WorkDir = filepath.Join(os.TempDir(), "kronos-bench")
	}
	logf := func(format string, args ...any) {
		if o.Log != nil {
			fmt.Fprintf(o.Log, format+"\n", args...)
		}
	}
	rows, times, err := readCSV(o.CSV)
	if err != nil {
		return nil, err
	}
	name := "bench-" + o.Preset
	// Keyed by the exporter version so that a graph change re-exports.
	repo := filepath.Join(o.WorkDir, fmt.Sprintf("%s-seed%d-export%s", o.Preset, o.Seed, export.ProducerVersion))
	if _, err := os.Stat(filepath.Join(repo, name+"-step", "1", "model.onnx")); err != nil {
		logf("exporting random %s weights (seed %d) to %s", o.Preset, o.Seed, repo)
		job := export.Job{Random: o.Preset, Seed: o.Seed, Options: export.Options{Dir: repo, Name: name}, NoTriton: true}
		if _, _, err := job.Run(ctx); err != nil {
			return nil, err
		}
	}
	open := func(noKV bool) (*onnxlocal.Backend, error) {
		return onnxlocal.Open(onnxlocal.Options{RepoDir: repo, Model: name, IntraOpThreads: o.IntraOpThreads, DisableKVCache: noKV})
	}
	kv, err := open(false)
	if err != nil {
		return nil, err
	}
	defer kv.Close()
	var full *onnxlocal.Backend
	if !o.SkipRecompute {
		if full, err = open(true); err != nil {
			return nil, err
		}
		defer full.Close()
	}
	rep := &Report{Options: o}
	rep.LoadedRSSBytes, _ = rss()
	for _, sc := range o.Scenarios {
		if sc.Context+sc.Steps > len(times) {
			return nil, fmt.Errorf("scenario %v needs %d candles, the CSV has %d", sc, sc.Context+sc.Steps, len(times))
		}
		job := forecast.Job{
			X:      preprocess.Fill(rows[:sc.Context], true, true),
			XTime:  times[:sc.Context],
			YTime:  times[sc.Context : sc.Context+sc.Steps],
			Params: forecast.Params{Temperature: 1, TopK: 1, TopP: 1, SampleCount: 1},
		}
		row := Row{Scenario: sc}
		var last []float32
		runOne := func(b *onnxlocal.Backend) (time.Duration, error) {
			f := &forecast.Forecaster{Backend: b}
			t0 := time.Now()
			res, err := f.Predict(ctx, []forecast.Job{job})
			d := time.Since(t0)
			if err == nil && len(res[0].Mean) != sc.Steps*6 {
				err = fmt.Errorf("got %d values, want %d", len(res[0].Mean), sc.Steps*6)
			}
			if err == nil {
				last = res[0].Mean
			}
			return d, err
		}
		// Warm-up (first-run allocations, ORT arenas), and a cross-check: the
		// KV-cache and recompute paths must give the same greedy forecast.
		if _, err := runOne(kv); err != nil {
			return nil, err
		}
		if full != nil {
			want := last
			if _, err := runOne(full); err != nil {
				return nil, err
			}
			if i, ok := agree(want, last); !ok {
				return nil, fmt.Errorf("%v: KV-cache and recompute forecasts differ at value %d: %v vs %v", sc, i, want[i], last[i])
			}
		}
		for i := 0; i < o.Runs; i++ {
			d, err := runOne(kv)
			if err != nil {
				return nil, err
			}
			row.KV.Runs = append(row.KV.Runs, d)
			logf("%v kv        run %d: %v", sc, i+1, d.Round(time.Millisecond))
			if full != nil {
				d, err := runOne(full)
				if err != nil {
					return nil, err
				}
				row.Recompute.Runs = append(row.Recompute.Runs, d)
				logf("%v recompute run %d: %v", sc, i+1, d.Round(time.Millisecond))
			}
		}
		row.KV.summarise()
		row.Recompute.summarise()
		rep.Rows = append(rep.Rows, row)
	}
	rep.RSSBytes, rep.HWMBytes = rss()
	return rep, nil
}

func (s *Stats) summarise() {
	if len(s.Runs) == 0 {
		return
	}
	d := append([]time.Duration(nil), s.Runs...)
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	s.Min, s.Max = d[0], d[len(d)-1]
	if n := len(d); n%2 == 1 {
		s.Median = d[n/2]
	} else {
		s.Median = (d[n/2-1] + d[n/2]) / 2
	}
}

// Markdown renders the report as the table BENCHMARKS.md records.
func (r *Report) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "| scenario | KV cache median (min-max) | full recompute median (min-max) | recompute / KV |\n|---|---|---|---|\n")
	for _, row := range r.Rows {
		ratio := "n/a"
		rc := "not run"
		if row.Recompute.Median > 0 {
			ratio = fmt.Sprintf("%.1fx", float64(row.Recompute.Median)/float64(row.KV.Median))
			rc = fmt.Sprintf("%s (%s-%s)", ms(row.Recompute.Median), ms(row.Recompute.Min), ms(row.Recompute.Max))
		}
		fmt.Fprintf(&b, "| %v | %s (%s-%s) | %s | %s |\n", row.Scenario, ms(row.KV.Median), ms(row.KV.Min), ms(row.KV.Max), rc, ratio)
	}
	fmt.Fprintf(&b, "\nRSS after loading: %d MiB; after the runs: %d MiB (peak %d MiB). Runs per cell: %d (after one warm-up).\n",
		r.LoadedRSSBytes>>20, r.RSSBytes>>20, r.HWMBytes>>20, r.Options.Runs)
	return b.String()
}

func ms(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d)/1e6) }

// rss reads VmRSS and VmHWM from /proc/self/status (bytes; 0 if unavailable).
func rss() (cur, peak int64) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			cur = v << 10
		case "VmHWM:":
			peak = v << 10
		}
	}
	return cur, peak
}

// readCSV reads timestamps,open,high,low,close,volume,amount rows.
func readCSV(path string) ([]preprocess.Candle, []time.Time, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(recs) < 2 {
		return nil, nil, fmt.Errorf("%s: no rows", path)
	}
	var candles []preprocess.Candle
	var times []time.Time
	for i, r := range recs[1:] {
		if len(r) < 7 {
			return nil, nil, fmt.Errorf("%s: row %d has %d columns", path, i, len(r))
		}
		t, err := time.Parse("2006-01-02 15:04:05", r[0])
		if err != nil {
			return nil, nil, fmt.Errorf("%s: row %d: %w", path, i, err)
		}
		var v [6]float64
		for j := range v {
			if v[j], err = strconv.ParseFloat(r[j+1], 64); err != nil {
				return nil, nil, fmt.Errorf("%s: row %d: %w", path, i, err)
			}
		}
		vol, amt := v[4], v[5]
		candles = append(candles, preprocess.Candle{Open: v[0], High: v[1], Low: v[2], Close: v[3], Volume: &vol, Amount: &amt})
		times = append(times, t)
	}
	return candles, times, nil
}

// agree reports whether two forecasts agree to 1e-3 relative; else the index
// of the first difference.
func agree(a, b []float32) (int, bool) {
	if len(a) != len(b) {
		return 0, false
	}
	for i := range a {
		d := float64(a[i] - b[i])
		if d < 0 {
			d = -d
		}
		m := float64(a[i])
		if m < 0 {
			m = -m
		}
		if d > 1e-3*(m+1e-6) {
			return i, false
		}
	}
	return 0, true
}
