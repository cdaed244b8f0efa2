package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/kronos-gateway/kronos-gateway/internal/infer"
)

// getJSON GETs base+route and decodes the body into v.
func getJSON(t *testing.T, base, route string, v any) (int, http.Header) {
	t.Helper()
	resp, err := http.Get(base + route)
	require.NoError(t, err)
	body := readBody(t, resp)
	require.NoError(t, json.Unmarshal(body, v), "%s", body)
	return resp.StatusCode, resp.Header
}

// TestRunServesWhileLoading: Run listens before the model is loaded;
// liveness answers 200, readiness 503 "loading" with Retry-After, forecasts
// 503 (kind unavailable, counted as rejection not_ready), and the metrics
// say the backend is not ready. Once the model is in, all of it turns.
func TestRunServesWhileLoading(t *testing.T) {
	release := make(chan struct{})
	fb := newFakeBackend()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logs syncBuffer
	o := serverOptions()
	o.Model = fb.info.Name
	base, done := serveLoading(t, ctx, o, &logs, func(Options) (infer.Backend, error) {
		<-release
		return fb, nil
	})

	var h healthResponse
	code, _ := getJSON(t, base, RouteHealthz, &h)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "ok", h.Status)

	var r readyResponse
	code, hdr := getJSON(t, base, RouteReadyz, &r)
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Equal(t, "5", hdr.Get("Retry-After"))
	require.NotEmpty(t, hdr.Get(HeaderRequestID))
	require.Equal(t, readyLoading, r.Status)
	require.False(t, r.ModelLoaded)
	require.Nil(t, r.Device)
	require.Equal(t, "kronos-fake", r.Model)
	require.Empty(t, r.ModelVersion)

	resp, err := http.Post(base+RoutePredictSingle, "application/json", strings.NewReader(string(mustJSON(t, baseRequest(4, 2)))))
	require.NoError(t, err)
	body := readBody(t, resp)
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, "%s", body)
	require.Equal(t, "5", resp.Header.Get("Retry-After"))
	require.Equal(t, infer.KindUnavailable, envelope(t, body).Kind)

	var d detailedHealth
	code, _ = getJSON(t, base, RouteHealthzDetailed, &d)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "degraded", d.Status)
	require.Equal(t, readyLoading, d.Checks.Model.Status)
	require.False(t, d.Checks.Model.Loaded)
	require.Nil(t, d.Checks.Model.Version)

	metrics := scrape(t, base)
	require.Contains(t, metrics, `kronos_backend_ready{backend="embedded",model="kronos-fake"} 0`)
	require.Contains(t, metrics, `kronos_rejections_total{reason="not_ready"} 1`)
	require.NotContains(t, metrics, "kronos_model_info{", "no model is loaded yet")
	require.Contains(t, metrics, `kronos_requests_total{outcome="unavailable",route="/v1/readyz",status="503"} 1`)
	require.Contains(t, metrics, "process_resident_memory_bytes", "Run's registry has the process collector")
	require.Contains(t, metrics, "go_goroutines", "Run's registry has the Go collector")

	close(release)
	waitReady(t, base, done)
	r = readyResponse{}
	code, hdr = getJSON(t, base, RouteReadyz, &r)
	require.Equal(t, http.StatusOK, code)
	require.Empty(t, hdr.Get("Retry-After"))
	require.Equal(t, readyResponse{Status: readyOK, ModelLoaded: true, Device: ptr("cpu"), Model: "kronos-fake",
		ModelVersion: "fake/Kronos-fake@0000", TokenizerVersion: "fake/Tokenizer@0000", Backend: "fake",
		Models: []modelState{{Model: "kronos-fake", ModelVersion: "fake/Kronos-fake@0000",
			TokenizerVersion: "fake/Tokenizer@0000", Backend: "fake", Device: "cpu", Ready: true}}}, r)
	metrics = scrape(t, base)
	require.Contains(t, metrics, `kronos_backend_ready{backend="fake",model="kronos-fake"} 1`)
	require.NotContains(t, metrics, `kronos_backend_ready{backend="embedded"`, "the placeholder's series is gone")
	require.Contains(t, metrics, `kronos_model_info{backend="fake",device="cpu",model="kronos-fake",model_version="fake/Kronos-fake@0000",tokenizer_version="fake/Tokenizer@0000"} 1`)
	cancel()
	require.NoError(t, <-done)
	require.True(t, fb.closed.Load())
	require.Len(t, logs.find(t, "model loaded"), 1)
}

// TestRunLoadFailsWhileServing: a model that fails to load stops the
// server with the error, after it served probes.
func TestRunLoadFailsWhileServing(t *testing.T) {
	release := make(chan struct{})
	var logs syncBuffer
	base, done := serveLoading(t, context.Background(), serverOptions(), &logs, func(Options) (infer.Backend, error) {
		<-release
		return nil, infer.Errorf(infer.KindNotFound, "no such model")
	})
	var r readyResponse
	code, _ := getJSON(t, base, RouteReadyz, &r)
	require.Equal(t, http.StatusServiceUnavailable, code)
	close(release)
	err := <-done
	require.ErrorIs(t, err, infer.ErrNotFound)
	require.Len(t, logs.find(t, "loading the models failed"), 1)
	_, err = http.Get(base + RouteHealthz)
	require.Error(t, err, "the listener is closed")
}

func ptr[T any](v T) *T { return &v }

// scrape returns the text exposition of base's /v1/metrics.
func scrape(t *testing.T, base string) string {
	t.Helper()
	resp, err := http.Get(base + RouteMetrics)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	return string(readBody(t, resp))
}

// readyBackend is a fake backend with a readiness check (like Triton's).
type readyBackend struct {
	*fakeBackend
	err error
}

func (b readyBackend) Ready(context.Context) error { return b.err }

// TestReadyz covers readiness without Run: ready, a backend whose own check
// fails, and draining.
func TestReadyz(t *testing.T) {
	get := func(t *testing.T, a *App) (int, http.Header, readyResponse) {
		code, hdr, body := do(t, a, http.MethodGet, RouteReadyz, nil, nil)
		var r readyResponse
		require.NoError(t, json.Unmarshal(body, &r), "%s", body)
		return code, hdr, r
	}
	t.Run("ready", func(t *testing.T) {
		a := newTestApp(t, testOptions(), readyBackend{newFakeBackend(), nil})
		code, hdr, r := get(t, a)
		require.Equal(t, http.StatusOK, code)
		require.Empty(t, hdr.Get("Retry-After"))
		require.Equal(t, readyOK, r.Status)
		require.True(t, r.ModelLoaded)
		require.Equal(t, "cpu", *r.Device)
		require.Nil(t, r.DeviceWarning)
		require.Empty(t, r.Reason)
		require.Equal(t, 1.0, testutil.ToFloat64(a.metrics.backendReady.WithLabelValues("fake", "kronos-fake")))
	})
	t.Run("backend down", func(t *testing.T) {
		a := newTestApp(t, testOptions(), readyBackend{newFakeBackend(),
			infer.Errorf(infer.KindUnavailable, "triton: server not ready")})
		code, hdr, r := get(t, a)
		require.Equal(t, http.StatusServiceUnavailable, code)
		require.Equal(t, "5", hdr.Get("Retry-After"))
		require.Equal(t, readyUnavailable, r.Status)
		require.True(t, r.ModelLoaded)
		require.Contains(t, r.Reason, "triton: server not ready")
		require.False(t, r.Models[0].Ready)
		require.Equal(t, 0.0, testutil.ToFloat64(a.metrics.backendReady.WithLabelValues("fake", "kronos-fake")))
		require.Equal(t, 1.0, testutil.ToFloat64(a.metrics.requests.WithLabelValues(RouteReadyz, "503", "unavailable")))
	})
	t.Run("draining", func(t *testing.T) {
		a := newTestApp(t, testOptions(), newFakeBackend())
		a.draining.Store(true)
		code, _, r := get(t, a)
		require.Equal(t, http.StatusServiceUnavailable, code)
		require.Equal(t, readyDraining, r.Status)
		code, _, _ = do(t, a, http.MethodGet, RouteHealthz, nil, nil)
		require.Equal(t, http.StatusOK, code, "liveness stays 200 while draining")
	})
}

// TestHealthzDetailed checks the report of the real process: its shape,
// and that the numbers come from /proc and the repository's filesystem.
func TestHealthzDetailed(t *testing.T) {
	o := testOptions()
	o.ModelRepository = t.TempDir()
	a := newTestApp(t, o, newFakeBackend())
	code, _, body := do(t, a, http.MethodGet, RouteHealthzDetailed, nil, nil)
	require.Equal(t, http.StatusOK, code, "%s", body)
	var d detailedHealth
	require.NoError(t, json.Unmarshal(body, &d))
	ts, err := time.Parse(time.RFC3339Nano, d.Timestamp)
	require.NoError(t, err)
	require.Equal(t, time.UTC, ts.Location())
	require.GreaterOrEqual(t, d.UptimeSeconds, 0.0)
	require.Equal(t, modelCheck{Status: checkOK, Loaded: true, Version: ptr("fake/Kronos-fake@0000"), Name: "kronos-fake"},
		d.Checks.Model)
	if _, err := os.Stat("/proc/self/status"); err == nil {
		require.Empty(t, d.Checks.Memory.Error)
		require.Greater(t, d.Checks.Memory.ProcessMB, 1.0)
		require.Greater(t, d.Checks.Memory.SystemTotalMB, d.Checks.Memory.ProcessMB)
	}
	require.Empty(t, d.Checks.Disk.Error)
	require.Equal(t, o.ModelRepository, d.Checks.Disk.Path)
	require.Greater(t, d.Checks.Disk.TotalGB, 0.0)
	want := "healthy"
	if d.Checks.Memory.Status != checkOK || d.Checks.Disk.Status != checkOK {
		want = "degraded" // a nearly full build machine
	}
	require.Equal(t, want, d.Status)

	o.ModelRepository = filepath.Join(t.TempDir(), "missing")
	a = newTestApp(t, o, newFakeBackend())
	_, _, body = do(t, a, http.MethodGet, RouteHealthzDetailed, nil, nil)
	require.NoError(t, json.Unmarshal(body, &d))
	require.Equal(t, checkUnknown, d.Checks.Disk.Status)
	require.Contains(t, d.Checks.Disk.Error, "no such file")
	require.Equal(t, "degraded", d.Status)
}

// TestMemoryStatus reads a fake /proc: the 90 % warning threshold and
// malformed files.
func TestMemoryStatus(t *testing.T) {
	write := func(t *testing.T, status, meminfo string) string {
		dir := t.TempDir()
		require.NoError(t, os.MkdirAll(filepath.Join(dir, "self"), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(dir, "self", "status"), []byte(status), 0o644))
		require.NoError(t, os.WriteFile(filepath.Join(dir, "meminfo"), []byte(meminfo), 0o644))
		return dir
	}
	status := "Name:\tkronos-gateway\nVmPeak:\t  999999 kB\nVmRSS:\t  204800 kB\n"
	cases := []struct {
		name, status, meminfo string
		want                  memoryCheck
		wantErr               string
	}{
		{"ok", status, "MemTotal:  1048576 kB\nMemFree: 1 kB\nMemAvailable:  524288 kB\n",
			memoryCheck{Status: checkOK, ProcessMB: 200, SystemTotalMB: 1024, SystemAvailableMB: 512, SystemPercent: 50}, ""},
		{"89.9 %", status, "MemTotal: 1000000 kB\nMemAvailable: 100001 kB\n",
			memoryCheck{Status: checkOK, ProcessMB: 200, SystemTotalMB: 976.6, SystemAvailableMB: 97.7, SystemPercent: 90}, ""},
		{"90 %", status, "MemTotal: 1000000 kB\nMemAvailable: 100000 kB\n",
			memoryCheck{Status: checkWarning, ProcessMB: 200, SystemTotalMB: 976.6, SystemAvailableMB: 97.7, SystemPercent: 90}, ""},
		{"no VmRSS", "Name: x\n", "MemTotal: 1 kB\nMemAvailable: 1 kB\n", memoryCheck{}, "no VmRSS"},
		{"no MemAvailable", status, "MemTotal: 1 kB\n", memoryCheck{}, "no MemAvailable"},
		{"garbage", status, "MemTotal: lots kB\nMemAvailable: 1 kB\n", memoryCheck{}, "bad MemTotal"},
		{"available above total", status, "MemTotal: 1 kB\nMemAvailable: 2 kB\n", memoryCheck{}, "implausible"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := memoryStatus(write(t, c.status, c.meminfo))
			if c.wantErr != "" {
				require.Equal(t, checkUnknown, got.Status)
				require.Contains(t, got.Error, c.wantErr)
				return
			}
			require.Equal(t, c.want, got)
		})
	}
	require.Contains(t, memoryStatus(t.TempDir()).Error, "no such file")
}

// TestDiskUsage: the 90 % warning threshold and a filesystem without size.
func TestDiskUsage(t *testing.T) {
	const gib = 1 << 30
	require.Equal(t, diskCheck{Status: checkOK, Path: "/m", TotalGB: 100, FreeGB: 10.5, Percent: 89.5},
		diskUsage("/m", 100*gib, gib*21/2))
	require.Equal(t, diskCheck{Status: checkWarning, Path: "/m", TotalGB: 100, FreeGB: 10, Percent: 90},
		diskUsage("/m", 100*gib, 10*gib))
	require.Equal(t, checkUnknown, diskUsage("/m", 0, 0).Status)
	require.Equal(t, checkUnknown, diskUsage("/m", 1, 2).Status)
}
