package onnxlocal

import (
	"os"
	"path/filepath"
	"strings"
	"sync"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/kronos-gateway/kronos-gateway/internal/infer"
)

// ortEnv guards onnxruntime_go's process-global environment. It is the one
// piece of global state of this package, and it only ever goes from "not
// loaded" to "loaded": the environment is never destroyed, because several
// Backends share it and ORT does not support unloading and reloading its
// library reliably.
var ortEnv struct {
	mu     sync.Mutex
	loaded bool   // this package initialised the environment
	lib    string // canonical path of the library it loaded
}

// canonicalLib returns a comparable form of a library path: absolute with
// symbolic links resolved when the file exists, else the path as given (a
// bare name is searched by the dynamic loader).
func canonicalLib(p string) string {
	if !strings.ContainsRune(p, os.PathSeparator) {
		return p
	}
	if abs, err := filepath.Abs(p); err == nil {
		p = abs
	}
	if real, err := filepath.EvalSymlinks(p); err == nil {
		p = real
	}
	return p
}

// ensureEnv loads the ONNX Runtime library at lib and creates the
// environment, once per process. A failure leaves nothing loaded, so a later
// call may try another path.
func ensureEnv(lib string) error {
	ortEnv.mu.Lock()
	defer ortEnv.mu.Unlock()
	want := canonicalLib(lib)
	if ortEnv.loaded {
		if want != ortEnv.lib {
			return infer.Errorf(infer.KindUnavailable,
				"onnxlocal: ONNX Runtime is already loaded from %s in this process; cannot also load %s", ortEnv.lib, lib)
		}
		return nil
	}
	if ort.IsInitialized() {
		// Another package of this process set up the environment; share it.
		ortEnv.loaded, ortEnv.lib = true, want
		return nil
	}
	if strings.ContainsRune(lib, os.PathSeparator) {
		if _, err := os.Stat(lib); err != nil {
			return infer.Wrap(infer.KindUnavailable, err,
				"onnxlocal: ONNX Runtime library %s not found (run `make ort` or set %s)", lib, LibPathEnv)
		}
	}
	ort.SetSharedLibraryPath(lib)
	if err := ort.InitializeEnvironment(ort.WithLogLevelError()); err != nil {
		return infer.Wrap(infer.KindUnavailable, err,
			"onnxlocal: cannot load ONNX Runtime library %s (run `make ort` or set %s)", lib, LibPathEnv)
	}
	ortEnv.loaded, ortEnv.lib = true, want
	return nil
}
