package gateway

import (
	"net/http"
	"testing"

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
