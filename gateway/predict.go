package gateway

import (
	"context"
	"log/slog"
	"math"

	"github.com/kronos-gateway/kronos-gateway/forecast"
	"github.com/kronos-gateway/kronos-gateway/internal/infer"
	"github.com/kronos-gateway/kronos-gateway/preprocess"
)

// forecast runs the prepared items of one request (one for
// /v1/predict/single, one per item for /v1/predict/batch) as one admitted
// forecast and builds their responses, in item order.
//
// The request first takes a slot of the admission queue (admit); the wait
// is bounded by the request's own deadline (KRONOS_REQUEST_TIMEOUT). The
// backend work then runs under its own deadline (KRONOS_INFERENCE_TIMEOUT,
// inside the request's): fasthttp never cancels a request's context when
// the client goes away, so this deadline is what stops a runaway forecast,
// and the backend's work is cancelled with it, not abandoned. When the
// forecast returns, every backend call it made has returned and its
// sessions are closed.
//
// endpoint is the route pattern, the label of the forecast metrics.
func (a *App) forecast(parent context.Context, endpoint, requestID string, items []*prepared) ([]*predictResponse, error) {
	release, err := a.admit(parent)
	if err != nil {
		return nil, err
	}
	defer release()
	a.log.Debug("forecast admitted", slog.String("request_id", requestID), slog.String("route", endpoint),
		slog.Int("items", len(items)))
	ctx, cancel := context.WithTimeout(parent, a.opts.InferenceTimeout)
	defer cancel()
	defer context.AfterFunc(a.stopCtx, cancel)()
	results, err := func() ([]forecast.Result, error) {
		defer a.metrics.startForecast(endpoint)() // also on a panic
		return a.predictChunks(ctx, items, endpoint == RoutePredictBatch)
	}()
	if err != nil {
		switch {
		case a.stopCtx.Err() != nil:
			return nil, infer.Wrap(infer.KindUnavailable, err, "the server shut down during the forecast")
		case parent.Err() != nil:
			return nil, infer.Wrap(infer.KindOf(infer.FromContext(parent.Err())), err,
				"the request did not finish within KRONOS_REQUEST_TIMEOUT (%v)", a.opts.RequestTimeout)
		case ctx.Err() != nil:
			// Whatever the backend said, it stopped because of the deadline.
			return nil, infer.Wrap(infer.KindOf(infer.FromContext(ctx.Err())), err,
				"the forecast did not finish within KRONOS_INFERENCE_TIMEOUT (%v)", a.opts.InferenceTimeout)
		}
		return nil, err
	}
	out := make([]*predictResponse, len(items))
	for i, p := range items {
		if out[i], err = a.response(p, &results[i]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// contextOf is the number of candles kept from a long input for a model:
// KRONOS_MAX_CONTEXT when set, else the model's context.
func (a *App) contextOf(info infer.ModelInfo) int {
	if a.opts.MaxContext > 0 {
		return a.opts.MaxContext
	}
	return info.MaxContext
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

	info := p.lease.info()
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
