package conformance

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/kronos-gateway/kronos-gateway/checkpoint"
	"github.com/kronos-gateway/kronos-gateway/export"
	"github.com/kronos-gateway/kronos-gateway/forecast"
	"github.com/kronos-gateway/kronos-gateway/internal/infer"
	"github.com/kronos-gateway/kronos-gateway/internal/onnxlocal"
	"github.com/kronos-gateway/kronos-gateway/preprocess"
)

// Runner runs conformance vector sets. The zero value exports every config
// and runs it on the embedded ONNX Runtime backend with its defaults.
type Runner struct {
	// LibPath is the ONNX Runtime library ("" = the onnxlocal default
	// chain: $KRONOS_ORT_LIB, third_party/onnxruntime, the system's).
	LibPath string
	// IntraOpThreads is passed to onnxlocal (0 = its default).
	IntraOpThreads int
	// DisableKVCache makes the embedded backend recompute every window.
	DisableKVCache bool
	// Match, when set, selects the cases to run by "<config>/<case>".
	Match func(name string) bool
	// Backend, when set, replaces export + embedded backend: it returns the
	// backend a case runs on, and the runner closes it after the case
	// (used to check the harness on recorded outputs, see Replay).
	Backend func(ctx context.Context, c *Case) (infer.Backend, error)
	// Out receives one line per case; nil discards.
	Out io.Writer
}

// Summary is the outcome of Run.
type Summary struct {
	Passed, Failed int
	Cases          []CaseResult
}

// CaseResult is the outcome of one case.
type CaseResult struct {
	Name     string    // "<config>/<case>"
	Fields   int       // number of fields compared
	Mismatch *Mismatch // first value out of tolerance, nil if none
	Err      error     // the case could not run
}

// OK reports whether the case passed.
func (r CaseResult) OK() bool { return r.Err == nil && r.Mismatch == nil }

// String is the case's report line.
func (r CaseResult) String() string {
	switch {
	case r.Err != nil:
		return fmt.Sprintf("FAIL %s: %v", r.Name, r.Err)
	case r.Mismatch != nil:
		return fmt.Sprintf("FAIL %s: %s", r.Name, r.Mismatch)
	}
	return fmt.Sprintf("PASS %s (%d fields)", r.Name, r.Fields)
}

// String is the summary line, "N passed, M failed".
func (s Summary) String() string { return fmt.Sprintf("%d passed, %d failed", s.Passed, s.Failed) }

// Add accumulates another set's summary.
func (s *Summary) Add(o Summary) {
	s.Passed += o.Passed
	s.Failed += o.Failed
	s.Cases = append(s.Cases, o.Cases...)
}

// Run runs every selected case of the vector set in dir (its index.json
// lists configs and cases) and writes one line per case to Out; the caller
// prints the summary line (Summary.String). A case that cannot run (export, backend or Predict error) counts
// as failed; the error return is for an unreadable index only.
func (r *Runner) Run(ctx context.Context, dir string) (Summary, error) {
	out := r.Out
	if out == nil {
		out = io.Discard
	}
	ix, err := LoadIndex(dir)
	if err != nil {
		return Summary{}, err
	}
	pool := &backendPool{r: r, dir: dir, ix: ix}
	defer pool.close()

	var sum Summary
	for _, e := range ix.Cases {
		if r.Match != nil && !r.Match(e.Name()) {
			continue
		}
		res := r.runCase(ctx, dir, e, pool)
		fmt.Fprintln(out, res)
		sum.Cases = append(sum.Cases, res)
		if res.OK() {
			sum.Passed++
		} else {
			sum.Failed++
		}
	}
	return sum, nil
}

// runCase runs one case: Predict with a trace, then compare.
func (r *Runner) runCase(ctx context.Context, dir string, e CaseEntry, pool *backendPool) CaseResult {
	res := CaseResult{Name: e.Name()}
	c, err := LoadCase(dir, e)
	if err != nil {
		res.Err = err
		return res
	}
	var be infer.Backend
	if r.Backend != nil {
		be, err = r.Backend(ctx, c)
		if err == nil {
			defer be.Close()
		}
	} else {
		be, err = pool.get(ctx, e.Config, c.Params.MaxContext)
	}
	if err != nil {
		res.Err = err
		return res
	}
	o, err := predict(ctx, be, c)
	if err != nil {
		res.Err = err
		return res
	}
	ck := compare(c, o)
	res.Fields, res.Mismatch = ck.fields, ck.first
	return res
}

// predict builds the jobs of a case (api predict_batch: one job per series;
// the case's sampling parameters; rows series-major) and runs them.
func predict(ctx context.Context, be infer.Backend, c *Case) (*outcome, error) {
	p := &c.Params
	o := &outcome{trace: &forecast.Trace{}}
	has := func(col string) bool { return slices.Contains(c.Columns, col) }
	for i, se := range c.Series {
		candles, err := candles(c.Columns, se.InputRows)
		if err != nil {
			return nil, fmt.Errorf("series %d: %w", i, err)
		}
		x := preprocess.Fill(candles, has("volume"), has("amount"))
		xt, err := parseTimes(se.XTimestamps)
		if err != nil {
			return nil, err
		}
		yt, err := parseTimes(se.YTimestamps)
		if err != nil {
			return nil, err
		}
		o.filled = append(o.filled, x)
		o.jobs = append(o.jobs, forecast.Job{
			X: x, XTime: xt, YTime: yt,
			Params: forecast.Params{Temperature: p.T, TopK: p.TopK, TopP: p.TopP, SampleCount: p.SampleCount},
		})
	}
	f := &forecast.Forecaster{Backend: be, MaxContext: p.MaxContext, Clip: float32(p.Clip), Trace: o.trace}
	res, err := f.Predict(ctx, o.jobs)
	if err != nil {
		return nil, err
	}
	o.results = res
	return o, nil
}

// candles turns input rows (columns as named) into preprocess candles.
func candles(columns []string, rows [][]float64) ([]preprocess.Candle, error) {
	out := make([]preprocess.Candle, len(rows))
	for i, row := range rows {
		if len(row) != len(columns) {
			return nil, fmt.Errorf("input row %d has %d values for %d columns", i, len(row), len(columns))
		}
		k := &out[i]
		for j, col := range columns {
			v := row[j]
			switch col {
			case "open":
				k.Open = v
			case "high":
				k.High = v
			case "low":
				k.Low = v
			case "close":
				k.Close = v
			case "volume":
				k.Volume = &v
			case "amount":
				k.Amount = &v
			default:
				return nil, fmt.Errorf("unknown column %q", col)
			}
		}
	}
	return out, nil
}

// parseTimes parses the cases' zone-less ISO 8601 local times; they are
// taken as they are written (UTC offset 0), which is what the time
// features see.
func parseTimes(s []string) ([]time.Time, error) {
	out := make([]time.Time, len(s))
	for i, v := range s {
		t, err := time.Parse("2006-01-02T15:04:05", v)
		if err != nil {
			return nil, infer.Wrap(infer.KindInvalid, err, "conformance: timestamp")
		}
		out[i] = t
	}
	return out, nil
}

// backendPool exports each config once into a temporary model repository
// and keeps one embedded backend per (config, max_context).
type backendPool struct {
	r        *Runner
	dir      string
	ix       *Index
	tmp      string
	exported map[string]error
	backends map[string]*onnxlocal.Backend
}

func (p *backendPool) get(ctx context.Context, config string, maxContext int) (infer.Backend, error) {
	key := fmt.Sprintf("%s@%d", config, maxContext)
	if b, ok := p.backends[key]; ok {
		return b, nil
	}
	if err := p.export(ctx, config, maxContext); err != nil {
		return nil, err
	}
	b, err := onnxlocal.Open(onnxlocal.Options{
		RepoDir:        p.tmp,
		Model:          config,
		Version:        export.DefaultVersion,
		LibPath:        p.r.LibPath,
		IntraOpThreads: p.r.IntraOpThreads,
		MaxContext:     maxContext,
		DisableKVCache: p.r.DisableKVCache,
	})
	if err != nil {
		return nil, err
	}
	if p.backends == nil {
		p.backends = map[string]*onnxlocal.Backend{}
	}
	p.backends[key] = b
	return b, nil
}

// export writes config's graphs into the pool's repository, once.
func (p *backendPool) export(ctx context.Context, config string, maxContext int) error {
	if err, done := p.exported[config]; done {
		return err
	}
	err := p.exportOnce(ctx, config, maxContext)
	if p.exported == nil {
		p.exported = map[string]error{}
	}
	p.exported[config] = err
	return err
}

func (p *backendPool) exportOnce(ctx context.Context, config string, maxContext int) error {
	if p.tmp == "" {
		tmp, err := os.MkdirTemp("", "kronos-conformance-")
		if err != nil {
			return infer.Wrap(infer.KindInternal, err, "conformance")
		}
		p.tmp = tmp
	}
	cfg := p.ix.Configs[config]
	if cfg.TokenizerDir == "" || cfg.PredictorDir == "" {
		return infer.Errorf(infer.KindInvalid, "conformance: config %s has no tokenizer_dir/predictor_dir", config)
	}
	tokDir, predDir := filepath.Join(p.dir, cfg.TokenizerDir), filepath.Join(p.dir, cfg.PredictorDir)
	tok, err := checkpoint.Load(tokDir, export.LocalName(tokDir))
	if err != nil {
		return err
	}
	pred, err := checkpoint.Load(predDir, export.LocalName(predDir))
	if err != nil {
		return err
	}
	m, err := export.NewModel(tok, pred)
	if err != nil {
		return err
	}
	return export.WriteRepository(ctx, m, export.Options{Dir: p.tmp, Name: config, MaxContext: maxContext})
}

// close releases the backends and removes the exported repository (best
// effort: nothing depends on the cleanup).
func (p *backendPool) close() {
	for _, b := range p.backends {
		b.Close()
	}
	if p.tmp != "" {
		os.RemoveAll(p.tmp)
	}
}
