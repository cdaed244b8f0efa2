package triton

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// clientMetrics are the Triton client's Prometheus collectors.
type clientMetrics struct {
	bytes    *prometheus.CounterVec   // kronos_triton_bytes_total{direction}
	duration *prometheus.HistogramVec // kronos_triton_rpc_duration_seconds{rpc,outcome}
	version  *prometheus.GaugeVec     // kronos_triton_model_version{model}
}

func newClientMetrics(reg prometheus.Registerer) *clientMetrics {
	m := &clientMetrics{
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kronos_triton_bytes_total",
			Help: "Protobuf payload bytes of ModelInfer messages exchanged with Triton, by direction (sent, received).",
		}, []string{"direction"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "kronos_triton_rpc_duration_seconds",
			Help:    "Duration of Triton RPCs by method (encoder, decoder, window, window_s2 for ModelInfer; control RPCs by name) and outcome (ok or an error kind).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"rpc", "outcome"}),
		version: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "kronos_triton_model_version",
			Help: "Numeric Triton model version new forecasts are pinned to.",
		}, []string{"model"}),
	}
	if reg != nil {
		m.bytes = register(reg, m.bytes)
		m.duration = register(reg, m.duration)
		m.version = register(reg, m.version)
	}
	return m
}

// register registers c, or returns the collector already registered under
// the same descriptor (a second Backend on the same registry).
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		// An incompatible collector of the same name: keep ours
		// unregistered rather than fail the backend.
	}
	return c
}
