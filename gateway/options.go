package gateway

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/kronos-gateway/kronos-gateway/triton"
)

// Backends, the values of KRONOS_BACKEND.
const (
	// BackendEmbedded runs the graphs in process on ONNX Runtime
	// (internal/onnxlocal).
	BackendEmbedded = "embedded"
	// BackendTriton runs them on an NVIDIA Triton server over gRPC
	// (triton), behind a circuit breaker.
	BackendTriton = "triton"
)

// Options is the whole configuration of the gateway. Every field names the
// KRONOS_* environment variable that sets it and its default (NewOptions).
// The zero Options is not valid; start from NewOptions.
type Options struct {
	// Server.

	// Host is the listen address (KRONOS_HOST, default "0.0.0.0").
	Host string
	// Port is the listen port (KRONOS_PORT, default 8000). 0 picks a free
	// port (tests); the address actually bound is logged.
	Port int

	// Model.

	// ModelRepository is the Triton-style model repository the embedded
	// backend loads from (KRONOS_MODEL_REPOSITORY, default
	// "model_repository").
	ModelRepository string
	// Model is the default model: the one a request without a "model"
	// field gets (KRONOS_MODEL, default "kronos-nano").
	Model string
	// Models lists every model to load from the repository, e.g.
	// "kronos-mini,kronos-small" (KRONOS_MODELS, comma-separated; default
	// empty: Model alone). It must include Model. Requests choose one with
	// their "model" field.
	Models []string
	// ModelVersion is the repository version of Model to serve
	// (KRONOS_MODEL_VERSION, default "": the highest version present). The
	// other models of Models are served at their highest version. It
	// applies to the embedded backend and the Triton fallback; on Triton a
	// model serves the highest version ready for its four Triton models.
	ModelVersion string
	// ORTLib is the path of the ONNX Runtime shared library (KRONOS_ORT_LIB,
	// default "": the embedded backend's own lookup).
	ORTLib string
	// IntraOpThreads is ONNX Runtime's intra-op thread count
	// (KRONOS_INTRA_OP_THREADS, default 0: the embedded backend's default,
	// one per CPU).
	IntraOpThreads int
	// MaxContext caps the number of candles that condition a forecast
	// (KRONOS_MAX_CONTEXT, default 0: the model's own max_context). Longer
	// inputs keep their last MaxContext candles, and only those are
	// normalised.
	MaxContext int

	// Backend.

	// Backend selects the inference backend of every model: "embedded"
	// (ONNX Runtime in process) or "triton" (KRONOS_BACKEND, default "":
	// triton when KRONOS_TRITON_URL is set, else embedded; see
	// BackendKind). The embedded backend needs the five embedded graphs in
	// ModelRepository; the Triton backend needs Triton to serve the four
	// models <model>-encoder, -decoder, -window and -window_s2.
	Backend string
	// Triton configures the Triton client, one per model: KRONOS_TRITON_URL
	// (default "localhost:8001"), KRONOS_TRITON_TIMEOUT (per ModelInfer,
	// default 10s), KRONOS_TRITON_CONTROL_TIMEOUT (metadata, readiness,
	// index calls, default 5s), KRONOS_TRITON_BUCKETS (padded window
	// lengths, default multiples of 64 up to the max context),
	// KRONOS_TRITON_TLS (default false), KRONOS_TRITON_CA_FILE and
	// KRONOS_TRITON_SERVER_NAME (default none), KRONOS_TRITON_KEEPALIVE
	// (default 0: no pings) and KRONOS_TRITON_MAX_RECV_BYTES (default
	// 256 MiB), parsed by triton.FromEnv (durations in Go syntax only,
	// "10s"). Zero fields take the defaults of triton.Options; Run sets the
	// model name, the registry and the logger.
	Triton triton.Options
	// Breaker configures the circuit breaker around each Triton backend:
	// KRONOS_BREAKER_FAILURES (consecutive failures that open it, default
	// 5), KRONOS_BREAKER_INTERVAL (period that clears the closed state's
	// counts, default 0: never), KRONOS_BREAKER_OPEN_TIMEOUT (time open
	// before trial calls, default 30s) and KRONOS_BREAKER_HALF_OPEN_REQUESTS
	// (trial calls, default 1). See triton.BreakerOptions.
	Breaker triton.BreakerOptions
	// TritonFallback is "embedded" to serve the forecasts that the open
	// breaker refuses on the embedded backend of the same model, opened
	// from ModelRepository at start (KRONOS_TRITON_FALLBACK, default "":
	// no fallback, such forecasts get 503 with the Retry-After of the rest
	// of the open period). Only with the triton backend.
	TritonFallback string

	// Sampling defaults, used when a request leaves an override out or null.

	// DefaultTemperature (KRONOS_DEFAULT_TEMPERATURE, default 1.0), > 0.
	DefaultTemperature float64
	// DefaultTopK (KRONOS_DEFAULT_TOP_K, default 0 = top-k disabled), >= 0.
	DefaultTopK int
	// DefaultTopP (KRONOS_DEFAULT_TOP_P, default 0.9), in (0, 1].
	DefaultTopP float64
	// DefaultSampleCount (KRONOS_DEFAULT_SAMPLE_COUNT, default 1), in
	// [1, MaxSampleCount].
	DefaultSampleCount int

	// Limits. A request over a limit gets 422 naming the field, except the
	// body size (413).

	// MaxCandles is the most candles one series may carry
	// (KRONOS_MAX_CANDLES, default 2048).
	MaxCandles int
	// MaxPredictionSteps is the most prediction timestamps one series may
	// carry (KRONOS_MAX_PREDICTION_STEPS, default 512).
	MaxPredictionSteps int
	// MaxSampleCount is the largest sample_count accepted
	// (KRONOS_MAX_SAMPLE_COUNT, default 32).
	MaxSampleCount int
	// MaxBatchItems is the most items of one POST /v1/predict/batch
	// request (KRONOS_MAX_BATCH_ITEMS, default 64); more are rejected with
	// 422 on field "items".
	MaxBatchItems int
	// MaxBatchRows is the most rows (sample paths: the sum of the items'
	// sample_count) decoded together in one backend session
	// (KRONOS_MAX_BATCH_ROWS, default 64); a larger batch runs as several
	// sessions, one after the other. It must be at least MaxSampleCount.
	MaxBatchRows int
	// MaxBodyBytes is the largest request body (KRONOS_MAX_BODY_BYTES,
	// default 10 MiB). Accepts a byte count or a size with a unit: "10MiB",
	// "512KiB", "1GiB" (K/M/G, KB/MB/GB and KiB/MiB/GiB all mean powers of
	// 1024).
	MaxBodyBytes int64

	// Admission.

	// MaxConcurrency is the number of forecasts that run on the backends at
	// once (KRONOS_MAX_CONCURRENCY, default 2, one per core of the
	// reference machine). A batch request counts as one forecast.
	MaxConcurrency int
	// QueueSize is the number of forecasts that may wait, first in first
	// out, for one of the MaxConcurrency slots (KRONOS_QUEUE_SIZE, default
	// 16; 0 = no queue). A forecast that finds the queue full is answered
	// 429 at once; one that waits longer than the request's remaining
	// RequestTimeout is answered 504.
	QueueSize int

	// Authentication and rate limiting.

	// APIKeys are the accepted API keys (KRONOS_API_KEYS, comma-separated;
	// default none). With APIKeysFile, the keys of both are accepted. With
	// no key at all, authentication is off. Keys are printable ASCII
	// without spaces, at most 256 bytes; they are never logged (AsMap
	// shows their number, the access log a short hash).
	APIKeys []string
	// APIKeysFile is a file of API keys, one per line; blank lines and lines
	// starting with "#" are skipped (KRONOS_API_KEYS_FILE, default "").
	APIKeysFile string
	// RateLimitPerMinute is the sustained number of forecast requests one
	// API key (or, without keys, one client IP address) may send per minute
	// (KRONOS_RATE_LIMIT_PER_MINUTE, default 0 = no limit). Fractions are
	// allowed ("0.5": one request every two minutes).
	RateLimitPerMinute float64
	// RateLimitBurst is the number of requests a caller may send at once
	// before the rate applies (KRONOS_RATE_LIMIT_BURST, default 0 = the
	// per-minute rate rounded up, at least 1).
	RateLimitBurst int

	// AdminAPIKeys are the keys of the admin API under /v1/admin (hot
	// swaps; KRONOS_ADMIN_API_KEYS, comma-separated; default none: the
	// admin routes are not served). They are sent like client keys
	// (X-API-Key or Authorization: Bearer) and must differ from every
	// client key; a client key never opens an admin route.
	AdminAPIKeys []string

	// Timeouts. Durations accept Go syntax ("30s", "1m30s") or plain
	// seconds as the seed did ("30", "2.5").

	// InferenceTimeout bounds the backend work of one request (for a batch,
	// of all its items): every backend call runs under a context with this
	// deadline, so a stuck or slow forecast is cancelled, not abandoned
	// (KRONOS_INFERENCE_TIMEOUT, default 30s).
	InferenceTimeout time.Duration
	// RequestTimeout bounds a whole request: decoding, validation, waiting
	// in the admission queue and inference (KRONOS_REQUEST_TIMEOUT, default
	// 60s). It must be at least InferenceTimeout.
	RequestTimeout time.Duration
	// StartupTimeout bounds loading every model at start, and each load
	// of the admin API (KRONOS_STARTUP_TIMEOUT, default 120s).
	StartupTimeout time.Duration
	// ShutdownTimeout bounds the graceful shutdown: in-flight requests get
	// this long to finish after SIGTERM (KRONOS_SHUTDOWN_TIMEOUT, default
	// 25s, below the usual 30s container stop grace period).
	ShutdownTimeout time.Duration
	// IdleTimeout closes keep-alive connections idle this long
	// (KRONOS_IDLE_TIMEOUT, default 120s).
	IdleTimeout time.Duration

	// LogLevel is debug, info, warn (or warning) or error; critical is
	// accepted as error for the seed's sake (KRONOS_LOG_LEVEL, default
	// info, case-insensitive).
	LogLevel string
}

// NewOptions returns the defaults.
func NewOptions() Options {
	return Options{
		Host:               "0.0.0.0",
		Port:               8000,
		ModelRepository:    "model_repository",
		Model:              "kronos-nano",
		DefaultTemperature: 1.0,
		DefaultTopK:        0,
		DefaultTopP:        0.9,
		DefaultSampleCount: 1,
		MaxCandles:         2048,
		MaxPredictionSteps: 512,
		MaxSampleCount:     32,
		MaxBatchItems:      64,
		MaxBatchRows:       64,
		MaxBodyBytes:       10 << 20,
		MaxConcurrency:     2,
		QueueSize:          16,
		InferenceTimeout:   30 * time.Second,
		RequestTimeout:     60 * time.Second,
		StartupTimeout:     120 * time.Second,
		ShutdownTimeout:    25 * time.Second,
		IdleTimeout:        120 * time.Second,
		LogLevel:           "info",
	}
}

// setting binds one environment variable to one field: parse sets the field
// from a value, show prints it for AsMap.
type setting struct {
	env   string
	parse func(o *Options, v string) error
	show  func(o *Options) string
}

func stringSetting(env string, f func(*Options) *string) setting {
	return setting{env,
		func(o *Options, v string) error { *f(o) = v; return nil },
		func(o *Options) string { return *f(o) }}
}

func intSetting(env string, f func(*Options) *int) setting {
	return setting{env,
		func(o *Options, v string) error {
			n, err := strconv.Atoi(v)
			if err != nil {
				return fmt.Errorf("%q is not an integer", v)
			}
			*f(o) = n
			return nil
		},
		func(o *Options) string { return strconv.Itoa(*f(o)) }}
}

func floatSetting(env string, f func(*Options) *float64) setting {
	return setting{env,
		func(o *Options, v string) error {
			x, err := strconv.ParseFloat(v, 64)
			if err != nil || math.IsNaN(x) || math.IsInf(x, 0) {
				return fmt.Errorf("%q is not a finite number", v)
			}
			*f(o) = x
			return nil
		},
		func(o *Options) string { return strconv.FormatFloat(*f(o), 'g', -1, 64) }}
}

// tritonSetting is a variable that triton.FromEnv parses (FromEnv hands
// it the lookup), so it has no parse of its own; show prints the
// effective value, the default when unset.
func tritonSetting(env string, show func(o *Options) string) setting {
	return setting{env: env, show: show}
}

// orDefault returns v, or def when v is the zero value.
func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

func durationSetting(env string, f func(*Options) *time.Duration) setting {
	return setting{env,
		func(o *Options, v string) error {
			d, err := parseDuration(v)
			if err != nil {
				return err
			}
			*f(o) = d
			return nil
		},
		func(o *Options) string { return f(o).String() }}
}

// listSetting reads a comma-separated list (blank entries dropped). A
// secret list shows only its length in AsMap.
func listSetting(env string, f func(*Options) *[]string, secret bool) setting {
	return setting{env,
		func(o *Options, v string) error { *f(o) = splitList(v); return nil },
		func(o *Options) string {
			if secret {
				if len(*f(o)) == 0 {
					return ""
				}
				return fmt.Sprintf("<%d keys>", len(*f(o)))
			}
			return strings.Join(*f(o), ",")
		}}
}

// splitList splits a comma-separated value, trimming blanks.
func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// settings lists every variable FromEnv reads, in the order of Options.
var settings = []setting{
	stringSetting("KRONOS_HOST", func(o *Options) *string { return &o.Host }),
	intSetting("KRONOS_PORT", func(o *Options) *int { return &o.Port }),
	stringSetting("KRONOS_MODEL_REPOSITORY", func(o *Options) *string { return &o.ModelRepository }),
	stringSetting("KRONOS_MODEL", func(o *Options) *string { return &o.Model }),
	listSetting("KRONOS_MODELS", func(o *Options) *[]string { return &o.Models }, false),
	stringSetting("KRONOS_MODEL_VERSION", func(o *Options) *string { return &o.ModelVersion }),
	stringSetting("KRONOS_ORT_LIB", func(o *Options) *string { return &o.ORTLib }),
	intSetting("KRONOS_INTRA_OP_THREADS", func(o *Options) *int { return &o.IntraOpThreads }),
	intSetting("KRONOS_MAX_CONTEXT", func(o *Options) *int { return &o.MaxContext }),
	{"KRONOS_BACKEND",
		func(o *Options, v string) error { o.Backend = strings.ToLower(v); return nil },
		func(o *Options) string { return o.BackendKind() }},
	tritonSetting(triton.EnvURL, func(o *Options) string { return orDefault(o.Triton.URL, triton.DefaultURL) }),
	tritonSetting(triton.EnvTimeout, func(o *Options) string {
		return orDefault(o.Triton.InferTimeout, triton.DefaultInferTimeout).String()
	}),
	tritonSetting(triton.EnvControlTimeout, func(o *Options) string {
		return orDefault(o.Triton.ControlTimeout, triton.DefaultControlTimeout).String()
	}),
	tritonSetting(triton.EnvBuckets, func(o *Options) string {
		if len(o.Triton.Buckets) == 0 {
			return "default"
		}
		bs := make([]string, len(o.Triton.Buckets))
		for i, b := range o.Triton.Buckets {
			bs[i] = strconv.Itoa(b)
		}
		return strings.Join(bs, ",")
	}),
	tritonSetting(triton.EnvTLS, func(o *Options) string { return strconv.FormatBool(o.Triton.TLS) }),
	tritonSetting(triton.EnvCAFile, func(o *Options) string { return o.Triton.TLSCAFile }),
	tritonSetting(triton.EnvServerName, func(o *Options) string { return o.Triton.TLSServerName }),
	tritonSetting(triton.EnvKeepalive, func(o *Options) string { return o.Triton.KeepaliveTime.String() }),
	tritonSetting(triton.EnvMaxRecv, func(o *Options) string {
		return strconv.Itoa(orDefault(o.Triton.MaxRecvMsgBytes, triton.DefaultMaxRecvMsgBytes))
	}),
	tritonSetting(triton.EnvBreakerFailures, func(o *Options) string {
		return strconv.FormatUint(uint64(orDefault(o.Breaker.ConsecutiveFailures, triton.DefaultBreakerFailures)), 10)
	}),
	tritonSetting(triton.EnvBreakerInterval, func(o *Options) string { return o.Breaker.Interval.String() }),
	tritonSetting(triton.EnvBreakerOpen, func(o *Options) string {
		return orDefault(o.Breaker.OpenTimeout, triton.DefaultBreakerOpenTimeout).String()
	}),
	tritonSetting(triton.EnvBreakerHalfOpen, func(o *Options) string {
		return strconv.FormatUint(uint64(orDefault(o.Breaker.HalfOpenMaxRequests, triton.DefaultBreakerHalfOpen)), 10)
	}),
	{"KRONOS_TRITON_FALLBACK",
		func(o *Options, v string) error { o.TritonFallback = strings.ToLower(v); return nil },
		func(o *Options) string { return o.TritonFallback }},
	floatSetting("KRONOS_DEFAULT_TEMPERATURE", func(o *Options) *float64 { return &o.DefaultTemperature }),
	intSetting("KRONOS_DEFAULT_TOP_K", func(o *Options) *int { return &o.DefaultTopK }),
	floatSetting("KRONOS_DEFAULT_TOP_P", func(o *Options) *float64 { return &o.DefaultTopP }),
	intSetting("KRONOS_DEFAULT_SAMPLE_COUNT", func(o *Options) *int { return &o.DefaultSampleCount }),
	intSetting("KRONOS_MAX_CANDLES", func(o *Options) *int { return &o.MaxCandles }),
	intSetting("KRONOS_MAX_PREDICTION_STEPS", func(o *Options) *int { return &o.MaxPredictionSteps }),
	intSetting("KRONOS_MAX_SAMPLE_COUNT", func(o *Options) *int { return &o.MaxSampleCount }),
	intSetting("KRONOS_MAX_BATCH_ITEMS", func(o *Options) *int { return &o.MaxBatchItems }),
	intSetting("KRONOS_MAX_BATCH_ROWS", func(o *Options) *int { return &o.MaxBatchRows }),
	{"KRONOS_MAX_BODY_BYTES",
		func(o *Options, v string) error {
			n, err := parseBytes(v)
			if err != nil {
				return err
			}
			o.MaxBodyBytes = n
			return nil
		},
		func(o *Options) string { return strconv.FormatInt(o.MaxBodyBytes, 10) }},
	intSetting("KRONOS_MAX_CONCURRENCY", func(o *Options) *int { return &o.MaxConcurrency }),
	intSetting("KRONOS_QUEUE_SIZE", func(o *Options) *int { return &o.QueueSize }),
	listSetting("KRONOS_API_KEYS", func(o *Options) *[]string { return &o.APIKeys }, true),
	stringSetting("KRONOS_API_KEYS_FILE", func(o *Options) *string { return &o.APIKeysFile }),
	floatSetting("KRONOS_RATE_LIMIT_PER_MINUTE", func(o *Options) *float64 { return &o.RateLimitPerMinute }),
	intSetting("KRONOS_RATE_LIMIT_BURST", func(o *Options) *int { return &o.RateLimitBurst }),
	listSetting("KRONOS_ADMIN_API_KEYS", func(o *Options) *[]string { return &o.AdminAPIKeys }, true),
	durationSetting("KRONOS_INFERENCE_TIMEOUT", func(o *Options) *time.Duration { return &o.InferenceTimeout }),
	durationSetting("KRONOS_REQUEST_TIMEOUT", func(o *Options) *time.Duration { return &o.RequestTimeout }),
	durationSetting("KRONOS_STARTUP_TIMEOUT", func(o *Options) *time.Duration { return &o.StartupTimeout }),
	durationSetting("KRONOS_SHUTDOWN_TIMEOUT", func(o *Options) *time.Duration { return &o.ShutdownTimeout }),
	durationSetting("KRONOS_IDLE_TIMEOUT", func(o *Options) *time.Duration { return &o.IdleTimeout }),
	stringSetting("KRONOS_LOG_LEVEL", func(o *Options) *string { return &o.LogLevel }),
}

// FromEnv returns NewOptions overridden by the KRONOS_* variables that
// lookup finds (os.LookupEnv in main), then validated. A variable that is
// set but empty or blank counts as unset. Every unparsable or out-of-range
// value is reported, each error naming its variable; nothing is silently
// replaced by a default. The Triton and breaker variables are parsed by
// triton.FromEnv.
func FromEnv(lookup func(string) (string, bool)) (Options, error) {
	o := NewOptions()
	var errs []error
	for _, s := range settings {
		v, ok := lookup(s.env)
		v = strings.TrimSpace(v)
		if !ok || v == "" || s.parse == nil {
			continue
		}
		if err := s.parse(&o, v); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", s.env, err))
		}
	}
	to, bo, err := triton.FromEnv(lookup)
	if err != nil {
		errs = append(errs, err)
	}
	// KRONOS_MODEL belongs to the gateway; Run names each Triton model.
	to.Model = ""
	o.Triton, o.Breaker = to, bo
	if len(errs) > 0 {
		return o, errors.Join(errs...)
	}
	return o, o.Validate()
}

// UnknownEnv returns the KRONOS_* names in environ ("KEY=value" entries, as
// from os.Environ) that FromEnv does not read, sorted: most likely typos or
// settings of the seed service that this gateway does not have. main logs
// them as a warning.
func UnknownEnv(environ []string) []string {
	known := make(map[string]bool, len(settings))
	for _, s := range settings {
		known[s.env] = true
	}
	var out []string
	for _, kv := range environ {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "KRONOS_") && !known[k] {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// Validate checks every setting and returns all problems found, each naming
// its environment variable.
func (o Options) Validate() error {
	var errs []error
	bad := func(env, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{env}, args...)...))
	}
	if o.Host != "" && net.ParseIP(o.Host) == nil && !validHostname(o.Host) {
		bad("KRONOS_HOST", "%q is neither an IP address nor a host name", o.Host)
	}
	if o.Port < 0 || o.Port > 65535 {
		bad("KRONOS_PORT", "must be in [0, 65535], got %d", o.Port)
	}
	if o.ModelRepository == "" {
		bad("KRONOS_MODEL_REPOSITORY", "must not be empty")
	}
	if o.Model == "" {
		bad("KRONOS_MODEL", "must not be empty")
	} else if !validModelName(o.Model) {
		bad("KRONOS_MODEL", "%q is not a model name (letters, digits, '.', '_' and '-')", o.Model)
	}
	if len(o.Models) > 0 {
		seen := map[string]bool{}
		for _, m := range o.Models {
			switch {
			case !validModelName(m):
				bad("KRONOS_MODELS", "%q is not a model name (letters, digits, '.', '_' and '-')", m)
			case seen[m]:
				bad("KRONOS_MODELS", "lists %q twice", m)
			}
			seen[m] = true
		}
		if o.Model != "" && !seen[o.Model] {
			bad("KRONOS_MODELS", "must include the default model KRONOS_MODEL=%q", o.Model)
		}
	}
	if o.IntraOpThreads < 0 {
		bad("KRONOS_INTRA_OP_THREADS", "must be >= 0 (0 = ONNX Runtime default), got %d", o.IntraOpThreads)
	}
	if o.MaxContext < 0 {
		bad("KRONOS_MAX_CONTEXT", "must be >= 0 (0 = the model's max_context), got %d", o.MaxContext)
	}
	switch o.Backend {
	case "", BackendEmbedded, BackendTriton:
	default:
		bad("KRONOS_BACKEND", "%q is neither %s nor %s", o.Backend, BackendEmbedded, BackendTriton)
	}
	switch {
	case o.TritonFallback != "" && o.TritonFallback != BackendEmbedded:
		bad("KRONOS_TRITON_FALLBACK", "%q is not %s (or empty for no fallback)", o.TritonFallback, BackendEmbedded)
	case o.TritonFallback != "" && o.BackendKind() != BackendTriton:
		bad("KRONOS_TRITON_FALLBACK", "applies to KRONOS_BACKEND=%s only; the backend is %s", BackendTriton, o.BackendKind())
	}
	if o.BackendKind() == BackendTriton {
		if err := o.Triton.Validate(); err != nil { // its errors name the variables
			errs = append(errs, err)
		}
	}
	if !(o.DefaultTemperature > 0) || math.IsInf(o.DefaultTemperature, 0) {
		bad("KRONOS_DEFAULT_TEMPERATURE", "must be a finite number > 0, got %v", o.DefaultTemperature)
	}
	if o.DefaultTopK < 0 {
		bad("KRONOS_DEFAULT_TOP_K", "must be >= 0 (0 disables top-k), got %d", o.DefaultTopK)
	}
	if !(o.DefaultTopP > 0 && o.DefaultTopP <= 1) {
		bad("KRONOS_DEFAULT_TOP_P", "must be in (0, 1], got %v", o.DefaultTopP)
	}
	positive := []struct {
		env string
		v   int
	}{
		{"KRONOS_MAX_CANDLES", o.MaxCandles},
		{"KRONOS_MAX_PREDICTION_STEPS", o.MaxPredictionSteps},
		{"KRONOS_MAX_SAMPLE_COUNT", o.MaxSampleCount},
		{"KRONOS_MAX_BATCH_ITEMS", o.MaxBatchItems},
		{"KRONOS_MAX_BATCH_ROWS", o.MaxBatchRows},
		{"KRONOS_MAX_CONCURRENCY", o.MaxConcurrency},
	}
	for _, p := range positive {
		if p.v < 1 {
			bad(p.env, "must be >= 1, got %d", p.v)
		}
	}
	if o.DefaultSampleCount < 1 || (o.MaxSampleCount >= 1 && o.DefaultSampleCount > o.MaxSampleCount) {
		bad("KRONOS_DEFAULT_SAMPLE_COUNT", "must be in [1, KRONOS_MAX_SAMPLE_COUNT=%d], got %d",
			o.MaxSampleCount, o.DefaultSampleCount)
	}
	if o.MaxSampleCount >= 1 && o.MaxBatchRows >= 1 && o.MaxBatchRows < o.MaxSampleCount {
		bad("KRONOS_MAX_BATCH_ROWS", "must be at least KRONOS_MAX_SAMPLE_COUNT=%d (one item's rows share a session), got %d",
			o.MaxSampleCount, o.MaxBatchRows)
	}
	if o.QueueSize < 0 {
		bad("KRONOS_QUEUE_SIZE", "must be >= 0 (0 = no queue), got %d", o.QueueSize)
	}
	for i, k := range o.APIKeys {
		if err := checkAPIKey(k); err != nil {
			bad("KRONOS_API_KEYS", "key %d %v", i+1, err)
		}
	}
	if !(o.RateLimitPerMinute >= 0) || math.IsInf(o.RateLimitPerMinute, 0) {
		bad("KRONOS_RATE_LIMIT_PER_MINUTE", "must be a finite number >= 0 (0 = no limit), got %v", o.RateLimitPerMinute)
	}
	if o.RateLimitBurst < 0 {
		bad("KRONOS_RATE_LIMIT_BURST", "must be >= 0 (0 = the per-minute rate), got %d", o.RateLimitBurst)
	}
	clientKeys := make(map[string]bool, len(o.APIKeys))
	for _, k := range o.APIKeys {
		clientKeys[k] = true
	}
	for i, k := range o.AdminAPIKeys {
		if err := checkAPIKey(k); err != nil {
			bad("KRONOS_ADMIN_API_KEYS", "key %d %v", i+1, err)
		} else if clientKeys[k] {
			bad("KRONOS_ADMIN_API_KEYS", "key %d is also a client key of KRONOS_API_KEYS; admin keys must be separate", i+1)
		}
	}
	if o.MaxBodyBytes < 1 || o.MaxBodyBytes > math.MaxInt32 {
		bad("KRONOS_MAX_BODY_BYTES", "must be in [1, %d], got %d", math.MaxInt32, o.MaxBodyBytes)
	}
	durations := []struct {
		env string
		v   time.Duration
	}{
		{"KRONOS_INFERENCE_TIMEOUT", o.InferenceTimeout},
		{"KRONOS_REQUEST_TIMEOUT", o.RequestTimeout},
		{"KRONOS_STARTUP_TIMEOUT", o.StartupTimeout},
		{"KRONOS_SHUTDOWN_TIMEOUT", o.ShutdownTimeout},
		{"KRONOS_IDLE_TIMEOUT", o.IdleTimeout},
	}
	for _, d := range durations {
		if d.v <= 0 {
			bad(d.env, "must be > 0, got %v", d.v)
		}
	}
	if o.InferenceTimeout > 0 && o.RequestTimeout > 0 && o.InferenceTimeout > o.RequestTimeout {
		bad("KRONOS_INFERENCE_TIMEOUT", "%v exceeds KRONOS_REQUEST_TIMEOUT %v", o.InferenceTimeout, o.RequestTimeout)
	}
	if _, err := parseLevel(o.LogLevel); err != nil {
		bad("KRONOS_LOG_LEVEL", "%v", err)
	}
	return errors.Join(errs...)
}

// AsMap returns the effective configuration keyed by environment variable,
// for logging once at start. It holds no secrets.
func (o Options) AsMap() map[string]string {
	m := make(map[string]string, len(settings))
	for _, s := range settings {
		m[s.env] = s.show(&o)
	}
	return m
}

// BackendKind is the backend Run opens: Backend when set, else triton when
// a Triton URL is configured (KRONOS_TRITON_URL), else embedded.
func (o Options) BackendKind() string {
	switch {
	case o.Backend != "":
		return o.Backend
	case o.Triton.URL != "":
		return BackendTriton
	}
	return BackendEmbedded
}

// ModelNames returns the models to load: Models, or Model alone.
func (o Options) ModelNames() []string {
	if len(o.Models) == 0 {
		return []string{o.Model}
	}
	return append([]string(nil), o.Models...)
}

// validModelName accepts the names the exporter writes: letters, digits,
// '.', '_' and '-', not starting with '.'.
func validModelName(s string) bool {
	if s == "" || len(s) > 128 || s[0] == '.' {
		return false
	}
	for _, r := range s {
		if !(r == '-' || r == '_' || r == '.' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return false
		}
	}
	return true
}

// addr is the host:port the server listens on.
func (o Options) addr() string {
	return net.JoinHostPort(o.Host, strconv.Itoa(o.Port))
}

// parseDuration accepts Go duration syntax or a plain number of seconds.
func parseDuration(v string) (time.Duration, error) {
	if d, err := time.ParseDuration(v); err == nil {
		return d, nil
	}
	s, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(s) || math.IsInf(s, 0) || math.Abs(s) > math.MaxInt64/float64(time.Second) {
		return 0, fmt.Errorf("%q is not a duration (use Go syntax like \"30s\" or plain seconds like \"30\")", v)
	}
	return time.Duration(s * float64(time.Second)), nil
}

// parseBytes accepts a byte count with an optional binary unit.
func parseBytes(v string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{
		{"KIB", 1 << 10}, {"MIB", 1 << 20}, {"GIB", 1 << 30},
		{"KB", 1 << 10}, {"MB", 1 << 20}, {"GB", 1 << 30},
		{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"B", 1},
	}
	num, mult := strings.ToUpper(v), int64(1)
	for _, u := range units {
		if strings.HasSuffix(num, u.suffix) {
			num, mult = strings.TrimSpace(strings.TrimSuffix(num, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n > math.MaxInt64/mult {
		return 0, fmt.Errorf("%q is not a size (use bytes like \"10485760\" or a unit like \"10MiB\")", v)
	}
	return n * mult, nil
}

// parseLevel maps KRONOS_LOG_LEVEL to a slog level.
func parseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error", "critical":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("%q is not one of debug, info, warn, error", s)
}

// validHostname reports whether h looks like a DNS name.
func validHostname(h string) bool {
	if len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for _, r := range label {
			if !(r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
				return false
			}
		}
	}
	return true
}
