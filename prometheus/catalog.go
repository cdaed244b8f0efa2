package prometheus

import (
	"fmt"
	"slices"
	"strings"
)

// Kind is the Prometheus type of a gateway metric.
type Kind int

// Metric types.
const (
	Counter Kind = iota
	Gauge
	Histogram
)

// GatewayMetrics lists every metric the gateway exposes on /v1/metrics (besides the standard
// process_* and go_* collectors), with its labels. Dashboards and rules may use only these, the
// process_*, go_* and Triton nv_* families.
var GatewayMetrics = map[string]struct {
	Kind   Kind
	Labels []string
}{
	"kronos_requests_total":           {Counter, []string{"route", "status", "outcome"}},
	"kronos_request_duration_seconds": {Histogram, []string{"route"}},
	"kronos_model_inference_seconds":  {Histogram, []string{"endpoint"}},
	"kronos_concurrent_requests":      {Gauge, nil},
	"kronos_queue_depth":              {Gauge, nil},
	"kronos_rejections_total":         {Counter, []string{"reason"}},
	"kronos_timeouts_total":           {Counter, []string{"endpoint"}},
	"kronos_prediction_input_size":    {Histogram, []string{"endpoint"}},
	"kronos_batch_rows":               {Histogram, nil},
	"kronos_model_info":               {Gauge, []string{"model", "model_version", "tokenizer_version", "backend", "device"}},
	"kronos_backend_ready":            {Gauge, []string{"backend", "model"}},
	"kronos_breaker_state":            {Gauge, []string{"backend"}},
}

// ForeignPrefixes are the metric families the stack may query without listing them one by one:
// the Go client's process and runtime collectors and Triton's nv_* metrics.
var ForeignPrefixes = []string{"process_", "go_", "nv_"}

// Known reports whether name is a series name the gateway or Triton exposes: a gateway metric
// (a histogram's _bucket, _sum and _count series included) or one of [ForeignPrefixes].
func Known(name string) bool {
	for _, p := range ForeignPrefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	if m, ok := GatewayMetrics[name]; ok {
		return m.Kind != Histogram
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		base, ok := strings.CutSuffix(name, suffix)
		if m, found := GatewayMetrics[base]; ok && found && m.Kind == Histogram {
			return true
		}
	}
	return false
}

// promqlKeywords are identifiers that are never metric names, even when no "(" follows them:
// binary operators and modifiers, and the aggregation operators (which may be followed by
// by/without before their parenthesis).
var promqlKeywords = []string{
	"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
	"offset", "bool", "atan2", "inf", "nan", "start", "end",
	"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
	"bottomk", "topk", "quantile", "limitk", "limit_ratio",
}

// labelListKeywords are followed by a parenthesised list of label names, not by an expression.
var labelListKeywords = []string{"by", "without", "on", "ignoring", "group_left", "group_right"}

// MetricNames returns the metric names a PromQL expression selects, in order of first use. It is
// a small lexer, not a parser: it skips string literals, label matchers, ranges and subqueries,
// numbers and durations, Grafana variables ($name, ${name}), function and aggregation names and
// the label lists of by/without/on/ignoring/group_left/group_right. Every remaining identifier is
// a metric name. It errs on unbalanced brackets or unterminated strings; whether the expression
// is valid PromQL is for promtool or Prometheus to say.
func MetricNames(expr string) ([]string, error) {
	var names []string
	i, n := 0, len(expr)
	for i < n {
		c := expr[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			end, err := skipString(expr, i)
			if err != nil {
				return nil, err
			}
			i = end
		case c == '{' || c == '[':
			end, err := skipBracket(expr, i)
			if err != nil {
				return nil, err
			}
			i = end
		case c == '$':
			i++
			if i < n && expr[i] == '{' {
				end, err := skipBracket(expr, i)
				if err != nil {
					return nil, err
				}
				i = end
				continue
			}
			for i < n && isIdentChar(expr[i]) {
				i++
			}
		case c >= '0' && c <= '9' || c == '.' && i+1 < n && expr[i+1] >= '0' && expr[i+1] <= '9':
			// A number (1, 0.95, 1e-3, 0x1F) or a duration (5m, 1h30m): letters and digits glued
			// together, plus a signed exponent.
			for i < n && (isIdentChar(expr[i]) || expr[i] == '.' ||
				(expr[i] == '-' || expr[i] == '+') && (expr[i-1] == 'e' || expr[i-1] == 'E')) {
				i++
			}
		case isIdentStart(c):
			start := i
			for i < n && isIdentChar(expr[i]) {
				i++
			}
			word := expr[start:i]
			next := i
			for next < n && (expr[next] == ' ' || expr[next] == '\t' || expr[next] == '\n' || expr[next] == '\r') {
				next++
			}
			followedByParen := next < n && expr[next] == '('
			switch {
			case slices.Contains(labelListKeywords, strings.ToLower(word)):
				if followedByParen {
					end, err := skipBracket(expr, next)
					if err != nil {
						return nil, err
					}
					i = end
				}
			case followedByParen, slices.Contains(promqlKeywords, strings.ToLower(word)):
				// A function or aggregation, or an operator keyword.
			default:
				if !slices.Contains(names, word) {
					names = append(names, word)
				}
			}
		case c == '(' || c == ')':
			i++
		default:
			i++
		}
	}
	return names, nil
}

func isIdentStart(c byte) bool {
	return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

func isIdentChar(c byte) bool { return isIdentStart(c) || c >= '0' && c <= '9' }

// skipString returns the index just past the string literal that starts at expr[i].
func skipString(expr string, i int) (int, error) {
	quote := expr[i]
	for j := i + 1; j < len(expr); j++ {
		switch {
		case expr[j] == '\\' && quote != '`':
			j++
		case expr[j] == quote:
			return j + 1, nil
		}
	}
	return 0, fmt.Errorf("unterminated string starting at offset %d", i)
}

// skipBracket returns the index just past the bracket that closes the one at expr[i], skipping
// nested brackets and string literals.
func skipBracket(expr string, i int) (int, error) {
	var stack []byte
	for j := i; j < len(expr); j++ {
		switch c := expr[j]; c {
		case '"', '\'', '`':
			end, err := skipString(expr, j)
			if err != nil {
				return 0, err
			}
			j = end - 1
		case '(', '[', '{':
			stack = append(stack, c)
		case ')', ']', '}':
			open := map[byte]byte{')': '(', ']': '[', '}': '{'}[c]
			if len(stack) == 0 || stack[len(stack)-1] != open {
				return 0, fmt.Errorf("unbalanced %q at offset %d", c, j)
			}
			stack = stack[:len(stack)-1]
			if len(stack) == 0 {
				return j + 1, nil
			}
		}
	}
	return 0, fmt.Errorf("unclosed %q at offset %d", expr[i], i)
}
