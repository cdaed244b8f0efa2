package gateway

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/routers/legacy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/kronos-gateway/kronos-gateway/internal/graphs"
	"github.com/kronos-gateway/kronos-gateway/internal/infer"
	"github.com/kronos-gateway/kronos-gateway/internal/onnxlocal"
	pb "github.com/kronos-gateway/kronos-gateway/triton/inferencepb"
	"github.com/kronos-gateway/kronos-gateway/triton/modelconfig"
	"github.com/kronos-gateway/kronos-gateway/triton/tritontest"
)

// These tests run the gateway with KRONOS_BACKEND=triton against the fake
// Triton of triton/tritontest, which serves kronos-nano on the embedded
// backend of each version folder (the window models composed from the
// embedded graphs). They need the ONNX Runtime library, like the other
// tests of real models.

// manifestOf reads the manifest of version v of kronos-nano in repo.
func manifestOf(t testing.TB, repo, v string) *graphs.Manifest {
	t.Helper()
	m, err := graphs.ReadManifest(filepath.Join(repo, graphs.ModelName("kronos-nano", graphs.Prefill), v, "kronos.json"))
	require.NoError(t, err)
	return m
}

// openVersion opens version v of kronos-nano in repo on the embedded
// backend until the end of the test.
func openVersion(t testing.TB, repo, v string) infer.Backend {
	t.Helper()
	b, err := onnxlocal.Open(onnxlocal.Options{RepoDir: repo, Model: "kronos-nano", Version: v, LibPath: testLib(t), IntraOpThreads: 1})
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() })
	return b
}

// chain runs hooks in order; the first error wins.
func chain(hooks ...tritontest.Hook) tritontest.Hook {
	return func(ctx context.Context, method string, req any) error {
		for _, h := range hooks {
			if h == nil {
				continue
			}
			if err := h(ctx, method, req); err != nil {
				return err
			}
		}
		return nil
	}
}

// repositoryConfigs makes a load without a config override read the
// model's config.pbtxt from repo, as Triton does on every load (the fake
// keeps configs in memory): after a new version was exported into the
// repository, its configs are the ones Triton loads.
func repositoryConfigs(repo string) tritontest.Hook {
	return func(_ context.Context, method string, req any) error {
		r, ok := req.(*pb.RepositoryModelLoadRequest)
		if method != "RepositoryModelLoad" || !ok {
			return nil
		}
		if _, ok := r.GetParameters()["config"]; ok {
			return nil
		}
		b, err := os.ReadFile(filepath.Join(repo, r.GetModelName(), "config.pbtxt"))
		if err != nil {
			return status.Errorf(codes.Internal, "failed to load '%s': %v", r.GetModelName(), err)
		}
		cfg, err := modelconfig.Parse(b)
		if err != nil {
			return status.Errorf(codes.Internal, "failed to load '%s': %v", r.GetModelName(), err)
		}
		j, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(cfg)
		if err != nil {
			return status.Errorf(codes.Internal, "%v", err)
		}
		if r.Parameters == nil {
			r.Parameters = map[string]*pb.ModelRepositoryParameter{}
		}
		r.Parameters["config"] = &pb.ModelRepositoryParameter{ParameterChoice: &pb.ModelRepositoryParameter_StringParam{StringParam: string(j)}}
		return nil
	}
}

// failInfer makes every ModelInfer fail with code c.
func failInfer(c codes.Code, msg string) tritontest.Hook {
	return func(_ context.Context, method string, _ any) error {
		if method == "ModelInfer" {
			return status.Error(c, msg)
		}
		return nil
	}
}

// fakeTriton starts a fake Triton serving kronos-nano: each version of
// versions on its backend, loaded at start when ready lists it, and stops
// it at the end of the test (before the backends close).
func fakeTriton(t testing.TB, repo string, versions map[string]infer.Backend, ready []string, opt tritontest.Options) *tritontest.Server {
	t.Helper()
	srv := tritontest.New(opt)
	// In version order: the fake keeps the config of the first version
	// added (Triton has one config.pbtxt per model).
	for _, v := range slices.Sorted(maps.Keys(versions)) {
		require.NoError(t, tritontest.AddKronos(srv, manifestOf(t, repo, v), v, versions[v], modelconfig.Params{}, slices.Contains(ready, v)))
	}
	_, err := srv.Start()
	require.NoError(t, err)
	t.Cleanup(srv.Stop)
	return srv
}

// tritonOptions are the options of a gateway on the Triton backend at
// addr, with repo as its repository (admin listing, fallback).
func tritonOptions(t testing.TB, addr, repo string) Options {
	o := NewOptions()
	o.Host, o.Port = "127.0.0.1", 0
	o.Backend = BackendTriton
	o.Triton.URL = addr
	o.Triton.ReconnectBaseDelay, o.Triton.ReconnectMaxDelay = 10*time.Millisecond, 50*time.Millisecond
	o.ModelRepository, o.ORTLib, o.IntraOpThreads = repo, testLib(t), 1
	o.ShutdownTimeout = 5 * time.Second
	return o
}

// windowVersions returns the versions that ModelInfer calls of
// kronos-nano-window went to, without repeats, in order.
func windowVersions(srv *tritontest.Server) []string {
	var vs []string
	for _, c := range srv.Calls() {
		if c.Model == "kronos-nano-window" && !slices.Contains(vs, c.Version) {
			vs = append(vs, c.Version)
		}
	}
	return vs
}

// TestTritonHotSwap runs the gateway with KRONOS_BACKEND=triton against a
// fake Triton serving version 1 of kronos-nano, exports version 2 (other
// weights) into the repository and loads it through the admin API while 3
// clients keep forecasting: no forecast fails, forecasts in flight keep
// their version, every forecast sent after the load returned carries
// version 2's model_version, readiness stays 200 while Triton loads (the
// model reports the version loading), and the metrics follow. Then the
// other admin answers: unload (every version; readiness 503) and reload,
// a version that is not pinned (422) or absent (404), overrides passed
// through to Triton, all conforming to openapi.yaml.
func TestTritonHotSwap(t *testing.T) {
	testLib(t)
	noLeaks(t)
	repo := hotSwapRepo(t)
	router, err := legacy.NewRouter(loadOpenAPI(t))
	require.NoError(t, err)
	v1, v2 := openVersion(t, repo, "1"), openVersion(t, repo, "2")

	// The first load Triton receives waits until the test has looked at
	// readiness; every load is recorded (model, override keys).
	entered, release := make(chan struct{}), make(chan struct{})
	var held atomic.Bool
	var loadsMu sync.Mutex
	var loads []string
	hold := func(_ context.Context, method string, req any) error {
		r, ok := req.(*pb.RepositoryModelLoadRequest)
		if method != "RepositoryModelLoad" || !ok {
			return nil
		}
		var keys []string
		for k := range r.GetParameters() {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		loadsMu.Lock()
		loads = append(loads, r.GetModelName()+" "+strings.Join(keys, ","))
		loadsMu.Unlock()
		if held.CompareAndSwap(false, true) {
			close(entered)
			<-release
		}
		return nil
	}
	srv := fakeTriton(t, repo, map[string]infer.Backend{"1": v1, "2": v2}, []string{"1"},
		tritontest.Options{Explicit: true, Hook: chain(hold, repositoryConfigs(repo))})

	o := tritonOptions(t, srv.Addr(), repo)
	o.AdminAPIKeys = []string{adminKey}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logs syncBuffer
	base, done := serve(t, ctx, o, &logs, nil)
	cl := httpClient(t)

	var list adminModelsResponse
	b := checkAdmin(t, cl, router, base, adminCase{name: "list", method: http.MethodGet, path: RouteAdminModels,
		key: adminKey, status: http.StatusOK})
	decodeStrict(t, b, &list)
	require.Len(t, list.Models, 1)
	before := list.Models[0]
	require.Equal(t, BackendTriton, before.Backend)
	require.Equal(t, "1", before.Version)
	require.Equal(t, v1.Info().ModelVersion, before.ModelVersion)
	require.True(t, before.Ready, before.Reason)
	require.Len(t, before.Repository, 8, "4 Triton models x 2 versions: %+v", before.Repository)
	for _, e := range before.Repository {
		require.Equal(t, map[string]string{"1": "READY", "2": "UNAVAILABLE"}[e.Version], e.State, "%+v", e)
	}

	// While Triton loads, the model is still ready and says what loads.
	go func() {
		select {
		case <-entered:
		case <-ctx.Done():
			return
		}
		defer close(release)
		resp, err := cl.Get(base + RouteReadyz)
		if err != nil {
			t.Errorf("readiness during the load: %v", err)
			return
		}
		defer resp.Body.Close()
		var r readyResponse
		err = json.NewDecoder(resp.Body).Decode(&r)
		if err != nil || resp.StatusCode != http.StatusOK || len(r.Models) != 1 || r.Models[0].Loading != "2" || !r.Models[0].Ready {
			t.Errorf("readiness during the load: %d %+v %v", resp.StatusCode, r, err)
		}
	}()
	results, lr := swapUnderLoad(t, base, cl, map[string]any{"version": "2"})
	checkSwap(t, results, v1.Info().ModelVersion, v2.Info().ModelVersion)
	require.True(t, held.Load(), "the load was held")
	require.Equal(t, modelRef{Version: "1", ModelVersion: v1.Info().ModelVersion, TokenizerVersion: v1.Info().TokenizerVersion}, lr.Previous)
	require.Equal(t, "2", lr.Model.Version)
	require.Equal(t, v2.Info().ModelVersion, lr.Model.ModelVersion)
	require.True(t, lr.Model.Ready, lr.Model.Reason)
	require.Equal(t, []string{"1", "2"}, windowVersions(srv), "version 1 served before the swap, version 2 after")
	exp := scrape(t, base)
	require.Equal(t, []string{v2.Info().ModelVersion}, modelInfoSeries(exp), "kronos_model_info follows the swap")
	require.Contains(t, exp, `kronos_triton_model_version{model="kronos-nano"} 2`)
	require.Contains(t, exp, `kronos_breaker_state{backend="triton"} 0`)

	forecast := func() (int, []byte) {
		code, _, body := call(t, cl, http.MethodPost, base+RoutePredictSingle, csvRequest(t, 0, 40, 4), "")
		return code, body
	}
	path := func(op string) string { return "/v1/admin/models/kronos-nano/" + op }
	// Unload: every version goes; readiness and forecasts answer 503 until
	// the next load.
	checkAdmin(t, cl, router, base, adminCase{name: "unload a version", method: http.MethodPost, path: path("unload"),
		body: map[string]any{"version": "1"}, key: adminKey, status: http.StatusUnprocessableEntity, field: "version"})
	var ur adminUnloadResponse
	decodeStrict(t, checkAdmin(t, cl, router, base, adminCase{name: "unload", method: http.MethodPost, path: path("unload"),
		key: adminKey, status: http.StatusOK}), &ur)
	require.False(t, ur.Model.Ready)
	var r readyResponse
	code, hdr := getJSON(t, base, RouteReadyz, &r)
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.NotEmpty(t, hdr.Get("Retry-After"))
	code, body := forecast()
	require.Equal(t, http.StatusServiceUnavailable, code, "%s", body)

	decodeStrict(t, checkAdmin(t, cl, router, base, adminCase{name: "reload", method: http.MethodPost, path: path("load"),
		key: adminKey, status: http.StatusOK}), &lr)
	require.Equal(t, "2", lr.Model.Version)
	code, _ = getJSON(t, base, RouteReadyz, &r)
	require.Equal(t, http.StatusOK, code)
	code, body = forecast()
	require.Equal(t, http.StatusOK, code, "%s", body)

	// Version 1 is ready too (latest{2}), but new sessions pin 2.
	checkAdmin(t, cl, router, base, adminCase{name: "version not pinned", method: http.MethodPost, path: path("load"),
		body: map[string]any{"version": "1"}, key: adminKey, status: http.StatusUnprocessableEntity})
	checkAdmin(t, cl, router, base, adminCase{name: "version absent", method: http.MethodPost, path: path("load"),
		body: map[string]any{"version": "3"}, key: adminKey, status: http.StatusNotFound})

	// Overrides reach Triton: a config (JSON, proto field names) as the
	// "config" parameter, files as "file:" parameters (this fake refuses
	// files: INVALID_ARGUMENT, 422).
	cfg, err := modelconfig.Build(manifestOf(t, repo, "2"), modelconfig.Window, modelconfig.CPU, modelconfig.Params{})
	require.NoError(t, err)
	cfgJSON, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(cfg)
	require.NoError(t, err)
	loadsMu.Lock()
	loads = nil
	loadsMu.Unlock()
	checkAdmin(t, cl, router, base, adminCase{name: "config override", method: http.MethodPost, path: path("load"),
		body: map[string]any{"version": "2", "overrides": map[string]any{"kronos-nano-window": map[string]any{"config": json.RawMessage(cfgJSON)}}},
		key:  adminKey, status: http.StatusOK})
	loadsMu.Lock()
	require.Equal(t, []string{"kronos-nano-encoder ", "kronos-nano-decoder ", "kronos-nano-window config", "kronos-nano-window_s2 "}, loads)
	loadsMu.Unlock()
	checkAdmin(t, cl, router, base, adminCase{name: "file override", method: http.MethodPost, path: path("load"),
		body: map[string]any{"overrides": map[string]any{"kronos-nano-window": map[string]any{
			"config": json.RawMessage(cfgJSON), "files": map[string]any{"3/model.onnx": []byte("onnx")}}}},
		key: adminKey, status: http.StatusUnprocessableEntity})
	checkAdmin(t, cl, router, base, adminCase{name: "override of another model", method: http.MethodPost, path: path("load"),
		body: map[string]any{"overrides": map[string]any{"kronos-nano-prefill": map[string]any{}}},
		key:  adminKey, status: http.StatusUnprocessableEntity, field: "overrides.kronos-nano-prefill"})
	checkAdmin(t, cl, router, base, adminCase{name: "bad config", method: http.MethodPost, path: path("load"),
		body: map[string]any{"overrides": map[string]any{"kronos-nano-window": map[string]any{"config": map[string]any{"max_batch_sizes": 8}}}},
		key:  adminKey, status: http.StatusUnprocessableEntity, field: "overrides.kronos-nano-window.config"})
	code, body = forecast()
	require.Equal(t, http.StatusOK, code, "%s", body)

	cancel()
	require.NoError(t, <-done)
}

// greedyRequest is a kronos-nano request decoded greedily (top_k 1).
func greedyRequest(t testing.TB) map[string]any {
	r := csvRequest(t, 0, 120, 8)
	r["overrides"] = map[string]any{"top_k": 1, "seed": 7, "sample_count": 1}
	return r
}

// TestTritonParity: the gateway on the Triton backend (fake Triton serving
// the committed kronos-nano) gives the embedded backend's forecast for a
// greedy request.
func TestTritonParity(t *testing.T) {
	emb := embeddedBackend(t)
	noLeaks(t)
	repo := filepath.Join(moduleRoot, "model_repository")
	srv := fakeTriton(t, repo, map[string]infer.Backend{"1": emb}, []string{"1"}, tritontest.Options{})
	o := tritonOptions(t, srv.Addr(), repo)
	tv, err := openTriton(context.Background(), o, prometheus.NewRegistry(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	defer tv.Close()
	require.Equal(t, "triton", tv.Info().Backend)

	want, _ := predictOK(t, newTestApp(t, o, emb), greedyRequest(t))
	got, _ := predictOK(t, newTestApp(t, o, tv), greedyRequest(t))
	require.Equal(t, want.ModelVersion, got.ModelVersion)
	require.Equal(t, want.Prediction, got.Prediction)
	require.NotEmpty(t, srv.Calls(), "the forecast ran on Triton")
}

// TestTritonFaults maps Triton's failures end to end at the HTTP level: a
// full Triton queue is 429 with Retry-After (the breaker ignores it); a
// killed Triton gives 503s until the breaker opens, then 503 with the rest
// of the open period as Retry-After (readiness 503 too), without reaching
// Triton; after Triton restarts, forecasts recover.
func TestTritonFaults(t *testing.T) {
	emb := embeddedBackend(t)
	noLeaks(t)
	repo := filepath.Join(moduleRoot, "model_repository")
	srv := fakeTriton(t, repo, map[string]infer.Backend{"1": emb}, []string{"1"}, tritontest.Options{})
	o := tritonOptions(t, srv.Addr(), repo)
	o.Breaker.ConsecutiveFailures, o.Breaker.OpenTimeout = 2, 2*time.Second
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logs syncBuffer
	base, done := serve(t, ctx, o, &logs, nil)
	cl := httpClient(t)
	forecast := func() (int, http.Header, errorBody) {
		code, hdr, body := call(t, cl, http.MethodPost, base+RoutePredictSingle, csvRequest(t, 0, 40, 4), "")
		if code == http.StatusOK {
			return code, hdr, errorBody{}
		}
		return code, hdr, envelope(t, body)
	}
	code, _, _ := forecast()
	require.Equal(t, http.StatusOK, code)

	srv.SetHook(failInfer(codes.Unavailable, "Exceeds maximum queue size"))
	for range 3 { // more than the breaker's failures: it must not count them
		code, hdr, e := forecast()
		require.Equal(t, http.StatusTooManyRequests, code, "%+v", e)
		require.Equal(t, infer.KindOverloaded, e.Kind)
		require.Equal(t, "1", hdr.Get("Retry-After"))
	}
	require.Contains(t, scrape(t, base), `kronos_breaker_state{backend="triton"} 0`)
	srv.SetHook(nil)

	addr := srv.Addr()
	srv.Stop()
	var open bool
	for i := 0; i < 20 && !open; i++ {
		code, hdr, e := forecast()
		require.Equal(t, http.StatusServiceUnavailable, code, "%+v", e)
		require.Equal(t, infer.KindUnavailable, e.Kind)
		ra, err := strconv.Atoi(hdr.Get("Retry-After"))
		require.NoError(t, err, "Retry-After %q", hdr.Get("Retry-After"))
		if open = strings.Contains(e.Message, "circuit breaker"); open {
			require.True(t, ra >= 1 && ra <= 2, "Retry-After %d: the rest of the 2s open period", ra)
		}
	}
	require.True(t, open, "the breaker opened")
	calls := len(srv.Calls())
	var r readyResponse
	code, hdr := getJSON(t, base, RouteReadyz, &r)
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Equal(t, readyUnavailable, r.Status)
	require.NotEmpty(t, hdr.Get("Retry-After"))
	require.Regexp(t, `kronos_breaker_rejections_total\{action="rejected",backend="triton"\} [1-9]`, scrape(t, base))

	_, err := srv.StartAt(addr)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		code, _, _ := forecast()
		return code == http.StatusOK
	}, testWait, 50*time.Millisecond, "forecasts recover after Triton restarts")
	require.Greater(t, len(srv.Calls()), calls)
	code, _ = getJSON(t, base, RouteReadyz, &r)
	require.Equal(t, http.StatusOK, code)

	cancel()
	require.NoError(t, <-done)
}

// TestTritonFallback: with KRONOS_TRITON_FALLBACK=embedded, forecasts
// succeed on the embedded backend once the breaker has opened on a killed
// Triton, and readiness stays 200.
func TestTritonFallback(t *testing.T) {
	emb := embeddedBackend(t)
	noLeaks(t)
	repo := filepath.Join(moduleRoot, "model_repository")
	srv := fakeTriton(t, repo, map[string]infer.Backend{"1": emb}, []string{"1"}, tritontest.Options{})
	o := tritonOptions(t, srv.Addr(), repo)
	o.TritonFallback = BackendEmbedded
	o.Breaker.ConsecutiveFailures, o.Breaker.OpenTimeout = 1, time.Hour
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logs syncBuffer
	base, done := serve(t, ctx, o, &logs, nil)
	cl := httpClient(t)
	want, _, body := call(t, cl, http.MethodPost, base+RoutePredictSingle, greedyRequest(t), "")
	require.Equal(t, http.StatusOK, want, "%s", body)
	var onTriton predictResponse
	require.NoError(t, json.Unmarshal(body, &onTriton))

	srv.Stop()
	code, _, body := call(t, cl, http.MethodPost, base+RoutePredictSingle, greedyRequest(t), "")
	if code != http.StatusOK { // the call that opens the breaker fails
		require.Equal(t, http.StatusServiceUnavailable, code, "%s", body)
		code, _, body = call(t, cl, http.MethodPost, base+RoutePredictSingle, greedyRequest(t), "")
	}
	require.Equal(t, http.StatusOK, code, "%s", body)
	var onFallback predictResponse
	require.NoError(t, json.Unmarshal(body, &onFallback))
	require.Equal(t, onTriton.Prediction, onFallback.Prediction, "the fallback runs the same model")
	require.Regexp(t, `kronos_breaker_rejections_total\{action="fallback",backend="triton"\} [1-9]`, scrape(t, base))
	var r readyResponse
	code, _ = getJSON(t, base, RouteReadyz, &r)
	require.Equal(t, http.StatusOK, code, "%+v", r)

	cancel()
	require.NoError(t, <-done)
}
