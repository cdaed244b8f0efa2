package triton

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
)

// Defaults used for zero-valued Options fields.
const (
	DefaultURL             = "localhost:8001"
	DefaultModel           = "kronos-nano"
	DefaultInferTimeout    = 10 * time.Second
	DefaultControlTimeout  = 5 * time.Second
	DefaultLoadTimeout     = 5 * time.Minute
	DefaultVersionRefresh  = 10 * time.Second
	DefaultMaxRecvMsgBytes = 256 << 20
	DefaultOverloadRetry   = time.Second
	DefaultReconnectBase   = 200 * time.Millisecond
	DefaultReconnectMax    = 5 * time.Second
)

// Options configure New. The zero value talks to localhost:8001 without
// TLS and serves kronos-nano; every zero field takes the default named in
// its comment.
type Options struct {
	// Connection.

	// URL is Triton's gRPC address, host:port or a gRPC target such as
	// dns:///triton:8001 (default "localhost:8001"; KRONOS_TRITON_URL).
	URL string
	// TLS enables transport security with the system roots, or the CA in
	// TLSCAFile (KRONOS_TRITON_TLS=1, KRONOS_TRITON_CA_FILE,
	// KRONOS_TRITON_SERVER_NAME). Default: insecure (plaintext) credentials.
	TLS           bool
	TLSCAFile     string
	TLSServerName string
	// TLSConfig, when set, is used as is (overrides the three above).
	TLSConfig *tls.Config
	// KeepaliveTime sends HTTP/2 pings after this much idle time on a
	// connection with calls in flight (0, the default: no client pings).
	// Triton's defaults punish pings more often than every 5 minutes
	// (GOAWAY "too_many_pings"); set it below that only together with
	// tritonserver --grpc-keepalive-permit-without-calls=1
	// --grpc-http2-min-recv-ping-interval-without-data=<ms> (docs/triton.md).
	// KRONOS_TRITON_KEEPALIVE.
	KeepaliveTime time.Duration
	// MaxRecvMsgBytes raises grpc-go's 4 MiB receive limit (default
	// 256 MiB; KRONOS_TRITON_MAX_RECV_BYTES).
	MaxRecvMsgBytes int
	// ReconnectBaseDelay and ReconnectMaxDelay bound the reconnect backoff
	// after Triton went away (defaults 200 ms and 5 s).
	ReconnectBaseDelay, ReconnectMaxDelay time.Duration
	// DialOptions are appended to the dial options (tests: bufconn).
	DialOptions []grpc.DialOption

	// Model.

	// Model is the Kronos model name; the Triton models are
	// <Model>-encoder, -decoder, -window and -window_s2 (default
	// "kronos-nano"; KRONOS_MODEL).
	Model string
	// MaxContext overrides the model's kronos.max_context config
	// parameter (0: take the parameter; required when the config lacks it).
	MaxContext int
	// Buckets are the padded window lengths (ascending). Each step's
	// windows are right-padded to the smallest bucket that fits, so that
	// concurrent forecasts send equal shapes and share Triton's dynamic
	// batches. Default: multiples of 64 below MaxContext, then MaxContext
	// (KRONOS_TRITON_BUCKETS="64,128,256").
	Buckets []int

	// Deadlines.

	// InferTimeout bounds each ModelInfer call (default 10 s;
	// KRONOS_TRITON_TIMEOUT). The caller's context may end sooner.
	InferTimeout time.Duration
	// ControlTimeout bounds metadata, config, readiness and index calls
	// (default 5 s; KRONOS_TRITON_CONTROL_TIMEOUT).
	ControlTimeout time.Duration
	// LoadTimeout bounds RepositoryModelLoad (default 5 min: TensorRT
	// builds engines while loading).
	LoadTimeout time.Duration
	// VersionRefresh is how long the resolved model version is trusted
	// before NewSession asks Triton again (default 10 s). Admin loads and
	// unloads refresh it at once.
	VersionRefresh time.Duration
	// OverloadRetryAfter is the Retry-After hint attached to "queue full"
	// (KindOverloaded) errors (default 1 s; negative: none).
	OverloadRetryAfter time.Duration

	// Observability.

	// Registerer receives the client's metrics (nil: not registered). Never
	// the global registry by default.
	Registerer prometheus.Registerer
	// Logger logs version changes (default: slog.Default()).
	Logger *slog.Logger
}

// withDefaults returns o with the defaults filled in (Buckets are set once
// MaxContext is known, in New).
func (o Options) withDefaults() Options {
	if o.URL == "" {
		o.URL = DefaultURL
	}
	if o.Model == "" {
		o.Model = DefaultModel
	}
	if o.InferTimeout <= 0 {
		o.InferTimeout = DefaultInferTimeout
	}
	if o.ControlTimeout <= 0 {
		o.ControlTimeout = DefaultControlTimeout
	}
	if o.LoadTimeout <= 0 {
		o.LoadTimeout = DefaultLoadTimeout
	}
	if o.VersionRefresh <= 0 {
		o.VersionRefresh = DefaultVersionRefresh
	}
	if o.MaxRecvMsgBytes <= 0 {
		o.MaxRecvMsgBytes = DefaultMaxRecvMsgBytes
	}
	if o.OverloadRetryAfter == 0 {
		o.OverloadRetryAfter = DefaultOverloadRetry
	}
	if o.ReconnectBaseDelay <= 0 {
		o.ReconnectBaseDelay = DefaultReconnectBase
	}
	if o.ReconnectMaxDelay <= 0 {
		o.ReconnectMaxDelay = DefaultReconnectMax
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// Validate reports the first invalid field, naming its environment
// variable.
func (o Options) Validate() error {
	for i, b := range o.Buckets {
		if b <= 0 || (i > 0 && b <= o.Buckets[i-1]) {
			return fmt.Errorf("KRONOS_TRITON_BUCKETS: %v must be positive and ascending", o.Buckets)
		}
	}
	if o.MaxContext < 0 {
		return errors.New("triton: MaxContext must be >= 0")
	}
	if o.KeepaliveTime < 0 {
		return errors.New("KRONOS_TRITON_KEEPALIVE: must be >= 0")
	}
	if o.TLSCAFile != "" && !o.TLS && o.TLSConfig == nil {
		return errors.New("KRONOS_TRITON_CA_FILE is set but KRONOS_TRITON_TLS is not")
	}
	return nil
}

// Environment variables read by FromEnv.
const (
	EnvURL            = "KRONOS_TRITON_URL"
	EnvModel          = "KRONOS_MODEL"
	EnvTimeout        = "KRONOS_TRITON_TIMEOUT"
	EnvControlTimeout = "KRONOS_TRITON_CONTROL_TIMEOUT"
	EnvBuckets        = "KRONOS_TRITON_BUCKETS"
	EnvTLS            = "KRONOS_TRITON_TLS"
	EnvCAFile         = "KRONOS_TRITON_CA_FILE"
	EnvServerName     = "KRONOS_TRITON_SERVER_NAME"
	EnvKeepalive      = "KRONOS_TRITON_KEEPALIVE"
	EnvMaxRecv        = "KRONOS_TRITON_MAX_RECV_BYTES"

	EnvBreakerFailures = "KRONOS_BREAKER_FAILURES"
	EnvBreakerInterval = "KRONOS_BREAKER_INTERVAL"
	EnvBreakerOpen     = "KRONOS_BREAKER_OPEN_TIMEOUT"
	EnvBreakerHalfOpen = "KRONOS_BREAKER_HALF_OPEN_REQUESTS"
)

// FromEnv fills Options and BreakerOptions from environment variables
// through lookup (os.LookupEnv in production). Unset variables keep the
// defaults; a malformed value is an error naming the variable. Durations
// use Go syntax ("2s", "500ms").
func FromEnv(lookup func(string) (string, bool)) (Options, BreakerOptions, error) {
	var (
		o    Options
		b    BreakerOptions
		errs []error
	)
	str := func(name string, dst *string) {
		if v, ok := lookup(name); ok {
			*dst = strings.TrimSpace(v)
		}
	}
	dur := func(name string, dst *time.Duration) {
		if v, ok := lookup(name); ok && strings.TrimSpace(v) != "" {
			d, err := time.ParseDuration(strings.TrimSpace(v))
			if err != nil || d < 0 {
				errs = append(errs, fmt.Errorf("%s=%q: want a duration such as 2s", name, v))
				return
			}
			*dst = d
		}
	}
	integer := func(name string, dst *int) {
		if v, ok := lookup(name); ok && strings.TrimSpace(v) != "" {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil || n < 0 {
				errs = append(errs, fmt.Errorf("%s=%q: want a non-negative integer", name, v))
				return
			}
			*dst = n
		}
	}
	str(EnvURL, &o.URL)
	str(EnvModel, &o.Model)
	dur(EnvTimeout, &o.InferTimeout)
	dur(EnvControlTimeout, &o.ControlTimeout)
	dur(EnvKeepalive, &o.KeepaliveTime)
	integer(EnvMaxRecv, &o.MaxRecvMsgBytes)
	str(EnvCAFile, &o.TLSCAFile)
	str(EnvServerName, &o.TLSServerName)
	if v, ok := lookup(EnvTLS); ok && strings.TrimSpace(v) != "" {
		t, err := strconv.ParseBool(strings.TrimSpace(v))
		if err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: want true or false", EnvTLS, v))
		}
		o.TLS = t
	}
	if v, ok := lookup(EnvBuckets); ok && strings.TrimSpace(v) != "" {
		for _, f := range strings.Split(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n <= 0 {
				errs = append(errs, fmt.Errorf("%s=%q: want ascending positive integers such as 64,128,256", EnvBuckets, v))
				break
			}
			o.Buckets = append(o.Buckets, n)
		}
	}
	var failures, halfOpen int
	integer(EnvBreakerFailures, &failures)
	integer(EnvBreakerHalfOpen, &halfOpen)
	b.ConsecutiveFailures, b.HalfOpenMaxRequests = uint32(failures), uint32(halfOpen)
	dur(EnvBreakerInterval, &b.Interval)
	dur(EnvBreakerOpen, &b.OpenTimeout)
	if err := errors.Join(errs...); err != nil {
		return o, b, err
	}
	return o, b, o.Validate()
}
