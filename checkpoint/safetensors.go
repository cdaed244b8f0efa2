package checkpoint

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"sort"
)

// MaxHeaderBytes bounds the JSON header of a safetensors file (the format
// itself limits it to 100 MB).
const MaxHeaderBytes = 100 << 20

// Tensor is one entry of a safetensors file. F32 data is in F32; I64 data in
// I64. Shape is row-major.
type Tensor struct {
	Name  string
	DType string // "F32" or "I64" (also F16/BF16/F64 converted to F32)
	Shape []int
	F32   []float32
	I64   []int64
}

// Numel is the number of elements.
func (t *Tensor) Numel() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

type headerEntry struct {
	DType   string   `json:"dtype"`
	Shape   []int    `json:"shape"`
	Offsets [2]int64 `json:"data_offsets"`
}

// ReadSafetensors parses a whole safetensors file.
func ReadSafetensors(path string) (map[string]*Tensor, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	t, err := ParseSafetensors(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// ParseSafetensors parses a safetensors file held in memory. It validates
// every offset and shape against the buffer and never panics on bad input.
func ParseSafetensors(b []byte) (map[string]*Tensor, error) {
	if len(b) < 8 {
		return nil, fmt.Errorf("safetensors: file too short (%d bytes)", len(b))
	}
	n := binary.LittleEndian.Uint64(b[:8])
	if n > MaxHeaderBytes || n > uint64(len(b)-8) {
		return nil, fmt.Errorf("safetensors: header length %d out of range", n)
	}
	var hdr map[string]json.RawMessage
	if err := json.Unmarshal(b[8:8+n], &hdr); err != nil {
		return nil, fmt.Errorf("safetensors: header: %w", err)
	}
	data := b[8+n:]
	out := make(map[string]*Tensor, len(hdr))
	names := make([]string, 0, len(hdr))
	for k := range hdr {
		if k != "__metadata__" {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	for _, name := range names {
		var e headerEntry
		if err := json.Unmarshal(hdr[name], &e); err != nil {
			return nil, fmt.Errorf("safetensors: %s: %w", name, err)
		}
		t := &Tensor{Name: name, DType: e.DType, Shape: e.Shape}
		numel := int64(1)
		for _, d := range e.Shape {
			if d < 0 || (d > 0 && numel > math.MaxInt32/int64(d)) {
				return nil, fmt.Errorf("safetensors: %s: bad shape %v", name, e.Shape)
			}
			numel *= int64(d)
		}
		begin, end := e.Offsets[0], e.Offsets[1]
		if begin < 0 || end < begin || end > int64(len(data)) {
			return nil, fmt.Errorf("safetensors: %s: data offsets %v outside the %d data bytes", name, e.Offsets, len(data))
		}
		raw := data[begin:end]
		size, ok := dtypeSize[e.DType]
		if !ok {
			return nil, fmt.Errorf("safetensors: %s: unsupported dtype %q", name, e.DType)
		}
		if int64(len(raw)) != numel*int64(size) {
			return nil, fmt.Errorf("safetensors: %s: %d bytes for shape %v of %s", name, len(raw), e.Shape, e.DType)
		}
		switch e.DType {
		case "F32":
			t.F32 = make([]float32, numel)
			for i := range t.F32 {
				t.F32[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
			}
		case "F64":
			t.F32 = make([]float32, numel)
			for i := range t.F32 {
				t.F32[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(raw[8*i:])))
			}
		case "F16":
			t.F32 = make([]float32, numel)
			for i := range t.F32 {
				t.F32[i] = halfToFloat(binary.LittleEndian.Uint16(raw[2*i:]))
			}
		case "BF16":
			t.F32 = make([]float32, numel)
			for i := range t.F32 {
				t.F32[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(raw[2*i:])) << 16)
			}
		case "I64":
			t.I64 = make([]int64, numel)
			for i := range t.I64 {
				t.I64[i] = int64(binary.LittleEndian.Uint64(raw[8*i:]))
			}
		}
		out[name] = t
	}
	return out, nil
}

var dtypeSize = map[string]int{"F32": 4, "F64": 8, "F16": 2, "BF16": 2, "I64": 8}

func halfToFloat(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	frac := uint32(h) & 0x3ff
	switch {
	case exp == 0 && frac == 0:
		return math.Float32frombits(sign)
	case exp == 0: // subnormal
		f := float32(frac) / 1024 * float32(math.Pow(2, -14))
		if sign != 0 {
			return -f
		}
		return f
	case exp == 0x1f:
		return math.Float32frombits(sign | 0x7f800000 | frac<<13)
	}
	return math.Float32frombits(sign | (exp+112)<<23 | frac<<13)
}
