package export

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/kronos-gateway/kronos-gateway/internal/onnxpb"
)

// ortLibEnv names the ONNX Runtime shared library (make ort).
const ortLibEnv = "KRONOS_ORT_LIB"

// ortInit is the outcome of initialising the ONNX Runtime environment in
// TestMain: nil when ready. ONNX Runtime has one environment per process,
// so this is the test binary's only package-level state.
var ortInit = fmt.Errorf("%s is not set; run `make ort` and export %s=third_party/onnxruntime/libonnxruntime.so.1 to run the ONNX Runtime tests", ortLibEnv, ortLibEnv)

func TestMain(m *testing.M) {
	if lib := os.Getenv(ortLibEnv); lib != "" {
		ort.SetSharedLibraryPath(lib)
		ortInit = ort.InitializeEnvironment()
	}
	code := m.Run()
	if ortInit == nil {
		_ = ort.DestroyEnvironment()
	}
	os.Exit(code)
}

// needORT skips the test when KRONOS_ORT_LIB is unset and fails it when the
// library could not be loaded.
func needORT(t testing.TB) {
	t.Helper()
	if os.Getenv(ortLibEnv) == "" {
		t.Skip(ortInit.Error())
	}
	if ortInit != nil {
		t.Fatalf("ONNX Runtime from %s: %v", os.Getenv(ortLibEnv), ortInit)
	}
}

// tensor is a test input or output: a shape and float32 or int64 data.
type tensor struct {
	shape []int64
	f32   []float32
	i64   []int64
}

func f32Tensor(data []float32, shape ...int64) tensor { return tensor{shape: shape, f32: data} }
func i64Tensor(data []int64, shape ...int64) tensor   { return tensor{shape: shape, i64: data} }

// session runs one exported model in ONNX Runtime (one intra-op thread, so
// tests stay light on a shared machine).
type session struct {
	s       *ort.DynamicAdvancedSession
	inputs  []string
	outputs []string
}

func newSession(t testing.TB, mp *onnxpb.ModelProto) *session {
	t.Helper()
	return newSessionThreads(t, mp, 1)
}

// newSessionThreads is newSession with a given intra-op thread count.
func newSessionThreads(t testing.TB, mp *onnxpb.ModelProto, threads int) *session {
	t.Helper()
	needORT(t)
	b, err := Marshal(mp)
	if err != nil {
		t.Fatal(err)
	}
	s := &session{}
	for _, vi := range mp.GetGraph().GetInput() {
		s.inputs = append(s.inputs, vi.GetName())
	}
	for _, vi := range mp.GetGraph().GetOutput() {
		s.outputs = append(s.outputs, vi.GetName())
	}
	opts, err := ort.NewSessionOptions()
	if err != nil {
		t.Fatal(err)
	}
	defer opts.Destroy()
	if err := opts.SetIntraOpNumThreads(threads); err != nil {
		t.Fatal(err)
	}
	if err := opts.SetInterOpNumThreads(1); err != nil {
		t.Fatal(err)
	}
	if p := os.Getenv("KRONOS_TEST_OPTIMIZED_DIR"); p != "" {
		// Debugging aid: write the graph as optimised by ONNX Runtime.
		if err := opts.SetOptimizedModelFilePath(filepath.Join(p, mp.GetGraph().GetName()+".onnx")); err != nil {
			t.Fatal(err)
		}
	}
	if p := os.Getenv("KRONOS_TEST_PROFILE"); p != "" {
		if err := opts.EnableProfiling(filepath.Join(p, mp.GetGraph().GetName())); err != nil {
			t.Fatal(err)
		}
	}
	s.s, err = ort.NewDynamicAdvancedSessionWithONNXData(b, s.inputs, s.outputs, opts)
	if err != nil {
		t.Fatalf("load %s in ONNX Runtime: %v", mp.GetGraph().GetName(), err)
	}
	t.Cleanup(func() { s.s.Destroy() })
	return s
}

// run feeds every graph input by name and returns every output.
func (s *session) run(t testing.TB, in map[string]tensor) map[string]tensor {
	t.Helper()
	values := make([]ort.Value, len(s.inputs))
	defer func() {
		for _, v := range values {
			if v != nil {
				v.Destroy()
			}
		}
	}()
	for i, name := range s.inputs {
		x, ok := in[name]
		if !ok {
			t.Fatalf("missing input %q", name)
		}
		var err error
		if x.f32 != nil {
			values[i], err = ort.NewTensor(ort.NewShape(x.shape...), x.f32)
		} else {
			values[i], err = ort.NewTensor(ort.NewShape(x.shape...), x.i64)
		}
		if err != nil {
			t.Fatalf("input %s: %v", name, err)
		}
	}
	outs := make([]ort.Value, len(s.outputs))
	if err := s.s.Run(values, outs); err != nil {
		t.Fatalf("run: %v", err)
	}
	res := map[string]tensor{}
	for i, name := range s.outputs {
		v, ok := outs[i].(*ort.Tensor[float32])
		if !ok {
			t.Fatalf("output %s: %T, want float32", name, outs[i])
		}
		res[name] = tensor{shape: v.GetShape(), f32: append([]float32(nil), v.GetData()...)}
		outs[i].Destroy()
	}
	return res
}
