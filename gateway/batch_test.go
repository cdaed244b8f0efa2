package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kronos-gateway/kronos-gateway/internal/infer"
)

// countingBackend wraps a backend and counts what reaches it: every call
// (model runs), the calls running now, the sessions open now and the rows
// of each session opened. Close does nothing (the wrapped backend is
// shared by the tests).
type countingBackend struct {
	infer.Backend
	calls, running, openSessions atomic.Int64

	mu          sync.Mutex
	sessionRows []int
}

func (b *countingBackend) enter() func() {
	b.calls.Add(1)
	b.running.Add(1)
	return func() { b.running.Add(-1) }
}

func (b *countingBackend) Encode(ctx context.Context, x []float32, rows, length int) ([]float32, error) {
	defer b.enter()()
	return b.Backend.Encode(ctx, x, rows, length)
}

func (b *countingBackend) Decode(ctx context.Context, s1, s2 []int64, rows, width int) ([]float32, error) {
	defer b.enter()()
	return b.Backend.Decode(ctx, s1, s2, rows, width)
}

func (b *countingBackend) NewSession(ctx context.Context, rows int) (infer.Session, error) {
	done := b.enter()
	s, err := b.Backend.NewSession(ctx, rows)
	done()
	if err != nil {
		return nil, err
	}
	b.openSessions.Add(1)
	b.mu.Lock()
	b.sessionRows = append(b.sessionRows, rows)
	b.mu.Unlock()
	return &countingSession{Session: s, b: b}, nil
}

func (b *countingBackend) Close() error { return nil }

func (b *countingBackend) rows() []int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]int(nil), b.sessionRows...)
}

type countingSession struct {
	infer.Session
	b      *countingBackend
	closed atomic.Bool
}

func (s *countingSession) S1Logits(ctx context.Context, w []infer.Window) ([]float32, error) {
	defer s.b.enter()()
	return s.Session.S1Logits(ctx, w)
}

func (s *countingSession) S2Logits(ctx context.Context, s1 []int64) ([]float32, error) {
	defer s.b.enter()()
	return s.Session.S2Logits(ctx, s1)
}

func (s *countingSession) Close() error {
	if !s.closed.Swap(true) {
		s.b.openSessions.Add(-1)
	}
	return s.Session.Close()
}

// batchBody builds {"items":[...]} from requests.
func batchBody(items ...map[string]any) map[string]any {
	out := make([]any, len(items))
	for i, it := range items {
		out[i] = it
	}
	return map[string]any{"items": out}
}

func TestBatchInvalid(t *testing.T) {
	o := testOptions()
	o.MaxBatchItems = 3
	fb := newFakeBackend()
	a := newTestApp(t, o, fb)
	item := func(mutate func(m map[string]any)) map[string]any {
		m := baseRequest(8, 2)
		if mutate != nil {
			mutate(m)
		}
		return m
	}
	cases := []struct {
		name  string
		body  string
		field string
		msg   string
	}{
		{"items missing", `{}`, "items", "is required"},
		{"items null", `{"items":null}`, "items", "expected an array, got null"},
		{"items empty", `{"items":[]}`, "items", "must hold at least one item (at most 3, KRONOS_MAX_BATCH_ITEMS)"},
		{"too many items", string(mustJSON(t, batchBody(item(nil), item(nil), item(nil), item(nil)))), "items",
			"has more than 3 entries"},
		{"unknown top-level key", `{"items":[],"item":[]}`, "item", "unknown field (known fields: items)"},
		{"body an array", `[{}]`, "", "expected an object, got an array"},
		{"item not an object", `{"items":[1]}`, "items[0]", "expected an object, got a number"},
		{"item unknown key", `{"items":[{"candle":[]}]}`, "items[0].candle", "unknown field"},
		{"candle of item 2", string(mustJSON(t, batchBody(item(nil), item(nil),
			item(func(m map[string]any) { candle(m, 5)["high"] = 1.0 })))), "items[2].candles[5].", ""},
		{"override of item 1", string(mustJSON(t, batchBody(item(nil),
			item(func(m map[string]any) { overridesOf(m)["top_p"] = 0 })))), "items[1].overrides.top_p", "must be in (0, 1]"},
		{"missing prediction timestamps", string(mustJSON(t, batchBody(item(nil),
			item(func(m map[string]any) { delete(m, "prediction_timestamps") })))), "items[1].prediction_timestamps", "is required"},
		{"NaN in item 0", `{"items":[{"candles":[{"open":NaN}]}]}`, "items[0].candles[0].open", "NaN is not a JSON number"},
		{"unknown model", string(mustJSON(t, batchBody(item(func(m map[string]any) { m["model"] = "kronos-base" })))),
			"items[0].model", `unknown model "kronos-base"; loaded models: kronos-fake`},
		{"mixed naive and offset", string(mustJSON(t, batchBody(item(func(m map[string]any) {
			m["prediction_timestamps"] = []any{"2024-06-18T12:00:00", "2024-06-18T12:05:00"}
		})))), "items[0].prediction_timestamps[0]", "has no UTC offset"},
		{"truncated", `{"items":[{"candles":[`, "items[0].candles", "unexpected end of JSON input"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, _, body := do(t, a, http.MethodPost, RoutePredictBatch, []byte(tc.body), nil)
			require.Equal(t, http.StatusUnprocessableEntity, status, "%s", body)
			e := envelope(t, body)
			require.Equal(t, infer.KindInvalid, e.Kind)
			if strings.HasSuffix(tc.field, ".") {
				require.True(t, strings.HasPrefix(e.Field, tc.field), "field %q", e.Field)
			} else {
				require.Equal(t, tc.field, e.Field)
			}
			require.Contains(t, e.Message, tc.msg)
		})
	}
	require.Zero(t, fb.calls.Load(), "invalid batches never reach the backend")
}

// TestBatchForecast is bug case 12: items of different lengths, horizons
// and sampling parameters are forecast together; the response lists them
// in input order, and each equals the single forecast of the same item
// (batching does not change a result).
func TestBatchForecast(t *testing.T) {
	a := newTestApp(t, NewOptions(), embeddedBackend(t))
	first := csvRequest(t, 0, 100, 10)
	first["series_id"] = "first"
	first["overrides"] = map[string]any{"seed": 1, "temperature": 0.8, "sample_count": 2}
	first["quantiles"] = []any{0.25, 0.75}
	second := csvRequest(t, 500, 120, 20)
	second["series_id"] = "second"
	second["overrides"] = map[string]any{"seed": 2, "temperature": 1.2, "top_k": 5, "top_p": 0.5}
	third := csvRequest(t, 900, 7, 1)
	delete(third, "series_id")
	third["overrides"] = map[string]any{"seed": 3}
	third["return_samples"] = true

	status, _, body := do(t, a, http.MethodPost, RoutePredictBatch, mustJSON(t, batchBody(first, second, third)), nil)
	require.Equal(t, http.StatusOK, status, "%s", body)
	var items []json.RawMessage
	require.NoError(t, json.Unmarshal(body, &items))
	require.Len(t, items, 3)
	for i, m := range []map[string]any{first, second, third} {
		_, single := predictOK(t, a, m)
		require.JSONEq(t, string(single), string(items[i]), "item %d equals its single forecast", i)
	}
	rs := batchOK(t, a, batchBody(first, second, third))
	require.Equal(t, "first", *rs[0].SeriesID)
	require.Equal(t, "second", *rs[1].SeriesID)
	require.Nil(t, rs[2].SeriesID)
	require.Len(t, rs[0].Prediction, 10)
	require.Len(t, rs[1].Prediction, 20)
	require.Len(t, rs[2].Prediction, 1)
	require.Equal(t, []int{100, 120, 7}, []int{rs[0].ContextUsed, rs[1].ContextUsed, rs[2].ContextUsed})
	require.Equal(t, []int{2, 1, 1}, []int{rs[0].SampleCount, rs[1].SampleCount, rs[2].SampleCount})
	require.Len(t, rs[0].Quantiles, 2)
	require.Len(t, rs[2].Samples, 1)
}

// TestBatchChunks: a batch whose rows exceed KRONOS_MAX_BATCH_ROWS runs as
// several backend sessions of at most that many rows, with the same
// results as one big session.
func TestBatchChunks(t *testing.T) {
	cb := &countingBackend{Backend: embeddedBackend(t)}
	o := NewOptions()
	o.MaxSampleCount, o.MaxBatchRows = 4, 4
	small := newTestApp(t, o, cb)
	var items []map[string]any
	for i, sc := range []int{2, 3, 1, 4, 1} {
		m := csvRequest(t, 100*i, 20+5*i, 2+i)
		m["overrides"] = map[string]any{"seed": i, "sample_count": sc}
		items = append(items, m)
	}
	status, _, chunked := do(t, small, http.MethodPost, RoutePredictBatch, mustJSON(t, batchBody(items...)), nil)
	require.Equal(t, http.StatusOK, status, "%s", chunked)
	require.Equal(t, []int{2, 4, 4, 1}, cb.rows(), "sessions of at most 4 rows, items in order, none split")

	o.MaxBatchRows = 64
	big := newTestApp(t, o, embeddedBackend(t))
	status, _, whole := do(t, big, http.MethodPost, RoutePredictBatch, mustJSON(t, batchBody(items...)), nil)
	require.Equal(t, http.StatusOK, status, "%s", whole)
	require.Equal(t, string(whole), string(chunked), "chunking does not change the results")
	require.Zero(t, cb.openSessions.Load())
	require.Zero(t, cb.running.Load())
}

func TestChunks(t *testing.T) {
	ga, gb := &generation{}, &generation{}
	la, lb := &lease{gen: ga}, &lease{gen: gb}
	item := func(l *lease, rows int) *prepared {
		p := &prepared{lease: l}
		p.job.Params.SampleCount = rows
		return p
	}
	got := chunks([]*prepared{item(la, 2), item(lb, 1), item(la, 2), item(la, 1), item(lb, 5), item(lb, 1)}, 4)
	type view struct {
		gen   *generation
		items []int
		rows  int
	}
	var out []view
	for _, c := range got {
		out = append(out, view{c.lease.gen, c.items, c.rows})
	}
	require.Equal(t, []view{
		{ga, []int{0, 2}, 4},
		{gb, []int{1}, 1},
		{ga, []int{3}, 1},
		{gb, []int{4}, 5}, // larger than the limit: alone
		{gb, []int{5}, 1},
	}, out)
}

func TestRenumber(t *testing.T) {
	fe := func(f string) error { return &infer.FieldError{Field: f, Reason: "r"} }
	require.Equal(t, fe("items[7].candles"), renumber(fe("items[1].candles"), []int{3, 7}, true))
	require.Equal(t, fe("items[3].candles"), renumber(fe("candles"), []int{3}, true))
	require.Equal(t, fe("candles"), renumber(fe("candles"), []int{0}, false))
	plain := infer.Errorf(infer.KindInternal, "x")
	require.Equal(t, plain, renumber(plain, []int{0}, true))
}
