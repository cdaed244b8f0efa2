package checkpoint

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"

	"github.com/kronos-gateway/kronos-gateway/internal/infer"
)

// DefaultMetadata is the __metadata__ entry PyTorch checkpoints carry and that
// WriteSafetensors writes when it is given nil metadata.
func DefaultMetadata() map[string]string { return map[string]string{"format": "pt"} }

// WriteSafetensors writes tensors to w in the safetensors format, byte for
// byte as the Kronos checkpoints are laid out:
//
//   - 8-byte little-endian length N of the JSON header;
//   - the header: compact JSON, one {"dtype","shape","data_offsets"} object per
//     tensor in name order, then "__metadata__" (keys sorted), padded with
//     spaces so that N is a multiple of 8;
//   - the raw little-endian data of every tensor, in name order, packed.
//
// A tensor whose DType is "I64" is written from I64; any other tensor is
// written as F32 from F32 (an F16/BF16/F64 tensor was converted to float32 when
// it was read and is written back as F32). The data length must match the
// shape. metadata nil means DefaultMetadata(); a non-nil empty map writes no
// __metadata__ entry. Errors for bad tensors wrap infer.ErrInvalid.
func WriteSafetensors(w io.Writer, tensors []*Tensor, metadata map[string]string) error {
	sorted, err := checkTensors(tensors)
	if err != nil {
		return err
	}
	if metadata == nil {
		metadata = DefaultMetadata()
	}
	hdr := encodeHeader(sorted, metadata)
	buf := make([]byte, 8, 1<<16)
	binary.LittleEndian.PutUint64(buf, uint64(len(hdr)))
	if _, err := w.Write(append(buf, hdr...)); err != nil {
		return err
	}
	// Encode the data in chunks of up to 64 KiB.
	for _, t := range sorted {
		if t.DType == "I64" {
			for v := t.I64; len(v) > 0; {
				n := min(len(v), cap(buf)/8)
				buf = buf[:8*n]
				for i, x := range v[:n] {
					binary.LittleEndian.PutUint64(buf[8*i:], uint64(x))
				}
				if _, err := w.Write(buf); err != nil {
					return err
				}
				v = v[n:]
			}
			continue
		}
		for v := t.F32; len(v) > 0; {
			n := min(len(v), cap(buf)/4)
			buf = buf[:4*n]
			for i, x := range v[:n] {
				binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(x))
			}
			if _, err := w.Write(buf); err != nil {
				return err
			}
			v = v[n:]
		}
	}
	return nil
}

// checkTensors validates the tensors and returns them sorted by name.
func checkTensors(tensors []*Tensor) ([]*Tensor, error) {
	sorted := make([]*Tensor, 0, len(tensors))
	seen := make(map[string]bool, len(tensors))
	for i, t := range tensors {
		switch {
		case t == nil:
			return nil, infer.Errorf(infer.KindInvalid, "safetensors: tensor %d is nil", i)
		case t.Name == "" || t.Name == metadataKey:
			return nil, infer.Errorf(infer.KindInvalid, "safetensors: tensor %d has the reserved name %q", i, t.Name)
		case seen[t.Name]:
			return nil, infer.Errorf(infer.KindInvalid, "safetensors: duplicate tensor %q", t.Name)
		}
		seen[t.Name] = true
		n := 1
		for _, d := range t.Shape {
			if d < 0 {
				return nil, infer.Errorf(infer.KindInvalid, "safetensors: %s: negative dimension in shape %v", t.Name, t.Shape)
			}
			n *= d
		}
		have := len(t.F32)
		if t.DType == "I64" {
			have = len(t.I64)
		}
		if have != n {
			return nil, infer.Errorf(infer.KindInvalid, "safetensors: %s: %d values for shape %v", t.Name, have, t.Shape)
		}
		sorted = append(sorted, t)
	}
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	return sorted, nil
}

// encodeHeader builds the padded JSON header for tensors sorted by name.
func encodeHeader(sorted []*Tensor, metadata map[string]string) []byte {
	var h bytes.Buffer
	h.WriteByte('{')
	var off int64
	for i, t := range sorted {
		if i > 0 {
			h.WriteByte(',')
		}
		dtype, size := "F32", int64(4)
		if t.DType == "I64" {
			dtype, size = "I64", 8
		}
		end := off + int64(t.Numel())*size
		writeJSONString(&h, t.Name)
		h.WriteString(`:{"dtype":"`)
		h.WriteString(dtype)
		h.WriteString(`","shape":[`)
		for j, d := range t.Shape {
			if j > 0 {
				h.WriteByte(',')
			}
			h.WriteString(strconv.Itoa(d))
		}
		h.WriteString(`],"data_offsets":[`)
		h.WriteString(strconv.FormatInt(off, 10))
		h.WriteByte(',')
		h.WriteString(strconv.FormatInt(end, 10))
		h.WriteString("]}")
		off = end
	}
	if len(metadata) > 0 {
		if len(sorted) > 0 {
			h.WriteByte(',')
		}
		writeJSONString(&h, metadataKey)
		h.WriteString(":{")
		keys := make([]string, 0, len(metadata))
		for k := range metadata {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for i, k := range keys {
			if i > 0 {
				h.WriteByte(',')
			}
			writeJSONString(&h, k)
			h.WriteByte(':')
			writeJSONString(&h, metadata[k])
		}
		h.WriteByte('}')
	}
	h.WriteByte('}')
	for h.Len()%8 != 0 {
		h.WriteByte(' ')
	}
	return h.Bytes()
}

// writeJSONString writes s as a JSON string without HTML escaping (as
// serde_json, which writes the reference files, does).
func writeJSONString(buf *bytes.Buffer, s string) {
	var tmp bytes.Buffer
	enc := json.NewEncoder(&tmp)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // encoding a string cannot fail
	buf.Write(bytes.TrimSuffix(tmp.Bytes(), []byte{'\n'}))
}

// sortedTensors returns the checkpoint's tensors as a slice.
func (c *Checkpoint) sortedTensors() []*Tensor {
	ts := make([]*Tensor, 0, len(c.Tensors))
	for _, t := range c.Tensors {
		ts = append(ts, t)
	}
	sort.Slice(ts, func(i, j int) bool { return ts[i].Name < ts[j].Name })
	return ts
}

// hashSafetensors returns the hex SHA-256 of the serialised tensors.
func hashSafetensors(tensors []*Tensor, metadata map[string]string) (string, error) {
	h := sha256.New()
	if err := WriteSafetensors(h, tensors, metadata); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Save writes the checkpoint to dir as config.json and model.safetensors
// (with DefaultMetadata), creating dir if needed. Each file is written to a
// temporary file in dir and renamed into place, so a reader never sees a
// partial file. c is not modified. Every tensor's map key must equal its
// Name.
func (c *Checkpoint) Save(dir string) error {
	for k, t := range c.Tensors {
		if t == nil || t.Name != k {
			return infer.Errorf(infer.KindInvalid, "checkpoint %s: tensor under key %q is nil or misnamed", c.Name, k)
		}
	}
	if !json.Valid(c.Config) {
		return infer.Errorf(infer.KindInvalid, "checkpoint %s: config is not valid JSON", c.Name)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return infer.Wrap(infer.KindInternal, err, "checkpoint %s: save", c.Name)
	}
	if err := writeAtomic(filepath.Join(dir, ConfigFile), func(w io.Writer) error {
		_, err := w.Write(c.Config)
		return err
	}); err != nil {
		return fmt.Errorf("checkpoint %s: save: %w", c.Name, err)
	}
	if err := writeAtomic(filepath.Join(dir, WeightsFile), func(w io.Writer) error {
		return WriteSafetensors(w, c.sortedTensors(), nil)
	}); err != nil {
		return fmt.Errorf("checkpoint %s: save: %w", c.Name, err)
	}
	return nil
}

// writeAtomic writes path through a temporary file in the same folder and
// renames it into place once write succeeded and the data is synced.
func writeAtomic(path string, write func(io.Writer) error) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return infer.Wrap(infer.KindInternal, err, "")
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := write(f); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return infer.Wrap(infer.KindInternal, err, "")
	}
	if err := f.Close(); err != nil {
		return infer.Wrap(infer.KindInternal, err, "")
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return infer.Wrap(infer.KindInternal, err, "")
	}
	return nil
}
