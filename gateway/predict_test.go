package gateway

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kronos-gateway/kronos-gateway/internal/infer"
	"github.com/kronos-gateway/kronos-gateway/internal/onnxlocal"
)

// These tests run the real embedded backend on the committed
// model_repository (kronos-nano). They need the ONNX Runtime library:
// $KRONOS_ORT_LIB, or the one `make ort` extracts; without it they skip.

var moduleRoot = ".."

var embedded struct {
	once sync.Once
	b    *onnxlocal.Backend
	err  error
}

// testLib is the ONNX Runtime library for tests: $KRONOS_ORT_LIB, else the
// one `make ort` extracts; without either the test is skipped.
func testLib(t testing.TB) string {
	t.Helper()
	if lib := os.Getenv(onnxlocal.LibPathEnv); lib != "" {
		return lib
	}
	lib, err := filepath.Abs(filepath.Join(moduleRoot, onnxlocal.DefaultLibPath))
	require.NoError(t, err)
	if _, err := os.Stat(lib); err != nil {
		t.Skipf("no ONNX Runtime library: run `make ort` or set %s", onnxlocal.LibPathEnv)
	}
	return lib
}

// embeddedBackend opens the committed kronos-nano once per test binary.
func embeddedBackend(t testing.TB) infer.Backend {
	t.Helper()
	lib := testLib(t)
	embedded.once.Do(func() {
		embedded.b, embedded.err = onnxlocal.Open(onnxlocal.Options{
			RepoDir:        filepath.Join(moduleRoot, "model_repository"),
			Model:          "kronos-nano",
			LibPath:        lib,
			IntraOpThreads: 2,
		})
	})
	require.NoError(t, embedded.err)
	return embedded.b
}

// csvRows reads testdata/data/regression_input.csv: naive timestamps
// (rewritten with a "T") and candles with volume and amount.
func csvRows(t testing.TB) (stamps []string, candles []map[string]any) {
	t.Helper()
	f, err := os.Open(filepath.Join(moduleRoot, "testdata", "data", "regression_input.csv"))
	require.NoError(t, err)
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	require.NoError(t, err)
	require.Equal(t, []string{"timestamps", "open", "high", "low", "close", "volume", "amount"}, recs[0])
	for _, r := range recs[1:] {
		stamps = append(stamps, strings.Replace(r[0], " ", "T", 1))
		c := map[string]any{}
		for j, k := range recs[0][1:] {
			v, err := strconv.ParseFloat(r[j+1], 64)
			require.NoError(t, err)
			c[k] = v
		}
		candles = append(candles, c)
	}
	return stamps, candles
}

// csvRequest is a request for rows [from, from+n) with the timestamps of
// the following p rows to predict.
func csvRequest(t testing.TB, from, n, p int) map[string]any {
	stamps, candles := csvRows(t)
	cs := make([]any, n)
	for i := range n {
		cs[i] = candles[from+i]
	}
	ts := make([]any, n)
	for i := range n {
		ts[i] = stamps[from+i]
	}
	pred := make([]any, p)
	for i := range p {
		pred[i] = stamps[from+n+i]
	}
	return map[string]any{"series_id": "600977.SH", "candles": cs, "timestamps": ts, "prediction_timestamps": pred}
}

// predictOK posts m and decodes a 200 response strictly.
func predictOK(t testing.TB, a *App, m map[string]any) (predictResponse, []byte) {
	t.Helper()
	status, h, body := do(t, a, http.MethodPost, RoutePredictSingle, mustJSON(t, m), nil)
	require.Equal(t, http.StatusOK, status, "body %s", body)
	require.Equal(t, "application/json", h.Get("Content-Type"))
	var r struct {
		predictResponse
		Prediction []wirePoint    `json:"prediction"`
		Quantiles  []wireQuantile `json:"quantiles"`
		Samples    [][]wirePoint  `json:"samples"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(&r), "body %s", body)
	out := r.predictResponse
	out.Prediction = toPoints(r.Prediction)
	for _, q := range r.Quantiles {
		out.Quantiles = append(out.Quantiles, quantilePath{Quantile: q.Quantile, Prediction: toPoints(q.Prediction)})
	}
	for _, s := range r.Samples {
		out.Samples = append(out.Samples, toPoints(s))
	}
	return out, body
}

// wirePoint reads a point back (point itself only marshals).
type wirePoint struct {
	Timestamp                              string
	Open, High, Low, Close, Volume, Amount float64
}

type wireQuantile struct {
	Quantile   float64     `json:"quantile"`
	Prediction []wirePoint `json:"prediction"`
}

func toPoints(w []wirePoint) []point {
	out := make([]point, len(w))
	for i, p := range w {
		out[i] = point{Timestamp: p.Timestamp, Open: float32(p.Open), High: float32(p.High), Low: float32(p.Low),
			Close: float32(p.Close), Volume: float32(p.Volume), Amount: float32(p.Amount)}
	}
	return out
}

func values(p point) []float32 { return []float32{p.Open, p.High, p.Low, p.Close, p.Volume, p.Amount} }

// checkPoints asserts the timestamps and that every value is finite with
// volume and amount >= 0.
func checkPoints(t testing.TB, pts []point, stamps []any) {
	t.Helper()
	require.Len(t, pts, len(stamps))
	for i, p := range pts {
		require.Equal(t, stamps[i], p.Timestamp, "point %d", i)
		for _, v := range values(p) {
			require.False(t, math.IsNaN(float64(v)) || math.IsInf(float64(v), 0), "point %d: %v", i, p)
		}
		require.GreaterOrEqual(t, p.Volume, float32(0), "point %d", i)
		require.GreaterOrEqual(t, p.Amount, float32(0), "point %d", i)
	}
}

// TestPredictRegression: 400 real candles and 120 prediction timestamps
// give 120 finite candles carrying exactly those timestamps, conditioned on
// the model's 256-candle context; the same seed gives identical bytes.
func TestPredictRegression(t *testing.T) {
	b := embeddedBackend(t)
	a := newTestApp(t, NewOptions(), b)
	m := csvRequest(t, 0, 400, 120)
	m["overrides"] = map[string]any{"seed": 42}

	r, body := predictOK(t, a, m)
	checkPoints(t, r.Prediction, m["prediction_timestamps"].([]any))
	require.Equal(t, "600977.SH", *r.SeriesID)
	require.Equal(t, "kronos-nano", r.Model)
	require.Equal(t, b.Info().ModelVersion, r.ModelVersion)
	require.NotEmpty(t, r.ModelVersion)
	require.Equal(t, b.Info().TokenizerVersion, r.TokenizerVersion)
	require.Equal(t, uint64(42), r.Seed)
	require.Equal(t, b.Info().MaxContext, r.ContextUsed)
	require.Equal(t, 256, r.ContextUsed)
	require.Equal(t, 1, r.SampleCount)
	require.Nil(t, r.Quantiles)
	require.Nil(t, r.Samples)
	// The price level is that of the input (about 11), not garbage.
	for _, p := range r.Prediction {
		require.InDelta(t, 11.3, float64(p.Close), 3, "close %v", p.Close)
	}

	_, again := predictOK(t, a, m)
	require.Equal(t, string(body), string(again), "same seed, same input: identical bytes")
}

// TestPredictMinimal is bug case 6: one candle, one timestamp, one
// prediction timestamp, no overrides.
func TestPredictMinimal(t *testing.T) {
	a := newTestApp(t, NewOptions(), embeddedBackend(t))
	m := map[string]any{
		"candles":               []any{map[string]any{"open": 50000, "high": 51000, "low": 49500, "close": 50800}},
		"timestamps":            []any{"2025-01-01T09:00:00"},
		"prediction_timestamps": []any{"2025-01-01T09:05:00"},
	}
	r, _ := predictOK(t, a, m)
	checkPoints(t, r.Prediction, m["prediction_timestamps"].([]any))
	require.Nil(t, r.SeriesID)
	require.Equal(t, 1, r.ContextUsed)
	require.Less(t, r.Seed, uint64(maxRandomSeed))
	require.Equal(t, float32(0), r.Prediction[0].Volume, "no volume given: volume and amount are zero-filled")
}

// TestPredictReplayAndSamples: without a seed the response echoes the seed
// drawn, and sending it back replays the forecast byte for byte; quantiles
// are ordered and samples come back when asked; offsets are kept.
func TestPredictReplayAndSamples(t *testing.T) {
	a := newTestApp(t, NewOptions(), embeddedBackend(t))
	m := csvRequest(t, 1000, 48, 6)
	// The same bars in +08:00: the prediction timestamps must come back so.
	for _, k := range []string{"timestamps", "prediction_timestamps"} {
		for i, s := range m[k].([]any) {
			m[k].([]any)[i] = s.(string) + "+08:00"
		}
	}
	m["overrides"] = map[string]any{"sample_count": 4, "top_p": 1.0}
	m["quantiles"] = []any{0.1, 0.5, 0.9}
	m["return_samples"] = true

	r, body := predictOK(t, a, m)
	stamps := m["prediction_timestamps"].([]any)
	checkPoints(t, r.Prediction, stamps)
	require.Equal(t, 4, r.SampleCount)
	require.Equal(t, 48, r.ContextUsed)
	require.Len(t, r.Samples, 4)
	for _, s := range r.Samples {
		checkPoints(t, s, stamps)
	}
	require.Len(t, r.Quantiles, 3)
	for i, q := range []float64{0.1, 0.5, 0.9} {
		require.Equal(t, q, r.Quantiles[i].Quantile)
		checkPoints(t, r.Quantiles[i].Prediction, stamps)
	}
	for step := range stamps {
		lo, mid, hi := values(r.Quantiles[0].Prediction[step]), values(r.Quantiles[1].Prediction[step]), values(r.Quantiles[2].Prediction[step])
		for j := range lo {
			require.LessOrEqual(t, lo[j], mid[j], "step %d column %d", step, j)
			require.LessOrEqual(t, mid[j], hi[j], "step %d column %d", step, j)
			// Every path lies within the 0..1 envelope of the samples, and
			// the mean path lies within min..max of the samples.
			minV, maxV := float32(math.Inf(1)), float32(math.Inf(-1))
			for _, s := range r.Samples {
				v := values(s[step])[j]
				minV, maxV = min(minV, v), max(maxV, v)
			}
			mean := values(r.Prediction[step])[j]
			tol := 1e-3 * max(1, float32(math.Abs(float64(mean))))
			require.GreaterOrEqual(t, mean, minV-tol, "step %d column %d", step, j)
			require.LessOrEqual(t, mean, maxV+tol, "step %d column %d", step, j)
		}
	}

	overridesOf(m)["seed"] = r.Seed
	_, again := predictOK(t, a, m)
	require.Equal(t, string(body), string(again), "replaying the echoed seed gives identical bytes")
}

// TestPredictEdgeInputs are bug cases 8 and 10: flat candles and volume
// alternating between 0 and 1e6 give finite forecasts, volume >= 0.
func TestPredictEdgeInputs(t *testing.T) {
	a := newTestApp(t, NewOptions(), embeddedBackend(t))
	t0 := time.Date(2024, 6, 17, 9, 30, 0, 0, time.UTC)
	build := func(n, p int, candle func(i int) map[string]any) map[string]any {
		m := map[string]any{}
		cs, ts, pred := make([]any, n), make([]any, n), make([]any, p)
		for i := range n {
			cs[i] = candle(i)
			ts[i] = t0.Add(time.Duration(i) * time.Minute).Format(time.RFC3339)
		}
		for i := range p {
			pred[i] = t0.Add(time.Duration(n+i) * time.Minute).Format(time.RFC3339)
		}
		m["candles"], m["timestamps"], m["prediction_timestamps"] = cs, ts, pred
		return m
	}
	flat := build(60, 10, func(int) map[string]any {
		return map[string]any{"open": 10.0, "high": 10.0, "low": 10.0, "close": 10.0, "volume": 0, "amount": 0}
	})
	r, _ := predictOK(t, a, flat)
	checkPoints(t, r.Prediction, flat["prediction_timestamps"].([]any))
	for _, p := range r.Prediction {
		require.InDelta(t, 10, float64(p.Close), 1e-3, "a flat series stays flat")
	}

	spiky := build(200, 30, func(i int) map[string]any {
		v := float64(1e6 * (i % 2))
		return map[string]any{"open": 100.0, "high": 101.0, "low": 99.0, "close": 100.5, "volume": v, "amount": v}
	})
	r, _ = predictOK(t, a, spiky)
	checkPoints(t, r.Prediction, spiky["prediction_timestamps"].([]any))
}
