package triton

import (
	"encoding/binary"
	"math"
)

// Tensors travel as raw_input_contents / raw_output_contents: little-endian,
// row-major, no padding (KServe v2 binary data extension).

// appendI64 appends v as little-endian int64 values.
func appendI64(dst []byte, v []int64) []byte {
	for _, x := range v {
		dst = binary.LittleEndian.AppendUint64(dst, uint64(x))
	}
	return dst
}

// appendF32 appends v as little-endian IEEE 754 float32 values.
func appendF32(dst []byte, v []float32) []byte {
	for _, x := range v {
		dst = binary.LittleEndian.AppendUint32(dst, math.Float32bits(x))
	}
	return dst
}

// decodeF32 reads little-endian float32 values (len(raw) must be a multiple
// of 4).
func decodeF32(raw []byte) []float32 {
	out := make([]float32, len(raw)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
	}
	return out
}
