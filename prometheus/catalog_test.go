package prometheus

import (
	"slices"
	"testing"
)

func TestMetricNames(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want []string
	}{
		{`up`, []string{"up"}},
		{`histogram_quantile(0.95, sum by (route, le) (rate(kronos_request_duration_seconds_bucket{route=~"/v1/predict/.+"}[5m])))`,
			[]string{"kronos_request_duration_seconds_bucket"}},
		{`sum(rate(a_total{status=~"5.."}[$__rate_interval])) / sum(rate(b_total[${__rate_interval}])) > 0.01`,
			[]string{"a_total", "b_total"}},
		{`max by (instance) (rss{job="x"}) > on () group_left () (0.85 * kronos:memory_limit_bytes)`,
			[]string{"rss", "kronos:memory_limit_bytes"}},
		{`sum without (version) (x offset 5m) and ignoring (le) y unless count(z) by (a)`,
			[]string{"x", "y", "z"}},
		{`label_replace(m, "dst", "$1 {x}", "src", "(.*)") * 1e-3 + 1024^3 - .5`, []string{"m"}},
		{`topk(5, sum(rate(c[5m:1m])))`, []string{"c"}},
		{`vector(4294967296)`, nil},
	} {
		got, err := MetricNames(tc.expr)
		if err != nil {
			t.Errorf("MetricNames(%q): %v", tc.expr, err)
			continue
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("MetricNames(%q) = %q, want %q", tc.expr, got, tc.want)
		}
	}
	for _, bad := range []string{`rate(x[5m)`, `x{a="b}`, `x{a="b"`, `{`} {
		if _, err := MetricNames(bad); err == nil {
			t.Errorf("MetricNames(%q): no error for an unbalanced expression", bad)
		}
	}
}

func TestKnown(t *testing.T) {
	for name, want := range map[string]bool{
		"kronos_requests_total":                  true,
		"kronos_request_duration_seconds_bucket": true,
		"kronos_request_duration_seconds_count":  true,
		"kronos_request_duration_seconds":        false, // a histogram has no plain series
		"kronos_queue_depth":                     true,
		"kronos_queue_depth_bucket":              false,
		"kronos_requests":                        false,
		"process_resident_memory_bytes":          true,
		"go_goroutines":                          true,
		"nv_gpu_utilization":                     true,
		"up":                                     false,
		"http_requests_total":                    false,
	} {
		if got := Known(name); got != want {
			t.Errorf("Known(%q) = %v, want %v", name, got, want)
		}
	}
}
