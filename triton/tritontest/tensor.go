package tritontest

import (
	"encoding/binary"
	"math"
)

// Tensor is a request input or response output: datatype, shape (batch
// first) and raw little-endian row-major data.
type Tensor struct {
	Datatype string
	Shape    []int64
	Raw      []byte
}

// I64 decodes an INT64 tensor.
func (t *Tensor) I64() []int64 {
	out := make([]int64, len(t.Raw)/8)
	for i := range out {
		out[i] = int64(binary.LittleEndian.Uint64(t.Raw[8*i:]))
	}
	return out
}

// F32 decodes an FP32 tensor.
func (t *Tensor) F32() []float32 {
	out := make([]float32, len(t.Raw)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(t.Raw[4*i:]))
	}
	return out
}

// F32Tensor builds an FP32 tensor.
func F32Tensor(shape []int64, v []float32) *Tensor {
	raw := make([]byte, 0, 4*len(v))
	for _, x := range v {
		raw = binary.LittleEndian.AppendUint32(raw, math.Float32bits(x))
	}
	return &Tensor{Datatype: "FP32", Shape: shape, Raw: raw}
}
