// Package export builds the five ONNX graphs of a Kronos model (tokenizer
// encoder and decoder, predictor prefill, cached step and s2 head) node by
// node from the safetensors weights, without PyTorch, and writes them as a
// Triton model repository.
//
// # Graphs
//
// The tensor names and shapes are the contract of internal/graphs. Every
// graph declares opset 17 and IR version 8, uses standard operators only,
// and keeps the batch, sequence and cache-capacity dimensions dynamic. The
// numerics follow the conformance specification (testdata/conformance/README.md):
// pre-norm blocks, RMSNorm with eps 1e-5, FFN w2(silu(w1 x) * w3 x),
// attention with biased projections and rotate-half RoPE whose angle is
// float32(position) * inv_freq (the checkpoint's buffer), always causal.
//
// Linear weights are stored transposed ([in, out]) so that MatMul needs no
// Transpose node. Where a Linear layer only ever sees a small set of inputs,
// it is folded into a constant table at export time: the predictor's
// fusion_proj over the two scaled id embeddings, the tokenizer decoder's
// post_quant_embed over the ±1/sqrt(D) bit features, and the dependency
// layer's q_proj over emb_s1. The folded tables are accumulated in float64
// and rounded once, so they are at least as accurate as the reference's
// float32 products.
//
// # Performance choices
//
// The numerics are those of the reference up to float32 rounding; the
// graphs are shaped for ONNX Runtime on CPU:
//
//   - The step graph (one position per row) is bound by reading its
//     weights once per call, so Linear layers that share an input run as one
//     product: q/k/v as [d, 3d], w1/w3 as [d, 2 ff], the dependency layer's
//     k/v as [d, 2d], each split afterwards. Over whole sequences (encoder,
//     decoder, prefill) the products are bound by arithmetic and stay
//     separate: the Split would only add a copy.
//   - The attention scale 1/sqrt(hd) is folded into the query projection's
//     weights and bias (RoPE is linear), and into the s2 graph's query table.
//   - RoPE tables are built once per graph, shaped [..., 1, 2, hd/2]; a head
//     viewed as its two halves is rotated with one Gather (swap) and three
//     elementwise nodes; queries and keys of the step graph are rotated
//     together.
//   - The prefill graph computes causal attention in two query blocks (the
//     first half of the positions attends only to the first half of the
//     keys), skipping a quarter of the attention products, mask additions
//     and softmax work of the full [T, T] scores; the other sequence graphs
//     keep one block (see attend).
//
// Masked attention entries get -inf scores; their softmax weights are
// computed as denormals by ONNX Runtime's exp, which the embedded backend
// flushes to zero (internal/onnxlocal), as the reference's exact zeros.
//
// # Inputs the graphs trust
//
// Token ids must be in 0..2^bits-1 and stamp columns in the ranges of the
// time tables (minute 0-59, hour 0-23, weekday 0-6, day 0-31, month 0-12);
// the five time tables are stacked into one, so an out-of-range column reads
// a row of the next table instead of failing. Masked cache entries (step:
// j >= pos; s2: j >= length) must hold finite values: their scores are
// replaced, but a NaN value row would still poison the weighted sum. length
// must be at least 1.
//
// # Determinism
//
// Node, value and initializer names come from the checkpoint keys, the
// current scope and a per-graph counter; nothing depends on map iteration
// order, and models are marshalled deterministically. Exporting the same
// checkpoints twice gives byte-identical model.onnx files.
//
// # Repository
//
// WriteRepository writes, for each role, <out>/<name>-<role>/config.pbtxt
// (Triton, onnxruntime backend) and <out>/<name>-<role>/<version>/ with
// model.onnx and kronos.json (graphs.Manifest).
package export
