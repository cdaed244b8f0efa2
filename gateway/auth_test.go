package gateway

import (
	"crypto/sha256"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/time/rate"

	"github.com/kronos-gateway/kronos-gateway/internal/infer"
)

const (
	keyAlpha = "alpha-0123456789abcdef"
	keyBeta  = "beta-fedcba9876543210"
	keyGamma = "gamma-from-the-file-42"
)

// invalidBody passes authentication and fails validation (422), so that
// these tests need no model.
var invalidBody = []byte(`{}`)

func authApp(t *testing.T, mutate func(*Options)) (*App, *syncBuffer) {
	t.Helper()
	o := testOptions()
	o.APIKeys = []string{keyAlpha, keyBeta}
	if mutate != nil {
		mutate(&o)
	}
	var logs syncBuffer
	a, err := New(o, Deps{Backend: newFakeBackend(), Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	require.NoError(t, err)
	return a, &logs
}

func TestAuthKeys(t *testing.T) {
	keysFile := filepath.Join(t.TempDir(), "keys")
	require.NoError(t, os.WriteFile(keysFile, []byte("# keys of the gateway\n\n  "+keyGamma+"  \n"+keyAlpha+"\n"), 0o600))
	a, logs := authApp(t, func(o *Options) { o.APIKeysFile = keysFile })

	cases := []struct {
		name   string
		method string
		route  string
		header map[string]string
		status int
	}{
		{"no key", http.MethodPost, RoutePredictSingle, nil, 401},
		{"no key, batch", http.MethodPost, RoutePredictBatch, nil, 401},
		{"wrong key", http.MethodPost, RoutePredictSingle, map[string]string{HeaderAPIKey: "alpha-0123456789abcdeX"}, 401},
		{"key prefix", http.MethodPost, RoutePredictSingle, map[string]string{HeaderAPIKey: "alpha"}, 401},
		{"empty bearer", http.MethodPost, RoutePredictSingle, map[string]string{"Authorization": "Bearer "}, 401},
		{"basic auth", http.MethodPost, RoutePredictSingle, map[string]string{"Authorization": "Basic " + keyAlpha}, 401},
		{"unknown route", http.MethodGet, "/v1/admin", nil, 401},
		{"X-API-Key", http.MethodPost, RoutePredictSingle, map[string]string{HeaderAPIKey: keyAlpha}, 422},
		{"bearer", http.MethodPost, RoutePredictSingle, map[string]string{"Authorization": "Bearer " + keyBeta}, 422},
		{"bearer lower case", http.MethodPost, RoutePredictBatch, map[string]string{"Authorization": "bearer " + keyBeta}, 422},
		{"key from the file", http.MethodPost, RoutePredictSingle, map[string]string{HeaderAPIKey: keyGamma}, 422},
		{"healthz open", http.MethodGet, RouteHealthz, nil, 200},
		{"metrics open", http.MethodGet, RouteMetrics, nil, 200},
		{"readyz open", http.MethodGet, "/v1/readyz", nil, -1},
		{"docs open", http.MethodGet, "/docs", nil, -1},
		{"openapi open", http.MethodGet, "/v1/openapi.json", nil, -1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, h, body := do(t, a, tc.method, tc.route, invalidBody, tc.header)
			if tc.status == -1 { // open, whatever the route answers
				require.NotEqual(t, http.StatusUnauthorized, status, "%s", body)
				return
			}
			require.Equal(t, tc.status, status, "%s", body)
			if status == http.StatusUnauthorized {
				e := envelope(t, body)
				require.Equal(t, infer.KindUnauthorized, e.Kind)
				require.NotEmpty(t, e.RequestID)
				require.Equal(t, `Bearer realm="kronos-gateway"`, h.Get("WWW-Authenticate"))
			}
		})
	}
	require.Equal(t, 7.0, metricValue(t, a.metrics.rejections.WithLabelValues(ReasonUnauthorized)))

	// Keys never reach the log; the caller is identified by a short hash.
	out := logs.String()
	for _, k := range []string{keyAlpha, keyBeta, keyGamma, "alpha-0123456789abcdeX"} {
		require.NotContains(t, out, k)
	}
	sum := sha256.Sum256([]byte(keyBeta))
	ids := map[string]bool{}
	for _, l := range logs.find(t, "request") {
		if id, ok := l["key_id"].(string); ok {
			ids[id] = true
		}
	}
	require.True(t, ids[keyID(sum)], "key_id of the bearer key in %v", ids)
	require.Len(t, ids, 3, "one id per key used")
}

func TestAuthOptions(t *testing.T) {
	o := NewOptions()
	o.APIKeys = []string{"has space"}
	require.ErrorContains(t, o.Validate(), "KRONOS_API_KEYS: key 1 has a character")
	o.APIKeys = []string{strings.Repeat("k", 257)}
	require.ErrorContains(t, o.Validate(), "longer than 256 bytes")

	o = NewOptions()
	o.APIKeysFile = filepath.Join(t.TempDir(), "missing")
	_, err := New(o, Deps{Backend: newFakeBackend()})
	require.ErrorContains(t, err, "KRONOS_API_KEYS_FILE")

	bad := filepath.Join(t.TempDir(), "keys")
	require.NoError(t, os.WriteFile(bad, []byte("ok-key\nsecret with space\n"), 0o600))
	o.APIKeysFile = bad
	_, err = New(o, Deps{Backend: newFakeBackend()})
	require.ErrorContains(t, err, "line 2")
	require.NotContains(t, err.Error(), "secret", "the error does not quote the key")

	got, err := FromEnv(env(map[string]string{"KRONOS_API_KEYS": " k1 ,, k2 ", "KRONOS_RATE_LIMIT_PER_MINUTE": "30",
		"KRONOS_RATE_LIMIT_BURST": "5"}))
	require.NoError(t, err)
	require.Equal(t, []string{"k1", "k2"}, got.APIKeys)
	require.Equal(t, "<2 keys>", got.AsMap()["KRONOS_API_KEYS"], "AsMap never shows keys")
	require.Equal(t, 30.0, got.RateLimitPerMinute)
	require.Equal(t, 5, got.RateLimitBurst)
	_, err = FromEnv(env(map[string]string{"KRONOS_RATE_LIMIT_PER_MINUTE": "-1"}))
	require.ErrorContains(t, err, "KRONOS_RATE_LIMIT_PER_MINUTE")
}

// TestRateLimit: each key has its own bucket of RateLimitBurst requests;
// past it a caller gets 429 with the Retry-After of its next token, while
// other keys and open routes are unaffected. Without keys the client IP
// address is the caller.
func TestRateLimit(t *testing.T) {
	a, _ := authApp(t, func(o *Options) { o.RateLimitPerMinute, o.RateLimitBurst = 1, 2 })
	alpha := map[string]string{HeaderAPIKey: keyAlpha}
	for i := range 2 {
		status, _, body := do(t, a, http.MethodPost, RoutePredictSingle, invalidBody, alpha)
		require.Equal(t, 422, status, "request %d: %s", i, body)
	}
	status, h, body := do(t, a, http.MethodPost, RoutePredictBatch, invalidBody, alpha)
	require.Equal(t, http.StatusTooManyRequests, status, "%s", body)
	e := envelope(t, body)
	require.Equal(t, infer.KindOverloaded, e.Kind)
	require.Contains(t, e.Message, "KRONOS_RATE_LIMIT_PER_MINUTE")
	retry, err := strconv.Atoi(h.Get("Retry-After"))
	require.NoError(t, err)
	require.True(t, retry >= 1 && retry <= 60, "Retry-After %d: the next token of 1 per minute", retry)
	require.Equal(t, 1.0, metricValue(t, a.metrics.rejections.WithLabelValues(ReasonRateLimited)))

	status, _, _ = do(t, a, http.MethodPost, RoutePredictSingle, invalidBody, map[string]string{HeaderAPIKey: keyBeta})
	require.Equal(t, 422, status, "another key has its own bucket")
	status, _, _ = do(t, a, http.MethodGet, RouteHealthz, nil, alpha)
	require.Equal(t, 200, status, "open routes are not limited")
	status, _, _ = do(t, a, http.MethodPost, RoutePredictSingle, invalidBody, nil)
	require.Equal(t, 401, status, "a missing key is 401, not 429")

	// Without keys: per client address (App.Test uses 0.0.0.0).
	b, _ := authApp(t, func(o *Options) { o.APIKeys = nil; o.RateLimitPerMinute = 0.5 })
	status, _, _ = do(t, b, http.MethodPost, RoutePredictSingle, invalidBody, nil)
	require.Equal(t, 422, status)
	status, h, _ = do(t, b, http.MethodPost, RoutePredictSingle, invalidBody, nil)
	require.Equal(t, 429, status, "burst defaults to ceil(rate) = 1")
	retry, _ = strconv.Atoi(h.Get("Retry-After"))
	require.True(t, retry > 60 && retry <= 120, "Retry-After %d: one token per 2 minutes", retry)
}

// TestLimiter checks the bucket arithmetic on a fixed clock and that idle
// callers are forgotten once the map is full.
func TestLimiter(t *testing.T) {
	now := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	l := newLimiter(rate.Limit(1.0/60), 2)
	l.maxCallers = 3
	for range 2 {
		_, ok := l.allow("a", now)
		require.True(t, ok)
	}
	wait, ok := l.allow("a", now)
	require.False(t, ok)
	require.Equal(t, time.Minute, wait)
	wait, ok = l.allow("a", now.Add(59*time.Second))
	require.False(t, ok)
	require.Equal(t, time.Second, wait, "a refused request takes no token")
	_, ok = l.allow("a", now.Add(time.Minute))
	require.True(t, ok)

	_, _ = l.allow("b", now)
	_, _ = l.allow("c", now)
	require.Equal(t, 3, l.size())
	// At now+3m, b and c are full again (idle) and a is not (it used a
	// token at now+1m, refilled by +2m... then spent below).
	_, _ = l.allow("a", now.Add(3*time.Minute))
	_, _ = l.allow("a", now.Add(3*time.Minute))
	_, _ = l.allow("d", now.Add(3*time.Minute)) // map full: sweep
	require.Equal(t, 2, l.size(), "idle b and c were dropped, a and d kept")
	wait, ok = l.allow("a", now.Add(3*time.Minute))
	require.False(t, ok, "a kept its state through the sweep")
	require.Equal(t, time.Minute, wait)
}

func TestOpenPaths(t *testing.T) {
	for _, p := range []string{"/v1/healthz", "/v1/readyz/", "/v1/metrics", "/docs", "/docs/index.html", "/v1/openapi.json"} {
		require.True(t, isOpenPath(p), p)
	}
	for _, p := range []string{RoutePredictSingle, RoutePredictBatch, "/V1/HEALTHZ", "/docsx", "/v1/predict", ""} {
		require.False(t, isOpenPath(p), p)
	}
}

// String returns everything logged.
func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
