package checkpoint

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/kronos-gateway/kronos-gateway/internal/graphs"
)

// File names inside a checkpoint folder.
const (
	ConfigFile  = "config.json"
	WeightsFile = "model.safetensors"
)

// Checkpoint is one loaded folder.
type Checkpoint struct {
	Dir     string
	Name    string          // display name: hub id or folder name
	Config  json.RawMessage // config.json as read
	Tensors map[string]*Tensor
	SHA256  string // hex SHA-256 of model.safetensors
}

// Version is "<name>@sha256:<first 12 hex digits>", the identity of the weights.
func (c *Checkpoint) Version() string {
	return fmt.Sprintf("%s@sha256:%s", c.Name, c.SHA256[:12])
}

// F32 returns the float32 data of a tensor and checks its shape; a missing
// tensor or a shape mismatch is an error naming the key.
func (c *Checkpoint) F32(name string, shape ...int) ([]float32, error) {
	t, ok := c.Tensors[name]
	if !ok {
		return nil, fmt.Errorf("checkpoint %s: missing tensor %q", c.Name, name)
	}
	if t.F32 == nil {
		return nil, fmt.Errorf("checkpoint %s: tensor %q is %s, want a float type", c.Name, name, t.DType)
	}
	if len(shape) > 0 && !sameShape(t.Shape, shape) {
		return nil, fmt.Errorf("checkpoint %s: tensor %q has shape %v, want %v", c.Name, name, t.Shape, shape)
	}
	return t.F32, nil
}

// Has reports whether the tensor exists.
func (c *Checkpoint) Has(name string) bool { _, ok := c.Tensors[name]; return ok }

func sameShape(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Load reads dir/config.json and dir/model.safetensors. name is the display
// name; if empty, the folder's base name is used.
func Load(dir, name string) (*Checkpoint, error) {
	cfg, err := os.ReadFile(filepath.Join(dir, ConfigFile))
	if err != nil {
		return nil, err
	}
	if !json.Valid(cfg) {
		return nil, fmt.Errorf("%s: invalid JSON", filepath.Join(dir, ConfigFile))
	}
	wpath := filepath.Join(dir, WeightsFile)
	f, err := os.Open(wpath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, err
	}
	tensors, err := ReadSafetensors(wpath)
	if err != nil {
		return nil, err
	}
	if name == "" {
		name = filepath.Base(filepath.Clean(dir))
	}
	return &Checkpoint{Dir: dir, Name: name, Config: cfg, Tensors: tensors, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

// TokenizerConfig decodes config.json as a KronosTokenizer configuration and
// checks the fields inference needs.
func (c *Checkpoint) TokenizerConfig() (graphs.TokenizerConfig, error) {
	var t graphs.TokenizerConfig
	if err := json.Unmarshal(c.Config, &t); err != nil {
		return t, fmt.Errorf("checkpoint %s: config.json: %w", c.Name, err)
	}
	if t.DIn == 0 {
		t.DIn = 6
	}
	switch {
	case t.DModel <= 0 || t.NHeads <= 0 || t.DModel%t.NHeads != 0 || (t.DModel/t.NHeads)%2 != 0:
		return t, fmt.Errorf("checkpoint %s: tokenizer d_model %d / n_heads %d must give an even head size", c.Name, t.DModel, t.NHeads)
	case t.FFDim <= 0 || t.NEncLayers < 1 || t.NDecLayers < 1:
		return t, fmt.Errorf("checkpoint %s: tokenizer ff_dim/n_enc_layers/n_dec_layers out of range", c.Name)
	case t.S1Bits <= 0 || t.S1Bits != t.S2Bits || t.S1Bits > 20:
		return t, fmt.Errorf("checkpoint %s: tokenizer s1_bits %d and s2_bits %d must be equal and in 1..20", c.Name, t.S1Bits, t.S2Bits)
	case t.DIn != 6:
		return t, fmt.Errorf("checkpoint %s: tokenizer d_in %d, want 6", c.Name, t.DIn)
	}
	return t, nil
}

// PredictorConfig decodes config.json as a Kronos configuration and checks
// the fields inference needs.
func (c *Checkpoint) PredictorConfig() (graphs.PredictorConfig, error) {
	var p graphs.PredictorConfig
	if err := json.Unmarshal(c.Config, &p); err != nil {
		return p, fmt.Errorf("checkpoint %s: config.json: %w", c.Name, err)
	}
	switch {
	case p.DModel <= 0 || p.NHeads <= 0 || p.DModel%p.NHeads != 0 || (p.DModel/p.NHeads)%2 != 0:
		return p, fmt.Errorf("checkpoint %s: predictor d_model %d / n_heads %d must give an even head size", c.Name, p.DModel, p.NHeads)
	case p.DModel%graphs.DepHeads != 0:
		return p, fmt.Errorf("checkpoint %s: predictor d_model %d must be divisible by %d", c.Name, p.DModel, graphs.DepHeads)
	case p.FFDim <= 0 || p.NLayers < 1:
		return p, fmt.Errorf("checkpoint %s: predictor ff_dim/n_layers out of range", c.Name)
	case p.S1Bits <= 0 || p.S2Bits <= 0 || p.S1Bits > 20 || p.S2Bits > 20:
		return p, fmt.Errorf("checkpoint %s: predictor s1_bits/s2_bits out of range", c.Name)
	}
	return p, nil
}
