// Package modelconfig writes and checks the Triton model configurations
// (config.pbtxt) of an exported Kronos model, in a CPU and a GPU variant, and
// defines the two stateless predictor graphs the Triton backend calls
// (Window and WindowS2).
//
// # Variants
//
// config.pbtxt is the CPU variant: KIND_CPU instances of the onnxruntime
// backend with its thread parameters. configs/gpu.pbtxt is the GPU variant,
// selected with `tritonserver --model-config-name=gpu`: KIND_GPU instances,
// the TensorRT execution accelerator (FP16 by default) with one shape
// profile spanning the client's window buckets, and one warmup sample per
// bucket so that a model turns READY only after its engines are built. Both
// enable the dynamic batcher with preferred batch sizes, a queue delay and a
// default queue policy (REJECT on timeout, bounded queue size), and the
// version policy latest{num_versions: 2}, so that during a hot swap the
// previous version keeps serving the forecasts pinned to it.
//
// Every config also carries kronos.* parameters (model, role, max context,
// weight versions, sizes) that the Triton client reads through the
// ModelConfig RPC to describe the model; the onnxruntime backend ignores
// parameters it does not know.
//
// # Determinism
//
// Marshal writes the text format itself (protobuf-go's prototext output is
// deliberately unstable), so the same manifest and Params always give the
// same bytes. Parse reads a config with prototext into the repository's own
// inference.ModelConfig subset and rejects unknown fields.
//
// # Checks
//
// CheckONNX compares a config with the ONNX graph it serves (names, data
// types, dims with the batch dimension and Triton's [1] + reshape [] form for
// tensors that are only [batch]).
package modelconfig
