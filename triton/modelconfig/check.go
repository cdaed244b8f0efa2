package modelconfig

import (
	"errors"
	"fmt"
	"slices"

	"github.com/kronos-gateway/kronos-gateway/internal/onnxpb"
	pb "github.com/kronos-gateway/kronos-gateway/triton/inferencepb"
)

// onnxType maps ONNX element types to Triton data types.
var onnxType = map[onnxpb.TensorProto_DataType]pb.DataType{
	onnxpb.TensorProto_FLOAT:   pb.DataType_TYPE_FP32,
	onnxpb.TensorProto_DOUBLE:  pb.DataType_TYPE_FP64,
	onnxpb.TensorProto_FLOAT16: pb.DataType_TYPE_FP16,
	onnxpb.TensorProto_INT64:   pb.DataType_TYPE_INT64,
	onnxpb.TensorProto_INT32:   pb.DataType_TYPE_INT32,
	onnxpb.TensorProto_BOOL:    pb.DataType_TYPE_BOOL,
	onnxpb.TensorProto_UINT8:   pb.DataType_TYPE_UINT8,
	onnxpb.TensorProto_INT8:    pb.DataType_TYPE_INT8,
}

// CheckONNX checks cfg against the graph it serves, as Triton's
// onnxruntime backend would at load time and a little stricter: every
// graph input is configured and vice versa (same names), every configured
// output exists in the graph, data types agree, and the graph's shape
// equals [batch] + the configured shape (the reshape when given, else dims),
// where a variable (-1) configured dim must be a dynamic graph dim and a
// fixed one must be the same fixed size. The graph's first dimension must
// be dynamic when max_batch_size > 0.
func CheckONNX(cfg *pb.ModelConfig, model *onnxpb.ModelProto) error {
	g := model.GetGraph()
	if g == nil {
		return errors.New("model has no graph")
	}
	var errs []error
	graphIn := map[string]*onnxpb.ValueInfoProto{}
	for _, vi := range g.GetInput() {
		graphIn[vi.GetName()] = vi
	}
	graphOut := map[string]*onnxpb.ValueInfoProto{}
	for _, vi := range g.GetOutput() {
		graphOut[vi.GetName()] = vi
	}
	batched := cfg.GetMaxBatchSize() > 0
	seen := map[string]bool{}
	for _, in := range cfg.GetInput() {
		seen[in.GetName()] = true
		vi, ok := graphIn[in.GetName()]
		if !ok {
			errs = append(errs, fmt.Errorf("input %q: not a graph input", in.GetName()))
			continue
		}
		errs = append(errs, checkTensor("input", in.GetName(), in.GetDataType(), in.GetDims(), in.GetReshape(), vi, batched))
	}
	for name := range graphIn {
		if !seen[name] {
			errs = append(errs, fmt.Errorf("graph input %q: not configured", name))
		}
	}
	for _, out := range cfg.GetOutput() {
		vi, ok := graphOut[out.GetName()]
		if !ok {
			errs = append(errs, fmt.Errorf("output %q: not a graph output", out.GetName()))
			continue
		}
		errs = append(errs, checkTensor("output", out.GetName(), out.GetDataType(), out.GetDims(), out.GetReshape(), vi, batched))
	}
	return errors.Join(errs...)
}

func checkTensor(kind, name string, dt pb.DataType, dims []int64, reshape *pb.ModelTensorReshape, vi *onnxpb.ValueInfoProto, batched bool) error {
	tt := vi.GetType().GetTensorType()
	if tt == nil {
		return fmt.Errorf("%s %q: graph value is not a tensor", kind, name)
	}
	want, ok := onnxType[onnxpb.TensorProto_DataType(tt.GetElemType())]
	if !ok || want != dt {
		return fmt.Errorf("%s %q: data_type %s, graph element type %d", kind, name, dt, tt.GetElemType())
	}
	if len(dims) == 0 {
		return fmt.Errorf("%s %q: no dims", kind, name)
	}
	shape := dims
	if reshape != nil {
		shape = reshape.GetShape()
		if prod(dims) != prod(shape) {
			return fmt.Errorf("%s %q: reshape %v has another element count than dims %v", kind, name, shape, dims)
		}
	}
	gd := tt.GetShape().GetDim()
	if batched {
		if len(gd) == 0 || gd[0].GetDimParam() == "" {
			return fmt.Errorf("%s %q: max_batch_size > 0 but the graph's first dim is not dynamic", kind, name)
		}
		gd = gd[1:]
	}
	if len(gd) != len(shape) {
		return fmt.Errorf("%s %q: configured shape %v (batch excluded) has rank %d, graph rank %d", kind, name, shape, len(shape), len(gd))
	}
	for i, d := range shape {
		dyn := gd[i].GetDimParam() != "" || gd[i].GetDimValue() <= 0
		switch {
		case d < 0 && !dyn:
			return fmt.Errorf("%s %q: dim %d is variable in the config but fixed %d in the graph", kind, name, i, gd[i].GetDimValue())
		case d >= 0 && dyn:
			return fmt.Errorf("%s %q: dim %d is %d in the config but dynamic in the graph", kind, name, i, d)
		case d >= 0 && d != gd[i].GetDimValue():
			return fmt.Errorf("%s %q: dim %d is %d in the config, %d in the graph", kind, name, i, d, gd[i].GetDimValue())
		}
	}
	return nil
}

func prod(d []int64) int64 {
	if slices.Contains(d, -1) {
		return -1
	}
	n := int64(1)
	for _, v := range d {
		n *= v
	}
	return n
}
