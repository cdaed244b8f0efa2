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
// amount forecasts are clamped to 0 (upstream Kronos#130); prices are left
// as the model gives them. A non-finite value is a bug (the inputs were
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
	for _, m := range mats {
		if len(m) < want {
			return nil, infer.Errorf(infer.KindInternal, "forecast result has the wrong shape")
		}
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
