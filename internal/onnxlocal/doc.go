// Package onnxlocal is the embedded inference backend of kronos-gateway: it
// runs the five exported Kronos graphs (see internal/graphs) in-process with
// ONNX Runtime, through github.com/yalue/onnxruntime_go, and implements
// infer.Backend, infer.Session and infer.HiddenReporter.
//
// # Model repository
//
// Open reads one model version from a Triton-layout model repository:
//
//	<RepoDir>/<Model>-encoder/<Version>/{model.onnx,kronos.json}
//	<RepoDir>/<Model>-decoder/...
//	<RepoDir>/<Model>-prefill/...
//	<RepoDir>/<Model>-step/...
//	<RepoDir>/<Model>-s2/...
//
// Without an explicit Version the highest numeric version folder present for
// all five roles is served. The kronos.json manifests describe the model
// (Info) without opening the graphs; all five must name the same weights.
//
// # ONNX Runtime environment
//
// onnxruntime_go keeps one process-global ORT environment bound to one shared
// library. The first Open loads the library (Options.LibPath, else
// $KRONOS_ORT_LIB, else third_party/onnxruntime/libonnxruntime.so.1, else the
// system's libonnxruntime.so.1) and creates the environment; it then stays
// for the life of the process, so that any number of Backends (two versions
// side by side during a hot swap, parallel tests) share it. Close releases
// only the backend's own ORT sessions. A later Open that names a different
// library fails with KindUnavailable: a process can host one ORT build.
//
// # Sessions and the KV cache
//
// A Session keeps, per row, a key/value cache in Go memory (per layer keys
// transposed [rows,H,hd,C] and values [rows,H,C,hd], plus the dependency
// layer's keys [rows,4,gd,C] and values [rows,4,C,gd]; C = MaxContext) and
// hands it to ORT without copying (tensors over Go slices).
//
// At every S1Logits call each row is classified:
//
//   - step: the window has the same Start as the row's previous window and
//     equals it plus one token. The step graph computes the new token against
//     the cache and its key/value are written into the cache.
//   - prefill: anything else (first call, sliding window, a row that
//     restarted). The prefill graph recomputes the whole window (rows of
//     different lengths are right-padded) and its keys/values replace the
//     row's cache; entries beyond the window are zeroed. A window that fills
//     the whole capacity is not copied into the cache: the next window
//     slides, so it would never be extended.
//
// Both kinds may occur in one call; they run as two graph calls. When all
// stepping rows are contiguous (in particular when every active row steps)
// the step graph runs directly on the cache tensors (zero copy). Otherwise
// it either still runs in place over the smallest range of rows holding every
// stepping row, rows in between getting a dummy token whose outputs are
// dropped (a dummy costs one read of its cache inside the graph), or gathers
// the stepping rows' valid cache entries into a scratch buffer (a copy per
// stepping row), whichever moves fewer bytes. S2Logits runs the s2 graph on
// the dependency cache in place over the range of active rows. With
// Options.DisableKVCache every call is a prefill (a cross-check and a
// benchmark baseline); only the dependency cache is kept.
//
// # Cancellation
//
// Every graph run first checks its context; a context that is already done
// returns infer.FromContext(ctx.Err()) without running. While a graph runs, a
// watcher sets ORT's RunOptions terminate flag when the context ends, so a
// timed-out forecast stops consuming CPU at the next node boundary; the
// failed run is reported as KindTimeout or KindCanceled from ctx.Err().
//
// # Tuning
//
// Every graph gets its own ORT session with Options.IntraOpThreads threads
// (default: all CPUs), sequential execution and all graph optimisations.
// Per step, the time goes almost entirely to ORT's matrix products over the
// weights (the Go side is under 2%), bound by memory bandwidth: a
// Kronos-small step reads 84 MB of weights and 16 MB of cache; see
// BenchmarkStep and BenchmarkGreedy.
//
// Denormals: by default every graph run flushes denormal floats to zero, on
// ORT's worker threads (session option session.set_denormal_as_zero) and on
// the calling thread, whose SSE control register (MXCSR) is set for the
// call and restored after it, the goroutine locked to its thread meanwhile.
// The masked entries of a causal softmax are otherwise computed as
// denormals, which x86 processes on a slow microcode path (a causal softmax
// ran 7 times slower): flushing made a 512-token prefill 25% faster (about
// 5% since the prefill graph skips half of the masked entries), and gives
// the reference's exact zeros. ORT's first session in a process also sets flush-to-zero for good on the
// thread that creates it; Open restores that thread's register, so Go code
// keeps IEEE arithmetic. Options.KeepDenormals turns all of this off.
//
// Huge pages: on Linux, Open asks for transparent huge pages for the memory
// ORT allocated while loading the graphs (mostly pre-packed weights) and
// collapses it into them (see hugepages_linux.go); a step got 5-15%
// faster. Options.NoHugePages turns it off.
//
// Spinning: worker threads do not spin between nodes unless
// Options.Spinning is set, and then only within a run (session option
// session.force_spinning_stop): each graph has its own thread pool, and
// workers left spinning after a run competed with the next graph's threads.
// On an otherwise idle 2-core machine spinning made steps and prefills
// 10-25% faster; with more runnable threads than cores (other processes, or
// concurrent forecasts: the gateway runs two at once by default) a spinning
// worker keeps its core from the thread it waits for, and a step took 2-5
// times longer. Hence the default.
//
// # Errors
//
// Errors wrap the internal/infer vocabulary: a missing repository, model or
// version is KindNotFound; a missing or unusable ONNX Runtime library is
// KindUnavailable (run `make ort`); malformed arguments are KindInvalid; a
// closed backend is KindUnavailable; ORT failures are KindInternal.
//
// # Concurrency
//
// A Backend is safe for concurrent use; ORT sessions are shared and each call
// brings its own tensors. A Session is not (see infer.Session). Close waits
// for running calls of the backend to finish.
package onnxlocal
