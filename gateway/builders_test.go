package gateway

import (
	"strings"
	"time"
)

// Request builders for the bug-case table (bugcases_test.go): each returns
// a request body as a map, so that a case reads like its description:
//
//	series(100, 10).over("top_k", 1).seed(42)
//	series(60, 10, flat(10)).over("sample_count", 1)
//	batch(series(100, 10), series(120, 20).over("temperature", 0.5))

// req is a request body under construction.
type req map[string]any

// seriesOpt adjusts how series builds its candles and timestamps.
type seriesOpt func(*seriesSpec)

type seriesSpec struct {
	start  time.Time
	every  time.Duration
	layout string // timestamp layout; "" = RFC 3339 in start's zone
	candle func(i int) map[string]any
}

// every spaces the bars d apart (default 5 minutes).
func every(d time.Duration) seriesOpt { return func(s *seriesSpec) { s.every = d } }

// from starts the bars at t (default Tuesday 2024-06-18 09:30 UTC); the
// timestamps are written in t's zone.
func from(t time.Time) seriesOpt { return func(s *seriesSpec) { s.start = t } }

// naive writes the timestamps without an offset.
func naive() seriesOpt { return func(s *seriesSpec) { s.layout = "2006-01-02T15:04:05" } }

// flat makes every candle O=H=L=C=price with volume and amount 0.
func flat(price float64) seriesOpt {
	return withCandles(func(int) map[string]any {
		return map[string]any{"open": price, "high": price, "low": price, "close": price, "volume": 0, "amount": 0}
	})
}

// withCandles sets the candle builder.
func withCandles(f func(i int) map[string]any) seriesOpt { return func(s *seriesSpec) { s.candle = f } }

// rising is the default candle: a gently rising price with volume and
// amount.
func rising(i int) map[string]any {
	p := 100 + 0.1*float64(i) + 0.05*float64(i%3)
	return map[string]any{"open": p, "high": p + 0.3, "low": p - 0.2, "close": p + 0.1,
		"volume": 1000 + 10*(i%11), "amount": (1000 + 10*float64(i%11)) * p}
}

// series is a valid request of n candles and p prediction timestamps.
func series(n, p int, opts ...seriesOpt) req {
	s := seriesSpec{start: time.Date(2024, 6, 18, 9, 30, 0, 0, time.UTC), every: 5 * time.Minute, candle: rising}
	for _, o := range opts {
		o(&s)
	}
	stamp := func(i int) string {
		t := s.start.Add(time.Duration(i) * s.every)
		if s.layout != "" {
			return t.Format(s.layout)
		}
		return t.Format(time.RFC3339)
	}
	candles, ts, pred := make([]any, n), make([]any, n), make([]any, p)
	for i := range n {
		candles[i], ts[i] = s.candle(i), stamp(i)
	}
	for i := range p {
		pred[i] = stamp(n + i)
	}
	return req{"series_id": "S", "candles": candles, "timestamps": ts, "prediction_timestamps": pred}
}

// over sets overrides from key/value pairs; a nil value is sent as null.
func (r req) over(kv ...any) req {
	o, ok := r["overrides"].(map[string]any)
	if !ok {
		o = map[string]any{}
		r["overrides"] = o
	}
	for i := 0; i+1 < len(kv); i += 2 {
		o[kv[i].(string)] = kv[i+1]
	}
	return r
}

// seed sets overrides.seed.
func (r req) seed(s uint64) req { return r.over("seed", s) }

// set sets a top-level field.
func (r req) set(k string, v any) req {
	r[k] = v
	return r
}

// drop removes keys from every candle.
func (r req) drop(keys ...string) req {
	for _, c := range r["candles"].([]any) {
		for _, k := range keys {
			delete(c.(map[string]any), k)
		}
	}
	return r
}

// candle sets key k of candle i.
func (r req) candle(i int, k string, v any) req {
	r["candles"].([]any)[i].(map[string]any)[k] = v
	return r
}

// predictionsIn rewrites the prediction timestamps with an offset suffix
// (for mixing naive input with offset predictions).
func (r req) predictionsIn(suffix string) req {
	for i, s := range r["prediction_timestamps"].([]any) {
		r["prediction_timestamps"].([]any)[i] = strings.TrimSuffix(s.(string), "Z") + suffix
	}
	return r
}

// batch is {"items":[...]}.
func batch(items ...req) req {
	out := make([]any, len(items))
	for i, it := range items {
		out[i] = map[string]any(it)
	}
	return req{"items": out}
}

// copies returns n independent copies of r's builder output.
func copies(n int, build func() req) []req {
	out := make([]req, n)
	for i := range out {
		out[i] = build()
	}
	return out
}
