package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/kronos-gateway/kronos-gateway/gateway/docsui"
	"github.com/kronos-gateway/kronos-gateway/internal/infer"
)

// loadOpenAPI parses and validates the embedded document.
func loadOpenAPI(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(openAPIYAML)
	require.NoError(t, err)
	require.NoError(t, doc.Validate(context.Background()), "openapi.yaml is not a valid OpenAPI 3 document")
	return doc
}

// TestOpenAPIDocument: the document is valid OpenAPI 3, /v1/openapi.json
// serves it as JSON, and it describes exactly the App's routes.
func TestOpenAPIDocument(t *testing.T) {
	doc := loadOpenAPI(t)
	o := testOptions()
	o.AdminAPIKeys = []string{"admin-key"} // the admin routes exist only with admin keys
	a := newTestApp(t, o, newInstantBackend())
	code, hdr, body := do(t, a, http.MethodGet, RouteOpenAPI, nil, nil)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "application/json; charset=utf-8", hdr.Get("Content-Type"))
	var served, fromYAML any
	require.NoError(t, json.Unmarshal(body, &served))
	require.NoError(t, yaml.Unmarshal(openAPIYAML, &fromYAML))
	require.Equal(t, roundTripJSON(t, fromYAML), served)

	var documented []string
	for p := range doc.Paths.Map() {
		documented = append(documented, p)
	}
	var routes []string
	for r := range a.routes {
		if r != RouteDocsAsset { // the page's assets
			// Fiber's ":name" is OpenAPI's "{name}".
			routes = append(routes, regexp.MustCompile(`:(\w+)`).ReplaceAllString(r, "{$1}"))
		}
	}
	sort.Strings(documented)
	sort.Strings(routes)
	require.Equal(t, routes, documented, "every route is documented, and only routes")

	// Every error status the mapper can produce is documented on the
	// forecast routes.
	for _, p := range []string{RoutePredictSingle, RoutePredictBatch} {
		op := doc.Paths.Find(p).Post
		for _, status := range statusOfKind {
			if status == http.StatusNotFound {
				continue // unknown routes only; an unknown model is a 422
			}
			require.NotNil(t, op.Responses.Status(status), "%s: status %d", p, status)
		}
	}
}

func roundTripJSON(t *testing.T, v any) any {
	b, err := json.Marshal(v)
	require.NoError(t, err)
	var out any
	require.NoError(t, json.Unmarshal(b, &out))
	return out
}

// conformanceCase is one real exchange checked against the document.
type conformanceCase struct {
	name   string
	method string
	path   string
	body   []byte
	header map[string]string
	status int
	// validRequest: the request must conform too (false for the
	// requests that are wrong on purpose).
	validRequest bool
	// before runs before the request (e.g. to make the backend block).
	before func()
	// base is the server's URL (default: the test's main App).
	base string
	// docMethod is the method of the operation that documents the
	// response, when it is not the request's (405).
	docMethod string
}

// TestOpenAPIConformance sends real requests to a served App and checks
// that each response (and each valid request) conforms to the document:
// status documented, headers, body schema.
func TestOpenAPIConformance(t *testing.T) {
	doc := loadOpenAPI(t)
	router, err := legacy.NewRouter(doc)
	require.NoError(t, err)

	ib := newInstantBackend()
	o := testOptions()
	o.InferenceTimeout = time.Second // the blocked forecast ends by it (generous: a busy CI machine)
	o.APIKeys = []string{"test-key-1"}
	a := newTestApp(t, o, ib)
	base := serveApp(t, a)

	key := map[string]string{HeaderAPIKey: "test-key-1", HeaderRequestID: "conformance-1"}
	single := baseRequest(24, 3)
	single["overrides"] = map[string]any{"sample_count": 4, "seed": 7, "top_k": nil}
	single["quantiles"] = []any{0.1, 0.9}
	single["return_samples"] = true
	batch := map[string]any{"items": []any{baseRequest(8, 2), baseRequest(12, 3)}}
	bad := baseRequest(8, 2)
	bad["candles"].([]any)[3].(map[string]any)["high"] = 1.0

	cases := []conformanceCase{
		{name: "single 200", method: http.MethodPost, path: RoutePredictSingle, body: mustJSON(t, single), header: key,
			status: 200, validRequest: true},
		{name: "batch 200", method: http.MethodPost, path: RoutePredictBatch, body: mustJSON(t, batch), header: key,
			status: 200, validRequest: true},
		{name: "single 422", method: http.MethodPost, path: RoutePredictSingle, body: mustJSON(t, bad), header: key, status: 422},
		{name: "batch 422", method: http.MethodPost, path: RoutePredictBatch, body: []byte(`{"items":[]}`), header: key, status: 422},
		{name: "single 413", method: http.MethodPost, path: RoutePredictSingle,
			body: bytes.Repeat([]byte(" "), int(o.MaxBodyBytes)+1), header: key, status: 413},
		{name: "single 415", method: http.MethodPost, path: RoutePredictSingle, body: mustJSON(t, single),
			header: map[string]string{HeaderAPIKey: "test-key-1", "Content-Encoding": "gzip"}, status: 415},
		{name: "single 401", method: http.MethodPost, path: RoutePredictSingle, body: mustJSON(t, single), status: 401},
		{name: "single 405", method: http.MethodGet, path: RoutePredictSingle, header: key, status: 405,
			docMethod: http.MethodPost},
		{name: "single 504", method: http.MethodPost, path: RoutePredictSingle, body: mustJSON(t, baseRequest(8, 2)),
			header: key, status: 504, validRequest: true, before: func() { ib.block.Store(true) }},
		{name: "healthz", method: http.MethodGet, path: RouteHealthz, status: 200, validRequest: true},
		{name: "readyz", method: http.MethodGet, path: RouteReadyz, status: 200, validRequest: true},
		{name: "healthz detailed", method: http.MethodGet, path: RouteHealthzDetailed, status: 200, validRequest: true},
		{name: "metrics", method: http.MethodGet, path: RouteMetrics, status: 200, validRequest: true},
		{name: "openapi", method: http.MethodGet, path: RouteOpenAPI, status: 200, validRequest: true},
		{name: "docs", method: http.MethodGet, path: RouteDocs, status: 200, validRequest: true},
		{name: "draining readyz 503", method: http.MethodGet, path: RouteReadyz, status: 503, validRequest: true,
			before: func() { a.draining.Store(true) }},
		{name: "draining single 503", method: http.MethodPost, path: RoutePredictSingle, body: mustJSON(t, baseRequest(8, 2)),
			header: key, status: 503, validRequest: true},
	}
	// 429: a second App whose rate limit lets one request through.
	o.RateLimitPerMinute, o.RateLimitBurst = 0.001, 1
	limited := serveApp(t, newTestApp(t, o, newInstantBackend()))
	ok := mustJSON(t, baseRequest(8, 2))
	cases = append(cases,
		conformanceCase{name: "rate limited 200", base: limited, method: http.MethodPost, path: RoutePredictSingle,
			body: ok, header: key, status: 200, validRequest: true},
		conformanceCase{name: "rate limited 429", base: limited, method: http.MethodPost, path: RoutePredictSingle,
			body: ok, header: key, status: 429, validRequest: true})

	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.before != nil {
				c.before()
			}
			if c.base == "" {
				c.base = base
			}
			var req *http.Request
			var resp *http.Response
			// fasthttp answers an over-limit body with 413 and closes the
			// connection without reading the body; the client, still
			// writing, may then see a reset instead of the response (a
			// transport race, not a wrong answer): retry those a few times.
			for attempt := 0; ; attempt++ {
				var err error
				req, err = http.NewRequest(c.method, c.base+c.path, bytes.NewReader(c.body))
				require.NoError(t, err)
				if c.body != nil {
					req.Header.Set("Content-Type", "application/json")
				}
				for k, v := range c.header {
					req.Header.Set(k, v)
				}
				resp, err = http.DefaultClient.Do(req)
				if err != nil && c.status == http.StatusRequestEntityTooLarge && attempt < 5 {
					continue
				}
				require.NoError(t, err)
				break
			}
			body := readBody(t, resp)
			require.Equal(t, c.status, resp.StatusCode, "%s", body)
			require.NotEmpty(t, resp.Header.Get(HeaderRequestID))
			checkConformance(t, router, c, req, resp, body)
		})
	}

	// An unknown route matches no operation: its body must be the
	// documented NotFound response.
	req, err := http.NewRequest(http.MethodGet, base+"/v1/predict/nope", nil)
	require.NoError(t, err)
	req.Header.Set(HeaderAPIKey, "test-key-1")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	body := readBody(t, resp)
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
	nf := doc.Components.Responses["NotFound"].Value.Content.Get("application/json").Schema.Value
	var v any
	require.NoError(t, json.Unmarshal(body, &v))
	require.NoError(t, nf.VisitJSON(v), "%s", body)
}

// checkConformance validates one exchange against its operation.
func checkConformance(t *testing.T, router routers.Router, c conformanceCase, req *http.Request, resp *http.Response, body []byte) {
	t.Helper()
	vreq := req.Clone(context.Background())
	vreq.URL, _ = url.Parse(req.URL.Path) // the document's server is "/"
	if c.docMethod != "" {
		vreq.Method = c.docMethod
	}
	route, params, err := router.FindRoute(vreq)
	require.NoError(t, err)
	opts := &openapi3filter.Options{
		AuthenticationFunc:    openapi3filter.NoopAuthenticationFunc,
		IncludeResponseStatus: true, // an undocumented status is an error
		MultiError:            true,
	}
	ct := resp.Header.Get("Content-Type")
	if !strings.HasPrefix(ct, "application/json") {
		// HTML, the exposition: kin-openapi has no decoder for them;
		// the media type itself must be documented.
		opts.ExcludeResponseBody = true
		mt, _, _ := strings.Cut(ct, ";")
		require.NotNil(t, route.Operation.Responses.Status(resp.StatusCode).Value.Content.Get(mt),
			"content type %q of %s", ct, c.path)
	}
	in := &openapi3filter.RequestValidationInput{Request: vreq, PathParams: params, Route: route, Options: opts}
	if c.validRequest {
		if c.body != nil {
			vreq.Body = io.NopCloser(bytes.NewReader(c.body))
		}
		require.NoError(t, openapi3filter.ValidateRequest(context.Background(), in))
	}
	err = openapi3filter.ValidateResponse(context.Background(), &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in,
		Status:                 resp.StatusCode,
		Header:                 resp.Header,
		Body:                   io.NopCloser(bytes.NewReader(body)),
		Options:                opts,
	})
	require.NoError(t, err, "response %d of %s: %s", resp.StatusCode, c.name, body)
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
		require.NotEmpty(t, resp.Header.Get("Retry-After"), "documented as required")
	}
	if resp.StatusCode >= 400 && strings.HasPrefix(ct, "application/json") && c.path != RouteReadyz {
		var e errorEnvelope
		require.NoError(t, json.Unmarshal(body, &e))
		require.Equal(t, statusOfKindOrFiber(e.Error.Kind, resp.StatusCode), resp.StatusCode)
	}
}

// statusOfKindOrFiber is the status a kind maps to, or the status itself
// for the HTTP layer's own 4xx (405, 415: invalid_input).
func statusOfKindOrFiber(k infer.Kind, status int) int {
	if k == infer.KindInvalid && status != http.StatusUnprocessableEntity {
		return status
	}
	return statusOfKind[k]
}

// serveApp serves a on a loopback listener until the test ends and
// returns its base URL. A real listener, because fasthttp enforces the
// body limit while it reads.
func serveApp(t *testing.T, a *App) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	served := make(chan error, 1)
	go func() { served <- a.Serve(ln) }()
	t.Cleanup(func() {
		require.NoError(t, a.Shutdown(time.Minute))
		require.NoError(t, <-served)
	})
	return "http://" + ln.Addr().String()
}

// TestDocsUI: the page and its assets are served with the right content
// types, the page refers only to local assets (no CDN: it works offline),
// each of them exists, and the vendored package carries its license and
// the version that scripts/docsui.sh pins.
func TestDocsUI(t *testing.T) {
	a := newTestApp(t, testOptions(), newInstantBackend())
	code, hdr, page := do(t, a, http.MethodGet, RouteDocs, nil, nil)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "text/html; charset=utf-8", hdr.Get("Content-Type"))
	require.Contains(t, hdr.Get("Content-Security-Policy"), "script-src 'self'")
	require.Contains(t, string(page), `data-spec-url="`+RouteOpenAPI+`"`)

	refs := regexp.MustCompile(`(?:src|href|data-spec-url)="([^"]*)"`).FindAllStringSubmatch(string(page), -1)
	require.GreaterOrEqual(t, len(refs), 5)
	wantTypes := map[string]string{".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
		".png": "image/png", ".json": "application/json; charset=utf-8"}
	for _, r := range refs {
		ref := r[1]
		require.True(t, strings.HasPrefix(ref, "/") && !strings.HasPrefix(ref, "//"),
			"the page refers to %q: only local absolute paths are allowed", ref)
		code, hdr, body := do(t, a, http.MethodGet, ref, nil, nil)
		require.Equal(t, http.StatusOK, code, ref)
		require.NotEmpty(t, body, ref)
		ext := ref[strings.LastIndex(ref, "."):]
		require.Equal(t, wantTypes[ext], hdr.Get("Content-Type"), ref)
		require.Equal(t, "nosniff", hdr.Get("X-Content-Type-Options"), ref)
	}
	for _, name := range []string{"LICENSE", "NOTICE", "VERSION", "swagger-ui-bundle.js.LICENSE.txt"} {
		code, hdr, body := do(t, a, http.MethodGet, docsui.Prefix+name, nil, nil)
		require.Equal(t, http.StatusOK, code, name)
		require.Equal(t, "text/plain; charset=utf-8", hdr.Get("Content-Type"), name)
		require.NotEmpty(t, body)
	}
	code, _, _ = do(t, a, http.MethodGet, docsui.Prefix+"nope.js", nil, nil)
	require.Equal(t, http.StatusNotFound, code)
	code, _, _ = do(t, a, http.MethodGet, docsui.Prefix+"..%2Fdocsui.go", nil, nil)
	require.Equal(t, http.StatusNotFound, code)

	script, err := os.ReadFile("../scripts/docsui.sh")
	require.NoError(t, err)
	version := regexp.MustCompile(`(?m)^VERSION=(\S+)$`).FindSubmatch(script)
	require.NotNil(t, version)
	require.Equal(t, "swagger-ui-dist@"+string(version[1]), docsui.Version())
	lic, _, ok := docsui.Asset("LICENSE")
	require.True(t, ok)
	require.Contains(t, string(lic), "Apache License")
}
