package graphs

import (
	"encoding/json"
	"fmt"
	"os"
)

// Role names one of the five graphs of a Kronos model.
type Role string

// Graph roles; the Triton model name is "<model>-<role>".
const (
	Encoder Role = "encoder"
	Decoder Role = "decoder"
	Prefill Role = "prefill"
	Step    Role = "step"
	S2      Role = "s2"
)

// Roles lists every role in export order.
var Roles = []Role{Encoder, Decoder, Prefill, Step, S2}

// DepHeads is the number of heads of the dependency-aware layer's
// cross-attention, fixed at 4 by the reference regardless of n_heads.
const DepHeads = 4

// Opset and IRVersion every exported graph declares.
const (
	Opset     = 17
	IRVersion = 8
)

// Tensor names shared by several graphs.
const (
	InX         = "x"
	InS1        = "s1"
	InS2        = "s2"
	InStamp     = "stamp"
	InLast      = "last"
	InPos       = "pos"
	InHidden    = "hidden"
	InLength    = "length"
	InDepKey    = "dep_key"
	InDepValue  = "dep_value"
	OutQuant    = "quant_input"
	OutX        = "x"
	OutS1Logits = "s1_logits"
	OutS2Logits = "s2_logits"
	OutHidden   = "hidden"
	OutDepKey   = "dep_key"
	OutDepValue = "dep_value"
)

// Key, Value name layer l's key/value output (prefill, step).
func Key(l int) string   { return fmt.Sprintf("key_%d", l) }
func Value(l int) string { return fmt.Sprintf("value_%d", l) }

// PastKey, PastValue name layer l's cache inputs of the step graph.
func PastKey(l int) string   { return fmt.Sprintf("past_key_%d", l) }
func PastValue(l int) string { return fmt.Sprintf("past_value_%d", l) }

// ModelName is the Triton model name of a role.
func ModelName(model string, r Role) string { return model + "-" + string(r) }

// TokenizerConfig holds the KronosTokenizer constructor arguments that matter
// at inference (config.json of the tokenizer checkpoint).
type TokenizerConfig struct {
	DIn        int `json:"d_in"`
	DModel     int `json:"d_model"`
	NHeads     int `json:"n_heads"`
	FFDim      int `json:"ff_dim"`
	NEncLayers int `json:"n_enc_layers"`
	NDecLayers int `json:"n_dec_layers"`
	S1Bits     int `json:"s1_bits"`
	S2Bits     int `json:"s2_bits"`
}

// PredictorConfig holds the Kronos constructor arguments that matter at
// inference (config.json of the predictor checkpoint).
type PredictorConfig struct {
	DModel  int  `json:"d_model"`
	NHeads  int  `json:"n_heads"`
	FFDim   int  `json:"ff_dim"`
	NLayers int  `json:"n_layers"`
	S1Bits  int  `json:"s1_bits"`
	S2Bits  int  `json:"s2_bits"`
	LearnTE bool `json:"learn_te"`
}

// Manifest is written next to every model.onnx as kronos.json. It lets a
// backend find the five graphs of a model version and describe them without
// opening the ONNX files.
type Manifest struct {
	FormatVersion int    `json:"format_version"` // 1
	Model         string `json:"model"`          // Kronos model name, e.g. "kronos-nano"
	Role          Role   `json:"role"`
	Version       string `json:"version"` // repository version folder, e.g. "1"
	// Checkpoint and TokenizerCheckpoint name the sources; the *Version fields
	// are "<name>@sha256:<first 12 hex of model.safetensors' SHA-256>".
	Checkpoint          string          `json:"checkpoint"`
	TokenizerCheckpoint string          `json:"tokenizer_checkpoint"`
	ModelVersion        string          `json:"model_version"`
	TokenizerVersion    string          `json:"tokenizer_version"`
	Tokenizer           TokenizerConfig `json:"tokenizer"`
	Predictor           PredictorConfig `json:"predictor"`
	// DefaultMaxContext is the context the checkpoint was trained for
	// (512 for Kronos-small/base, 2048 for mini, 256 for kronos-nano); the
	// runtime setting may override it.
	DefaultMaxContext int    `json:"default_max_context"`
	Exporter          string `json:"exporter"` // exporter name and version
}

// ReadManifest reads a kronos.json file.
func ReadManifest(path string) (*Manifest, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if m.FormatVersion != 1 {
		return nil, fmt.Errorf("%s: unsupported format_version %d", path, m.FormatVersion)
	}
	return &m, nil
}
