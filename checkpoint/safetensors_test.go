package checkpoint

import (
	"bytes"
	"encoding/binary"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kronos-gateway/kronos-gateway/internal/infer"
)

// stFile assembles a safetensors file from a header and a data section.
func stFile(header string, data []byte) []byte {
	b := make([]byte, 8, 8+len(header)+len(data))
	binary.LittleEndian.PutUint64(b, uint64(len(header)))
	return append(append(b, header...), data...)
}

// withLength is a file whose length field says n, whatever follows.
func withLength(n uint64, rest string) []byte {
	b := make([]byte, 8)
	binary.LittleEndian.PutUint64(b, n)
	return append(b, rest...)
}

var malformedFiles = []struct {
	name string
	file []byte
	want string // substring of the error
}{
	{"empty", nil, "too short"},
	{"seven bytes", []byte{1, 2, 3, 4, 5, 6, 7}, "too short"},
	{"header length past the end", withLength(100, "{}"), "out of range"},
	{"header length huge", withLength(1<<63, "{}"), "out of range"},
	{"header length over the cap", withLength(MaxHeaderBytes+1, "{}"), "out of range"},
	{"non-JSON header", stFile("not json", nil), "header"},
	{"truncated JSON", stFile(`{"a":{"dtype":"F32"`, nil), "header"},
	{"header is an array", stFile(`[]`, nil), "header"},
	{"header is null", stFile(`null`, nil), "not a JSON object"},
	{"header not UTF-8", stFile("{\"\xff\":{}}", nil), "UTF-8"},
	{"entry not an object", stFile(`{"a":5}`, nil), "a:"},
	{"shape not integers", stFile(`{"a":{"dtype":"F32","shape":["x"],"data_offsets":[0,4]}}`, make([]byte, 4)), "a:"},
	{"unknown dtype", stFile(`{"a":{"dtype":"Q8","shape":[1],"data_offsets":[0,1]}}`, make([]byte, 1)), `unsupported dtype "Q8"`},
	{"missing dtype", stFile(`{"a":{"shape":[1],"data_offsets":[0,4]}}`, make([]byte, 4)), "unsupported dtype"},
	{"one offset", stFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[4]}}`, make([]byte, 4)), "has 1 values, want 2"},
	{"three offsets", stFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}}`, make([]byte, 8)), "want 2"},
	{"no offsets", stFile(`{"a":{"dtype":"F32","shape":[1]}}`, make([]byte, 4)), "want 2"},
	{"offsets past the data", stFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, make([]byte, 4)), "outside the 4 data bytes"},
	{"offsets reversed", stFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}}`, make([]byte, 4)), "outside"},
	{"negative offset", stFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}}`, make([]byte, 4)), "outside"},
	{"offset overflows int64", stFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,99999999999999999999]}}`, make([]byte, 4)), "a:"},
	{"wrong size for shape", stFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}`, make([]byte, 4)), "4 bytes for shape [2] of F32, want 8"},
	{"wrong size for dtype", stFile(`{"a":{"dtype":"I64","shape":[1],"data_offsets":[0,4]}}`, make([]byte, 4)), "want 8"},
	{"negative dimension", stFile(`{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,0]}}`, nil), "bad shape"},
	{"shape overflows", stFile(`{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]}}`, nil), "bad shape"},
	{"overlapping tensors", stFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}`, make([]byte, 12)), "overlap"},
	{"same range twice", stFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, make([]byte, 8)), "overlap"},
	{"gap between tensors", stFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}`, make([]byte, 12)), "gap"},
	{"trailing data", stFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, make([]byte, 6)), "cover 4 of the 6"},
	{"metadata not strings", stFile(`{"__metadata__":{"format":1}}`, nil), "__metadata__"},
	{"metadata not an object", stFile(`{"__metadata__":"pt"}`, nil), "__metadata__"},
}

func TestParseSafetensorsRejectsMalformedFiles(t *testing.T) {
	for _, tc := range malformedFiles {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseSafetensors(tc.file)
			wantKind(t, err, infer.KindInvalid)
			if got != nil {
				t.Errorf("returned %d tensors with the error", len(got))
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
			if err := checkSafetensorsHeader(bytes.NewReader(tc.file), int64(len(tc.file))); err == nil {
				t.Error("the header-only check accepts the file")
			}
		})
	}
}

func TestParseSafetensorsDecodesDTypes(t *testing.T) {
	data := new(bytes.Buffer)
	put := func(v any) { binary.Write(data, binary.LittleEndian, v) }
	put([]uint16{0x3c00, 0xc000, 0x0001, 0x7c00}) // F16: 1, -2, smallest subnormal, +Inf
	put([]uint16{0x3f80, 0xc040})                 // BF16: 1, -3
	put([]float64{0.5})                           // F64
	put([]int64{-7, 1 << 40})                     // I64
	put([]float32{2.5})                           // F32 scalar
	hdr := `{"h":{"dtype":"F16","shape":[2,2],"data_offsets":[0,8]},"b":{"dtype":"BF16","shape":[2],"data_offsets":[8,12]},` +
		`"d":{"dtype":"F64","shape":[1],"data_offsets":[12,20]},"i":{"dtype":"I64","shape":[2],"data_offsets":[20,36]},` +
		`"s":{"dtype":"F32","shape":[],"data_offsets":[36,40]},"z":{"dtype":"F32","shape":[0,3],"data_offsets":[40,40]},"__metadata__":{"format":"pt"}}`
	got, err := ParseSafetensors(stFile(hdr, data.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		dtype string
		shape []int
		f32   []float32
		i64   []int64
	}{
		{"h", "F16", []int{2, 2}, []float32{1, -2, float32(math.Ldexp(1, -24)), float32(math.Inf(1))}, nil},
		{"b", "BF16", []int{2}, []float32{1, -3}, nil},
		{"d", "F64", []int{1}, []float32{0.5}, nil},
		{"i", "I64", []int{2}, nil, []int64{-7, 1 << 40}},
		{"s", "F32", []int{}, []float32{2.5}, nil},
		{"z", "F32", []int{0, 3}, []float32{}, nil},
	}
	if len(got) != len(tests) {
		t.Fatalf("got %d tensors, want %d", len(got), len(tests))
	}
	for _, tc := range tests {
		want := &Tensor{Name: tc.name, DType: tc.dtype, Shape: tc.shape, F32: tc.f32, I64: tc.i64}
		if err := sameTensor(got[tc.name], want); err != nil {
			t.Errorf("%v (got %+v)", err, got[tc.name])
		}
	}
}

func TestLoadErrors(t *testing.T) {
	good := filepath.Join(confModels, "tiny", "predictor")
	tests := []struct {
		name   string
		config []byte // nil: no config.json
		data   []byte // nil: no model.safetensors
		kind   infer.Kind
	}{
		{"no files", nil, nil, infer.KindNotFound},
		{"no weights", []byte(`{}`), nil, infer.KindNotFound},
		{"config not JSON", []byte(`{`), mustRead(t, filepath.Join(good, WeightsFile)), infer.KindInvalid},
		{"corrupt weights", []byte(`{}`), stFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}`, make([]byte, 4)), infer.KindInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.config != nil {
				writeFile(t, filepath.Join(dir, ConfigFile), tc.config)
			}
			if tc.data != nil {
				writeFile(t, filepath.Join(dir, WeightsFile), tc.data)
			}
			_, err := Load(dir, "")
			wantKind(t, err, tc.kind)
		})
	}
}

func TestCheckpointF32(t *testing.T) {
	c := mustLoad(t, filepath.Join(confModels, "tiny", "tokenizer"))
	if c.Name != "tokenizer" {
		t.Errorf("default name %q, want the folder name", c.Name)
	}
	if v, err := c.F32("embed.weight", 32, 6); err != nil || len(v) != 192 {
		t.Errorf("F32(embed.weight) = %d values, %v", len(v), err)
	}
	tests := []struct {
		name  string
		shape []int
		want  string
	}{
		{"missing", nil, "missing tensor"},
		{"tokenizer.bsq.basis", nil, "want a float type"},
		{"embed.weight", []int{6, 32}, "has shape [32 6], want [6 32]"},
	}
	for _, tc := range tests {
		_, err := c.F32(tc.name, tc.shape...)
		wantKind(t, err, infer.KindInvalid)
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("F32(%s): error %q does not mention %q", tc.name, err, tc.want)
		}
	}
}

// realSample is a small file cut from a reference checkpoint: its buffers and
// small tensors, with their real names, dtypes and values. (A whole reference
// file makes a poor seed: the fuzzer spends its time minimising 170 kB inputs.)
func realSample(t testing.TB) []byte {
	c := mustLoad(t, filepath.Join(confModels, "tiny", "tokenizer"))
	var ts []*Tensor
	for name, x := range c.Tensors {
		if x.Numel() <= 8 || strings.HasPrefix(name, "head.") {
			ts = append(ts, x)
		}
	}
	var buf bytes.Buffer
	if err := WriteSafetensors(&buf, ts, nil); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// FuzzParseSafetensors checks that the parser never panics, that the
// header-only check used for downloads agrees with it, and that whatever it
// accepts survives a write and a second parse unchanged.
func FuzzParseSafetensors(f *testing.F) {
	for _, tc := range malformedFiles {
		f.Add(tc.file)
	}
	f.Add(stFile(`{}`, nil))
	f.Add(stFile(`{"a":{"dtype":"F16","shape":[2],"data_offsets":[0,4]},"b":{"dtype":"I64","shape":[],"data_offsets":[4,12]},"__metadata__":{"format":"pt"}}`, make([]byte, 12)))
	f.Add(realSample(f))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 1<<20 {
			t.Skip("input over 1 MiB")
		}
		got, err := ParseSafetensors(b)
		herr := checkSafetensorsHeader(bytes.NewReader(b), int64(len(b)))
		if (err == nil) != (herr == nil) {
			t.Fatalf("ParseSafetensors error %v, header-only check error %v", err, herr)
		}
		if err != nil {
			if k := infer.KindOf(err); k != infer.KindInvalid {
				t.Fatalf("error %q has kind %s", err, k)
			}
			return
		}
		ts := make([]*Tensor, 0, len(got))
		for _, x := range got {
			ts = append(ts, x)
		}
		var buf bytes.Buffer
		if err := WriteSafetensors(&buf, ts, nil); err != nil {
			t.Fatalf("cannot write back what was read: %v", err)
		}
		again, err := ParseSafetensors(buf.Bytes())
		if err != nil {
			t.Fatalf("cannot read back what was written: %v", err)
		}
		for name, x := range got {
			y := again[name]
			if x.DType != "I64" {
				x = &Tensor{Name: x.Name, DType: "F32", Shape: x.Shape, F32: x.F32}
			}
			if err := sameTensor(x, y); err != nil {
				t.Fatal(err)
			}
		}
	})
}
