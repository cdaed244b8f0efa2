package forecast

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/kronos-gateway/kronos-gateway/internal/infer"
	"github.com/kronos-gateway/kronos-gateway/preprocess"
)

// Validate checks one job on its own. Errors are *infer.FieldError with paths
// relative to the series: "candles" (X empty, not [L][6], or not finite),
// "timestamps" (len(XTime) != L), "prediction_timestamps" (P < 1),
// "quantiles[i]" (outside [0,1]) and "overrides.*" (see Params.Validate).
func (j Job) Validate() error {
	const w = infer.CandleWidth
	switch {
	case len(j.X) == 0:
		return infer.Field("candles", "at least one candle is required")
	case len(j.X)%w != 0:
		return infer.Field("candles", "the candle matrix has %d values, not a multiple of %d", len(j.X), w)
	}
	for i, v := range j.X {
		if !finite32(v) {
			return infer.Field(fmt.Sprintf("candles[%d].%s", i/w, preprocess.Columns[i%w]), "must be a finite number, got %v", v)
		}
	}
	l := len(j.X) / w
	if len(j.XTime) != l {
		return infer.Field("timestamps", "got %d timestamps for %d candles", len(j.XTime), l)
	}
	if len(j.YTime) < 1 {
		return infer.Field("prediction_timestamps", "at least one prediction timestamp is required")
	}
	for i, q := range j.Quantiles {
		if !(q >= 0 && q <= 1) { // also rejects NaN
			return infer.Field(fmt.Sprintf("quantiles[%d]", i), "must be in [0, 1], got %v", q)
		}
	}
	return j.Params.Validate()
}

// prepared is one job after preprocessing and encoding.
type prepared struct {
	l, p      int
	mean, std [6]float32
	xNorm     []float32 // [L][6]
	stamps    []int64   // [(L+P)][5]: context then prediction stamps
	quant     []float32 // [L][D] encoder output
	s1, s2    []int64   // [L] context ids
	firstRow  int       // index of the job's first model row
}

// Predict forecasts every job. Jobs may differ in L, P and Params; their
// rows are decoded in one backend session.
//
// A job that fails Job.Validate, or asks for more prediction steps than the
// max context (the final decode window), gives its *infer.FieldError; with
// several jobs the field is prefixed "items[i].". An empty jobs slice is an error
// on field "items". Backend failures keep their kind; a non-finite value
// anywhere in the backend's output or in the result is KindInternal;
// cancellation is checked before every step and reported with
// infer.FromContext.
func (f *Forecaster) Predict(ctx context.Context, jobs []Job) ([]Result, error) {
	if len(jobs) == 0 {
		return nil, infer.Field("items", "at least one series is required")
	}
	for i := range jobs {
		if err := jobs[i].Validate(); err != nil {
			if len(jobs) > 1 {
				err = prefixField(err, fmt.Sprintf("items[%d].", i))
			}
			return nil, err
		}
	}
	if f.Backend == nil {
		return nil, infer.Errorf(infer.KindInternal, "forecast: no backend")
	}
	info := f.Backend.Info()
	maxContext := f.MaxContext
	if maxContext <= 0 {
		maxContext = info.MaxContext
	}
	clip := f.Clip
	if clip == 0 {
		clip = preprocess.DefaultClip
	}
	switch {
	case maxContext <= 0:
		return nil, infer.Errorf(infer.KindInternal, "forecast: max context %d", maxContext)
	case info.S1Bits < 1 || info.S1Bits > 30 || info.S2Bits < 1 || info.S2Bits > 30:
		return nil, infer.Errorf(infer.KindInternal, "forecast: bad code widths s1 %d, s2 %d", info.S1Bits, info.S2Bits)
	case !(clip > 0):
		return nil, infer.Errorf(infer.KindInternal, "forecast: clip %v", clip)
	}
	for i := range jobs {
		// The final decode covers the last min(L+P, maxContext) positions,
		// so at most maxContext prediction steps can be returned (upstream
		// cannot return more either).
		if p := len(jobs[i].YTime); p > maxContext {
			var err error = infer.Field("prediction_timestamps",
				"%d prediction steps exceed the model's max context of %d", p, maxContext)
			if len(jobs) > 1 {
				err = prefixField(err, fmt.Sprintf("items[%d].", i))
			}
			return nil, err
		}
	}
	if f.Trace != nil {
		*f.Trace = Trace{}
	}

	preps := make([]prepared, len(jobs))
	rowsTotal := 0
	for i := range jobs {
		preps[i] = prepare(&jobs[i], clip)
		preps[i].firstRow = rowsTotal
		rowsTotal += jobs[i].Params.SampleCount
	}
	if err := f.encode(ctx, preps, info.S1Bits, info.S2Bits); err != nil {
		return nil, err
	}
	if f.Trace != nil {
		for i := range preps {
			f.Trace.XNorm = append(f.Trace.XNorm, preps[i].xNorm)
			f.Trace.QuantInput = append(f.Trace.QuantInput, preps[i].quant)
			f.Trace.ContextS1 = append(f.Trace.ContextS1, preps[i].s1)
			f.Trace.ContextS2 = append(f.Trace.ContextS2, preps[i].s2)
		}
	}

	rows := make([]seqRow, 0, rowsTotal)
	for i := range jobs {
		pp := &preps[i]
		for path := range jobs[i].Params.SampleCount {
			n := pp.l + pp.p
			r := seqRow{
				s1:      make([]int64, n),
				s2:      make([]int64, n),
				stamps:  pp.stamps,
				ctxLen:  pp.l,
				predLen: pp.p,
				params:  &jobs[i].Params,
				rng:     rowRNG(jobs[i].Params.Seed, path),
			}
			copy(r.s1, pp.s1)
			copy(r.s2, pp.s2)
			rows = append(rows, r)
		}
	}

	if err := f.generate(ctx, rows, maxContext, info); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, infer.FromContext(err)
	}
	decoded, err := f.decode(ctx, rows, maxContext)
	if err != nil {
		return nil, err
	}
	results := make([]Result, len(jobs))
	for i := range jobs {
		res, err := f.result(&jobs[i], &preps[i], decoded[preps[i].firstRow:])
		if err != nil {
			return nil, err
		}
		results[i] = res
	}
	return results, nil
}

// prefixField prefixes the field of a *infer.FieldError.
func prefixField(err error, prefix string) error {
	var fe *infer.FieldError
	if errors.As(err, &fe) {
		return &infer.FieldError{Field: prefix + fe.Field, Reason: fe.Reason}
	}
	return err
}

// prepare normalises a validated job and builds its time features.
func prepare(j *Job, clip float32) prepared {
	l, p := len(j.XTime), len(j.YTime)
	mean, std := preprocess.Stats(j.X, l)
	stamps := make([]int64, 0, (l+p)*infer.StampWidth)
	stamps = append(stamps, preprocess.TimeFeatures(j.XTime)...)
	stamps = append(stamps, preprocess.TimeFeatures(j.YTime)...)
	return prepared{
		l: l, p: p, mean: mean, std: std,
		xNorm:  preprocess.Normalize(j.X, l, mean, std, clip),
		stamps: stamps,
	}
}

// encode runs the tokenizer encoder once per distinct context length (jobs
// of equal L share a call) and takes the context ids from the signs.
func (f *Forecaster) encode(ctx context.Context, preps []prepared, s1Bits, s2Bits int) error {
	const w = infer.CandleWidth
	d := s1Bits + s2Bits
	done := make([]bool, len(preps))
	for i := range preps {
		if done[i] {
			continue
		}
		l := preps[i].l
		var group []int
		for k := i; k < len(preps); k++ {
			if !done[k] && preps[k].l == l {
				group = append(group, k)
				done[k] = true
			}
		}
		x := make([]float32, 0, len(group)*l*w)
		for _, k := range group {
			x = append(x, preps[k].xNorm...)
		}
		if err := ctx.Err(); err != nil {
			return infer.FromContext(err)
		}
		q, err := f.Backend.Encode(ctx, x, len(group), l)
		if err != nil {
			return backendErr(ctx, err, "forecast: encode")
		}
		if len(q) != len(group)*l*d {
			return infer.Errorf(infer.KindInternal, "forecast: encoder returned %d values, want %d x %d x %d", len(q), len(group), l, d)
		}
		if i := firstNonFinite(q); i >= 0 {
			return nonFinite("encoder output", i)
		}
		for gi, k := range group {
			qk := q[gi*l*d : (gi+1)*l*d : (gi+1)*l*d]
			preps[k].quant = qk
			preps[k].s1, preps[k].s2 = preprocess.BitsToIDs(qk, l, s1Bits, s2Bits)
		}
	}
	return nil
}

// generate runs the autoregressive loop of all rows in one session.
func (f *Forecaster) generate(ctx context.Context, rows []seqRow, maxContext int, info infer.ModelInfo) (err error) {
	sess, err := f.Backend.NewSession(ctx, len(rows))
	if err != nil {
		return backendErr(ctx, err, "forecast: open session")
	}
	defer func() {
		if cerr := sess.Close(); cerr != nil && err == nil {
			err = infer.Wrap(infer.KindOf(cerr), cerr, "forecast: close session")
		}
	}()
	lp := loop{
		sess:       sess,
		rows:       rows,
		maxContext: maxContext,
		v1:         1 << info.S1Bits,
		v2:         1 << info.S2Bits,
		trace:      f.Trace,
	}
	return lp.run(ctx)
}

// decode runs the final tokenizer decode of each row's last
// min(L+P, maxContext) ids, one backend call per distinct width, and returns
// every row's decoded candles [W][6].
func (f *Forecaster) decode(ctx context.Context, rows []seqRow, maxContext int) ([][]float32, error) {
	const w = infer.CandleWidth
	out := make([][]float32, len(rows))
	done := make([]bool, len(rows))
	width := func(r *seqRow) int { return min(r.ctxLen+r.predLen, maxContext) }
	for i := range rows {
		if done[i] {
			continue
		}
		wd := width(&rows[i])
		var group []int
		for k := i; k < len(rows); k++ {
			if !done[k] && width(&rows[k]) == wd {
				group = append(group, k)
				done[k] = true
			}
		}
		s1 := make([]int64, 0, len(group)*wd)
		s2 := make([]int64, 0, len(group)*wd)
		for _, k := range group {
			n := rows[k].ctxLen + rows[k].predLen
			s1 = append(s1, rows[k].s1[n-wd:n]...)
			s2 = append(s2, rows[k].s2[n-wd:n]...)
		}
		x, err := f.Backend.Decode(ctx, s1, s2, len(group), wd)
		if err != nil {
			return nil, backendErr(ctx, err, "forecast: decode")
		}
		if len(x) != len(group)*wd*w {
			return nil, infer.Errorf(infer.KindInternal, "forecast: decoder returned %d values, want %d x %d x %d", len(x), len(group), wd, w)
		}
		if i := firstNonFinite(x); i >= 0 {
			return nil, nonFinite("decoder output", i)
		}
		for gi, k := range group {
			out[k] = x[gi*wd*w : (gi+1)*wd*w : (gi+1)*wd*w]
		}
	}
	if f.Trace != nil {
		for k := range rows {
			n := rows[k].ctxLen + rows[k].predLen
			wd := width(&rows[k])
			f.Trace.FinalS1 = append(f.Trace.FinalS1, rows[k].s1[n-wd:n])
			f.Trace.FinalS2 = append(f.Trace.FinalS2, rows[k].s2[n-wd:n])
			f.Trace.Decoded = append(f.Trace.Decoded, out[k])
		}
	}
	return out, nil
}

// result assembles one job's output from its rows' decoded candles (decoded
// starts at the job's first row).
func (f *Forecaster) result(j *Job, pp *prepared, decoded [][]float32) (Result, error) {
	const w = infer.CandleWidth
	s, p := j.Params.SampleCount, pp.p
	// preds_norm: the mean over the S paths of the last P decoded rows,
	// summed in path order in float32 like NumPy's mean over that axis.
	predsNorm := make([]float32, p*w)
	for k := range s {
		dk := decoded[k]
		copyOff := len(dk) - p*w
		for i := range predsNorm {
			predsNorm[i] += dk[copyOff+i]
		}
	}
	for i := range predsNorm {
		predsNorm[i] /= float32(s)
	}
	if f.Trace != nil {
		f.Trace.PredsNorm = append(f.Trace.PredsNorm, predsNorm)
	}
	res := Result{
		Mean:        preprocess.Denormalize(predsNorm, p, pp.mean, pp.std),
		ContextUsed: pp.l,
		Mean6:       pp.mean,
		Std6:        pp.std,
		Seed:        j.Params.Seed,
	}
	preprocess.ClampOutput(res.Mean, p)

	if j.ReturnPaths || len(j.Quantiles) > 0 {
		paths := make([]float32, 0, s*p*w)
		for k := range s {
			dk := decoded[k]
			path := preprocess.Denormalize(dk[len(dk)-p*w:], p, pp.mean, pp.std)
			preprocess.ClampOutput(path, p)
			paths = append(paths, path...)
		}
		if len(j.Quantiles) > 0 {
			res.Quantiles = make([][]float32, len(j.Quantiles))
			for qi := range res.Quantiles {
				res.Quantiles[qi] = make([]float32, p*w)
			}
			quantiles(paths, s, p, j.Quantiles, res.Quantiles, make([]float32, s))
		}
		if j.ReturnPaths {
			res.Paths = paths
		}
	}

	check := func(what string, x []float32) error {
		if i := firstNonFinite(x); i >= 0 {
			return infer.Errorf(infer.KindInternal, "forecast: non-finite %s value at row %d, column %s", what, i/w, preprocess.Columns[i%w])
		}
		return nil
	}
	if err := check("prediction", res.Mean); err != nil {
		return Result{}, err
	}
	for _, q := range res.Quantiles {
		if err := check("quantile", q); err != nil {
			return Result{}, err
		}
	}
	if err := check("path", res.Paths); err != nil {
		return Result{}, err
	}
	return res, nil
}

// firstNonFinite returns the index of the first NaN or infinite value, or -1.
func firstNonFinite(x []float32) int {
	for i, v := range x {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return i
		}
	}
	return -1
}
