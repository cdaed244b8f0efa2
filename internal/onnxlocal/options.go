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
	// Spinning lets ORT's intra-op worker threads busy-wait between graph
	// nodes (ORT's own default). It lowers latency a little when the
	// process has the CPUs to itself but burns CPU that concurrent
	// requests could use, so the default (false) turns it off.
	Spinning bool
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
