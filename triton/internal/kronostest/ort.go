package kronostest

import (
	"context"
	"fmt"
	"sync"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/kronos-gateway/kronos-gateway/export"
	"github.com/kronos-gateway/kronos-gateway/internal/graphs"
	"github.com/kronos-gateway/kronos-gateway/internal/onnxpb"
	"github.com/kronos-gateway/kronos-gateway/triton/tritontest"
)

// ONNXModel runs one exported graph with ONNX Runtime as a fake Triton
// model: every graph input is taken from the request by name (INT64 or
// FP32), every graph output is returned. The process's ONNX Runtime
// environment must already exist (open an onnxlocal backend first). Call
// Close when done.
type ONNXModel struct {
	mu      sync.Mutex // ORT sessions are safe for concurrent Run, but keep tests light
	s       *ort.DynamicAdvancedSession
	inputs  []string
	outputs []string
}

var _ tritontest.Model = (*ONNXModel)(nil)

// NewONNXModel loads mp into ONNX Runtime with one intra-op thread.
func NewONNXModel(mp *onnxpb.ModelProto, onnx []byte) (*ONNXModel, error) {
	if !ort.IsInitialized() {
		return nil, fmt.Errorf("kronostest: the ONNX Runtime environment is not initialised")
	}
	m := &ONNXModel{}
	for _, vi := range mp.GetGraph().GetInput() {
		m.inputs = append(m.inputs, vi.GetName())
	}
	for _, vi := range mp.GetGraph().GetOutput() {
		m.outputs = append(m.outputs, vi.GetName())
	}
	opts, err := ort.NewSessionOptions()
	if err != nil {
		return nil, err
	}
	defer opts.Destroy()
	if err := opts.SetIntraOpNumThreads(1); err != nil {
		return nil, err
	}
	if err := opts.SetInterOpNumThreads(1); err != nil {
		return nil, err
	}
	if m.s, err = ort.NewDynamicAdvancedSessionWithONNXData(onnx, m.inputs, m.outputs, opts); err != nil {
		return nil, err
	}
	return m, nil
}

// Close releases the session.
func (m *ONNXModel) Close() error { return m.s.Destroy() }

// Infer runs the graph.
func (m *ONNXModel) Infer(_ context.Context, in map[string]*tritontest.Tensor) (map[string]*tritontest.Tensor, error) {
	vals := make([]ort.Value, len(m.inputs))
	outs := make([]ort.Value, len(m.outputs))
	defer func() {
		for _, v := range append(vals, outs...) {
			if v != nil {
				v.Destroy()
			}
		}
	}()
	for i, name := range m.inputs {
		t := in[name]
		if t == nil {
			return nil, fmt.Errorf("missing input %q", name)
		}
		var err error
		switch t.Datatype {
		case "INT64":
			vals[i], err = ort.NewTensor(ort.NewShape(t.Shape...), t.I64())
		case "FP32":
			vals[i], err = ort.NewTensor(ort.NewShape(t.Shape...), t.F32())
		default:
			err = fmt.Errorf("input %q: datatype %s", name, t.Datatype)
		}
		if err != nil {
			return nil, err
		}
	}
	m.mu.Lock()
	err := m.s.Run(vals, outs)
	m.mu.Unlock()
	if err != nil {
		return nil, err
	}
	res := map[string]*tritontest.Tensor{}
	for i, name := range m.outputs {
		t, ok := outs[i].(*ort.Tensor[float32])
		if !ok {
			return nil, fmt.Errorf("output %q is not float32", name)
		}
		res[name] = tritontest.F32Tensor([]int64(t.GetShape()), t.GetData())
	}
	return res, nil
}

// WindowModels returns the window and window_s2 graphs of c (exported with
// export.Model.WindowGraph) as fake Triton models.
func WindowModels(root string, c Config) (map[graphs.Role]tritontest.Model, func(), error) {
	m, _, err := Model(root, c, "1")
	if err != nil {
		return nil, nil, err
	}
	out := map[graphs.Role]tritontest.Model{}
	var loaded []*ONNXModel
	closeAll := func() {
		for _, l := range loaded {
			l.Close()
		}
	}
	for _, r := range export.TritonRoles {
		mp, err := m.WindowGraph(r)
		if err == nil {
			var b []byte
			if b, err = export.Marshal(mp); err == nil {
				var om *ONNXModel
				if om, err = NewONNXModel(mp, b); err == nil {
					loaded = append(loaded, om)
					out[r] = om
				}
			}
		}
		if err != nil {
			closeAll()
			return nil, nil, err
		}
	}
	return out, closeAll, nil
}
