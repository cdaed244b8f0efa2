package gateway

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/kronos-gateway/kronos-gateway/forecast"
	"github.com/kronos-gateway/kronos-gateway/internal/infer"
)

// RoutePredictBatch is the route of batch forecasts.
const RoutePredictBatch = "/v1/predict/batch"

// predictBatch serves POST /v1/predict/batch: the items are validated
// (the first invalid one fails the whole request with 422 naming its
// field), then forecast together as one admitted forecast, and the
// response is the JSON array of their single responses, in input order.
func (a *App) predictBatch(c *fiber.Ctx) error {
	if a.draining.Load() {
		return errDraining
	}
	if err := checkEncoding(c); err != nil {
		return err
	}
	reqs, err := decodeBatch(c.Request().Body(), a.decodeLimits(), a.opts.MaxBatchItems)
	if err != nil {
		return err
	}
	leases := map[string]*lease{}
	defer func() {
		for _, l := range leases {
			l.release()
		}
	}()
	items := make([]*prepared, len(reqs))
	for i, r := range reqs {
		l := leases[r.Model]
		if l == nil {
			if l, err = a.models.acquire(r.Model); err != nil {
				return itemErr(i, err)
			}
			leases[r.Model] = l
		}
		if items[i], err = a.prepare(r, l); err != nil {
			return itemErr(i, err)
		}
	}
	for _, r := range reqs {
		a.metrics.observeInput(RoutePredictBatch, len(r.Candles))
	}
	res, err := a.forecast(c.UserContext(), RoutePredictBatch, requestID(c), items)
	if err != nil {
		return err
	}
	return sendJSON(c, res)
}

// itemErr names item i in a validation error: a field error's path gets
// the prefix "items[i].", any other error the prefix "items[i]: ".
func itemErr(i int, err error) error {
	prefix := "items[" + strconv.Itoa(i) + "]"
	var fe *infer.FieldError
	if errors.As(err, &fe) {
		return &infer.FieldError{Field: prefix + "." + fe.Field, Reason: fe.Reason}
	}
	return infer.Wrap(infer.KindOf(err), err, "%s", prefix)
}

// chunk is a group of items forecast in one Forecaster.Predict call: one
// backend session of at most MaxBatchRows rows, on one model.
type chunk struct {
	lease *lease
	items []int // indices into the request's items
	rows  int
}

// chunks groups items by model (the lease they hold) and splits each group
// into chunks of at most maxRows rows, keeping the input order within a
// group. An item is never split: one with more rows than maxRows (not
// possible with valid options) gets a chunk of its own.
func chunks(items []*prepared, maxRows int) []chunk {
	var out []chunk
	open := map[*generation]int{} // the chunk still filling for each model
	for i, p := range items {
		rows := p.job.Params.SampleCount
		k, ok := open[p.lease.gen]
		if !ok || out[k].rows+rows > maxRows {
			out = append(out, chunk{lease: p.lease})
			k = len(out) - 1
			open[p.lease.gen] = k
		}
		out[k].items = append(out[k].items, i)
		out[k].rows += rows
	}
	return out
}

// predictChunks runs every chunk, one after the other, and returns the
// results in item order. Items of different lengths, horizons and sampling
// parameters share a chunk (see forecast.Forecaster.Predict).
// Field errors name items as "items[i]." when batch is set.
func (a *App) predictChunks(ctx context.Context, items []*prepared, batch bool) ([]forecast.Result, error) {
	results := make([]forecast.Result, len(items))
	for _, ch := range chunks(items, a.opts.MaxBatchRows) {
		jobs := make([]forecast.Job, len(ch.items))
		for k, i := range ch.items {
			jobs[k] = items[i].job
		}
		info := ch.lease.info()
		f := forecast.Forecaster{Backend: a.metrics.instrument(ch.lease.backend()), MaxContext: a.contextOf(info)}
		res, err := f.Predict(ctx, jobs)
		if err != nil {
			return nil, renumber(err, ch.items, batch)
		}
		if len(res) != len(jobs) {
			return nil, infer.Errorf(infer.KindInternal, "forecast returned %d results for %d jobs", len(res), len(jobs))
		}
		for k, i := range ch.items {
			results[i] = res[k]
		}
	}
	return results, nil
}

// renumber rewrites the "items[k]." prefix that Predict puts on a field
// error of its k-th job (none for a one-job chunk) into the request's item
// index; for a single request (batch false) there is no prefix.
func renumber(err error, index []int, batch bool) error {
	var fe *infer.FieldError
	if !errors.As(err, &fe) {
		return err
	}
	field := fe.Field
	k := -1
	if rest, ok := strings.CutPrefix(field, "items["); ok {
		if n, tail, ok := strings.Cut(rest, "]."); ok {
			if v, err := strconv.Atoi(n); err == nil && v >= 0 && v < len(index) {
				k, field = v, tail
			}
		}
	}
	if k < 0 && len(index) == 1 {
		k = 0
	}
	if k >= 0 && batch {
		field = fmt.Sprintf("items[%d].%s", index[k], field)
	}
	return &infer.FieldError{Field: field, Reason: fe.Reason}
}
