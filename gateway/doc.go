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
// released it; no request fails because of a swap.
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
// and AsMap shows only how many keys there are.
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
// 500 internal. Fiber's own errors (unknown route, wrong method, body over
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
// models on the embedded ONNX Runtime backend in the background (within
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
