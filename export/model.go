package export

import (
	"fmt"
	"math"

	"github.com/kronos-gateway/kronos-gateway/checkpoint"
	"github.com/kronos-gateway/kronos-gateway/internal/graphs"
	"github.com/kronos-gateway/kronos-gateway/internal/infer"
	"github.com/kronos-gateway/kronos-gateway/internal/onnxpb"
)

// ProducerName and ProducerVersion are written into every model.onnx; the
// manifest's exporter field is ProducerName + "/" + ProducerVersion. Bump the
// version whenever the graphs change.
const (
	ProducerName    = "kronos-export"
	ProducerVersion = "0.2.0"
)

// Dimension names of the dynamic axes.
const (
	dimBatch    = "batch"
	dimLength   = "length"   // encoder sequence
	dimWidth    = "width"    // decoder sequence
	dimSeq      = "seq"      // prefill sequence
	dimCapacity = "capacity" // cache capacity C
)

// Model is a tokenizer + predictor pair whose graphs can be exported.
// Build one with NewModel; a Model is not safe for concurrent use.
type Model struct {
	Tokenizer *checkpoint.Checkpoint // KronosTokenizer weights (encoder, decoder)
	Predictor *checkpoint.Checkpoint // Kronos weights (prefill, step, s2)
	TokCfg    graphs.TokenizerConfig // parsed tokenizer config.json
	PredCfg   graphs.PredictorConfig // parsed predictor config.json

	// Folded embedding tables, computed on first use and shared by the
	// prefill and step graphs.
	tokTables *tokenTables
}

// NewModel checks that the two checkpoints form a Kronos pair (valid
// configs, equal s1/s2 bit widths). Errors are infer.KindInvalid.
func NewModel(tok, pred *checkpoint.Checkpoint) (*Model, error) {
	if tok == nil || pred == nil {
		return nil, infer.Errorf(infer.KindInvalid, "export: need both a tokenizer and a predictor checkpoint")
	}
	tc, err := tok.TokenizerConfig()
	if err != nil {
		return nil, infer.Wrap(infer.KindInvalid, err, "export: tokenizer")
	}
	pc, err := pred.PredictorConfig()
	if err != nil {
		return nil, infer.Wrap(infer.KindInvalid, err, "export: predictor")
	}
	if tc.S1Bits != pc.S1Bits || tc.S2Bits != pc.S2Bits {
		return nil, infer.Errorf(infer.KindInvalid, "export: tokenizer bits %d+%d differ from predictor bits %d+%d",
			tc.S1Bits, tc.S2Bits, pc.S1Bits, pc.S2Bits)
	}
	return &Model{Tokenizer: tok, Predictor: pred, TokCfg: tc, PredCfg: pc}, nil
}

// Graph builds the ONNX model of one role.
func (m *Model) Graph(role graphs.Role) (*onnxpb.ModelProto, error) {
	var (
		g   *graph
		err error
	)
	switch role {
	case graphs.Encoder:
		g, err = m.encoder()
	case graphs.Decoder:
		g, err = m.decoder()
	case graphs.Prefill:
		g, err = m.prefill()
	case graphs.Step:
		g, err = m.step()
	case graphs.S2:
		g, err = m.s2()
	default:
		return nil, infer.Errorf(infer.KindInvalid, "export: unknown graph role %q", role)
	}
	if err == nil && g.err != nil {
		err = g.err
	}
	if err != nil {
		return nil, infer.Wrap(infer.KindInvalid, err, "export %s", role)
	}
	mp, err := g.model([][2]string{
		{"kronos.role", string(role)},
		{"kronos.model_version", m.Predictor.Version()},
		{"kronos.tokenizer_version", m.Tokenizer.Version()},
	})
	if err != nil {
		return nil, infer.Wrap(infer.KindInvalid, err, "export %s", role)
	}
	return mp, nil
}

// ONNX returns the serialised model.onnx of one role. The bytes depend only
// on the checkpoints: exporting twice gives identical files.
func (m *Model) ONNX(role graphs.Role) ([]byte, error) {
	mp, err := m.Graph(role)
	if err != nil {
		return nil, err
	}
	b, err := Marshal(mp)
	if err != nil {
		return nil, infer.Wrap(infer.KindInternal, err, "export %s: marshal", role)
	}
	return b, nil
}

// ---- tokenizer ----

// tokenizerBlocks runs the n causal transformer blocks <prefix>.<i> of the
// tokenizer over x [B, T, d].
func (m *Model) tokenizerBlocks(g *graph, w *weights, x, prefix string, n int, seq sequence) string {
	c := m.TokCfg
	for i := 0; i < n; i++ {
		p := fmt.Sprintf("%s.%d", prefix, i)
		done := g.in(p)
		x = g.block(w, x, p, c.DModel, c.FFDim, func(h string) string {
			out, _, _ := g.causalAttention(w, h, attnCfg{prefix: p + ".self_attn", d: c.DModel, nHeads: c.NHeads}, seq.pos, seq.mask, seq.ropes)
			return out
		})
		done()
	}
	return x
}

// encoder: x [B, L, 6] -> quant_input [B, L, D].
func (m *Model) encoder() (*graph, error) {
	c := m.TokCfg
	d := c.S1Bits + c.S2Bits
	g := newGraph("kronos_encoder")
	w := &weights{ck: m.Tokenizer}
	x := g.input(graphs.InX, f32T, dynamic(dimBatch), dynamic(dimLength), fixed(infer.CandleWidth))
	seq := g.newSequence(x)
	z := g.linear(w, x, "embed", c.DIn, c.DModel, true)
	z = m.tokenizerBlocks(g, w, z, "encoder", c.NEncLayers-1, seq)
	z = g.linear(w, z, "quant_embed", c.DModel, d, true)
	norm := g.op("ReduceL2", attrs(attrInts("axes", -1), attrInt("keepdims", 1)), z)
	norm = g.op("Max", nil, norm, g.scalarF32(1e-12))
	g.output(g.op("Div", nil, z, norm), graphs.OutQuant, f32T, dynamic(dimBatch), dynamic(dimLength), fixed(d))
	return g, w.err
}

// decoder: s1, s2 [B, W] -> x [B, W, 6].
//
// The bit features (2 bit_j - 1)/sqrt(D) only take 2^bits values per id
// half, so post_quant_embed is folded into two constant tables indexed by
// the ids: table1[s1] + table2[s2] + bias equals post_quant_embed(bits).
func (m *Model) decoder() (*graph, error) {
	c := m.TokCfg
	g := newGraph("kronos_decoder")
	w := &weights{ck: m.Tokenizer}
	s1 := g.input(graphs.InS1, i64T, dynamic(dimBatch), dynamic(dimWidth))
	s2 := g.input(graphs.InS2, i64T, dynamic(dimBatch), dynamic(dimWidth))
	seq := g.newSequence(s1)
	dBits := c.S1Bits + c.S2Bits
	pq := w.get("post_quant_embed.weight", c.DModel, dBits)
	t1 := bitTable(pq, c.DModel, dBits, 0, c.S1Bits)
	t2 := bitTable(pq, c.DModel, dBits, c.S1Bits, c.S2Bits)
	z := g.op("Add", nil,
		g.op("Gather", attrs(attrInt("axis", 0)), g.initF32("post_quant_embed.s1_table", []int{1 << c.S1Bits, c.DModel}, t1), s1),
		g.op("Gather", attrs(attrInt("axis", 0)), g.initF32("post_quant_embed.s2_table", []int{1 << c.S2Bits, c.DModel}, t2), s2))
	z = g.op("Add", nil, z, g.initF32("post_quant_embed.bias", []int{c.DModel}, w.get("post_quant_embed.bias", c.DModel)))
	z = m.tokenizerBlocks(g, w, z, "decoder", c.NDecLayers-1, seq)
	z = g.linear(w, z, "head", c.DModel, c.DIn, true)
	g.output(z, graphs.OutX, f32T, dynamic(dimBatch), dynamic(dimWidth), fixed(infer.CandleWidth))
	return g, w.err
}

// bitTable folds post_quant_embed (weight [out, dBits]) over the features
// first..first+bits-1: table[v][o] = sum_j c(v, j) * weight[o][first+j] with
// c(v, j) = (2 bit_j(v) - 1) / sqrt(dBits) in float32, summed in float64.
func bitTable(weight []float32, out, dBits, first, bits int) []float32 {
	scale := float32(1 / math.Sqrt(float64(dBits)))
	n := 1 << bits
	t := make([]float32, n*out)
	for v := 0; v < n; v++ {
		for o := 0; o < out; o++ {
			var s float64
			for j := 0; j < bits; j++ {
				c := -scale
				if v>>j&1 == 1 {
					c = scale
				}
				s += float64(c) * float64(weight[o*dBits+first+j])
			}
			t[v*out+o] = float32(s)
		}
	}
	return t
}
