package gateway

import (
	"bytes"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/stretchr/testify/require"

	"github.com/kronos-gateway/kronos-gateway/internal/infer"
	promcatalog "github.com/kronos-gateway/kronos-gateway/prometheus"
)

const metricsGolden = "testdata/metrics.prom"

// timeHistograms are the histograms of durations, whose observations vary
// from run to run; normalized reports them as if every observation fell in
// the first bucket and took no time, so that the golden file pins their
// names, labels, buckets and counts.
var timeHistograms = map[string]bool{
	"kronos_request_duration_seconds": true,
	"kronos_model_inference_seconds":  true,
}

// normalized gathers g and rewrites the time histograms (see
// timeHistograms).
func normalized(g prometheus.Gatherer) prometheus.Gatherer {
	return prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		mfs, err := g.Gather()
		for _, mf := range mfs {
			if !timeHistograms[mf.GetName()] {
				continue
			}
			for _, m := range mf.GetMetric() {
				h := m.GetHistogram()
				h.SampleSum = new(float64)
				for _, b := range h.GetBucket() {
					b.CumulativeCount = h.SampleCount
				}
			}
		}
		return mfs, err
	})
}

// metricsScript serves the scripted sequence of the golden test on a
// fresh App and returns its registry: a 200, a 422, a 404, a 413 and a
// forecast that times out (504).
func metricsScript(t *testing.T) *prometheus.Registry {
	t.Helper()
	reg := prometheus.NewRegistry()
	ib := newInstantBackend()
	o := testOptions()
	// The blocked forecast ends only by this deadline: not a threshold on
	// any measured time.
	o.InferenceTimeout = time.Second
	a, err := New(o, Deps{Backend: ib, Registry: reg})
	require.NoError(t, err)
	// A real listener: fasthttp enforces the body limit while it reads.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	served := make(chan error, 1)
	go func() { served <- a.Serve(ln) }()
	defer func() {
		require.NoError(t, a.Shutdown(time.Minute))
		require.NoError(t, <-served)
	}()
	base := "http://" + ln.Addr().String()
	do := func(t *testing.T, _ *App, method, route string, body []byte, _ map[string]string) (int, http.Header, []byte) {
		t.Helper()
		req, err := http.NewRequest(method, base+route, bytes.NewReader(body))
		require.NoError(t, err)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		return resp.StatusCode, resp.Header, readBody(t, resp)
	}

	ok := baseRequest(32, 4)
	ok["overrides"] = map[string]any{"sample_count": 3}
	code, _, body := do(t, a, http.MethodPost, RoutePredictSingle, mustJSON(t, ok), nil)
	require.Equal(t, http.StatusOK, code, "%s", body)

	bad := baseRequest(8, 2)
	bad["candles"].([]any)[3].(map[string]any)["high"] = 1.0 // below low
	code, _, body = do(t, a, http.MethodPost, RoutePredictSingle, mustJSON(t, bad), nil)
	require.Equal(t, http.StatusUnprocessableEntity, code, "%s", body)

	code, _, body = do(t, a, http.MethodGet, "/v1/predict/nope/123", nil, nil)
	require.Equal(t, http.StatusNotFound, code, "%s", body)

	code, _, body = do(t, a, http.MethodPost, RoutePredictSingle, bytes.Repeat([]byte(" "), int(o.MaxBodyBytes)+1), nil)
	require.Equal(t, http.StatusRequestEntityTooLarge, code, "%s", body)

	ib.block.Store(true)
	code, _, body = do(t, a, http.MethodPost, RoutePredictSingle, mustJSON(t, baseRequest(16, 2)), nil)
	require.Equal(t, http.StatusGatewayTimeout, code, "%s", body)
	require.Equal(t, infer.KindTimeout, envelope(t, body).Kind)
	return reg
}

// TestMetricsGolden pins the exposition that the dashboard and the alert
// rules depend on (testdata/metrics.prom) after a scripted sequence of
// requests, and lints it.
func TestMetricsGolden(t *testing.T) {
	reg := metricsScript(t)
	g := normalized(reg)
	if *update {
		mfs, err := g.Gather()
		require.NoError(t, err)
		var buf bytes.Buffer
		enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
		for _, mf := range mfs {
			require.NoError(t, enc.Encode(mf))
		}
		require.NoError(t, os.WriteFile(metricsGolden, buf.Bytes(), 0o644))
	}
	want, err := os.Open(metricsGolden)
	require.NoError(t, err)
	defer want.Close()
	if err := testutil.GatherAndCompare(g, want); err != nil {
		t.Fatalf("the metrics differ from %s (if the change is intended, regenerate it with "+
			"`go test ./gateway -run TestMetricsGolden -update` and review the diff; keep the names and labels "+
			"that grafana/ and prometheus/rules use):\n%v", metricsGolden, err)
	}
	problems, err := testutil.GatherAndLint(reg)
	require.NoError(t, err)
	require.Empty(t, problems)
}

// TestMetricsCatalog checks that the gateway exposes exactly the metrics
// of the ops catalogue (prometheus.GatewayMetrics, which the dashboard and
// rule tests check against), with its types and labels, except
// kronos_breaker_state, which the Triton breaker registers.
func TestMetricsCatalog(t *testing.T) {
	mfs, err := metricsScript(t).Gather()
	require.NoError(t, err)
	got := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		got[mf.GetName()] = mf
	}
	types := map[promcatalog.Kind]dto.MetricType{
		promcatalog.Counter: dto.MetricType_COUNTER, promcatalog.Gauge: dto.MetricType_GAUGE,
		promcatalog.Histogram: dto.MetricType_HISTOGRAM,
	}
	for name, want := range promcatalog.GatewayMetrics {
		if name == "kronos_breaker_state" {
			require.NotContains(t, got, name, "registered by the Triton breaker, not the gateway")
			continue
		}
		mf, ok := got[name]
		require.True(t, ok, "%s is not exposed", name)
		require.Equal(t, types[want.Kind], mf.GetType(), name)
		require.NotEmpty(t, mf.GetMetric(), name)
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName())
			}
			require.ElementsMatch(t, want.Labels, labels, name)
		}
		delete(got, name)
	}
	require.Empty(t, got, "metrics missing from prometheus/catalog.go")
}

// TestMetricsRouteLabels: route labels are patterns, never raw paths.
func TestMetricsRouteLabels(t *testing.T) {
	reg := prometheus.NewRegistry()
	a, err := New(testOptions(), Deps{Backend: newInstantBackend(), Registry: reg})
	require.NoError(t, err)
	for _, p := range []string{"/docs/swagger-ui.css", "/docs/nope.js", "/v1/x?y=1", "/a/b/c", RouteMetrics} {
		do(t, a, http.MethodGet, p, nil, nil)
	}
	mfs, err := reg.Gather()
	require.NoError(t, err)
	routes := map[string]bool{}
	for _, mf := range mfs {
		if mf.GetName() != "kronos_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "route" {
					routes[l.GetValue()+" "+labelValue(m, "status")] = true
				}
			}
		}
	}
	require.Equal(t, map[string]bool{
		RouteDocsAsset + " 200": true, RouteDocsAsset + " 404": true,
		routeUnmatched + " 404": true, RouteMetrics + " 200": true,
	}, routes)
}

func labelValue(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// TestMetricsRejections: every way a request is turned away before
// inference counts once under its reason.
func TestMetricsRejections(t *testing.T) {
	reg := prometheus.NewRegistry()
	a, err := New(testOptions(), Deps{Backend: newInstantBackend(), Registry: reg})
	require.NoError(t, err)
	body := mustJSON(t, baseRequest(8, 2))
	// (body_too_large is counted in TestMetricsGolden, which needs a real
	// listener for it.)
	a.starting.Store(true)
	code, _, _ := do(t, a, http.MethodPost, RoutePredictSingle, body, nil)
	require.Equal(t, http.StatusServiceUnavailable, code)
	a.starting.Store(false)
	a.draining.Store(true)
	code, _, _ = do(t, a, http.MethodPost, RoutePredictSingle, body, nil)
	require.Equal(t, http.StatusServiceUnavailable, code)

	want := map[string]float64{ReasonBodyTooLarge: 0, ReasonNotReady: 1, ReasonDraining: 1,
		ReasonQueueFull: 0, ReasonRateLimited: 0, ReasonUnauthorized: 0}
	for reason, n := range want {
		require.Equal(t, n, testutil.ToFloat64(a.metrics.rejections.WithLabelValues(reason)), reason)
	}
	require.Equal(t, 6, testutil.CollectAndCount(a.metrics.rejections), "no other reason")
}

// TestMetricsGoldenFileNames guards the golden file against a rename of a
// metric the dashboard uses: each one must appear in it.
func TestMetricsGoldenFileNames(t *testing.T) {
	b, err := os.ReadFile(filepath.Clean(metricsGolden))
	require.NoError(t, err)
	for name := range promcatalog.GatewayMetrics {
		if name == "kronos_breaker_state" {
			continue
		}
		require.True(t, strings.Contains(string(b), "# TYPE "+name+" "), "%s missing from %s", name, metricsGolden)
	}
}
