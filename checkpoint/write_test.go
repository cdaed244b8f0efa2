package checkpoint

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"github.com/kronos-gateway/kronos-gateway/internal/infer"
)

// Reading a reference file and writing it back must give the same bytes:
// header layout, key order, padding, metadata and data order all match what
// PyTorch's safetensors writes.
func TestWriteSafetensorsRoundTripsReferenceFiles(t *testing.T) {
	for _, tc := range referenceDirs {
		t.Run(tc.name, func(t *testing.T) {
			c := mustLoad(t, tc.dir)
			var buf bytes.Buffer
			if err := WriteSafetensors(&buf, c.sortedTensors(), nil); err != nil {
				t.Fatal(err)
			}
			want := mustRead(t, filepath.Join(tc.dir, WeightsFile))
			if !bytes.Equal(buf.Bytes(), want) {
				n := min(len(want), buf.Len())
				i := 0
				for i < n && want[i] == buf.Bytes()[i] {
					i++
				}
				t.Fatalf("written %d bytes differ from the %d reference bytes at byte %d", buf.Len(), len(want), i)
			}
		})
	}
}

func TestWriteSafetensorsHeader(t *testing.T) {
	f32 := func(name string, shape []int, v ...float32) *Tensor {
		return &Tensor{Name: name, DType: "F32", Shape: shape, F32: v}
	}
	tests := []struct {
		name    string
		tensors []*Tensor
		meta    map[string]string
		header  string // without the padding
	}{
		{
			name:    "default metadata, name order",
			tensors: []*Tensor{f32("b", []int{2}, 1, 2), f32("a", []int{1, 1}, 3)},
			header:  `{"a":{"dtype":"F32","shape":[1,1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]},"__metadata__":{"format":"pt"}}`,
		},
		{
			name:    "scalar, I64, converted F16, sorted metadata",
			tensors: []*Tensor{{Name: "s", DType: "F16", Shape: nil, F32: []float32{1}}, {Name: "i", DType: "I64", Shape: []int{2}, I64: []int64{-1, 2}}},
			meta:    map[string]string{"z": "1", "a": "<&>"},
			header:  `{"i":{"dtype":"I64","shape":[2],"data_offsets":[0,16]},"s":{"dtype":"F32","shape":[],"data_offsets":[16,20]},"__metadata__":{"a":"<&>","z":"1"}}`,
		},
		{
			name:    "empty metadata is omitted",
			tensors: []*Tensor{f32("x", []int{0})},
			meta:    map[string]string{},
			header:  `{"x":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}}`,
		},
		{
			name:   "no tensors",
			header: `{"__metadata__":{"format":"pt"}}`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := WriteSafetensors(&buf, tc.tensors, tc.meta); err != nil {
				t.Fatal(err)
			}
			b := buf.Bytes()
			n := binary.LittleEndian.Uint64(b)
			if n%8 != 0 {
				t.Errorf("header length %d is not a multiple of 8", n)
			}
			hdr := b[8 : 8+n]
			if got := string(bytes.TrimRight(hdr, " ")); got != tc.header {
				t.Errorf("header\n got %s\nwant %s", got, tc.header)
			}
			if len(hdr)-len(bytes.TrimRight(hdr, " ")) >= 8 {
				t.Errorf("header padded with %d spaces, want fewer than 8", len(hdr)-len(bytes.TrimRight(hdr, " ")))
			}
			got, err := ParseSafetensors(b)
			if err != nil {
				t.Fatalf("written file does not parse: %v", err)
			}
			if len(got) != len(tc.tensors) {
				t.Fatalf("read back %d tensors, want %d", len(got), len(tc.tensors))
			}
		})
	}
}

func TestWriteSafetensorsRejectsBadTensors(t *testing.T) {
	tests := []struct {
		name    string
		tensors []*Tensor
	}{
		{"nil tensor", []*Tensor{nil}},
		{"empty name", []*Tensor{{Name: "", DType: "F32", Shape: []int{1}, F32: []float32{1}}}},
		{"reserved name", []*Tensor{{Name: "__metadata__", DType: "F32", Shape: []int{1}, F32: []float32{1}}}},
		{"duplicate", []*Tensor{{Name: "a", DType: "F32", Shape: []int{1}, F32: []float32{1}}, {Name: "a", DType: "F32", Shape: []int{1}, F32: []float32{1}}}},
		{"too few values", []*Tensor{{Name: "a", DType: "F32", Shape: []int{2, 2}, F32: []float32{1, 2, 3}}}},
		{"I64 without I64 data", []*Tensor{{Name: "a", DType: "I64", Shape: []int{1}, F32: []float32{1}}}},
		{"negative dimension", []*Tensor{{Name: "a", DType: "F32", Shape: []int{-1, -1}, F32: []float32{1}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			err := WriteSafetensors(&buf, tc.tensors, nil)
			wantKind(t, err, infer.KindInvalid)
			if buf.Len() != 0 {
				t.Errorf("wrote %d bytes before failing", buf.Len())
			}
		})
	}
}

// Save then Load gives back the same checkpoint, and the SHA-256 of a random
// checkpoint is that of the file Save writes.
func TestSaveLoad(t *testing.T) {
	tok, pred, _, err := RandomPair("tiny", 7)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []*Checkpoint{tok, pred} {
		t.Run(c.Name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "out")
			if err := c.Save(dir); err != nil {
				t.Fatal(err)
			}
			got := mustLoad(t, dir)
			if got.SHA256 != c.SHA256 {
				t.Errorf("saved file SHA-256 %s, checkpoint says %s", got.SHA256, c.SHA256)
			}
			if !bytes.Equal(got.Config, c.Config) {
				t.Errorf("config.json\n%s\nwant\n%s", got.Config, c.Config)
			}
			if len(got.Tensors) != len(c.Tensors) {
				t.Fatalf("loaded %d tensors, want %d", len(got.Tensors), len(c.Tensors))
			}
			for k, want := range c.Tensors {
				if err := sameTensor(got.Tensors[k], want); err != nil {
					t.Error(err)
				}
			}
			entries, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			if len(entries) != 2 {
				t.Errorf("Save left %d files, want config.json and model.safetensors only", len(entries))
			}
		})
	}
}

func TestSaveRejectsMisnamedTensor(t *testing.T) {
	c := &Checkpoint{Name: "x", Config: []byte("{}"), Tensors: map[string]*Tensor{"a": {Name: "b", DType: "F32", Shape: []int{1}, F32: []float32{1}}}}
	wantKind(t, c.Save(t.TempDir()), infer.KindInvalid)
}
