package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/kronos-gateway/kronos-gateway/export"
	"github.com/kronos-gateway/kronos-gateway/triton/modelconfig"
)

// adminKey and clientKey are the keys of the admin tests.
const (
	adminKey  = "admin-key-1"
	clientKey = "client-key-1"
)

// hotSwapRepo copies the committed kronos-nano (version 1) into a
// temporary repository and exports the tiny conformance checkpoint into it
// as version 2 of kronos-nano (other weights, so another model_version),
// with version 2's Triton models and configs (export.WriteTritonModels),
// as an operator would before a hot swap.
func hotSwapRepo(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(moduleRoot, "model_repository")
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil || !strings.HasPrefix(rel, "kronos-nano-") {
			return err
		}
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dir, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, rel), b, 0o644)
	})
	require.NoError(t, err)
	tiny := filepath.Join(moduleRoot, "testdata", "conformance", "models", "tiny")
	ctx := context.Background()
	m, opt, err := export.Job{
		Tokenizer: filepath.Join(tiny, "tokenizer"),
		Predictor: filepath.Join(tiny, "predictor"),
		Options:   export.Options{Dir: dir, Name: "kronos-nano", Version: "2", MaxContext: 64},
	}.Run(ctx)
	require.NoError(t, err)
	require.NoError(t, export.WriteTritonModels(ctx, m, opt, modelconfig.Params{}))
	return dir
}

// httpClient is a client of its own, so that its idle connections can be
// closed before the goroutine check.
func httpClient(t testing.TB) *http.Client {
	c := &http.Client{Transport: &http.Transport{}}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// call sends a request with an optional JSON body and key (X-API-Key) and
// returns the status, headers and body.
func call(t testing.TB, c *http.Client, method, url string, body any, key string) (int, http.Header, []byte) {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, ok := body.([]byte)
		if !ok {
			b = mustJSON(t, body)
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, r)
	require.NoError(t, err)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set(HeaderAPIKey, key)
	}
	resp, err := c.Do(req)
	require.NoError(t, err)
	return resp.StatusCode, resp.Header, readBody(t, resp)
}

// decodeStrict decodes b into v, rejecting unknown keys.
func decodeStrict(t testing.TB, b []byte, v any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(v), "%s", b)
}

// noLeaks checks at the end of the test (after every other cleanup) that
// the test left no goroutine behind.
func noLeaks(t *testing.T) {
	opts := []goleak.Option{goleak.IgnoreCurrent(),
		// fasthttp's date-header ticker, started once per process.
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
		// The worker pool's cleaner of a stopped fasthttp server sleeps
		// out its 10 s period before it sees the stop.
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2")}
	t.Cleanup(func() {
		http.DefaultClient.CloseIdleConnections()
		goleak.VerifyNone(t, opts...)
	})
}

// swapResult is one forecast of swapUnderLoad.
type swapResult struct {
	status    int
	version   string
	afterSwap bool
	body      string
}

// swapUnderLoad sends forecasts of model kronos-nano from 3 clients to
// base while it loads version 2 through POST /v1/admin/models/kronos-nano/load,
// and returns every forecast and the load's answer. Each client sends
// until it got 2 answers to requests sent after the load returned
// (bounded).
func swapUnderLoad(t *testing.T, base string, c *http.Client, load any) ([]swapResult, adminLoadResponse) {
	t.Helper()
	body := mustJSON(t, csvRequest(t, 0, 40, 4))
	var (
		swapDone atomic.Bool
		mu       sync.Mutex
		results  []swapResult
		warm     sync.WaitGroup
		wg       sync.WaitGroup
	)
	const clients, minAfter = 3, 2
	warm.Add(clients)
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			after := 0
			for n := 0; n < 200 && after < minAfter; n++ {
				sentAfter := swapDone.Load()
				status, _, b := call(t, c, http.MethodPost, base+RoutePredictSingle, body, "")
				var r predictResponse
				_ = json.Unmarshal(b, &r)
				mu.Lock()
				results = append(results, swapResult{status, r.ModelVersion, sentAfter, string(b)})
				mu.Unlock()
				if n == 0 {
					warm.Done()
				}
				if sentAfter {
					after++
				}
			}
		}()
	}
	warm.Wait() // every client has been answered on version 1
	status, _, b := call(t, c, http.MethodPost, base+"/v1/admin/models/kronos-nano/load", load, adminKey)
	swapDone.Store(true)
	wg.Wait()
	require.Equal(t, http.StatusOK, status, "%s", b)
	var lr adminLoadResponse
	decodeStrict(t, b, &lr)
	return results, lr
}

// checkSwap checks the forecasts of swapUnderLoad: none failed, every one
// sent after the load returned ran on the new weights, and some ran on the
// old ones.
func checkSwap(t *testing.T, results []swapResult, oldVersion, newVersion string) {
	t.Helper()
	var before, after int
	for _, r := range results {
		require.Equal(t, http.StatusOK, r.status, "%s", r.body)
		if r.afterSwap {
			after++
			require.Equal(t, newVersion, r.version, "a forecast sent after the swap")
		} else if r.version == oldVersion {
			before++
		}
	}
	require.GreaterOrEqual(t, after, 6)
	require.Positive(t, before, "some forecasts ran on the old version")
}

// modelInfoSeries returns the model_version labels of kronos_model_info in
// an exposition.
func modelInfoSeries(exposition string) []string {
	var out []string
	for _, l := range strings.Split(exposition, "\n") {
		if strings.HasPrefix(l, "kronos_model_info{") {
			_, rest, _ := strings.Cut(l, `model_version="`)
			v, _, _ := strings.Cut(rest, `"`)
			out = append(out, v)
		}
	}
	return out
}

// adminCase is one admin exchange checked for its status and against the
// OpenAPI document.
type adminCase struct {
	name   string
	method string
	path   string
	body   any
	key    string
	status int
	// field is the field an invalid-input error names.
	field string
}

// checkAdmin sends c and checks its status, its error field and its
// conformance with openapi.yaml.
func checkAdmin(t *testing.T, cl *http.Client, router routers.Router, base string, c adminCase) []byte {
	t.Helper()
	var raw []byte
	if c.body != nil {
		if b, ok := c.body.([]byte); ok {
			raw = b
		} else {
			raw = mustJSON(t, c.body)
		}
	}
	req, err := http.NewRequest(c.method, base+c.path, bytes.NewReader(raw))
	require.NoError(t, err)
	if raw != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.key != "" {
		req.Header.Set(HeaderAPIKey, c.key)
	}
	resp, err := cl.Do(req)
	require.NoError(t, err)
	body := readBody(t, resp)
	require.Equal(t, c.status, resp.StatusCode, "%s: %s", c.name, body)
	if c.field != "" {
		require.Equal(t, c.field, envelope(t, body).Field, "%s: %s", c.name, body)
	}
	checkConformance(t, router, conformanceCase{name: c.name, method: c.method, path: c.path, body: raw,
		status: c.status, validRequest: c.status == http.StatusOK}, req, resp, body)
	return body
}

// TestAdminHotSwapEmbedded swaps kronos-nano version 1 for version 2 (the
// tiny checkpoint exported into a copy of the repository) through the
// admin API while 3 clients keep forecasting on the real server: no
// forecast fails, every one sent after the load returned carries version
// 2's model_version, kronos_model_info follows, and the admin API answers
// as documented (OpenAPI) before and after.
func TestAdminHotSwapEmbedded(t *testing.T) {
	lib := testLib(t)
	noLeaks(t)
	repo := hotSwapRepo(t)
	router, err := legacy.NewRouter(loadOpenAPI(t))
	require.NoError(t, err)

	o := NewOptions()
	o.Host, o.Port = "127.0.0.1", 0
	o.ModelRepository, o.ModelVersion, o.ORTLib, o.IntraOpThreads = repo, "1", lib, 1
	o.AdminAPIKeys = []string{adminKey}
	o.MaxConcurrency, o.QueueSize = 2, 16
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
	v1 := list.Models[0]
	require.Equal(t, "kronos-nano", v1.Name)
	require.True(t, v1.Default)
	require.True(t, v1.Ready, v1.Reason)
	require.Equal(t, "1", v1.Version)
	require.Equal(t, BackendEmbedded, v1.Backend)
	require.Len(t, v1.Repository, 2)
	require.Equal(t, repositoryEntry{Name: "kronos-nano", Version: "1", State: stateReady, ModelVersion: v1.ModelVersion},
		v1.Repository[0])
	require.Equal(t, "2", v1.Repository[1].Version)
	require.Equal(t, stateUnavailable, v1.Repository[1].State)
	require.NotEqual(t, v1.ModelVersion, v1.Repository[1].ModelVersion)
	v2ModelVersion := v1.Repository[1].ModelVersion

	results, lr := swapUnderLoad(t, base, cl, map[string]any{"version": "2"})
	checkSwap(t, results, v1.ModelVersion, v2ModelVersion)
	require.Equal(t, modelRef{Version: "1", ModelVersion: v1.ModelVersion, TokenizerVersion: v1.TokenizerVersion}, lr.Previous)
	require.Equal(t, "2", lr.Model.Version)
	require.Equal(t, v2ModelVersion, lr.Model.ModelVersion)
	require.True(t, lr.Model.Ready)
	require.Empty(t, lr.Model.Loading)
	require.Equal(t, stateReady, lr.Model.Repository[1].State)
	require.Equal(t, []string{v2ModelVersion}, modelInfoSeries(scrape(t, base)), "kronos_model_info follows the swap")
	require.Len(t, logs.find(t, "admin: model swapped"), 1)

	var ready readyResponse
	code, _ := getJSON(t, base, RouteReadyz, &ready)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, v2ModelVersion, ready.ModelVersion)

	// The unload of the only version is refused, the errors are mapped
	// once, and every answer conforms.
	for _, c := range []adminCase{
		{name: "unload the last version", method: http.MethodPost, path: "/v1/admin/models/kronos-nano/unload",
			key: adminKey, status: http.StatusUnprocessableEntity},
		{name: "unload a version not loaded", method: http.MethodPost, path: "/v1/admin/models/kronos-nano/unload",
			body: map[string]any{"version": "1"}, key: adminKey, status: http.StatusNotFound},
		{name: "load a missing version", method: http.MethodPost, path: "/v1/admin/models/kronos-nano/load",
			body: map[string]any{"version": "7"}, key: adminKey, status: http.StatusNotFound},
		{name: "load an unknown model", method: http.MethodPost, path: "/v1/admin/models/kronos-large/load",
			body: map[string]any{"version": "1"}, key: adminKey, status: http.StatusNotFound},
		{name: "misspelt key", method: http.MethodPost, path: "/v1/admin/models/kronos-nano/load",
			body: map[string]any{"verison": "1"}, key: adminKey, status: http.StatusUnprocessableEntity, field: "verison"},
		{name: "bad version", method: http.MethodPost, path: "/v1/admin/models/kronos-nano/load",
			body: map[string]any{"version": "01"}, key: adminKey, status: http.StatusUnprocessableEntity, field: "version"},
		{name: "version of the wrong type", method: http.MethodPost, path: "/v1/admin/models/kronos-nano/load",
			body: map[string]any{"version": 2}, key: adminKey, status: http.StatusUnprocessableEntity, field: "version"},
		{name: "not JSON", method: http.MethodPost, path: "/v1/admin/models/kronos-nano/load",
			body: []byte(`{"version":`), key: adminKey, status: http.StatusUnprocessableEntity},
		{name: "overrides on the embedded backend", method: http.MethodPost, path: "/v1/admin/models/kronos-nano/load",
			body: map[string]any{"overrides": map[string]any{"kronos-nano-window": map[string]any{"config": map[string]any{}}}},
			key:  adminKey, status: http.StatusUnprocessableEntity, field: "overrides"},
		{name: "no key", method: http.MethodGet, path: RouteAdminModels, status: http.StatusUnauthorized},
		{name: "wrong key", method: http.MethodPost, path: "/v1/admin/models/kronos-nano/load",
			key: "nope", status: http.StatusUnauthorized},
	} {
		checkAdmin(t, cl, router, base, c)
	}
	// Loading the version again (a reload) swaps in a fresh backend.
	b = checkAdmin(t, cl, router, base, adminCase{name: "reload", method: http.MethodPost,
		path: "/v1/admin/models/kronos-nano/load", body: map[string]any{}, key: adminKey, status: http.StatusOK})
	decodeStrict(t, b, &lr)
	require.Equal(t, "2", lr.Model.Version, "no version: the highest one")
	require.Equal(t, "2", lr.Previous.Version)

	cancel()
	require.NoError(t, <-done)
}

// TestAdminAuth: without admin keys the admin routes do not exist (404,
// or 401 for a caller without a client key when client keys are
// configured, as for every unknown path); with them, client keys do not
// open them, and admin keys do not open the forecast routes. Admin keys
// must differ from client keys.
func TestAdminAuth(t *testing.T) {
	o := testOptions()
	a := newTestApp(t, o, newInstantBackend())
	code, _, _ := do(t, a, http.MethodGet, RouteAdminModels, nil, nil)
	require.Equal(t, http.StatusNotFound, code, "admin API off")

	o.APIKeys = []string{clientKey}
	a = newTestApp(t, o, newInstantBackend())
	code, _, _ = do(t, a, http.MethodGet, RouteAdminModels, nil, map[string]string{HeaderAPIKey: clientKey})
	require.Equal(t, http.StatusNotFound, code, "admin API off, client key")

	o.AdminAPIKeys = []string{adminKey}
	a = newTestApp(t, o, newInstantBackend())
	code, hdr, body := do(t, a, http.MethodGet, RouteAdminModels, nil, map[string]string{HeaderAPIKey: clientKey})
	require.Equal(t, http.StatusUnauthorized, code, "a client key is no admin key")
	require.NotEmpty(t, hdr.Get("WWW-Authenticate"))
	require.Equal(t, "unauthorized", string(envelope(t, body).Kind))
	code, _, body = do(t, a, http.MethodGet, RouteAdminModels, nil, map[string]string{"Authorization": "Bearer " + adminKey})
	require.Equal(t, http.StatusOK, code, "%s", body)
	code, _, _ = do(t, a, http.MethodPost, RoutePredictSingle, mustJSON(t, baseRequest(8, 2)), map[string]string{HeaderAPIKey: adminKey})
	require.Equal(t, http.StatusUnauthorized, code, "an admin key is no client key")
	code, _, _ = do(t, a, http.MethodGet, "/v1/admin/nope", nil, map[string]string{HeaderAPIKey: adminKey})
	require.Equal(t, http.StatusNotFound, code)
	code, _, _ = do(t, a, http.MethodGet, "/v1/admin/nope", nil, nil)
	require.Equal(t, http.StatusUnauthorized, code, "every admin path needs an admin key")
	require.InDelta(t, 3, counterValue(t, a, "kronos_rejections_total", "reason", ReasonUnauthorized), 0)

	// A key both in the keys file and among the admin keys is refused.
	file := filepath.Join(t.TempDir(), "keys")
	require.NoError(t, os.WriteFile(file, []byte("# keys\n"+adminKey+"\n"), 0o600))
	o.APIKeys, o.APIKeysFile = nil, file
	_, err := New(o, Deps{Backend: newInstantBackend()})
	require.ErrorContains(t, err, "KRONOS_ADMIN_API_KEYS: key 1 is also a client key")
}

// counterValue reads one labelled counter of a's registry.
func counterValue(t *testing.T, a *App, name, label, value string) float64 {
	t.Helper()
	mfs, err := a.registry.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == label && lp.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no %s{%s=%q}", name, label, value)
	return 0
}
