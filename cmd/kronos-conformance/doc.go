// Command kronos-conformance runs Kronos conformance vector sets against
// this module: for every config listed in <dir>/index.json it exports the
// checkpoints into a temporary model repository, opens them with the
// embedded ONNX Runtime backend and checks every case with package
// conformance (which documents the fields and tolerances).
//
// # Usage
//
//	kronos-conformance [flags] <dir> [<dir> ...]
//	kronos-conformance testdata/conformance testdata/conformance-nano
//	kronos-conformance -run 'tiny/slide' -no-kv-cache ../shared/conformance
//	kronos-conformance -replay testdata/conformance
//
// It prints one line per case, PASS or FAIL with the first mismatch (field,
// index, got, want, tolerance), and as the last line exactly
// "N passed, M failed" over all the sets. -replay plays the recorded model
// outputs back instead of running a model, to check everything around the
// graphs. The ONNX Runtime library comes from -lib, else $KRONOS_ORT_LIB,
// else third_party/onnxruntime/libonnxruntime.so.1.
//
// # Exit status
//
// 0 when every case passed, 1 when a case failed or a set could not be read,
// 2 for bad flags.
package main
