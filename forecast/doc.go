// Package forecast runs Kronos forecasts on an infer.Backend: it prepares
// each series (statistics, normalisation, time features; see preprocess),
// encodes the context into BSQ token ids, runs the autoregressive sampling
// loop over all sample paths of all series in one predictor session, decodes
// the generated tokens and turns them back into candles.
//
// It depends only on internal/infer, the pure functions of preprocess and
// the standard library. Nothing in it knows about HTTP or about a particular
// backend.
//
// # Rows
//
// Every job (one series) is repeated Params.SampleCount times; the model rows
// are series-major: the S rows of job 0, then those of job 1, and so on. Jobs
// may differ in context length L, prediction length P and parameters; all
// their rows share one infer.Session. Jobs of equal L share one encoder call,
// and rows of equal final width share one decoder call.
//
// # Autoregressive loop
//
// A row's full token sequence is its L context ids followed by the ids
// generated so far, and its stamps are the context stamps followed by the
// prediction stamps. At step i (n = L + i) the row feeds the predictor the
// window [max(0, n - maxContext), n) of both, samples s1 from the s1 logits at
// the last position, asks for the s2 logits given that s1, samples s2, and
// appends both at position n. Windows are sub-slices of preallocated full
// sequences, so a step allocates nothing per row. A row whose P is smaller
// than the longest one finishes early and is passed an empty infer.Window
// for the remaining steps. The context is checked before each step;
// cancellation is reported with infer.FromContext.
//
// # Sampling
//
// For each row and each of s1 and s2, with V logits l:
//
//  1. l / T;
//  2. top-k (when 0 < top_k < V): keep the entries >= the k-th largest value
//     (ties are kept), the others are removed;
//  3. top-p (when top_p < 1): sort the survivors by value, descending (lower
//     index first on ties), take their softmax probabilities and cumulative
//     sums c, and keep sorted entry j iff j == 0 or c[j-1] <= top_p;
//  4. softmax over what is left (removed entries get probability exactly 0)
//     and draw one id.
//
// When both top_k and top_p are set, top-p therefore applies to the
// renormalised top-k survivors. The reference (upstream Kronos) skips top-p
// entirely whenever top_k > 0; the two agree whenever top_p = 1 or top_k = 0.
// top_k = 1 is greedy: the argmax of the logits, lowest index on ties, with
// no random draw (the reference would sample among tied maxima). Filtering
// and the softmax are computed in float64. Params.Validate checks the ranges:
// T finite and > 0, top_k >= 0, 0 < top_p <= 1, sample_count >= 1.
//
// # Seeds
//
// Each row draws from its own math/rand/v2 PCG stream derived from the job's
// Params.Seed and the row's path number within the job (0 .. S-1), and takes
// exactly one uniform number per non-greedy draw, s1 then s2 at every step.
// A job's output therefore depends only on its own input, parameters, seed,
// model and backend: it does not change when other jobs are batched with it.
//
// # Outputs
//
// The last min(L+P, maxContext) ids of every row are decoded. preds_norm is
// the mean over the job's S paths of the last P decoded rows (float32, summed
// in path order), and Result.Mean is its de-normalisation, exactly the
// reference's prediction, except that negative volume and amount values are
// clamped to 0. Paths are the de-normalised (and clamped) last P decoded rows
// of each path, and Result.Quantiles are taken per step and column over those
// paths with linear interpolation (NumPy's default). A NaN or infinite value
// from the backend or in a result is a KindInternal error; Predict never
// returns one.
//
// # Tracing
//
// With Forecaster.Trace set, Predict records the intermediate values the
// conformance vectors list (normalised input, encoder output, context ids,
// every step's windows, logits and ids, the final windows, decoded candles and
// preds_norm). cmd/kronos-conformance compares them with the reference.
package forecast
