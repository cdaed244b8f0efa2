package checkpoint

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"unicode/utf8"

	"github.com/kronos-gateway/kronos-gateway/internal/infer"
)

// MaxHeaderBytes bounds the JSON header of a safetensors file (the format
// itself limits it to 100 MB).
const MaxHeaderBytes = 100 << 20

// metadataKey is the reserved header entry holding string metadata.
const metadataKey = "__metadata__"

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

// headerEntry is one tensor of the JSON header as written on disk.
type headerEntry struct {
	DType   string  `json:"dtype"`
	Shape   []int   `json:"shape"`
	Offsets []int64 `json:"data_offsets"`
}

// entry is a checked header entry.
type entry struct {
	name       string
	dtype      string
	shape      []int
	begin, end int64 // byte range relative to the start of the data section
	numel      int64
}

// dtypeSize is the element size of a supported dtype.
func dtypeSize(dtype string) (int64, bool) {
	switch dtype {
	case "F32":
		return 4, true
	case "F64", "I64":
		return 8, true
	case "F16", "BF16":
		return 2, true
	}
	return 0, false
}

// malformed is the error of a file that is not a valid safetensors file.
func malformed(format string, args ...any) error {
	return infer.Errorf(infer.KindInvalid, "safetensors: "+format, args...)
}

// ReadSafetensors parses a whole safetensors file.
func ReadSafetensors(path string) (map[string]*Tensor, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, wrapOSError(err, "read %s", path)
	}
	t, err := ParseSafetensors(b)
	if err != nil {
		return nil, infer.Wrap(infer.KindInvalid, err, "%s", path)
	}
	return t, nil
}

// ParseSafetensors parses a safetensors file held in memory. It validates
// every offset and shape against the buffer and never panics on bad input:
// the header must be a UTF-8 JSON object, every tensor needs a known dtype,
// non-negative dimensions and a byte range of exactly the size its shape
// implies, and the ranges must tile the data section without gaps, overlaps or
// trailing bytes (as the reference implementation requires). Errors wrap
// infer.ErrInvalid.
func ParseSafetensors(b []byte) (map[string]*Tensor, error) {
	if len(b) < 8 {
		return nil, malformed("file too short (%d bytes)", len(b))
	}
	n := binary.LittleEndian.Uint64(b[:8])
	if n > MaxHeaderBytes || n > uint64(len(b)-8) {
		return nil, malformed("header length %d out of range for a %d-byte file", n, len(b))
	}
	entries, _, err := parseHeader(b[8:8+n], int64(len(b))-8-int64(n))
	if err != nil {
		return nil, err
	}
	data := b[8+n:]
	out := make(map[string]*Tensor, len(entries))
	for _, e := range entries {
		out[e.name] = decodeTensor(e, data[e.begin:e.end])
	}
	return out, nil
}

// decodeTensor converts the raw little-endian bytes of a checked entry.
func decodeTensor(e entry, raw []byte) *Tensor {
	t := &Tensor{Name: e.name, DType: e.dtype, Shape: e.shape}
	switch e.dtype {
	case "F32":
		t.F32 = make([]float32, e.numel)
		for i := range t.F32 {
			t.F32[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
	case "F64":
		t.F32 = make([]float32, e.numel)
		for i := range t.F32 {
			t.F32[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(raw[8*i:])))
		}
	case "F16":
		t.F32 = make([]float32, e.numel)
		for i := range t.F32 {
			t.F32[i] = halfToFloat(binary.LittleEndian.Uint16(raw[2*i:]))
		}
	case "BF16":
		t.F32 = make([]float32, e.numel)
		for i := range t.F32 {
			t.F32[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(raw[2*i:])) << 16)
		}
	case "I64":
		t.I64 = make([]int64, e.numel)
		for i := range t.I64 {
			t.I64[i] = int64(binary.LittleEndian.Uint64(raw[8*i:]))
		}
	}
	return t
}

// parseHeader decodes the JSON header and checks every entry against a data
// section of dataLen bytes. Entries come back in name order.
func parseHeader(h []byte, dataLen int64) ([]entry, map[string]string, error) {
	if !utf8.Valid(h) {
		return nil, nil, malformed("header is not valid UTF-8")
	}
	var hdr map[string]json.RawMessage
	if err := json.Unmarshal(h, &hdr); err != nil {
		return nil, nil, malformed("header: %v", err)
	}
	if hdr == nil {
		return nil, nil, malformed("header is not a JSON object")
	}
	var meta map[string]string
	if raw, ok := hdr[metadataKey]; ok {
		if err := json.Unmarshal(raw, &meta); err != nil {
			return nil, nil, malformed("%s: want an object of strings: %v", metadataKey, err)
		}
	}
	entries := make([]entry, 0, len(hdr))
	for name, raw := range hdr {
		if name == metadataKey {
			continue
		}
		e, err := checkEntry(name, raw, dataLen)
		if err != nil {
			return nil, nil, err
		}
		entries = append(entries, e)
	}
	// The byte ranges must tile [0, dataLen) exactly.
	sort.Slice(entries, func(i, j int) bool {
		if entries[i].begin != entries[j].begin {
			return entries[i].begin < entries[j].begin
		}
		return entries[i].end < entries[j].end
	})
	var cursor int64
	for _, e := range entries {
		switch {
		case e.begin < cursor:
			return nil, nil, malformed("%s: data offsets [%d, %d] overlap the previous tensor (ending at %d)", e.name, e.begin, e.end, cursor)
		case e.begin > cursor:
			return nil, nil, malformed("%s: data offsets [%d, %d] leave a gap after byte %d", e.name, e.begin, e.end, cursor)
		}
		cursor = e.end
	}
	if cursor != dataLen {
		return nil, nil, malformed("tensors cover %d of the %d data bytes", cursor, dataLen)
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].name < entries[j].name })
	return entries, meta, nil
}

// checkEntry decodes and checks one tensor entry of the header.
func checkEntry(name string, raw json.RawMessage, dataLen int64) (entry, error) {
	var he headerEntry
	if err := json.Unmarshal(raw, &he); err != nil {
		return entry{}, malformed("%s: %v", name, err)
	}
	size, ok := dtypeSize(he.DType)
	if !ok {
		return entry{}, malformed("%s: unsupported dtype %q", name, he.DType)
	}
	if len(he.Offsets) != 2 {
		return entry{}, malformed("%s: data_offsets has %d values, want 2", name, len(he.Offsets))
	}
	numel := int64(1)
	for _, d := range he.Shape {
		if d < 0 || (d > 0 && numel > (math.MaxInt64/8)/int64(d)) {
			return entry{}, malformed("%s: bad shape %v", name, he.Shape)
		}
		numel *= int64(d)
	}
	if he.Shape == nil {
		he.Shape = []int{}
	}
	begin, end := he.Offsets[0], he.Offsets[1]
	if begin < 0 || end < begin || end > dataLen {
		return entry{}, malformed("%s: data offsets [%d, %d] outside the %d data bytes", name, begin, end, dataLen)
	}
	if end-begin != numel*size {
		return entry{}, malformed("%s: %d bytes for shape %v of %s, want %d", name, end-begin, he.Shape, he.DType, numel*size)
	}
	return entry{name: name, dtype: he.DType, shape: he.Shape, begin: begin, end: end, numel: numel}, nil
}

// checkSafetensorsFile validates the header of a safetensors file on disk
// against its size without reading the tensor data: a truncated or padded
// download fails here.
func checkSafetensorsFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	return checkSafetensorsHeader(f, st.Size())
}

// checkSafetensorsHeader reads the length and header of a safetensors file of
// size bytes from r and checks them as ParseSafetensors would, without
// reading the data: it fails exactly when ParseSafetensors would.
func checkSafetensorsHeader(r io.Reader, size int64) error {
	var lb [8]byte
	if size < 8 {
		return malformed("file too short (%d bytes)", size)
	}
	if _, err := io.ReadFull(r, lb[:]); err != nil {
		return fmt.Errorf("read header length: %w", err)
	}
	n := binary.LittleEndian.Uint64(lb[:])
	if n > MaxHeaderBytes || n > uint64(size-8) {
		return malformed("header length %d out of range for a %d-byte file", n, size)
	}
	h := make([]byte, n)
	if _, err := io.ReadFull(r, h); err != nil {
		return fmt.Errorf("read header: %w", err)
	}
	_, _, err := parseHeader(h, size-8-int64(n))
	return err
}

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
