package checkpoint

import (
	"bytes"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"sort"
	"strconv"

	"github.com/kronos-gateway/kronos-gateway/internal/graphs"
	"github.com/kronos-gateway/kronos-gateway/internal/infer"
)

// Random-weight initialisation. Kronos initialises Linear weights
// Xavier-normal, embeddings N(0, d_model^-1/2), biases to zero and norm gains
// to one; like the conformance checkpoints, biases are instead drawn from
// N(0, RandomBiasStd) and norm gains from U(RandomGainLow, RandomGainHigh), so
// that a graph that drops a bias or a gain gives visibly different numbers.
const (
	RandomBiasStd  = 0.1
	RandomGainLow  = 0.7
	RandomGainHigh = 1.3
)

// TokenizerGroupSize is the BSQ group_size of every public Kronos tokenizer;
// random tokenizers use it for tokenizer.bsq.group_basis and config.json.
const TokenizerGroupSize = 4

// Preset names the sizes of a random tokenizer/predictor pair.
type Preset struct {
	Tokenizer  graphs.TokenizerConfig
	Predictor  graphs.PredictorConfig
	MaxContext int // the context the sizes are meant for (graphs.Manifest.DefaultMaxContext)
}

// Presets returns the known presets (a fresh map on every call):
//
//   - "small": the sizes of NeoQuasar/Kronos-small with Kronos-Tokenizer-base
//     (predictor d_model 512, 8 layers, 8 heads, ff 1024; tokenizer d_model
//     256, 4 heads, ff 512, 4+4 layers; 10+10 bits; max_context 512);
//   - "nano": the sizes of models/kronos-nano (predictor d_model 128, 4
//     layers, 4 heads, ff 256; tokenizer d_model 64, 4 heads, ff 128, 3+3
//     layers; 8+8 bits; max_context 256);
//   - "tiny": the sizes of the conformance config "tiny" (d_model 32, 2 heads,
//     ff 64, 2 predictor layers, 3+3 tokenizer layers, 4+4 bits; max_context
//     64), for fast tests.
func Presets() map[string]Preset {
	return map[string]Preset{
		"small": {
			Tokenizer:  graphs.TokenizerConfig{DIn: 6, DModel: 256, NHeads: 4, FFDim: 512, NEncLayers: 4, NDecLayers: 4, S1Bits: 10, S2Bits: 10},
			Predictor:  graphs.PredictorConfig{DModel: 512, NHeads: 8, FFDim: 1024, NLayers: 8, S1Bits: 10, S2Bits: 10, LearnTE: true},
			MaxContext: 512,
		},
		"nano": {
			Tokenizer:  graphs.TokenizerConfig{DIn: 6, DModel: 64, NHeads: 4, FFDim: 128, NEncLayers: 3, NDecLayers: 3, S1Bits: 8, S2Bits: 8},
			Predictor:  graphs.PredictorConfig{DModel: 128, NHeads: 4, FFDim: 256, NLayers: 4, S1Bits: 8, S2Bits: 8, LearnTE: true},
			MaxContext: 256,
		},
		"tiny": {
			Tokenizer:  graphs.TokenizerConfig{DIn: 6, DModel: 32, NHeads: 2, FFDim: 64, NEncLayers: 3, NDecLayers: 3, S1Bits: 4, S2Bits: 4},
			Predictor:  graphs.PredictorConfig{DModel: 32, NHeads: 2, FFDim: 64, NLayers: 2, S1Bits: 4, S2Bits: 4, LearnTE: true},
			MaxContext: 64,
		},
	}
}

// PresetNames lists the preset names in sorted order.
func PresetNames() []string {
	p := Presets()
	names := make([]string, 0, len(p))
	for k := range p {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// RandomPair makes a random tokenizer and predictor of a preset (see
// Presets) for seed. The predictor is named "random-<preset>-seed<seed>" and
// the tokenizer "random-<preset>-tokenizer-seed<seed>". An unknown preset
// wraps infer.ErrNotFound.
func RandomPair(preset string, seed uint64) (tok, pred *Checkpoint, maxContext int, err error) {
	p, ok := Presets()[preset]
	if !ok {
		return nil, nil, 0, infer.Errorf(infer.KindNotFound, "unknown random preset %q (known: %v)", preset, PresetNames())
	}
	tok = RandomTokenizer(p.Tokenizer, seed)
	tok.Name = fmt.Sprintf("random-%s-tokenizer-seed%d", preset, seed)
	pred = RandomPredictor(p.Predictor, seed)
	pred.Name = fmt.Sprintf("random-%s-seed%d", preset, seed)
	return tok, pred, p.MaxContext, nil
}

// RandomTokenizer makes a KronosTokenizer checkpoint with random weights for
// cfg: exactly the state_dict keys, shapes and dtypes of the PyTorch module
// (including the rotary inv_freq buffers and the I64 BSQ basis buffers), a
// config.json with the constructor arguments, the name
// "random-tokenizer-seed<seed>" and the SHA-256 of its serialisation. The
// weights depend only on seed and the tensor's key and shape. d_in 0 means 6.
// cfg must pass ValidateTokenizerConfig; RandomTokenizer panics otherwise, as
// it would be a programming error.
func RandomTokenizer(cfg graphs.TokenizerConfig, seed uint64) *Checkpoint {
	if cfg.DIn == 0 {
		cfg.DIn = 6
	}
	if err := ValidateTokenizerConfig(cfg); err != nil {
		panic("checkpoint.RandomTokenizer: " + err.Error())
	}
	d, bits := cfg.DModel, cfg.S1Bits+cfg.S2Bits
	g := newGenerator(seed, streamTokenizer, float64(d))
	g.linear("embed", cfg.DIn, d)
	for i := 0; i < cfg.NEncLayers-1; i++ {
		g.block(fmt.Sprintf("encoder.%d.", i), d, cfg.NHeads, cfg.FFDim)
	}
	for i := 0; i < cfg.NDecLayers-1; i++ {
		g.block(fmt.Sprintf("decoder.%d.", i), d, cfg.NHeads, cfg.FFDim)
	}
	g.linear("quant_embed", d, bits)
	g.linear("post_quant_embed_pre", cfg.S1Bits, d)
	g.linear("post_quant_embed", bits, d)
	g.linear("head", d, cfg.DIn)
	g.powers("tokenizer.bsq.basis", bits)
	g.powers("tokenizer.bsq.group_basis", TokenizerGroupSize)
	return g.checkpoint(fmt.Sprintf("random-tokenizer-seed%d", seed), tokenizerConfigJSON(cfg))
}

// RandomPredictor makes a Kronos predictor checkpoint with random weights for
// cfg, like RandomTokenizer: exact state_dict keys and shapes (time tables
// under time_emb.<x>_embed.weight with learn_te, time_emb.<x>_embed.emb.weight
// without; both random, as Kronos's own init leaves them), config.json, the
// name "random-predictor-seed<seed>" and the SHA-256. cfg must pass
// ValidatePredictorConfig; RandomPredictor panics otherwise.
func RandomPredictor(cfg graphs.PredictorConfig, seed uint64) *Checkpoint {
	if err := ValidatePredictorConfig(cfg); err != nil {
		panic("checkpoint.RandomPredictor: " + err.Error())
	}
	d := cfg.DModel
	g := newGenerator(seed, streamPredictor, float64(d))
	g.embedding("embedding.emb_s1.weight", 1<<cfg.S1Bits, d)
	g.embedding("embedding.emb_s2.weight", 1<<cfg.S2Bits, d)
	g.linear("embedding.fusion_proj", 2*d, d)
	// Time-feature tables, in stamp order.
	timeTables := []struct {
		name string
		rows int
	}{{"minute", 60}, {"hour", 24}, {"weekday", 7}, {"day", 32}, {"month", 13}}
	for _, tt := range timeTables {
		name := "time_emb." + tt.name + "_embed.weight"
		if !cfg.LearnTE {
			name = "time_emb." + tt.name + "_embed.emb.weight"
		}
		g.embedding(name, tt.rows, d)
	}
	for i := 0; i < cfg.NLayers; i++ {
		g.block(fmt.Sprintf("transformer.%d.", i), d, cfg.NHeads, cfg.FFDim)
	}
	g.norm("norm.weight", d)
	g.attention("dep_layer.cross_attn.", d, graphs.DepHeads)
	g.norm("dep_layer.norm.weight", d)
	g.linear("head.proj_s1", d, 1<<cfg.S1Bits)
	g.linear("head.proj_s2", d, 1<<cfg.S2Bits)
	return g.checkpoint(fmt.Sprintf("random-predictor-seed%d", seed), predictorConfigJSON(cfg))
}

// RotaryInvFreq returns the RoPE inverse frequencies of a head of size
// headDim as the reference computes them in float32:
// inv_freq[j] = 1 / 10000^(2j / headDim), j < headDim/2.
func RotaryInvFreq(headDim int) []float32 {
	out := make([]float32, headDim/2)
	for j := range out {
		e := float32(2*j) / float32(headDim)
		out[j] = float32(1 / float32(math.Pow(10000, float64(e))))
	}
	return out
}

// PCG stream selectors, so that a tokenizer and a predictor made with the
// same seed do not share weights.
const (
	streamTokenizer = 0x746f6b656e697a65 // "tokenize"
	streamPredictor = 0x7072656469637472 // "predictr"
)

// generator draws the tensors of one checkpoint. Every tensor gets its own
// PCG stream derived from the seed and its key, so a tensor's values do not
// depend on which other tensors exist.
type generator struct {
	seed, stream uint64
	embedStd     float64
	tensors      map[string]*Tensor
}

func newGenerator(seed, stream uint64, dModel float64) *generator {
	return &generator{seed: seed, stream: stream, embedStd: 1 / math.Sqrt(dModel), tensors: map[string]*Tensor{}}
}

func (g *generator) rng(name string) *rand.Rand {
	h := fnv.New64a()
	h.Write([]byte(name))
	return rand.New(rand.NewPCG(g.seed, g.stream^h.Sum64()))
}

func (g *generator) add(name string, shape []int, f []float32) {
	g.tensors[name] = &Tensor{Name: name, DType: "F32", Shape: shape, F32: f}
}

// normal adds a tensor of N(0, std) values.
func (g *generator) normal(name string, std float64, shape ...int) {
	n := 1
	for _, d := range shape {
		n *= d
	}
	r := g.rng(name)
	f := make([]float32, n)
	for i := range f {
		f[i] = float32(r.NormFloat64() * std)
	}
	g.add(name, shape, f)
}

// linear adds prefix.weight [out, in] (Xavier-normal) and prefix.bias [out].
func (g *generator) linear(prefix string, in, out int) {
	g.linearNoBias(prefix, in, out)
	g.normal(prefix+".bias", RandomBiasStd, out)
}

func (g *generator) linearNoBias(prefix string, in, out int) {
	g.normal(prefix+".weight", math.Sqrt(2/float64(in+out)), out, in)
}

func (g *generator) embedding(name string, rows, cols int) {
	g.normal(name, g.embedStd, rows, cols)
}

// norm adds an RMSNorm gain of U(RandomGainLow, RandomGainHigh) values.
func (g *generator) norm(name string, d int) {
	r := g.rng(name)
	f := make([]float32, d)
	for i := range f {
		f[i] = float32(RandomGainLow + (RandomGainHigh-RandomGainLow)*r.Float64())
	}
	g.add(name, []int{d}, f)
}

// attention adds the q, k, v, out projections and the rotary buffer of an
// attention layer with the given number of heads.
func (g *generator) attention(prefix string, d, heads int) {
	for _, p := range []string{"q", "k", "v", "out"} {
		g.linear(prefix+p+"_proj", d, d)
	}
	inv := RotaryInvFreq(d / heads)
	g.add(prefix+"rotary.inv_freq", []int{len(inv)}, inv)
}

// block adds a pre-norm transformer block under prefix ("encoder.0.").
func (g *generator) block(prefix string, d, heads, ff int) {
	g.norm(prefix+"norm1.weight", d)
	g.attention(prefix+"self_attn.", d, heads)
	g.norm(prefix+"norm2.weight", d)
	g.linearNoBias(prefix+"ffn.w1", d, ff)
	g.linearNoBias(prefix+"ffn.w3", d, ff)
	g.linearNoBias(prefix+"ffn.w2", ff, d)
}

// powers adds an I64 buffer [2^(n-1), ..., 2, 1].
func (g *generator) powers(name string, n int) {
	v := make([]int64, n)
	for i := range v {
		v[i] = 1 << (n - 1 - i)
	}
	g.tensors[name] = &Tensor{Name: name, DType: "I64", Shape: []int{n}, I64: v}
}

func (g *generator) checkpoint(name string, config []byte) *Checkpoint {
	c := &Checkpoint{Name: name, Config: config, Tensors: g.tensors}
	sum, err := hashSafetensors(c.sortedTensors(), nil)
	if err != nil {
		panic("checkpoint: random tensors do not serialise: " + err.Error()) // a bug in this file
	}
	c.SHA256 = sum
	return c
}

// jsonField is one key of a config.json with its value already encoded.
type jsonField struct{ key, value string }

// encodeConfig writes fields as Python's json.dumps(indent=2, sort_keys=True)
// followed by a newline, the layout of the Hugging Face config.json files.
func encodeConfig(fields []jsonField) []byte {
	sort.Slice(fields, func(i, j int) bool { return fields[i].key < fields[j].key })
	var b bytes.Buffer
	b.WriteString("{\n")
	for i, f := range fields {
		b.WriteString("  ")
		writeJSONString(&b, f.key)
		b.WriteString(": ")
		b.WriteString(f.value)
		if i < len(fields)-1 {
			b.WriteByte(',')
		}
		b.WriteByte('\n')
	}
	b.WriteString("}\n")
	return b.Bytes()
}

func intField(k string, v int) jsonField { return jsonField{k, strconv.Itoa(v)} }

// tokenizerConfigJSON is the config.json of a KronosTokenizer: the
// constructor arguments, with dropouts 0 and the BSQ loss weights of the
// public checkpoints (they do not matter at inference).
func tokenizerConfigJSON(c graphs.TokenizerConfig) []byte {
	return encodeConfig([]jsonField{
		{"attn_dropout_p", "0.0"},
		{"beta", "0.05"},
		intField("d_in", c.DIn),
		intField("d_model", c.DModel),
		intField("ff_dim", c.FFDim),
		{"ffn_dropout_p", "0.0"},
		{"gamma", "1.1"},
		{"gamma0", "1.0"},
		intField("group_size", TokenizerGroupSize),
		intField("n_dec_layers", c.NDecLayers),
		intField("n_enc_layers", c.NEncLayers),
		intField("n_heads", c.NHeads),
		{"resid_dropout_p", "0.0"},
		intField("s1_bits", c.S1Bits),
		intField("s2_bits", c.S2Bits),
		{"zeta", "0.05"},
	})
}

// predictorConfigJSON is the config.json of a Kronos predictor.
func predictorConfigJSON(c graphs.PredictorConfig) []byte {
	return encodeConfig([]jsonField{
		{"attn_dropout_p", "0.0"},
		intField("d_model", c.DModel),
		intField("ff_dim", c.FFDim),
		{"ffn_dropout_p", "0.0"},
		{"learn_te", strconv.FormatBool(c.LearnTE)},
		intField("n_heads", c.NHeads),
		intField("n_layers", c.NLayers),
		{"resid_dropout_p", "0.0"},
		intField("s1_bits", c.S1Bits),
		intField("s2_bits", c.S2Bits),
		{"token_dropout_p", "0.0"},
	})
}
