package triton

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestFromEnv(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		check   func(t *testing.T, o Options, b BreakerOptions)
		wantErr string
	}{
		{name: "empty keeps zero values", env: nil, check: func(t *testing.T, o Options, b BreakerOptions) {
			if o.URL != "" || o.InferTimeout != 0 || b.ConsecutiveFailures != 0 {
				t.Fatalf("%+v %+v", o, b)
			}
		}},
		{name: "all set", env: map[string]string{
			EnvURL: "dns:///triton:8001", EnvModel: "kronos-small", EnvTimeout: "2s", EnvControlTimeout: "500ms",
			EnvBuckets: "64, 128,512", EnvTLS: "true", EnvCAFile: "/etc/ca.pem", EnvServerName: "triton.internal",
			EnvKeepalive: "10m", EnvMaxRecv: "1048576",
			EnvBreakerFailures: "3", EnvBreakerInterval: "1m", EnvBreakerOpen: "15s", EnvBreakerHalfOpen: "2",
		}, check: func(t *testing.T, o Options, b BreakerOptions) {
			if o.URL != "dns:///triton:8001" || o.Model != "kronos-small" || o.InferTimeout != 2*time.Second ||
				o.ControlTimeout != 500*time.Millisecond || !slices.Equal(o.Buckets, []int{64, 128, 512}) || !o.TLS ||
				o.TLSCAFile != "/etc/ca.pem" || o.TLSServerName != "triton.internal" || o.KeepaliveTime != 10*time.Minute ||
				o.MaxRecvMsgBytes != 1<<20 {
				t.Fatalf("%+v", o)
			}
			if b.ConsecutiveFailures != 3 || b.Interval != time.Minute || b.OpenTimeout != 15*time.Second || b.HalfOpenMaxRequests != 2 {
				t.Fatalf("%+v", b)
			}
		}},
		{name: "bad duration", env: map[string]string{EnvTimeout: "2"}, wantErr: "KRONOS_TRITON_TIMEOUT"},
		{name: "bad buckets", env: map[string]string{EnvBuckets: "64,x"}, wantErr: "KRONOS_TRITON_BUCKETS"},
		{name: "descending buckets", env: map[string]string{EnvBuckets: "128,64"}, wantErr: "KRONOS_TRITON_BUCKETS"},
		{name: "bad bool", env: map[string]string{EnvTLS: "maybe"}, wantErr: "KRONOS_TRITON_TLS"},
		{name: "negative failures", env: map[string]string{EnvBreakerFailures: "-1"}, wantErr: "KRONOS_BREAKER_FAILURES"},
		{name: "CA without TLS", env: map[string]string{EnvCAFile: "/ca.pem"}, wantErr: "KRONOS_TRITON_CA_FILE"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o, b, err := FromEnv(func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok })
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one naming %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, o, b)
		})
	}
}

func TestOptionDefaults(t *testing.T) {
	o := Options{}.withDefaults()
	if o.URL != DefaultURL || o.Model != DefaultModel || o.InferTimeout != DefaultInferTimeout ||
		o.MaxRecvMsgBytes != DefaultMaxRecvMsgBytes || o.OverloadRetryAfter != DefaultOverloadRetry || o.KeepaliveTime != 0 {
		t.Fatalf("%+v", o)
	}
	b := BreakerOptions{}.withDefaults()
	if b.Name != "triton" || b.ConsecutiveFailures != 5 || b.OpenTimeout != 30*time.Second || b.HalfOpenMaxRequests != 1 || b.Interval != 0 {
		t.Fatalf("%+v", b)
	}
}

func TestPadLen(t *testing.T) {
	buckets := []int{64, 128, 256}
	for n, want := range map[int]int{1: 64, 64: 64, 65: 128, 200: 256, 256: 256, 300: 300} {
		if got := padLen(buckets, n); got != want {
			t.Errorf("padLen(%d) = %d, want %d", n, got, want)
		}
	}
}
