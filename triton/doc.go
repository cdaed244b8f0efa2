// Package triton is the NVIDIA Triton backend of kronos-gateway: a KServe v2
// gRPC client (protocol subset in triton/inferencepb) that implements
// infer.Backend over four Triton models per Kronos model NAME, a circuit
// breaker around it (Breaker, github.com/sony/gobreaker/v2) with an
// optional fallback to the embedded ONNX Runtime backend, and the
// model-control calls the gateway's admin API needs (Admin).
//
// # Models
//
//	NAME-encoder    x f32 [B,L,6] -> quant_input f32 [B,L,D]
//	NAME-decoder    s1, s2 i64 [B,W] -> x f32 [B,W,6]
//	NAME-window     s1, s2 i64 [B,T], stamp i64 [B,T,5], last i64 [B,1] -> s1_logits f32 [B,V1]
//	NAME-window_s2  the same + next_s1 i64 [B,1] -> s2_logits f32 [B,V2]
//
// window and window_s2 are stateless: every step of a forecast sends each
// row's full window (no KV cache over gRPC), right-padded to the smallest
// of a few length buckets (Options.Buckets, default multiples of 64 up to
// the max context) with `last` marking each row's end. Attention is causal,
// so padding does not change the logits, and requests of concurrent
// forecasts get equal shapes, which Triton's dynamic batcher needs to batch
// them. Encoder and decoder lengths are padded the same way. Configs for
// all of them (CPU and GPU variants) come from triton/modelconfig.
//
// # Connection
//
// One *grpc.ClientConn (grpc.NewClient) is shared by every call:
// plaintext by default, TLS with Options.TLS; grpc-go's 4 MiB receive
// limit raised (Options.MaxRecvMsgBytes); no client keepalive pings by
// default, because Triton's server defaults answer idle pings with GOAWAY
// "too_many_pings" (docs/triton.md lists the server flags to use with
// Options.KeepaliveTime). Tensors travel as raw_input_contents (little
// endian, row-major); outputs are read by name from raw_output_contents.
// Each ModelInfer has its own deadline (Options.InferTimeout) inside the
// caller's context; control calls use Options.ControlTimeout.
//
// # Version pinning
//
// The backend resolves the highest version ready for all four models
// (ModelMetadata versions) and caches it for Options.VersionRefresh; admin
// loads and unloads and UNAVAILABLE answers mark it stale. NewSession pins
// the resolved version: every call of that session names it in
// model_version, so a forecast never mixes versions, and one that is in
// flight during a hot swap keeps its version (the configs keep the previous
// version loaded: version_policy latest{2}).
//
// # Errors
//
// Every error wraps the internal/infer vocabulary. gRPC codes map as
// follows (the gateway maps kinds to HTTP):
//
//	UNAVAILABLE "Exceeds maximum queue size"  KindOverloaded (429), *RetryAfterError (Options.OverloadRetryAfter)
//	UNAVAILABLE (other: queue timeout "Request timeout expired", server not ready,
//	            version not ready, connection refused/reset)  KindUnavailable (503)
//	NOT_FOUND (control calls: unknown model/version)          KindNotFound (404)
//	NOT_FOUND from ModelInfer at the pinned version           KindUnavailable (503): the version was
//	                                                          unloaded under a running forecast; retry
//	INVALID_ARGUMENT, OUT_OF_RANGE                             KindInvalid (422)
//	DEADLINE_EXCEEDED, per-call deadline, caller's deadline   KindTimeout (504)
//	CANCELLED caused by the caller's context                  KindCanceled (499)
//	CANCELLED with the caller's context still live            KindUnavailable (503): the server or
//	                                                          transport dropped the call
//	FAILED_PRECONDITION, ABORTED                               KindUnavailable (503)
//	INTERNAL, UNKNOWN, UNIMPLEMENTED, RESOURCE_EXHAUSTED
//	(grpc-go's own receive limit), auth errors, malformed
//	responses                                                  KindInternal (500)
//
// The Breaker adds: a call refused while the breaker is open or half-open
// is KindUnavailable with a *RetryAfterError (the rest of the open period),
// unless a fallback backend serves it. RetryAfter(err) extracts the hint.
//
// # Breaker
//
// See Breaker for what counts as success, failure or neither. The state is
// exported as kronos_breaker_state{backend} (0 closed, 1 half-open, 2 open)
// and state changes are logged.
//
// # Metrics
//
// On Options.Registerer (never the global registry):
// kronos_triton_bytes_total{direction}, the protobuf payload bytes of
// ModelInfer (also per Backend and Session: Stats);
// kronos_triton_rpc_duration_seconds{rpc,outcome};
// kronos_triton_model_version{model}.
package triton
