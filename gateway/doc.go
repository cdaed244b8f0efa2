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
package gateway
