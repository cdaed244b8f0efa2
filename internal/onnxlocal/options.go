package onnxlocal

import (
	"os"
	"path/filepath"
	"runtime"
)

// Defaults used by Open for zero-valued Options fields.
const (
	// DefaultRepoDir is the model repository used when Options.RepoDir is empty.
	DefaultRepoDir = "model_repository"
	// DefaultModel is the model served when Options.Model is empty.
	DefaultModel = "kronos-nano"
	// DefaultLibPath is the ONNX Runtime library `make ort` extracts; it is
	// used when Options.LibPath and $KRONOS_ORT_LIB are empty and the file
	// exists (relative to the working directory).
	DefaultLibPath = "third_party/onnxruntime/libonnxruntime.so.1"
	// SystemLibName is the library name handed to the dynamic loader as the
	// last resort (searched in the system's library path).
	SystemLibName = "libonnxruntime.so.1"
	// LibPathEnv is the environment variable naming the ONNX Runtime library.
	LibPathEnv = "KRONOS_ORT_LIB"
)

// Options configure Open. The zero value serves the highest version of
// kronos-nano from ./model_repository.
type Options struct {
	// RepoDir is the Triton-layout model repository (default
	// "model_repository").
	RepoDir string
	// Model is the Kronos model name, the prefix of the five Triton model
	// folders, e.g. "kronos-nano" (default "kronos-nano").
	Model string
	// Version is the version folder to serve, e.g. "1". Empty selects the
	// highest numeric version present (model.onnx and kronos.json) for all
	// five roles.
	Version string
	// LibPath is the ONNX Runtime shared library. Default: $KRONOS_ORT_LIB,
	// else "third_party/onnxruntime/libonnxruntime.so.1" if it exists, else
	// the system's "libonnxruntime.so.1". Only the first Backend of a process
	// loads it; see the package documentation.
	LibPath string
	// IntraOpThreads is the number of threads ORT uses inside one node
	// (default 0 = the number of CPUs).
	IntraOpThreads int
	// InterOpThreads is the number of threads ORT uses across nodes (default
	// 0 = 1; graphs run sequentially).
	InterOpThreads int
	// MaxContext is the longest predictor window and the KV-cache capacity C
	// (default 0 = the manifest's default_max_context).
	MaxContext int
	// DisableKVCache recomputes the full window at every step (prefill
	// only). For benchmarks and as a cross-check of the cache.
	DisableKVCache bool
	// Spinning lets ORT's intra-op worker threads busy-wait between the
	// nodes of a graph run (not after it). It lowers latency (10-25% on an
	// idle 2-core machine) when the process has the CPUs to itself, but
	// with more runnable threads than cores a spinning worker delays the
	// thread it waits for, so the default (false) turns it off. See the
	// package documentation.
	Spinning bool
	// KeepDenormals keeps IEEE denormal (subnormal) float arithmetic while
	// a graph runs. By default denormals are flushed to zero: the only
	// denormals the Kronos graphs produce are the weights of masked
	// attention entries (ORT computes exp(-inf) as a denormal where the
	// reference has 0), and on x86 every operation on a denormal takes a
	// slow microcode path (a causal softmax ran 7 times slower). Set it to
	// compare against strict IEEE arithmetic.
	KeepDenormals bool
	// NoHugePages leaves the memory ORT allocates for the graphs on the
	// system's default pages. By default Open asks Linux for transparent
	// huge pages for it (see hugepages_linux.go).
	NoHugePages bool
}

// withDefaults returns o with every default filled in.
func (o Options) withDefaults() Options {
	if o.RepoDir == "" {
		o.RepoDir = DefaultRepoDir
	}
	if o.Model == "" {
		o.Model = DefaultModel
	}
	o.LibPath = resolveLibPath(o.LibPath)
	if o.IntraOpThreads <= 0 {
		o.IntraOpThreads = runtime.NumCPU()
	}
	if o.InterOpThreads <= 0 {
		o.InterOpThreads = 1
	}
	return o
}

// resolveLibPath applies the LibPath default chain.
func resolveLibPath(p string) string {
	if p != "" {
		return p
	}
	if env := os.Getenv(LibPathEnv); env != "" {
		return env
	}
	if _, err := os.Stat(DefaultLibPath); err == nil {
		if abs, err := filepath.Abs(DefaultLibPath); err == nil {
			return abs
		}
		return DefaultLibPath
	}
	return SystemLibName
}
