// Package gateway is the HTTP face of kronos-gateway: a Fiber v2 service
// that decodes and validates forecast requests, runs them through the
// sampling loop (forecast) on an inference backend (infer.Backend), and maps
// every error to HTTP in one place.
//
// # Routes
//
//   - POST /v1/predict/single: one series in, one forecast out, with the
//     seed service's field names (see predictRequest and predictResponse).
//   - POST /v1/predict/batch: {"items": [...]} in, an array of forecasts out.
//   - GET /v1/healthz: liveness (always 200 while the process serves), with
//     the default model.
//   - GET /v1/readyz: readiness, 503 with Retry-After while the models load,
//     while draining, or when a backend's own check fails (health.go).
//   - GET /v1/healthz/detailed: model, memory (/proc) and disk (the model
//     repository's filesystem) checks; "degraded" from 90 % use.
//   - GET /v1/metrics: Prometheus exposition of Deps.Registry (metrics.go).
//   - GET /v1/openapi.json: the OpenAPI 3 document (openapi.yaml), and
//     GET /docs: Swagger UI over it, embedded (docsui), working offline.
//   - GET /v1/admin/models, POST /v1/admin/models/{name}/load and
//     POST /v1/admin/models/{name}/unload: the admin API (hot swaps), only
//     with KRONOS_ADMIN_API_KEYS (admin.go; see "Admin API").
//
// # Requests
//
// Bodies are decoded token by token so that every problem is a 422 naming
// the field as a JSON path ("candles[3].high", "overrides.top_p"): unknown
// keys (a misspelt "temprature" is rejected, not ignored), wrong JSON types,
// NaN or Infinity literals, numbers that overflow float64 (1e400), nulls
// where a value is needed, and every rule listed on App.prepare. Notable
// decisions:
//
//   - pred_len is len(prediction_timestamps); an overrides.pred_len that
//     differs is rejected.
//   - An override left out or null takes the default from Options.
//   - volume and amount may be left out of every candle (preprocess.Fill
//     then zero-fills or derives amount as upstream Kronos does); a null
//     volume or amount is rejected, as is a key given in some candles only.
//   - Timestamps are RFC 3339 with an offset, or naive ISO 8601 ("T" or a
//     space between date and time); naive and offset timestamps may not be
//     mixed. Time features (minute, hour, weekday, day, month) are taken in
//     each timestamp's own offset, as given: the same bars sent in UTC and
//     in +08:00 are different inputs to the model. Prediction timestamps
//     come back with the caller's offset; naive ones stay naive. Epoch
//     numbers are not accepted.
//   - Inputs longer than the context keep their last max_context candles,
//     and only those are normalised; the response reports context_used.
//   - Without overrides.seed the gateway draws one below 2^53 and echoes
//     it, so every forecast can be replayed byte for byte.
//   - The Content-Type is not checked; compressed bodies get 415.
//   - "model" selects one of the loaded models (see Models); left out, null
//     or "" is the default model. An unknown name is a 422 on field "model"
//     whose message lists the loaded models.
//
// # Responses
//
// A forecast carries series_id (echoed, null when not sent), prediction
// (the mean path, one point per prediction timestamp, volume and amount
// clamped to >= 0), model, model_version and tokenizer_version (the exact
// weights, "<checkpoint>@sha256:<prefix>", of the backend that ran it),
// seed (the one used), context_used (candles that conditioned it),
// sample_count, and when asked quantiles (one path per requested quantile)
// and samples (every sample path, "return_samples": true).
//
// # Batches
//
// POST /v1/predict/batch takes {"items": [...]}, each item with the fields
// of a single request, and answers a JSON array of single responses in
// input order (as the seed service did). Items may differ in length,
// horizon, sampling parameters and model: items of one model run together
// through forecast.Forecaster.Predict, in backend sessions of at most
// KRONOS_MAX_BATCH_ROWS rows (the sum of their sample_count), one session
// after the other; chunking never changes a result. Validation is all or
// nothing: the first invalid item fails the batch with 422 naming it
// ("items[2].candles[5].high"). An empty "items" and more than
// KRONOS_MAX_BATCH_ITEMS items (checked while decoding) are 422 on field
// "items". A batch is one forecast for admission and for
// KRONOS_INFERENCE_TIMEOUT.
//
// # Models
//
// KRONOS_MODELS lists the models to load from KRONOS_MODEL_REPOSITORY
// (default: KRONOS_MODEL alone); KRONOS_MODEL is the default and must be
// among them. Models is the registry: name -> the backend serving it now.
// Every forecast leases its model's backend for all its calls, so a hot
// swap (Models.Swap) switches atomically for new forecasts while running
// ones finish on the old backend, which is closed once the last of them
// released it; no request fails because of a swap. The admin API performs
// swaps at run time.
//
// # Backends
//
// KRONOS_BACKEND picks the backend of every model: "embedded" (ONNX
// Runtime in process, from KRONOS_MODEL_REPOSITORY) or "triton" (an NVIDIA
// Triton server over KServe v2 gRPC, package triton). Unset, it is triton
// when KRONOS_TRITON_URL is set and embedded otherwise; the effective
// backend is logged with the configuration at start. The Triton settings
// (Options.Triton, Options.Breaker; defaults in parentheses) are parsed by
// triton.FromEnv, durations in Go syntax:
//
//	KRONOS_TRITON_URL                  Triton's gRPC address or target (localhost:8001)
//	KRONOS_TRITON_TIMEOUT              deadline of each ModelInfer, within the request's (10s)
//	KRONOS_TRITON_CONTROL_TIMEOUT      metadata, readiness and index calls (5s)
//	KRONOS_TRITON_BUCKETS              padded window lengths, ascending (multiples of 64 up to the max context)
//	KRONOS_TRITON_TLS                  TLS with the system roots (false: plaintext)
//	KRONOS_TRITON_CA_FILE              custom CA, PEM (none; needs KRONOS_TRITON_TLS)
//	KRONOS_TRITON_SERVER_NAME          TLS server name (the URL's host)
//	KRONOS_TRITON_KEEPALIVE            HTTP/2 ping interval (0: no pings; see docs/triton.md)
//	KRONOS_TRITON_MAX_RECV_BYTES       gRPC receive limit in bytes (268435456)
//	KRONOS_BREAKER_FAILURES            consecutive failures that open the breaker (5)
//	KRONOS_BREAKER_INTERVAL            period that clears the closed state's counts (0: never)
//	KRONOS_BREAKER_OPEN_TIMEOUT        time open before trial calls (30s)
//	KRONOS_BREAKER_HALF_OPEN_REQUESTS  trial calls while half-open (1)
//	KRONOS_TRITON_FALLBACK             "embedded": serve on the embedded backend while the breaker is open ("": none)
//
// With the triton backend, Run connects per model (the Triton models
// <model>-encoder, -decoder, -window and -window_s2 must be ready in a
// common version, else the start fails) and wraps the client in a circuit
// breaker (triton.Breaker): a Triton queue that is full is 429 overloaded
// with Retry-After 1 and does not count against the breaker; outages open
// it, and while it is open forecasts are 503 unavailable with the rest of
// the open period as Retry-After, or are served by the embedded fallback
// (opened from KRONOS_MODEL_REPOSITORY at start, KRONOS_MODEL_VERSION for
// the default model) when KRONOS_TRITON_FALLBACK=embedded. Both hints pass
// through the one error mapper (errors.go, triton.RetryAfter). Readiness is
// the breaker's: Triton ready and the four models ready at the pinned
// version (ModelReady); an open breaker without a fallback is not ready
// (503, Retry-After the rest of the open period), one with a fallback is.
//
// Each model's serving client is pinned to one Triton version, the highest
// ready for its four models when it connected, and does not follow later
// loads by itself: every call of a forecast, from the encoder to the
// decoder, goes to that version. A hot swap (admin API) connects a new
// client for the new version and swaps it in like an embedded backend; the
// old client is closed after its last forecast. Loads done behind the
// gateway's back (Triton's own API) take effect at the next admin load or
// restart, or when the pinned version disappears (its forecasts then fail
// with 503 and the client looks again). The breaker and the fallback are
// shared by the versions of a model: the breaker's state outlives a swap.
//
// # Admin API
//
// KRONOS_ADMIN_API_KEYS (comma-separated; default none) turns on the
// routes under /v1/admin. Without it they do not exist: 404, or 401 for a
// caller without a client key when client keys are configured, as for
// every unknown path. Admin keys are sent like client keys (X-API-Key or
// Authorization: Bearer), must differ from every client key (checked at
// start, the keys file included), and are the only keys that open admin
// routes; client keys get 401 there, admin keys get 401 on the forecast
// routes. Admin routes are not rate limited. One admin operation runs at a
// time, bounded by KRONOS_STARTUP_TIMEOUT (not KRONOS_REQUEST_TIMEOUT:
// Triton loads that build TensorRT engines take minutes). Errors go
// through the one mapper: 401 without an admin key, 404 for an unknown
// model or version, 422 for a bad body (naming the field) or a refused
// operation, 503 while the models load at start or the server drains.
//
//   - GET /v1/admin/models lists every model: the version serving new
//     forecasts with its model_version, readiness, the version being loaded
//     if any, and its repository: the numeric version folders of
//     KRONOS_MODEL_REPOSITORY (embedded: READY for the one serving, else
//     UNAVAILABLE "not loaded" or "incomplete", with each folder's
//     model_version), or Triton's repository index of the four Triton
//     models (triton).
//   - POST /v1/admin/models/{name}/load, body {"version": "2"} (optional:
//     the highest complete version folder, or Triton's version policy)
//     loads a version and swaps it in for new forecasts; forecasts in
//     flight finish on their version, none fails. It answers 200 with the
//     model and the previous version once the new one serves. Embedded: the
//     version folder is opened with ONNX Runtime beside the current one and
//     Models.Swap installs it; the old backend is closed after its last
//     forecast, then the call returns. Triton: RepositoryModelLoad of the
//     four Triton models (Triton must run with
//     --model-control-mode=explicit; "overrides" pass a config JSON and
//     model files per Triton model, see LoadRequest in openapi.yaml), then
//     a client pinned to the highest version ready for all four is swapped
//     in; a version named in the body must be that one (404 when Triton's
//     repository lacks it, 422 when another version is ready above it or
//     its policy does not keep it). While a load runs, readiness stays
//     200 (the current version serves) and GET /v1/readyz and the admin
//     listing show the version being loaded ("loading").
//     kronos_model_info follows the swap.
//   - POST /v1/admin/models/{name}/unload: Triton: RepositoryModelUnload of
//     the four Triton models (every version; a version in the body is
//     422); the model then serves nothing (readiness 503, forecasts 503 or
//     the fallback) until the next load. Embedded: refused with 422, since
//     a model always serves exactly one version and unloading it would
//     leave none (404 when the body names a version that is not loaded);
//     load another version to replace it.
//
// # Limits and admission
//
// At most KRONOS_MAX_CONCURRENCY forecasts (default 2) run at once; up to
// KRONOS_QUEUE_SIZE more (default 16) wait first in first out. A forecast
// that finds the queue full is answered 429 overloaded with Retry-After: 1
// at once, so excess load is shed instead of piling up. The wait in the
// queue is bounded by the request's remaining KRONOS_REQUEST_TIMEOUT (504
// timeout when it runs out). Validation comes before admission: an invalid
// request never takes a slot. kronos_queue_depth, kronos_concurrent_requests
// and kronos_rejections_total{reason} count it all. Other limits:
// KRONOS_MAX_BODY_BYTES (413), KRONOS_MAX_CANDLES, KRONOS_MAX_PREDICTION_STEPS,
// KRONOS_MAX_SAMPLE_COUNT and KRONOS_MAX_BATCH_ITEMS (422 naming the field).
//
// # Authentication and rate limits
//
// API keys are optional: KRONOS_API_KEYS (comma-separated) and
// KRONOS_API_KEYS_FILE (one per line; blank lines and "#" comments skipped)
// together; with none, authentication is off. A key is sent as X-API-Key or
// as "Authorization: Bearer <key>" and compared in constant time against
// every configured key (SHA-256 digests). A missing or wrong key is 401
// unauthorized, in the error envelope, with WWW-Authenticate. Open without a
// key, and never rate limited: /, /v1/healthz, /v1/healthz/detailed,
// /v1/readyz, /v1/metrics, /metrics, /v1/openapi.json, /openapi.json,
// /docs and everything under /docs/, /redoc, /favicon.ico. Every other
// path needs a key, unknown ones included. Keys are never logged: the
// access log carries key_id, the first 12 hex digits of the key's SHA-256,
// and AsMap shows only how many keys there are. With admin keys
// (KRONOS_ADMIN_API_KEYS), paths under /v1/admin take admin keys instead
// (see "Admin API").
//
// KRONOS_RATE_LIMIT_PER_MINUTE (0 = off) limits each caller, a token
// bucket of KRONOS_RATE_LIMIT_BURST (default: the per-minute rate rounded
// up): the caller is the API key when keys are configured, else the
// client's IP address (the TCP peer; X-Forwarded-For is not trusted).
// Over its rate a caller gets 429 overloaded with the Retry-After of its
// next token. The key check comes first: a wrong key is 401, not 429.
//
// # Timeouts
//
// KRONOS_REQUEST_TIMEOUT bounds a whole request: decoding, validation,
// the wait for a slot and the forecast. KRONOS_INFERENCE_TIMEOUT bounds the
// backend work of one request (all chunks of a batch). Both are contexts
// handed down to every backend call, so a forecast past its deadline is
// cancelled, not abandoned: when its 504 is written no backend call of it
// runs any more and its session is closed, and the next request finds the
// slot free. KRONOS_STARTUP_TIMEOUT bounds loading all the models.
//
// # Errors
//
// errors.go is the only mapping from infer.Kind to HTTP: 422 invalid_input,
// 413 too_large, 404 not_found, 429 overloaded (Retry-After), 503
// unavailable (Retry-After), 504 timeout, 499 canceled, 401 unauthorized,
// 500 internal. The Retry-After of 429 and 503 is a rate limit's next
// token, the Triton backend's hint (triton.RetryAfter: a full Triton queue,
// the rest of the breaker's open period), or else 1 (429) and 5 (503).
// Fiber's own errors (unknown route, wrong method, body over
// KRONOS_MAX_BODY_BYTES) use the same envelope:
//
//	{"error":{"kind":"invalid_input","message":"...","field":"candles[3].high","request_id":"..."}}
//
// A panic in a handler is recovered, logged with its stack and answered 500;
// an internal error's text is logged, never sent.
//
// # Observability
//
// Every response carries X-Request-ID (the client's when it is sane, else a
// new uuid). Each request logs one JSON line with request_id, method,
// route, status, latency_ms, outcome (the error kind, or "ok"), bytes_in
// and bytes_out. The metrics (metrics.go; names and labels pinned by
// testdata/metrics.prom, used by grafana/ and prometheus/rules) are
// registered on Deps.Registry, never the global registry; route labels are
// route patterns ("unmatched" for none), never raw paths. Requests turned
// away before inference return errors made with rejected, which the request
// middleware counts once in kronos_rejections_total{reason}.
//
// # Lifecycle
//
// New builds the App from Options and Deps without listening, so tests use
// App.Test. Run serves on KRONOS_HOST:KRONOS_PORT at once and loads the
// models on the backend of KRONOS_BACKEND in the background (within
// KRONOS_STARTUP_TIMEOUT; meanwhile forecasts get 503 not_ready) and, when
// its context is cancelled (SIGTERM or SIGINT in main), answers readiness
// with 503, stops accepting connections, lets in-flight requests finish
// within KRONOS_SHUTDOWN_TIMEOUT and closes the backends last.
//
// # Shutdown
//
// On SIGTERM (or SIGINT), in this order:
//
//  1. Draining starts: GET /v1/readyz answers 503 "draining", and a
//     forecast that has not yet been admitted gets 503 unavailable with
//     Retry-After (rejections{reason="draining"}).
//  2. The listener closes: new connections are refused. A request on a
//     keep-alive connection that was already open gets 503, and the
//     connection is closed after it.
//  3. Every request already admitted (running, or waiting in the queue)
//     is served to completion, within KRONOS_SHUTDOWN_TIMEOUT. Those still
//     running when it ends are cancelled and answered 503.
//  4. The backends are closed, and the process exits 0.
//
// So, precisely: a request that the gateway admitted before the signal is
// answered normally (200 when the forecast succeeds); a request sent after
// readiness flipped gets 503 or a refused connection (TCP RST), never a
// forecast and never a dropped response. A request in flight in the
// network at the moment of the signal may meet either fate; clients retry
// 503 and refused connections on another instance. TestGracefulShutdown
// checks this on the real binary.
package gateway
