// Package prometheus holds the Prometheus side of the ops stack and the checks that keep it honest.
//
// The assets live next to this file:
//
//   - prometheus.yml: the scrape configuration used by compose/docker-compose.yml (the gateway on
//     /v1/metrics, Triton on :8002/metrics, both found through DNS service discovery);
//   - rules/*.yml: recording and alerting rules (runbook: docs/operations.md);
//   - tests/*.yml: promtool unit tests for the rules, each alert both firing and silent.
//
// The Go code is the metric catalogue that the rules and the Grafana dashboard may use
// ([Known], [MetricNames]); the package tests run promtool on the assets.
package prometheus
