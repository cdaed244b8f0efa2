package gateway

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

func TestNewOptionsDefaults(t *testing.T) {
	o := NewOptions()
	require.NoError(t, o.Validate())
	require.Equal(t, "0.0.0.0:8000", o.addr())
	want := map[string]string{
		"KRONOS_HOST": "0.0.0.0", "KRONOS_PORT": "8000", "KRONOS_MODEL_REPOSITORY": "model_repository",
		"KRONOS_MODEL": "kronos-nano", "KRONOS_MODEL_VERSION": "", "KRONOS_ORT_LIB": "",
		"KRONOS_INTRA_OP_THREADS": "0", "KRONOS_MAX_CONTEXT": "0",
		"KRONOS_DEFAULT_TEMPERATURE": "1", "KRONOS_DEFAULT_TOP_K": "0", "KRONOS_DEFAULT_TOP_P": "0.9",
		"KRONOS_DEFAULT_SAMPLE_COUNT": "1", "KRONOS_MAX_CANDLES": "2048", "KRONOS_MAX_PREDICTION_STEPS": "512",
		"KRONOS_MAX_SAMPLE_COUNT": "32", "KRONOS_MAX_BATCH_ITEMS": "64", "KRONOS_MAX_BODY_BYTES": "10485760",
		"KRONOS_INFERENCE_TIMEOUT": "30s", "KRONOS_REQUEST_TIMEOUT": "1m0s", "KRONOS_STARTUP_TIMEOUT": "2m0s",
		"KRONOS_SHUTDOWN_TIMEOUT": "25s", "KRONOS_IDLE_TIMEOUT": "2m0s", "KRONOS_LOG_LEVEL": "info",
		"KRONOS_MODELS": "", "KRONOS_MAX_BATCH_ROWS": "64", "KRONOS_MAX_CONCURRENCY": "2", "KRONOS_QUEUE_SIZE": "16",
		"KRONOS_API_KEYS": "", "KRONOS_API_KEYS_FILE": "", "KRONOS_RATE_LIMIT_PER_MINUTE": "0",
		"KRONOS_RATE_LIMIT_BURST": "0", "KRONOS_BACKEND": "embedded",
		"KRONOS_TRITON_URL": "localhost:8001", "KRONOS_TRITON_TIMEOUT": "10s",
		"KRONOS_TRITON_CONTROL_TIMEOUT": "5s", "KRONOS_TRITON_BUCKETS": "default", "KRONOS_TRITON_TLS": "false",
		"KRONOS_TRITON_CA_FILE": "", "KRONOS_TRITON_SERVER_NAME": "", "KRONOS_TRITON_KEEPALIVE": "0s",
		"KRONOS_TRITON_MAX_RECV_BYTES": "268435456", "KRONOS_BREAKER_FAILURES": "5", "KRONOS_BREAKER_INTERVAL": "0s",
		"KRONOS_BREAKER_OPEN_TIMEOUT": "30s", "KRONOS_BREAKER_HALF_OPEN_REQUESTS": "1", "KRONOS_TRITON_FALLBACK": "",
		"KRONOS_ADMIN_API_KEYS": "",
	}
	require.Equal(t, want, o.AsMap())

	fromEmpty, err := FromEnv(env(nil))
	require.NoError(t, err)
	require.Equal(t, o, fromEmpty)
}

func TestFromEnv(t *testing.T) {
	cases := []struct {
		name  string
		env   map[string]string
		check func(t *testing.T, o Options)
	}{
		{"strings", map[string]string{"KRONOS_HOST": "127.0.0.1", "KRONOS_MODEL": "kronos-small",
			"KRONOS_MODEL_VERSION": "3", "KRONOS_ORT_LIB": "/opt/ort.so", "KRONOS_MODEL_REPOSITORY": "/models"},
			func(t *testing.T, o Options) {
				require.Equal(t, "127.0.0.1", o.Host)
				require.Equal(t, "kronos-small", o.Model)
				require.Equal(t, "3", o.ModelVersion)
				require.Equal(t, "/opt/ort.so", o.ORTLib)
				require.Equal(t, "/models", o.ModelRepository)
			}},
		{"numbers", map[string]string{"KRONOS_PORT": "9000", "KRONOS_MAX_CONTEXT": "256", "KRONOS_INTRA_OP_THREADS": "2",
			"KRONOS_DEFAULT_TEMPERATURE": "0.7", "KRONOS_DEFAULT_TOP_K": "5", "KRONOS_DEFAULT_TOP_P": "1",
			"KRONOS_DEFAULT_SAMPLE_COUNT": "4", "KRONOS_MAX_CANDLES": "512", "KRONOS_MAX_PREDICTION_STEPS": "64",
			"KRONOS_MAX_SAMPLE_COUNT": "8", "KRONOS_MAX_BATCH_ITEMS": "4"},
			func(t *testing.T, o Options) {
				require.Equal(t, 9000, o.Port)
				require.Equal(t, 256, o.MaxContext)
				require.Equal(t, 2, o.IntraOpThreads)
				require.Equal(t, 0.7, o.DefaultTemperature)
				require.Equal(t, 5, o.DefaultTopK)
				require.Equal(t, 1.0, o.DefaultTopP)
				require.Equal(t, 4, o.DefaultSampleCount)
				require.Equal(t, 512, o.MaxCandles)
				require.Equal(t, 64, o.MaxPredictionSteps)
				require.Equal(t, 8, o.MaxSampleCount)
				require.Equal(t, 4, o.MaxBatchItems)
			}},
		{"durations: Go syntax and plain seconds", map[string]string{"KRONOS_INFERENCE_TIMEOUT": "30",
			"KRONOS_REQUEST_TIMEOUT": "1m30s", "KRONOS_STARTUP_TIMEOUT": "2.5", "KRONOS_SHUTDOWN_TIMEOUT": "500ms",
			"KRONOS_IDLE_TIMEOUT": " 10 "},
			func(t *testing.T, o Options) {
				require.Equal(t, 30*time.Second, o.InferenceTimeout)
				require.Equal(t, 90*time.Second, o.RequestTimeout)
				require.Equal(t, 2500*time.Millisecond, o.StartupTimeout)
				require.Equal(t, 500*time.Millisecond, o.ShutdownTimeout)
				require.Equal(t, 10*time.Second, o.IdleTimeout)
			}},
		{"sizes", map[string]string{"KRONOS_MAX_BODY_BYTES": "20MiB"},
			func(t *testing.T, o Options) { require.Equal(t, int64(20<<20), o.MaxBodyBytes) }},
		{"sizes in bytes", map[string]string{"KRONOS_MAX_BODY_BYTES": "1048576"},
			func(t *testing.T, o Options) { require.Equal(t, int64(1<<20), o.MaxBodyBytes) }},
		{"sizes with K", map[string]string{"KRONOS_MAX_BODY_BYTES": "512k"},
			func(t *testing.T, o Options) { require.Equal(t, int64(512<<10), o.MaxBodyBytes) }},
		{"log level upper case and seed's names", map[string]string{"KRONOS_LOG_LEVEL": "WARNING"},
			func(t *testing.T, o Options) { require.Equal(t, "WARNING", o.LogLevel) }},
		{"empty means unset", map[string]string{"KRONOS_PORT": "", "KRONOS_MODEL": "  "},
			func(t *testing.T, o Options) {
				require.Equal(t, 8000, o.Port)
				require.Equal(t, "kronos-nano", o.Model)
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o, err := FromEnv(env(tc.env))
			require.NoError(t, err)
			tc.check(t, o)
		})
	}
}

// TestFromEnvErrors checks that every bad value is an error naming its
// variable.
func TestFromEnvErrors(t *testing.T) {
	cases := []struct {
		env     map[string]string
		mention []string
	}{
		{map[string]string{"KRONOS_PORT": "http"}, []string{"KRONOS_PORT", `"http"`}},
		{map[string]string{"KRONOS_PORT": "70000"}, []string{"KRONOS_PORT"}},
		{map[string]string{"KRONOS_HOST": "not a host!"}, []string{"KRONOS_HOST"}},
		{map[string]string{"KRONOS_MODEL_REPOSITORY": ""}, nil}, // empty = default, fine
		{map[string]string{"KRONOS_INFERENCE_TIMEOUT": "soon"}, []string{"KRONOS_INFERENCE_TIMEOUT", `"soon"`}},
		{map[string]string{"KRONOS_INFERENCE_TIMEOUT": "0"}, []string{"KRONOS_INFERENCE_TIMEOUT", "> 0"}},
		{map[string]string{"KRONOS_REQUEST_TIMEOUT": "-5s"}, []string{"KRONOS_REQUEST_TIMEOUT"}},
		{map[string]string{"KRONOS_INFERENCE_TIMEOUT": "90", "KRONOS_REQUEST_TIMEOUT": "60"},
			[]string{"KRONOS_INFERENCE_TIMEOUT", "KRONOS_REQUEST_TIMEOUT"}},
		{map[string]string{"KRONOS_STARTUP_TIMEOUT": "1e300"}, []string{"KRONOS_STARTUP_TIMEOUT"}},
		{map[string]string{"KRONOS_DEFAULT_TEMPERATURE": "0"}, []string{"KRONOS_DEFAULT_TEMPERATURE"}},
		{map[string]string{"KRONOS_DEFAULT_TEMPERATURE": "NaN"}, []string{"KRONOS_DEFAULT_TEMPERATURE"}},
		{map[string]string{"KRONOS_DEFAULT_TEMPERATURE": "Inf"}, []string{"KRONOS_DEFAULT_TEMPERATURE"}},
		{map[string]string{"KRONOS_DEFAULT_TOP_P": "0"}, []string{"KRONOS_DEFAULT_TOP_P"}},
		{map[string]string{"KRONOS_DEFAULT_TOP_P": "1.1"}, []string{"KRONOS_DEFAULT_TOP_P"}},
		{map[string]string{"KRONOS_DEFAULT_TOP_K": "-1"}, []string{"KRONOS_DEFAULT_TOP_K"}},
		{map[string]string{"KRONOS_DEFAULT_TOP_K": "1.5"}, []string{"KRONOS_DEFAULT_TOP_K"}},
		{map[string]string{"KRONOS_DEFAULT_SAMPLE_COUNT": "0"}, []string{"KRONOS_DEFAULT_SAMPLE_COUNT"}},
		{map[string]string{"KRONOS_DEFAULT_SAMPLE_COUNT": "40"}, []string{"KRONOS_DEFAULT_SAMPLE_COUNT", "32"}},
		{map[string]string{"KRONOS_MAX_CANDLES": "0"}, []string{"KRONOS_MAX_CANDLES"}},
		{map[string]string{"KRONOS_MAX_PREDICTION_STEPS": "-1"}, []string{"KRONOS_MAX_PREDICTION_STEPS"}},
		{map[string]string{"KRONOS_MAX_SAMPLE_COUNT": "0"}, []string{"KRONOS_MAX_SAMPLE_COUNT"}},
		{map[string]string{"KRONOS_MAX_BATCH_ITEMS": "0"}, []string{"KRONOS_MAX_BATCH_ITEMS"}},
		{map[string]string{"KRONOS_MAX_BODY_BYTES": "lots"}, []string{"KRONOS_MAX_BODY_BYTES"}},
		{map[string]string{"KRONOS_MAX_BODY_BYTES": "0"}, []string{"KRONOS_MAX_BODY_BYTES"}},
		{map[string]string{"KRONOS_MAX_BODY_BYTES": "8GiB"}, []string{"KRONOS_MAX_BODY_BYTES"}},
		{map[string]string{"KRONOS_MAX_CONTEXT": "-1"}, []string{"KRONOS_MAX_CONTEXT"}},
		{map[string]string{"KRONOS_INTRA_OP_THREADS": "-2"}, []string{"KRONOS_INTRA_OP_THREADS"}},
		{map[string]string{"KRONOS_LOG_LEVEL": "verbose"}, []string{"KRONOS_LOG_LEVEL", `"verbose"`}},
		// Every problem is reported, not only the first.
		{map[string]string{"KRONOS_PORT": "x", "KRONOS_MAX_CANDLES": "y"}, []string{"KRONOS_PORT", "KRONOS_MAX_CANDLES"}},
	}
	for _, tc := range cases {
		_, err := FromEnv(env(tc.env))
		if tc.mention == nil {
			require.NoError(t, err, "env %v", tc.env)
			continue
		}
		require.Error(t, err, "env %v", tc.env)
		for _, m := range tc.mention {
			require.Contains(t, err.Error(), m, "env %v", tc.env)
		}
	}
}

func TestUnknownEnv(t *testing.T) {
	got := UnknownEnv([]string{"PATH=/bin", "KRONOS_PORT=1", "KRONOS_INFERENCE_TIMOUT=5", "KRONOS_DEVICE=cpu", "KRONOS_X"})
	require.Equal(t, []string{"KRONOS_DEVICE", "KRONOS_INFERENCE_TIMOUT", "KRONOS_X"}, got)
}

func TestParseLevel(t *testing.T) {
	for _, s := range []string{"debug", "INFO", "warn", "Warning", "error", "CRITICAL"} {
		_, err := parseLevel(s)
		require.NoError(t, err, s)
	}
	_, err := parseLevel("trace")
	require.Error(t, err)
	require.True(t, strings.Contains(err.Error(), "trace"))
}

// TestOptionsModelsAndLimits covers the settings of models, batches,
// admission and rate limits.
func TestOptionsModelsAndLimits(t *testing.T) {
	o, err := FromEnv(env(map[string]string{"KRONOS_MODEL": "kronos-small", "KRONOS_MODELS": "kronos-mini, kronos-small,",
		"KRONOS_MAX_CONCURRENCY": "4", "KRONOS_QUEUE_SIZE": "0", "KRONOS_MAX_BATCH_ROWS": "128"}))
	require.NoError(t, err)
	require.Equal(t, []string{"kronos-mini", "kronos-small"}, o.ModelNames())
	require.Equal(t, "kronos-mini,kronos-small", o.AsMap()["KRONOS_MODELS"])
	require.Equal(t, 4, o.MaxConcurrency)
	require.Zero(t, o.QueueSize)
	require.Equal(t, 128, o.MaxBatchRows)
	require.Equal(t, []string{"kronos-nano"}, NewOptions().ModelNames(), "default: KRONOS_MODEL alone")

	bad := []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"KRONOS_MODELS": "kronos-mini"}, `KRONOS_MODELS: must include the default model KRONOS_MODEL="kronos-nano"`},
		{map[string]string{"KRONOS_MODELS": "kronos-nano,kronos-nano"}, `KRONOS_MODELS: lists "kronos-nano" twice`},
		{map[string]string{"KRONOS_MODELS": "kronos-nano,../x"}, `KRONOS_MODELS: "../x" is not a model name`},
		{map[string]string{"KRONOS_MODEL": "a b"}, `KRONOS_MODEL: "a b" is not a model name`},
		{map[string]string{"KRONOS_MAX_CONCURRENCY": "0"}, "KRONOS_MAX_CONCURRENCY: must be >= 1"},
		{map[string]string{"KRONOS_QUEUE_SIZE": "-1"}, "KRONOS_QUEUE_SIZE: must be >= 0"},
		{map[string]string{"KRONOS_MAX_BATCH_ROWS": "8"}, "KRONOS_MAX_BATCH_ROWS: must be at least KRONOS_MAX_SAMPLE_COUNT=32"},
		{map[string]string{"KRONOS_RATE_LIMIT_BURST": "-2"}, "KRONOS_RATE_LIMIT_BURST: must be >= 0"},
		{map[string]string{"KRONOS_MAX_CONCURRENCY": "two"}, `KRONOS_MAX_CONCURRENCY: "two" is not an integer`},
	}
	for _, tc := range bad {
		_, err := FromEnv(env(tc.env))
		require.ErrorContains(t, err, tc.want, "%v", tc.env)
	}
	for _, k := range []string{"KRONOS_MODELS", "KRONOS_MAX_CONCURRENCY", "KRONOS_QUEUE_SIZE", "KRONOS_MAX_BATCH_ROWS",
		"KRONOS_API_KEYS", "KRONOS_API_KEYS_FILE", "KRONOS_RATE_LIMIT_PER_MINUTE", "KRONOS_RATE_LIMIT_BURST"} {
		require.Empty(t, UnknownEnv([]string{k + "=1"}), k)
	}
}

// TestOptionsBackend covers the backend selection, the Triton and breaker
// settings (parsed by triton.FromEnv) and the admin keys.
func TestOptionsBackend(t *testing.T) {
	o, err := FromEnv(env(map[string]string{"KRONOS_BACKEND": "Triton", "KRONOS_TRITON_URL": "triton:8001",
		"KRONOS_TRITON_TIMEOUT": "2s", "KRONOS_TRITON_CONTROL_TIMEOUT": "1s", "KRONOS_TRITON_BUCKETS": "64, 128,256",
		"KRONOS_TRITON_TLS": "true", "KRONOS_TRITON_SERVER_NAME": "triton.local", "KRONOS_TRITON_KEEPALIVE": "60s",
		"KRONOS_TRITON_MAX_RECV_BYTES": "1048576", "KRONOS_BREAKER_FAILURES": "3", "KRONOS_BREAKER_INTERVAL": "1m",
		"KRONOS_BREAKER_OPEN_TIMEOUT": "10s", "KRONOS_BREAKER_HALF_OPEN_REQUESTS": "2",
		"KRONOS_TRITON_FALLBACK": "embedded", "KRONOS_ADMIN_API_KEYS": "admin-1,admin-2", "KRONOS_MODEL": "kronos-small"}))
	require.NoError(t, err)
	require.Equal(t, BackendTriton, o.BackendKind())
	require.Equal(t, "triton:8001", o.Triton.URL)
	require.Empty(t, o.Triton.Model, "the Triton model is named per model by Run")
	require.Equal(t, 2*time.Second, o.Triton.InferTimeout)
	require.Equal(t, time.Second, o.Triton.ControlTimeout)
	require.Equal(t, []int{64, 128, 256}, o.Triton.Buckets)
	require.True(t, o.Triton.TLS)
	require.Equal(t, "triton.local", o.Triton.TLSServerName)
	require.Equal(t, time.Minute, o.Triton.KeepaliveTime)
	require.Equal(t, 1<<20, o.Triton.MaxRecvMsgBytes)
	require.Equal(t, uint32(3), o.Breaker.ConsecutiveFailures)
	require.Equal(t, time.Minute, o.Breaker.Interval)
	require.Equal(t, 10*time.Second, o.Breaker.OpenTimeout)
	require.Equal(t, uint32(2), o.Breaker.HalfOpenMaxRequests)
	require.Equal(t, BackendEmbedded, o.TritonFallback)
	require.Equal(t, []string{"admin-1", "admin-2"}, o.AdminAPIKeys)
	m := o.AsMap()
	require.Equal(t, "triton", m["KRONOS_BACKEND"])
	require.Equal(t, "64,128,256", m["KRONOS_TRITON_BUCKETS"])
	require.Equal(t, "<2 keys>", m["KRONOS_ADMIN_API_KEYS"], "admin keys are never shown")
	require.Equal(t, "3", m["KRONOS_BREAKER_FAILURES"])

	// KRONOS_BACKEND unset: triton when a Triton URL is given, else
	// embedded.
	o, err = FromEnv(env(map[string]string{"KRONOS_TRITON_URL": "triton:8001"}))
	require.NoError(t, err)
	require.Equal(t, BackendTriton, o.BackendKind())
	o, err = FromEnv(env(map[string]string{"KRONOS_BACKEND": "embedded", "KRONOS_TRITON_URL": "triton:8001"}))
	require.NoError(t, err)
	require.Equal(t, BackendEmbedded, o.BackendKind())
	require.Equal(t, BackendEmbedded, NewOptions().BackendKind())

	bad := []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"KRONOS_BACKEND": "onnx"}, `KRONOS_BACKEND: "onnx" is neither embedded nor triton`},
		{map[string]string{"KRONOS_BACKEND": "triton", "KRONOS_TRITON_FALLBACK": "cpu"}, `KRONOS_TRITON_FALLBACK: "cpu" is not embedded`},
		{map[string]string{"KRONOS_TRITON_FALLBACK": "embedded"}, "KRONOS_TRITON_FALLBACK: applies to KRONOS_BACKEND=triton only"},
		{map[string]string{"KRONOS_TRITON_TIMEOUT": "ten"}, `KRONOS_TRITON_TIMEOUT="ten"`},
		{map[string]string{"KRONOS_TRITON_BUCKETS": "128,64"}, "KRONOS_TRITON_BUCKETS"},
		{map[string]string{"KRONOS_BREAKER_FAILURES": "-1"}, "KRONOS_BREAKER_FAILURES"},
		{map[string]string{"KRONOS_BREAKER_OPEN_TIMEOUT": "soon"}, "KRONOS_BREAKER_OPEN_TIMEOUT"},
		{map[string]string{"KRONOS_TRITON_TLS": "maybe"}, "KRONOS_TRITON_TLS"},
		{map[string]string{"KRONOS_ADMIN_API_KEYS": "a b"}, "KRONOS_ADMIN_API_KEYS: key 1"},
		{map[string]string{"KRONOS_API_KEYS": "k1,shared", "KRONOS_ADMIN_API_KEYS": "shared"},
			"KRONOS_ADMIN_API_KEYS: key 1 is also a client key"},
	}
	for _, tc := range bad {
		_, err := FromEnv(env(tc.env))
		require.ErrorContains(t, err, tc.want, "%v", tc.env)
	}
	for k := range NewOptions().AsMap() {
		require.Empty(t, UnknownEnv([]string{k + "=1"}), k)
	}
}
