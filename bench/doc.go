// Package bench measures end-to-end forecast latency the way BENCHMARKS.md
// reports it: random-weight models of a checkpoint preset exported to a
// temporary model repository, served by the embedded ONNX Runtime backend,
// forecasting real candles from testdata/data/regression_input.csv through
// forecast.Forecaster (preprocessing, encode, the sampling loop, decode,
// de-normalisation).
//
// # Method
//
// Each scenario (context length -> prediction steps) runs on two backends
// opened side by side on the same exported graphs: one with the KV cache and
// one that recomputes the full window at every step. Runs of the two are
// interleaved so that machine noise hits both alike; the report gives the
// median and spread of each and the ratio of the medians, all from one run.
// Process RSS (current and peak) is read from /proc/self/status.
package bench
