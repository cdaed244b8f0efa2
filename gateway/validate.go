package gateway

import (
	"math"
	"math/rand/v2"
	"time"

	"github.com/kronos-gateway/kronos-gateway/forecast"
	"github.com/kronos-gateway/kronos-gateway/internal/infer"
	"github.com/kronos-gateway/kronos-gateway/preprocess"
)

// maxRandomSeed bounds the seeds the gateway draws itself to 2^53, so that
// the echoed seed survives a round trip through a JSON client that reads
// numbers as float64 (JavaScript). Callers may send any uint64.
const maxRandomSeed = 1 << 53

// prepared is a validated request, ready for the forecaster.
type prepared struct {
	// lease holds the model the item runs on; the handler releases it.
	lease         *lease
	job           forecast.Job
	seriesID      *string
	predStamps    []stamp
	quantiles     []float64
	returnSamples bool
}

// decodeLimits are the array bounds applied while decoding.
func (a *App) decodeLimits() decodeLimits {
	return decodeLimits{candles: a.opts.MaxCandles, steps: a.opts.MaxPredictionSteps, quantiles: maxQuantiles}
}

// prepare checks the rules that relate the values of a decoded request and
// builds the forecast job. Every error is an *infer.FieldError naming the
// first offending field. The rules, in the order they are checked:
//
//   - candles, timestamps and prediction_timestamps are required;
//     series_id is at most 256 bytes;
//   - the candles pass preprocess.ValidateCandles (non-empty, finite,
//     positive prices, OHLC consistent, volume/amount >= 0 and given for
//     every candle or for none);
//   - len(timestamps) == len(candles); prediction_timestamps is not empty;
//   - all timestamps are naive or all carry an offset (no mix), each list
//     is strictly increasing, and the first prediction timestamp is after
//     the last input one. Instants are compared, so offsets may differ;
//     time features use each timestamp's own offset as given;
//   - overrides.pred_len, when given, equals len(prediction_timestamps);
//     temperature > 0, top_k >= 0, 0 < top_p <= 1 and
//     1 <= sample_count <= MaxSampleCount;
//   - quantiles are in [0, 1] and distinct.
//
// Inputs longer than the context of the model (l) keep their last
// candles; the statistics of what is kept must be finite in float32.
func (a *App) prepare(r *predictRequest, l *lease) (*prepared, error) {
	switch {
	case !r.hasCandles:
		return nil, infer.Field("candles", "is required")
	case !r.hasTimestamps:
		return nil, infer.Field("timestamps", "is required")
	case !r.hasPrediction:
		return nil, infer.Field("prediction_timestamps", "is required")
	case r.SeriesID != nil && len(*r.SeriesID) > maxSeriesIDLen:
		return nil, infer.Field("series_id", "is longer than %d bytes", maxSeriesIDLen)
	}
	if err := preprocess.ValidateCandles(r.Candles, "candles"); err != nil {
		return nil, err
	}
	if len(r.Timestamps) != len(r.Candles) {
		return nil, infer.Field("timestamps", "has %d entries but candles has %d; give one timestamp per candle",
			len(r.Timestamps), len(r.Candles))
	}
	if len(r.PredictionTimestamps) == 0 {
		return nil, infer.Field("prediction_timestamps", "must hold at least one timestamp")
	}
	if err := checkStamps(r.Timestamps, r.PredictionTimestamps); err != nil {
		return nil, err
	}
	params, err := a.params(r.Overrides, len(r.PredictionTimestamps))
	if err != nil {
		return nil, err
	}
	if err := checkQuantiles(r.Quantiles); err != nil {
		return nil, err
	}

	candles, stamps := r.Candles, r.Timestamps
	if n := a.contextOf(l.info()); n > 0 && len(candles) > n {
		candles, stamps = candles[len(candles)-n:], stamps[len(stamps)-n:]
	}
	x := preprocess.Fill(candles, candles[0].Volume != nil, candles[0].Amount != nil)
	if err := checkStats(x, len(candles)); err != nil {
		return nil, err
	}
	return &prepared{
		lease: l,
		job: forecast.Job{
			X:           x,
			XTime:       times(stamps),
			YTime:       times(r.PredictionTimestamps),
			Params:      params,
			Quantiles:   r.Quantiles,
			ReturnPaths: r.ReturnSamples,
		},
		seriesID:      r.SeriesID,
		predStamps:    r.PredictionTimestamps,
		quantiles:     r.Quantiles,
		returnSamples: r.ReturnSamples,
	}, nil
}

// checkStamps applies the timestamp rules to both lists.
func checkStamps(ts, pred []stamp) error {
	naive := ts[0].naive
	lists := []struct {
		name string
		s    []stamp
	}{{"timestamps", ts}, {"prediction_timestamps", pred}}
	for _, l := range lists {
		for i, s := range l.s {
			if s.naive != naive {
				return infer.Field(index(l.name, i),
					"%s, but timestamps[0] %s; give an offset on every timestamp or on none",
					describeOffset(s), describeOffset(ts[0]))
			}
			if i > 0 && !s.t.After(l.s[i-1].t) {
				return infer.Field(index(l.name, i), "%s is not after %s[%d] %s; timestamps must be strictly increasing",
					s, l.name, i-1, l.s[i-1])
			}
		}
	}
	if last := ts[len(ts)-1]; !pred[0].t.After(last.t) {
		return infer.Field("prediction_timestamps[0]", "%s is not after the last input timestamp %s", pred[0], last)
	}
	return nil
}

func describeOffset(s stamp) string {
	if s.naive {
		return "has no UTC offset"
	}
	return "has a UTC offset"
}

// params resolves the sampling parameters: the overrides, else the defaults
// of Options.
func (a *App) params(o overrides, steps int) (forecast.Params, error) {
	if o.PredLen != nil && *o.PredLen != int64(steps) {
		return forecast.Params{}, infer.Field("overrides.pred_len",
			"is %d but prediction_timestamps has %d entries; pred_len is the number of prediction timestamps (leave it out)",
			*o.PredLen, steps)
	}
	p := forecast.DefaultParams()
	p.Temperature = a.opts.DefaultTemperature
	p.TopK = a.opts.DefaultTopK
	p.TopP = a.opts.DefaultTopP
	p.SampleCount = a.opts.DefaultSampleCount
	if o.Temperature != nil {
		p.Temperature = *o.Temperature
	}
	if o.TopP != nil {
		p.TopP = *o.TopP
	}
	if o.TopK != nil {
		if *o.TopK < 0 || *o.TopK > math.MaxInt32 {
			return p, infer.Field("overrides.top_k", "must be in [0, %d] (0 disables top-k), got %d", math.MaxInt32, *o.TopK)
		}
		p.TopK = int(*o.TopK)
	}
	if o.SampleCount != nil {
		if n := *o.SampleCount; n < 1 || n > int64(a.opts.MaxSampleCount) {
			return p, infer.Field("overrides.sample_count", "must be in [1, %d], got %d", a.opts.MaxSampleCount, n)
		}
		p.SampleCount = int(*o.SampleCount)
	}
	if o.Seed != nil {
		p.Seed = *o.Seed
	} else {
		p.Seed = rand.Uint64N(maxRandomSeed)
	}
	if err := p.Validate(); err != nil {
		return p, err
	}
	return p, nil
}

// checkQuantiles accepts distinct quantiles in [0, 1].
func checkQuantiles(qs []float64) error {
	for i, q := range qs {
		if !(q >= 0 && q <= 1) {
			return infer.Field(index("quantiles", i), "must be in [0, 1], got %v", q)
		}
		for j := range i {
			if qs[j] == q {
				return infer.Field(index("quantiles", i), "repeats quantiles[%d] (%v)", j, q)
			}
		}
	}
	return nil
}

// checkStats rejects a series whose float32 mean or standard deviation
// overflows (values near the float32 limit): the model could not normalise
// it.
func checkStats(x []float32, rows int) error {
	mean, std := preprocess.Stats(x, rows)
	for j := range mean {
		m, s := float64(mean[j]), float64(std[j])
		if math.IsNaN(m) || math.IsInf(m, 0) || math.IsNaN(s) || math.IsInf(s, 0) {
			return infer.Field("candles", "the %s values are too large to normalise in float32 (their mean or "+
				"standard deviation overflows); rescale the series", preprocess.Columns[j])
		}
	}
	return nil
}

func times(s []stamp) []time.Time {
	out := make([]time.Time, len(s))
	for i := range s {
		out[i] = s[i].t
	}
	return out
}
