// Package infer is the shared vocabulary of kronos-gateway: the backend
// interface that both inference engines implement (embedded ONNX Runtime in
// internal/onnxlocal, NVIDIA Triton in triton/), the model description they
// report, and the error kinds that every layer wraps and that the gateway maps
// to HTTP in exactly one place.
//
// # Dependency direction
//
// infer is a leaf: it imports nothing from this module. The sampling loop
// (forecast/) depends only on infer.Backend; nothing below the sampling loop
// knows about candles or timestamps, only token ids, time-feature stamps and
// float32 tensors.
//
// # Ownership
//
// Slices passed into a Backend or Session method are read during the call
// only and may be reused by the caller afterwards. Slices returned by a method
// belong to the caller.
package infer
