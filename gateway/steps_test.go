package gateway

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

// TestStepsBeyondMaxContext: asking for more prediction steps than the
// model's max context (256 for kronos-nano; the final decode window) is a
// 422 naming prediction_timestamps, single and batch, not a panic or a 500.
// Found by a new-user trial: 10 candles -> 257 steps used to return 500.
func TestStepsBeyondMaxContext(t *testing.T) {
	o := NewOptions()
	a := newTestApp(t, o, embeddedBackend(t))
	single := baseRequest(10, 257)
	status, _, body := do(t, a, http.MethodPost, RoutePredictSingle, mustJSON(t, single), nil)
	require.Equal(t, http.StatusUnprocessableEntity, status, "%s", body)
	require.Equal(t, "prediction_timestamps", envelope(t, body).Field)

	batchBody := map[string]any{"items": []any{baseRequest(10, 4), baseRequest(10, 300)}}
	status, _, body = do(t, a, http.MethodPost, RoutePredictBatch, mustJSON(t, batchBody), nil)
	require.Equal(t, http.StatusUnprocessableEntity, status, "%s", body)
	require.Equal(t, "items[1].prediction_timestamps", envelope(t, body).Field)

	// At the limit it works.
	status, _, body = do(t, a, http.MethodPost, RoutePredictSingle, mustJSON(t, baseRequest(10, 256)), nil)
	require.Equal(t, http.StatusOK, status, "%s", body)
}

// panicBackend panics inside the forecast (a bug stand-in).
type panicBackend struct{ *fakeBackend }

func (p panicBackend) Encode(context.Context, []float32, int, int) ([]float32, error) {
	panic("backend bug")
}

// TestConcurrencyGaugeAfterPanic: a forecast that panics is a 500, and
// kronos_concurrent_requests returns to 0 (it used to stay raised for good).
func TestConcurrencyGaugeAfterPanic(t *testing.T) {
	reg := prometheus.NewRegistry()
	a, err := New(testOptions(), Deps{Backend: panicBackend{newFakeBackend()}, Registry: reg})
	require.NoError(t, err)
	for range 3 {
		status, _, body := do(t, a, http.MethodPost, RoutePredictSingle, mustJSON(t, baseRequest(8, 2)), nil)
		require.Equal(t, http.StatusInternalServerError, status, "%s", body)
	}
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP kronos_concurrent_requests Forecasts running on the backend now.
# TYPE kronos_concurrent_requests gauge
kronos_concurrent_requests 0
`), "kronos_concurrent_requests"))
}
