package checkpoint

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/kronos-gateway/kronos-gateway/internal/graphs"
	"github.com/kronos-gateway/kronos-gateway/internal/infer"
)

// File names inside a checkpoint folder.
const (
	ConfigFile  = "config.json"
	WeightsFile = "model.safetensors"
)

// Checkpoint is one checkpoint held in memory: loaded from a folder (Load),
// or made with random weights (RandomTokenizer, RandomPredictor, RandomPair).
type Checkpoint struct {
	Dir     string             // folder it was loaded from; empty for a random checkpoint
	Name    string             // display name: hub id, folder name or "random-<preset>-seed<n>"
	Config  json.RawMessage    // config.json as read (or as Save writes it)
	Tensors map[string]*Tensor // state_dict entries by key
	SHA256  string             // hex SHA-256 of model.safetensors (of its serialisation, for a random checkpoint)
}

// Version is "<name>@sha256:<first 12 hex digits>", the identity of the weights.
func (c *Checkpoint) Version() string {
	return fmt.Sprintf("%s@sha256:%s", c.Name, c.SHA256[:12])
}

// F32 returns the float32 data of a tensor and checks its shape; a missing
// tensor or a shape mismatch is an error naming the key that wraps
// infer.ErrInvalid.
func (c *Checkpoint) F32(name string, shape ...int) ([]float32, error) {
	t, ok := c.Tensors[name]
	if !ok {
		return nil, infer.Errorf(infer.KindInvalid, "checkpoint %s: missing tensor %q", c.Name, name)
	}
	if t.F32 == nil {
		return nil, infer.Errorf(infer.KindInvalid, "checkpoint %s: tensor %q is %s, want a float type", c.Name, name, t.DType)
	}
	if len(shape) > 0 && !sameShape(t.Shape, shape) {
		return nil, infer.Errorf(infer.KindInvalid, "checkpoint %s: tensor %q has shape %v, want %v", c.Name, name, t.Shape, shape)
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
// name; if empty, the folder's base name is used. A missing file wraps
// infer.ErrNotFound and a malformed one infer.ErrInvalid.
func Load(dir, name string) (*Checkpoint, error) {
	cfgPath := filepath.Join(dir, ConfigFile)
	cfg, err := os.ReadFile(cfgPath)
	if err != nil {
		return nil, wrapOSError(err, "checkpoint %s", dir)
	}
	if !json.Valid(cfg) {
		return nil, infer.Errorf(infer.KindInvalid, "%s: invalid JSON", cfgPath)
	}
	wpath := filepath.Join(dir, WeightsFile)
	b, err := os.ReadFile(wpath)
	if err != nil {
		return nil, wrapOSError(err, "checkpoint %s", dir)
	}
	sum := sha256.Sum256(b)
	tensors, err := ParseSafetensors(b)
	if err != nil {
		return nil, infer.Wrap(infer.KindInvalid, err, "%s", wpath)
	}
	if name == "" {
		name = filepath.Base(filepath.Clean(dir))
	}
	return &Checkpoint{Dir: dir, Name: name, Config: cfg, Tensors: tensors, SHA256: hex.EncodeToString(sum[:])}, nil
}

// wrapOSError gives a file-system error a kind: a missing file is not found,
// anything else internal.
func wrapOSError(err error, format string, args ...any) error {
	if errors.Is(err, fs.ErrNotExist) {
		return infer.Wrap(infer.KindNotFound, err, format, args...)
	}
	return infer.Wrap(infer.KindInternal, err, format, args...)
}

// TokenizerConfig decodes config.json as a KronosTokenizer configuration and
// checks the fields inference needs (see ValidateTokenizerConfig). A missing
// d_in defaults to 6. Errors wrap infer.ErrInvalid.
func (c *Checkpoint) TokenizerConfig() (graphs.TokenizerConfig, error) {
	var t graphs.TokenizerConfig
	if err := json.Unmarshal(c.Config, &t); err != nil {
		return t, infer.Wrap(infer.KindInvalid, err, "checkpoint %s: config.json", c.Name)
	}
	if t.DIn == 0 {
		t.DIn = 6
	}
	if err := ValidateTokenizerConfig(t); err != nil {
		return t, infer.Wrap(infer.KindInvalid, err, "checkpoint %s", c.Name)
	}
	return t, nil
}

// PredictorConfig decodes config.json as a Kronos configuration and checks
// the fields inference needs (see ValidatePredictorConfig). Errors wrap
// infer.ErrInvalid.
func (c *Checkpoint) PredictorConfig() (graphs.PredictorConfig, error) {
	var p graphs.PredictorConfig
	if err := json.Unmarshal(c.Config, &p); err != nil {
		return p, infer.Wrap(infer.KindInvalid, err, "checkpoint %s: config.json", c.Name)
	}
	if err := ValidatePredictorConfig(p); err != nil {
		return p, infer.Wrap(infer.KindInvalid, err, "checkpoint %s", c.Name)
	}
	return p, nil
}

// MaxBits bounds s1_bits and s2_bits: a vocabulary has at most 2^MaxBits ids.
const MaxBits = 20

// ValidateTokenizerConfig checks a tokenizer configuration: d_model divisible
// by n_heads into an even head size, positive ff_dim, at least one encoder and
// one decoder layer, s1_bits == s2_bits in 1..MaxBits, and d_in 6. Errors wrap
// infer.ErrInvalid.
func ValidateTokenizerConfig(t graphs.TokenizerConfig) error {
	switch {
	case t.DModel <= 0 || t.NHeads <= 0 || t.DModel%t.NHeads != 0 || (t.DModel/t.NHeads)%2 != 0:
		return infer.Errorf(infer.KindInvalid, "tokenizer d_model %d / n_heads %d must give an even head size", t.DModel, t.NHeads)
	case t.FFDim <= 0 || t.NEncLayers < 1 || t.NDecLayers < 1:
		return infer.Errorf(infer.KindInvalid, "tokenizer ff_dim %d / n_enc_layers %d / n_dec_layers %d out of range", t.FFDim, t.NEncLayers, t.NDecLayers)
	case t.S1Bits <= 0 || t.S1Bits != t.S2Bits || t.S1Bits > MaxBits:
		return infer.Errorf(infer.KindInvalid, "tokenizer s1_bits %d and s2_bits %d must be equal and in 1..%d", t.S1Bits, t.S2Bits, MaxBits)
	case t.DIn != 6:
		return infer.Errorf(infer.KindInvalid, "tokenizer d_in %d, want 6", t.DIn)
	}
	return nil
}

// ValidatePredictorConfig checks a predictor configuration: d_model divisible
// by n_heads into an even head size and by graphs.DepHeads into an even head
// size, positive ff_dim and n_layers, s1_bits and s2_bits in 1..MaxBits.
// Errors wrap infer.ErrInvalid.
func ValidatePredictorConfig(p graphs.PredictorConfig) error {
	switch {
	case p.DModel <= 0 || p.NHeads <= 0 || p.DModel%p.NHeads != 0 || (p.DModel/p.NHeads)%2 != 0:
		return infer.Errorf(infer.KindInvalid, "predictor d_model %d / n_heads %d must give an even head size", p.DModel, p.NHeads)
	case p.DModel%graphs.DepHeads != 0 || (p.DModel/graphs.DepHeads)%2 != 0:
		return infer.Errorf(infer.KindInvalid, "predictor d_model %d must split into %d heads of even size", p.DModel, graphs.DepHeads)
	case p.FFDim <= 0 || p.NLayers < 1:
		return infer.Errorf(infer.KindInvalid, "predictor ff_dim %d / n_layers %d out of range", p.FFDim, p.NLayers)
	case p.S1Bits <= 0 || p.S2Bits <= 0 || p.S1Bits > MaxBits || p.S2Bits > MaxBits:
		return infer.Errorf(infer.KindInvalid, "predictor s1_bits %d / s2_bits %d out of range 1..%d", p.S1Bits, p.S2Bits, MaxBits)
	}
	return nil
}
