// Package conformance runs the Kronos conformance vectors (see
// testdata/conformance/README.md, the specification) against this module:
// it exports each config's checkpoints with the export package into a
// temporary model repository, opens it with the embedded ONNX Runtime
// backend, runs forecast.Forecaster.Predict with a trace, and compares every
// recorded field with its tolerance. cmd/kronos-conformance is its command
// line.
//
// # Cases
//
// Each case of a vector set's index.json runs as the reference ran it
// (api predict_batch: one forecast.Job per series, rows series-major), with
// the case's parameters (greedy: T 1, top_k 1, top_p 1, sample_count S),
// max_context and clip. The input candles are the case's input_rows with its
// columns, filled with preprocess.Fill; timestamps are the case's zone-less
// local times, read as written.
//
// # Fields and tolerances
//
// Fields are compared in this order, and a case reports its first mismatch
// (field, index, got, want, tolerance):
//
//   - x_filled, mean, std, x_norm: exact (the statistics use NumPy's
//     pairwise summation, so they match bit for bit); x_stamp, y_stamp: exact
//   - quant_input: abs 1e-3 and the same signs; context_s1, context_s2: exact
//   - initial_s1_logits, initial_context_hidden_last, initial_s2_logits:
//     abs 1e-4 * scale (scale = max(1, max |reference| over the field));
//     initial_s1_argmax: exact
//   - steps[i]: window (per row), s1, s2 exact; s1_logits, s2_logits
//     1e-4 * scale
//   - generated_s1, generated_s2, the final window width, final_s1,
//     final_s2: exact; decoded, preds_norm: 1e-4 * scale
//   - prediction, per column c: |got - ref| <= 1e-4 (|ref| + std_c + 1e-5),
//     checked twice: the de-normalised preds_norm against the reference as
//     is, and forecast.Result.Mean against the reference with negative
//     volume and amount clamped at 0 (our documented output clamps them,
//     the reference does not)
//   - sampling_filters: forecast.Distribution of our own step-0 logits
//     against the recorded probabilities (abs 1e-5) and kept sets (exact).
//     The reference ignores top_p whenever top_k > 0, so a setting with
//     top_k > 0 runs with top_p 1, where our semantics (top-p after top-k)
//     and the reference's agree.
//
// # Replay
//
// Replay plays a case's recorded model outputs back as an infer.Backend,
// checking every input it receives. Runner.Backend = Replay-based function
// runs the whole harness without a model (kronos-conformance -replay): a
// check of everything around the graphs, and of the harness itself.
package conformance
