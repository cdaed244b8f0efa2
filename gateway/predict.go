package gateway

import (
	"context"
	"log/slog"
	"math"

	"github.com/kronos-gateway/kronos-gateway/forecast"
	"github.com/kronos-gateway/kronos-gateway/internal/infer"
	"github.com/kronos-gateway/kronos-gateway/preprocess"
)

// forecast runs one prepared request on the backend and builds the
// response. The forecast runs under its own deadline (InferenceTimeout,
// inside the request's): fasthttp never cancels a request's context when the
// client goes away, so this deadline is what stops a runaway forecast, and
// the backend's work is cancelled with it, not abandoned.
func (a *App) forecast(parent context.Context, p *prepared) (*predictResponse, error) {
	release, err := a.admit()
	if err != nil {
		return nil, err
	}
	defer release()
	ctx, cancel := context.WithTimeout(parent, a.opts.InferenceTimeout)
	defer cancel()
	defer context.AfterFunc(a.stopCtx, cancel)()
	f := forecast.Forecaster{Backend: a.backend, MaxContext: a.maxContext}
	results, err := f.Predict(ctx, []forecast.Job{p.job})
	if err != nil {
		if a.stopCtx.Err() != nil {
			return nil, infer.Wrap(infer.KindUnavailable, err, "the server shut down during the forecast")
		}
		if ctxErr := ctx.Err(); ctxErr != nil {
			// Whatever the backend said, it stopped because of the deadline.
			return nil, infer.Wrap(infer.KindOf(infer.FromContext(ctxErr)), err,
				"the forecast did not finish within %v", a.opts.InferenceTimeout)
		}
		return nil, err
	}
	if len(results) != 1 {
		return nil, infer.Errorf(infer.KindInternal, "forecast returned %d results for 1 job", len(results))
	}
	return a.response(p, &results[0])
}

// response builds the body from a forecast result. Negative volume and
// amount forecasts are clamped to 0 (upstream Kronos#130), and a volume or
// amount column that is zero in every context row (not given) is reported
// as 0 (see zeroColumns); prices are left as the model gives them. A non-finite value is a bug (the inputs were
// checked) and gives an internal error rather than invalid JSON.
func (a *App) response(p *prepared, r *forecast.Result) (*predictResponse, error) {
	steps := len(p.predStamps)
	want := steps * preprocess.NumColumns
	if len(r.Mean) != want || len(r.Quantiles) != len(p.quantiles) {
		return nil, infer.Errorf(infer.KindInternal, "forecast result has the wrong shape")
	}
	mats := append([][]float32{r.Mean}, r.Quantiles...)
	if p.returnSamples {
		if len(r.Paths) != p.job.Params.SampleCount*want {
			return nil, infer.Errorf(infer.KindInternal, "forecast returned %d path values, want %d",
				len(r.Paths), p.job.Params.SampleCount*want)
		}
		mats = append(mats, r.Paths)
	}
	zeroCols := zeroColumns(p.job.X)
	for _, m := range mats {
		if len(m) < want {
			return nil, infer.Errorf(infer.KindInternal, "forecast result has the wrong shape")
		}
		zeroFill(m, zeroCols)
		if n := preprocess.ClampOutput(m, len(m)/preprocess.NumColumns); n > 0 {
			a.log.Debug("clamped negative volume/amount forecasts", slog.Int("values", n))
		}
		for i, v := range m {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return nil, infer.Errorf(infer.KindInternal, "forecast value %d is %v", i, v)
			}
		}
	}

	info := a.backend.Info()
	resp := &predictResponse{
		SeriesID:         p.seriesID,
		Prediction:       points(p.predStamps, r.Mean),
		Model:            info.Name,
		ModelVersion:     info.ModelVersion,
		TokenizerVersion: info.TokenizerVersion,
		Seed:             p.job.Params.Seed,
		ContextUsed:      r.ContextUsed,
		SampleCount:      p.job.Params.SampleCount,
	}
	for i, q := range p.quantiles {
		resp.Quantiles = append(resp.Quantiles, quantilePath{Quantile: q, Prediction: points(p.predStamps, r.Quantiles[i])})
	}
	if p.returnSamples {
		for s := range p.job.Params.SampleCount {
			resp.Samples = append(resp.Samples, points(p.predStamps, r.Paths[s*want:(s+1)*want]))
		}
	}
	return resp, nil
}

// zeroColumns reports which of the volume and amount columns are zero in
// every context row: not given (zero-filled as upstream) or all zero. The
// model has no information about such a column; upstream returns its decoded
// value times the normalisation epsilon (order 1e-5 noise), the gateway
// reports 0.
func zeroColumns(x []float32) (cols []int) {
	for _, c := range []int{preprocess.ColVolume, preprocess.ColAmount} {
		zero := true
		for i := c; i < len(x); i += preprocess.NumColumns {
			if x[i] != 0 {
				zero = false
				break
			}
		}
		if zero {
			cols = append(cols, c)
		}
	}
	return cols
}

// zeroFill sets the given columns of a [rows][6] matrix to 0.
func zeroFill(m []float32, cols []int) {
	for _, c := range cols {
		for i := c; i < len(m); i += preprocess.NumColumns {
			m[i] = 0
		}
	}
}
