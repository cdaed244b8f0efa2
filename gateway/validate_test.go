package gateway

import (
	"flag"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kronos-gateway/kronos-gateway/internal/infer"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// invalidCase is a request the gateway must reject before the backend.
type invalidCase struct {
	name   string
	mutate func(m map[string]any) // applied to baseRequest(4, 2)
	raw    string                 // the body verbatim, instead of mutate
	header map[string]string
	status int // default 422
	kind   infer.Kind
	field  string // "" when the error names no field
}

func candle(m map[string]any, i int) map[string]any {
	return m["candles"].([]any)[i].(map[string]any)
}

func overridesOf(m map[string]any) map[string]any {
	o, ok := m["overrides"].(map[string]any)
	if !ok {
		o = map[string]any{}
		m["overrides"] = o
	}
	return o
}

func setOverride(k string, v any) func(map[string]any) {
	return func(m map[string]any) { overridesOf(m)[k] = v }
}

// rawCandles is a valid body around a candles array given as raw JSON (two
// candles).
func rawCandles(candles string) string {
	return `{"candles":` + candles + `,"timestamps":["2024-06-18T09:30:00Z","2024-06-18T09:35:00Z"],` +
		`"prediction_timestamps":["2024-06-18T09:40:00Z"]}`
}

const okCandle = `{"open":10,"high":11,"low":9,"close":10.5}`

var invalidCases = []invalidCase{
	// Candles.
	{name: "empty candles", mutate: func(m map[string]any) { m["candles"] = []any{}; m["timestamps"] = []any{} }, field: "candles"},
	{name: "candles missing", mutate: func(m map[string]any) { delete(m, "candles") }, field: "candles"},
	{name: "candles null", mutate: func(m map[string]any) { m["candles"] = nil }, field: "candles"},
	{name: "candles an object", mutate: func(m map[string]any) { m["candles"] = map[string]any{} }, field: "candles"},
	{name: "candle a number", mutate: func(m map[string]any) { m["candles"].([]any)[1] = 5 }, field: "candles[1]"},
	{name: "open a string", mutate: func(m map[string]any) { candle(m, 0)["open"] = "10.1" }, field: "candles[0].open"},
	{name: "close missing", mutate: func(m map[string]any) { delete(candle(m, 1), "close") }, field: "candles[1].close"},
	{name: "open null", mutate: func(m map[string]any) { candle(m, 2)["open"] = nil }, field: "candles[2].open"},
	{name: "NaN literal", raw: rawCandles(`[{"open":NaN,"high":11,"low":9,"close":10.5},` + okCandle + `]`), field: "candles[0].open"},
	{name: "Infinity literal", raw: rawCandles(`[` + okCandle + `,{"open":10,"high":Infinity,"low":9,"close":10.5}]`), field: "candles[1].high"},
	{name: "-Infinity literal", raw: rawCandles(`[` + okCandle + `,{"open":10,"high":11,"low":-Infinity,"close":10.5}]`), field: "candles[1].low"},
	{name: "1e400 price", raw: rawCandles(`[` + okCandle + `,{"open":10,"high":1e400,"low":9,"close":10.5}]`), field: "candles[1].high"},
	{name: "-1e400 volume", raw: rawCandles(`[{"open":10,"high":11,"low":9,"close":10.5,"volume":1},{"open":10,"high":11,"low":9,"close":10.5,"volume":-1e400}]`), field: "candles[1].volume"},
	{name: "price above float32", mutate: func(m map[string]any) { candle(m, 0)["high"] = 3.5e38 }, field: "candles[0].high"},
	{name: "price zero", mutate: func(m map[string]any) { candle(m, 3)["low"] = 0 }, field: "candles[3].low"},
	{name: "negative volume", mutate: func(m map[string]any) { candle(m, 1)["volume"] = -1 }, field: "candles[1].volume"},
	{name: "high below low", mutate: func(m map[string]any) { c := candle(m, 1); c["high"], c["low"] = 9.0, 11.0 }, field: "candles[1].low"},
	{name: "volume null", mutate: func(m map[string]any) { candle(m, 1)["volume"] = nil }, field: "candles[1].volume"},
	{name: "amount null", mutate: func(m map[string]any) { candle(m, 0)["amount"] = nil }, field: "candles[0].amount"},
	{name: "volume in some candles only", mutate: func(m map[string]any) { delete(candle(m, 2), "volume") }, field: "candles[2].volume"},
	{name: "amount in some candles only", mutate: func(m map[string]any) {
		for i := range 4 {
			if i != 1 {
				delete(candle(m, i), "amount")
			}
		}
	}, field: "candles[1].amount"},
	{name: "unknown candle key", mutate: func(m map[string]any) { candle(m, 0)["timestamp"] = "x" }, field: "candles[0].timestamp"},
	{name: "values overflow float32 statistics", raw: rawCandles(
		`[{"open":3e38,"high":3e38,"low":3e38,"close":3e38},{"open":3e38,"high":3e38,"low":3e38,"close":3e38}]`), field: "candles"},
	{name: "too many candles", mutate: func(m map[string]any) {
		big := baseRequest(65, 1)
		m["candles"], m["timestamps"], m["prediction_timestamps"] = big["candles"], big["timestamps"], big["prediction_timestamps"]
	}, field: "candles"},

	// Timestamps.
	{name: "fewer timestamps than candles", mutate: func(m map[string]any) { m["timestamps"] = m["timestamps"].([]any)[:3] }, field: "timestamps"},
	{name: "timestamps missing", mutate: func(m map[string]any) { delete(m, "timestamps") }, field: "timestamps"},
	{name: "timestamps decreasing", mutate: func(m map[string]any) {
		ts := m["timestamps"].([]any)
		ts[1], ts[2] = ts[2], ts[1]
	}, field: "timestamps[2]"},
	{name: "timestamps repeated", mutate: func(m map[string]any) { ts := m["timestamps"].([]any); ts[1] = ts[0] }, field: "timestamps[1]"},
	{name: "prediction timestamps decreasing", mutate: func(m map[string]any) {
		p := m["prediction_timestamps"].([]any)
		p[0], p[1] = p[1], p[0]
	}, field: "prediction_timestamps[1]"},
	{name: "prediction not after input", mutate: func(m map[string]any) {
		m["prediction_timestamps"] = []any{"2024-06-18T09:40:00Z", "2024-06-18T09:50:00Z"}
	}, field: "prediction_timestamps[0]"},
	{name: "naive and offset mixed in timestamps", mutate: func(m map[string]any) {
		m["timestamps"].([]any)[1] = "2024-06-18T09:35:00"
	}, field: "timestamps[1]"},
	{name: "naive input, offset prediction", mutate: func(m map[string]any) {
		m["timestamps"] = []any{"2024-06-18T09:30:00", "2024-06-18T09:35:00", "2024-06-18 09:40:00", "2024-06-18T09:45:00"}
	}, field: "prediction_timestamps[0]"},
	{name: "timestamp not a date", mutate: func(m map[string]any) { m["timestamps"].([]any)[0] = "yesterday" }, field: "timestamps[0]"},
	{name: "timestamp as epoch number", mutate: func(m map[string]any) { m["timestamps"].([]any)[0] = 1718703000 }, field: "timestamps[0]"},
	{name: "timestamp with bad month", mutate: func(m map[string]any) { m["timestamps"].([]any)[0] = "2024-13-18T09:30:00Z" }, field: "timestamps[0]"},
	{name: "empty prediction timestamps", mutate: func(m map[string]any) { m["prediction_timestamps"] = []any{} }, field: "prediction_timestamps"},
	{name: "prediction timestamps missing", mutate: func(m map[string]any) { delete(m, "prediction_timestamps") }, field: "prediction_timestamps"},
	{name: "too many prediction timestamps", mutate: func(m map[string]any) {
		m["prediction_timestamps"] = baseRequest(4, 17)["prediction_timestamps"]
	}, field: "prediction_timestamps"},

	// Overrides.
	{name: "top_p 0", mutate: setOverride("top_p", 0), field: "overrides.top_p"},
	{name: "top_p above 1", mutate: setOverride("top_p", 1.5), field: "overrides.top_p"},
	{name: "temperature 0", mutate: setOverride("temperature", 0), field: "overrides.temperature"},
	{name: "temperature negative", mutate: setOverride("temperature", -1), field: "overrides.temperature"},
	{name: "sample_count 0", mutate: setOverride("sample_count", 0), field: "overrides.sample_count"},
	{name: "sample_count above the limit", mutate: setOverride("sample_count", 9), field: "overrides.sample_count"},
	{name: "top_k negative", mutate: setOverride("top_k", -1), field: "overrides.top_k"},
	{name: "top_k fractional", mutate: setOverride("top_k", 1.5), field: "overrides.top_k"},
	{name: "top_k a string", mutate: setOverride("top_k", "5"), field: "overrides.top_k"},
	{name: "pred_len mismatch", mutate: setOverride("pred_len", 120), field: "overrides.pred_len"},
	{name: "pred_len zero", mutate: setOverride("pred_len", 0), field: "overrides.pred_len"},
	{name: "seed negative", mutate: setOverride("seed", -1), field: "overrides.seed"},
	{name: "seed fractional", mutate: setOverride("seed", 0.5), field: "overrides.seed"},
	{name: "misspelt override", mutate: setOverride("temprature", 0.5), field: "overrides.temprature"},
	{name: "overrides an array", mutate: func(m map[string]any) { m["overrides"] = []any{} }, field: "overrides"},
	{name: "duplicate key", raw: `{"overrides":{"temperature":1,"temperature":2}}`, field: "overrides.temperature"},

	// Other fields.
	{name: "quantile above 1", mutate: func(m map[string]any) { m["quantiles"] = []any{0.5, 1.5} }, field: "quantiles[1]"},
	{name: "quantile repeated", mutate: func(m map[string]any) { m["quantiles"] = []any{0.5, 0.5} }, field: "quantiles[1]"},
	{name: "quantile a string", mutate: func(m map[string]any) { m["quantiles"] = []any{"0.5"} }, field: "quantiles[0]"},
	{name: "return_samples a string", mutate: func(m map[string]any) { m["return_samples"] = "yes" }, field: "return_samples"},
	{name: "series_id a number", mutate: func(m map[string]any) { m["series_id"] = 7 }, field: "series_id"},
	{name: "series_id too long", mutate: func(m map[string]any) { m["series_id"] = strings.Repeat("x", 257) }, field: "series_id"},
	{name: "unknown top-level key", mutate: func(m map[string]any) { m["candle"] = []any{} }, field: "candle"},

	// The body as a whole.
	{name: "empty body", raw: ``},
	{name: "body null", raw: `null`},
	{name: "body an array", raw: `[]`},
	{name: "truncated JSON", raw: `{"candles":[{"open":1`, field: "candles[0]"},
	{name: "malformed JSON", raw: `{"candles" [] }`, field: "candles"},
	{name: "trailing data", raw: rawCandles(`[`+okCandle+`,`+okCandle+`]`) + `{}`},
	{name: "gzip body", raw: `{}`, header: map[string]string{"Content-Encoding": "gzip"},
		status: http.StatusUnsupportedMediaType},
}

// TestPredictSingleInvalid sends every invalid case through the HTTP stack
// and checks the status, the kind and the field; the messages are kept in
// testdata/invalid.golden (go test -run TestPredictSingleInvalid -update).
func TestPredictSingleInvalid(t *testing.T) {
	fb := newFakeBackend()
	a := newTestApp(t, testOptions(), fb)
	var golden strings.Builder
	for _, tc := range invalidCases {
		t.Run(tc.name, func(t *testing.T) {
			body := []byte(tc.raw)
			if tc.mutate != nil {
				m := baseRequest(4, 2)
				tc.mutate(m)
				body = mustJSON(t, m)
			}
			header := map[string]string{HeaderRequestID: "req-" + strings.ReplaceAll(tc.name, " ", "-")}
			for k, v := range tc.header {
				header[k] = v
			}
			status, h, respBody := do(t, a, http.MethodPost, RoutePredictSingle, body, header)
			want := tc.status
			if want == 0 {
				want = http.StatusUnprocessableEntity
			}
			require.Equal(t, want, status, "body %s", respBody)
			e := envelope(t, respBody)
			wantKind := tc.kind
			if wantKind == "" {
				wantKind = infer.KindInvalid
			}
			require.Equal(t, wantKind, e.Kind)
			require.Equal(t, tc.field, e.Field, "message %q", e.Message)
			require.Equal(t, header[HeaderRequestID], e.RequestID)
			require.Equal(t, header[HeaderRequestID], h.Get(HeaderRequestID))
			require.Equal(t, "application/json", h.Get("Content-Type"))
			golden.WriteString(fmtCase(tc.name, status, e))
		})
	}
	require.Zero(t, fb.calls.Load(), "an invalid request reached the backend")
	checkGolden(t, "invalid.golden", golden.String())
}

// TestPredictSingleValidReachesBackend checks that lenient-but-valid forms
// pass validation: they reach the backend, whose error then comes back
// with its own kind.
func TestPredictSingleValidReachesBackend(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(m map[string]any)
	}{
		{"as is", func(map[string]any) {}},
		{"overrides all null", func(m map[string]any) {
			m["overrides"] = map[string]any{"temperature": nil, "top_k": nil, "top_p": nil, "sample_count": nil, "seed": nil, "pred_len": nil}
		}},
		{"top_k null with top_p", func(m map[string]any) { m["overrides"] = map[string]any{"top_k": nil, "top_p": 0.9} }},
		{"overrides null", func(m map[string]any) { m["overrides"] = nil }},
		{"pred_len equal", setOverride("pred_len", 2)},
		{"integral floats", func(m map[string]any) {
			m["overrides"] = map[string]any{"top_k": 5.0, "sample_count": 2.0, "seed": 1e3}
		}},
		{"top_k and top_p together", func(m map[string]any) { m["overrides"] = map[string]any{"top_k": 5, "top_p": 0.5} }},
		{"greedy", func(m map[string]any) { m["overrides"] = map[string]any{"top_k": 1, "temperature": 1.0} }},
		{"largest seed", setOverride("seed", uint64(1<<64-1))},
		{"no volume or amount", func(m map[string]any) {
			for i := range 4 {
				delete(candle(m, i), "volume")
				delete(candle(m, i), "amount")
			}
		}},
		{"no amount", func(m map[string]any) {
			for i := range 4 {
				delete(candle(m, i), "amount")
			}
		}},
		{"naive timestamps with T and space", func(m map[string]any) {
			m["timestamps"] = []any{"2024-06-18T09:30:00", "2024-06-18 09:35:00", "2024-06-18T09:40", "2024-06-18t09:45:00.5"}
			m["prediction_timestamps"] = []any{"2024-06-18T09:50:00", "2024-06-18 09:55:00"}
		}},
		{"mixed offsets", func(m map[string]any) {
			m["timestamps"] = []any{"2024-06-18T17:30:00+08:00", "2024-06-18T09:35:00Z", "2024-06-18T09:40:00+00:00", "2024-06-18T05:45:00-04:00"}
		}},
		{"series_id null", func(m map[string]any) { m["series_id"] = nil }},
		{"quantiles and samples", func(m map[string]any) { m["quantiles"] = []any{0, 0.1, 0.5, 0.9, 1}; m["return_samples"] = true }},
		{"more candles than the context", func(m map[string]any) {
			big := baseRequest(40, 2)
			m["candles"], m["timestamps"], m["prediction_timestamps"] = big["candles"], big["timestamps"], big["prediction_timestamps"]
		}},
	}
	fb := newFakeBackend()
	fb.err = infer.Errorf(infer.KindUnavailable, "fake backend is down")
	o := testOptions()
	o.MaxContext = 32
	a := newTestApp(t, o, fb)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := fb.calls.Load()
			m := baseRequest(4, 2)
			tc.mutate(m)
			status, h, body := do(t, a, http.MethodPost, RoutePredictSingle, mustJSON(t, m), nil)
			require.Equal(t, http.StatusServiceUnavailable, status, "body %s", body)
			require.Equal(t, infer.KindUnavailable, envelope(t, body).Kind)
			require.Equal(t, "5", h.Get("Retry-After"))
			require.Greater(t, fb.calls.Load(), before, "the request did not reach the backend")
		})
	}
}

// TestPrepare checks the job built from a valid request.
func TestPrepare(t *testing.T) {
	o := testOptions()
	o.MaxContext = 3
	o.DefaultTopP = 0.8
	a := newTestApp(t, o, newFakeBackend())
	m := baseRequest(5, 2)
	for i := range 5 {
		delete(candle(m, i), "amount")
	}
	m["timestamps"] = []any{"2024-06-18T09:30:00+08:00", "2024-06-18T09:35:00+08:00", "2024-06-18T09:40:00+08:00",
		"2024-06-18T09:45:00+08:00", "2024-06-18T09:50:00+08:00"}
	m["prediction_timestamps"] = []any{"2024-06-18T09:55:00+08:00", "2024-06-18T02:00:00Z"}
	m["overrides"] = map[string]any{"temperature": 0.5, "seed": 7}
	r, err := decodePredict(mustJSON(t, m), a.decodeLimits())
	require.NoError(t, err)
	p, err := prepareDefault(t, a, r)
	require.NoError(t, err)

	require.Len(t, p.job.XTime, 3, "truncated to the last max_context candles")
	require.Len(t, p.job.X, 3*6)
	require.Equal(t, 9, p.job.XTime[0].Hour(), "time features in the caller's offset")
	require.Equal(t, 40, p.job.XTime[0].Minute())
	c2 := candle(m, 2)
	f := func(k string) float64 { return c2[k].(float64) }
	vol := float64(c2["volume"].(int))
	require.Equal(t, float32(f("open")), p.job.X[0], "open of candle 2")
	require.Equal(t, float32(vol*((f("open")+f("high")+f("low")+f("close"))/4)), p.job.X[5],
		"amount derived as volume * mean(OHLC)")
	require.Equal(t, 0.5, p.job.Params.Temperature)
	require.Equal(t, 0.8, p.job.Params.TopP, "default from Options")
	require.Equal(t, uint64(7), p.job.Params.Seed)
	require.Equal(t, 1, p.job.Params.SampleCount)
	require.Equal(t, "2024-06-18T09:55:00+08:00", p.predStamps[0].String())
	require.Equal(t, "2024-06-18T02:00:00Z", p.predStamps[1].String())

	// Without a seed one is drawn below 2^53.
	delete(m, "overrides")
	r, err = decodePredict(mustJSON(t, m), a.decodeLimits())
	require.NoError(t, err)
	p, err = prepareDefault(t, a, r)
	require.NoError(t, err)
	require.Less(t, p.job.Params.Seed, uint64(maxRandomSeed))
}

// checkGolden compares got with testdata/name, or rewrites it with -update.
func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		require.NoError(t, os.MkdirAll("testdata", 0o755))
		require.NoError(t, os.WriteFile(path, []byte(got), 0o644))
		return
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "missing golden file; run: go test ./gateway -run %s -update", t.Name())
	require.Equal(t, string(want), got, "golden file %s is stale; if the change is intended run: go test ./gateway -run %s -update", path, t.Name())
}
