package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/kronos-gateway/kronos-gateway/internal/infer"
)

// TestErrorMapping checks the status, kind, Retry-After and envelope of
// every error kind at the HTTP level, through a test route that returns the
// error as a handler would.
func TestErrorMapping(t *testing.T) {
	cases := []struct {
		err        error
		status     int
		kind       infer.Kind
		retryAfter string
		message    string // "" means err.Error()
		field      string
	}{
		{infer.Errorf(infer.KindInvalid, "bad"), 422, infer.KindInvalid, "", "", ""},
		{infer.Field("items[2].candles[17].high", "too high"), 422, infer.KindInvalid, "", "", "items[2].candles[17].high"},
		{fmt.Errorf("handler: %w", infer.Field("x", "wrapped")), 422, infer.KindInvalid, "", "", "x"},
		{infer.Errorf(infer.KindTooLarge, "big"), 413, infer.KindTooLarge, "", "", ""},
		{infer.Errorf(infer.KindNotFound, "no model"), 404, infer.KindNotFound, "", "", ""},
		{infer.Errorf(infer.KindOverloaded, "queue full"), 429, infer.KindOverloaded, "1", "", ""},
		{infer.Errorf(infer.KindUnavailable, "down"), 503, infer.KindUnavailable, "5", "", ""},
		{infer.Errorf(infer.KindTimeout, "slow"), 504, infer.KindTimeout, "", "", ""},
		{infer.FromContext(context.DeadlineExceeded), 504, infer.KindTimeout, "", "", ""},
		{infer.Errorf(infer.KindCanceled, "gone"), 499, infer.KindCanceled, "", "", ""},
		{infer.Errorf(infer.KindUnauthorized, "no key"), 401, infer.KindUnauthorized, "", "", ""},
		{infer.Errorf(infer.KindInternal, "secret path /etc/x"), 500, infer.KindInternal, "",
			"internal error; the request id identifies it in the server log", ""},
		{errors.New("unclassified secret"), 500, infer.KindInternal, "",
			"internal error; the request id identifies it in the server log", ""},
		{fiber.NewError(http.StatusTeapot, "teapot"), 418, infer.KindInvalid, "", "teapot", ""},
		{fiber.ErrServiceUnavailable, 503, infer.KindUnavailable, "5", "Service Unavailable", ""},
	}
	a := newTestApp(t, testOptions(), newFakeBackend())
	for i, tc := range cases {
		path := fmt.Sprintf("/test/error/%d", i)
		a.Fiber().Get(path, func(*fiber.Ctx) error { return tc.err })
		t.Run(path, func(t *testing.T) {
			status, h, body := do(t, a, http.MethodGet, path, nil, nil)
			require.Equal(t, tc.status, status)
			e := envelope(t, body)
			require.Equal(t, tc.kind, e.Kind)
			want := tc.message
			if want == "" {
				want = tc.err.Error()
			}
			require.Equal(t, want, e.Message)
			require.Equal(t, tc.field, e.Field)
			require.Equal(t, tc.retryAfter, h.Get("Retry-After"))
			require.Equal(t, h.Get(HeaderRequestID), e.RequestID)
			_, err := uuid.Parse(e.RequestID)
			require.NoError(t, err, "a generated request id is a uuid")
		})
	}
}

// TestRoutingErrors checks that Fiber's own errors use the envelope.
func TestRoutingErrors(t *testing.T) {
	a := newTestApp(t, testOptions(), newFakeBackend())
	cases := []struct {
		method, path string
		status       int
		kind         infer.Kind
	}{
		{http.MethodGet, "/nope", 404, infer.KindNotFound},
		{http.MethodGet, "/v1/predict/single", 405, infer.KindInvalid},
		{http.MethodDelete, "/v1/healthz", 405, infer.KindInvalid},
		{http.MethodGet, "/V1/HEALTHZ", 404, infer.KindNotFound},
	}
	for _, tc := range cases {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			status, _, body := do(t, a, tc.method, tc.path, nil, nil)
			require.Equal(t, tc.status, status)
			require.Equal(t, tc.kind, envelope(t, body).Kind)
		})
	}
}

// TestPanicIsInternal checks that a panicking handler gives a 500 envelope
// without its text, and that the app keeps serving.
func TestPanicIsInternal(t *testing.T) {
	a := newTestApp(t, testOptions(), newFakeBackend())
	a.Fiber().Get("/test/panic", func(*fiber.Ctx) error { panic("boom: secret") })
	status, _, body := do(t, a, http.MethodGet, "/test/panic", nil, map[string]string{HeaderRequestID: "p-1"})
	require.Equal(t, 500, status)
	e := envelope(t, body)
	require.Equal(t, infer.KindInternal, e.Kind)
	require.NotContains(t, e.Message, "secret")
	require.Equal(t, "p-1", e.RequestID)
	status, _, _ = do(t, a, http.MethodGet, RouteHealthz, nil, nil)
	require.Equal(t, 200, status)
}

// TestRequestID checks that a sane client id is echoed and any other is
// replaced by a uuid.
func TestRequestID(t *testing.T) {
	a := newTestApp(t, testOptions(), newFakeBackend())
	cases := []struct {
		sent string
		echo bool
	}{
		{"abc-123", true},
		{"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", true},
		{"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0", false},
		{"has space", false},
		{"", false},
	}
	for _, tc := range cases {
		_, h, _ := do(t, a, http.MethodGet, RouteHealthz, nil, map[string]string{HeaderRequestID: tc.sent})
		got := h.Get(HeaderRequestID)
		if tc.echo {
			require.Equal(t, tc.sent, got)
			continue
		}
		_, err := uuid.Parse(got)
		require.NoError(t, err, "sent %q, got %q", tc.sent, got)
	}
}

func TestClassifyNeverLeaksInternalText(t *testing.T) {
	for _, err := range []error{
		infer.Errorf(infer.KindInternal, "onnx at /srv/models"),
		infer.Wrap(infer.KindInternal, errors.New("cgo"), "run"),
		errors.New("plain"),
	} {
		_, kind, msg := classify(err)
		require.Equal(t, infer.KindInternal, kind)
		require.NotContains(t, msg, err.Error())
	}
}

// TestPredictBackendErrors checks that a backend failure reaches the client
// with its own kind, and that a stuck backend is cut off by the inference
// deadline (504) with its call cancelled.
func TestPredictBackendErrors(t *testing.T) {
	cases := []struct {
		name       string
		err        error
		block      bool
		status     int
		kind       infer.Kind
		retryAfter string
	}{
		{"overloaded", infer.Errorf(infer.KindOverloaded, "busy"), false, 429, infer.KindOverloaded, "1"},
		{"unavailable", infer.Errorf(infer.KindUnavailable, "closed"), false, 503, infer.KindUnavailable, "5"},
		{"not found", infer.Errorf(infer.KindNotFound, "no graph"), false, 404, infer.KindNotFound, ""},
		{"internal", errors.New("onnx: bad shape"), false, 500, infer.KindInternal, ""},
		{"stuck backend", nil, true, 504, infer.KindTimeout, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fb := newFakeBackend()
			fb.err, fb.block = tc.err, tc.block
			o := testOptions()
			o.InferenceTimeout = 500 * time.Millisecond
			a := newTestApp(t, o, fb)
			status, h, body := do(t, a, http.MethodPost, RoutePredictSingle, mustJSON(t, baseRequest(4, 2)), nil)
			require.Equal(t, tc.status, status, "%s", body)
			e := envelope(t, body)
			require.Equal(t, tc.kind, e.Kind)
			require.Equal(t, tc.retryAfter, h.Get("Retry-After"))
			require.Positive(t, fb.calls.Load())
			require.Zero(t, fb.running.Load(), "a backend call is still running after the response")
			if tc.block {
				require.Contains(t, e.Message, "did not finish within KRONOS_INFERENCE_TIMEOUT (500ms)")
			}
		})
	}
}
