package export

import (
	"fmt"
	"math"
	"runtime"
	"sync"

	"github.com/kronos-gateway/kronos-gateway/internal/graphs"
	"github.com/kronos-gateway/kronos-gateway/internal/infer"
)

// timeTables are the predictor's five time-feature tables in stamp column
// order (minute, hour, weekday, day of month, month) and their row counts.
var timeTables = []struct {
	name string
	rows int
}{{"minute", 60}, {"hour", 24}, {"weekday", 7}, {"day", 32}, {"month", 13}}

// tokenTables are the predictor's input embeddings folded into constant
// tables: fusion_proj(concat(emb_s1[s1]*sqrt(d), emb_s2[s2]*sqrt(d))) =
// s1[s1] + s2[s2] + bias, since a Linear of a concatenation is the sum of
// the Linears of its parts. The five time tables are stacked into one table
// indexed by stamp + timeOffsets.
type tokenTables struct {
	s1, s2, bias []float32
	time         []float32
	timeRows     int
	timeOffsets  []int64
}

// tables computes (once) the folded embedding tables.
func (m *Model) tables() (*tokenTables, error) {
	if m.tokTables != nil {
		return m.tokTables, nil
	}
	c := m.PredCfg
	d := c.DModel
	v1, v2 := 1<<c.S1Bits, 1<<c.S2Bits
	w := &weights{ck: m.Predictor}
	scale := float32(math.Sqrt(float64(d)))
	fw := w.get("embedding.fusion_proj.weight", d, 2*d)
	t := &tokenTables{
		s1:   foldLinear(w.get("embedding.emb_s1.weight", v1, d), scale, fw, v1, d, 2*d, 0, d),
		s2:   foldLinear(w.get("embedding.emb_s2.weight", v2, d), scale, fw, v2, d, 2*d, d, d),
		bias: w.get("embedding.fusion_proj.bias", d),
	}
	for _, tt := range timeTables {
		name := "time_emb." + tt.name + "_embed.weight"
		if !c.LearnTE {
			name = "time_emb." + tt.name + "_embed.emb.weight"
		}
		t.timeOffsets = append(t.timeOffsets, int64(t.timeRows))
		t.time = append(t.time, w.get(name, tt.rows, d)...)
		t.timeRows += tt.rows
	}
	if w.err != nil {
		return nil, w.err
	}
	m.tokTables = t
	return t, nil
}

// foldLinear returns table[v][o] = sum_i float32(emb[v][i]*scale) *
// weight[o][first+i] for emb [n, in] and weight [out, inTotal], accumulated
// in float64 and rounded once. Rows are computed in parallel; each element
// is computed by one goroutine in a fixed order, so the result does not
// depend on scheduling.
func foldLinear(emb []float32, scale float32, weight []float32, n, out, inTotal, first, in int) []float32 {
	t := make([]float32, n*out)
	workers := runtime.GOMAXPROCS(0)
	var wg sync.WaitGroup
	for k := 0; k < workers; k++ {
		wg.Add(1)
		go func(k int) {
			defer wg.Done()
			x := make([]float64, in)
			for v := k; v < n; v += workers {
				for i := range x {
					x[i] = float64(emb[v*in+i] * scale)
				}
				for o := 0; o < out; o++ {
					row := weight[o*inTotal+first : o*inTotal+first+in]
					var s float64
					for i, wv := range row {
						s += x[i] * float64(wv)
					}
					t[v*out+o] = float32(s)
				}
			}
		}(k)
	}
	wg.Wait()
	return t
}

// embed is the predictor input: token embedding (folded fusion_proj) plus
// the sum of the five time-table rows. s1, s2 have any shape S, stamp is
// [S..., 5]; the result is [S..., d].
func (m *Model) embed(g *graph, s1, s2, stamp string) (string, error) {
	t, err := m.tables()
	if err != nil {
		return "", err
	}
	defer g.in("embedding")()
	c := m.PredCfg
	d := c.DModel
	gather0 := attrs(attrInt("axis", 0))
	e := g.op("Add", nil,
		g.op("Gather", gather0, g.initF32("embedding.s1_table", []int{1 << c.S1Bits, d}, t.s1), s1),
		g.op("Gather", gather0, g.initF32("embedding.s2_table", []int{1 << c.S2Bits, d}, t.s2), s2))
	e = g.op("Add", nil, e, g.initF32("embedding.fusion_proj.bias", []int{d}, t.bias))
	idx := g.op("Add", nil, stamp, g.initI64("time_emb.offsets", []int{len(t.timeOffsets)}, t.timeOffsets))
	te := g.op("Gather", gather0, g.initF32("time_emb.table", []int{t.timeRows, d}, t.time), idx)
	te = g.op("ReduceSum", attrs(attrInt("keepdims", 0)), te, g.ints(-2))
	return g.op("Add", nil, e, te), nil
}

func (m *Model) attn(l int) attnCfg {
	return attnCfg{prefix: fmt.Sprintf("transformer.%d.self_attn", l), d: m.PredCfg.DModel, nHeads: m.PredCfg.NHeads}
}

// depKV projects final hidden states [S..., d] to the dependency layer's
// keys and values [S..., d] (no rotation; the caller splits the G heads);
// with g.fuse as one product [d, 2d] split in two.
func (m *Model) depKV(g *graph, w *weights, h string) (k, v string) {
	defer g.in("dep_layer")()
	d := m.PredCfg.DModel
	if !g.fuse {
		k = g.linear(w, h, "dep_layer.cross_attn.k_proj", d, d, true)
		v = g.linear(w, h, "dep_layer.cross_attn.v_proj", d, d, true)
		return k, v
	}
	kv := g.linears(w, h, "dep_layer.cross_attn.kv_proj", d, true,
		linearPart{"dep_layer.cross_attn.k_proj", d, 1}, linearPart{"dep_layer.cross_attn.v_proj", d, 1})
	parts := g.node("Split", []string{kv, g.ints(int64(d), int64(d))}, 2, attrInt("axis", -1))
	return parts[0], parts[1]
}

// prefillChunks is the number of query blocks of the prefill graph's causal
// attention (see attend): two blocks skip a quarter of the attention work
// (about 6% of a 512-token prefill on CPU); more blocks saved no more in
// measurements, their slices costing what the smaller products save.
const prefillChunks = 2

// prefill: s1, s2 [B, T], stamp [B, T, 5], last [B] -> s1_logits [B, V1],
// hidden [B, d], key_l/value_l [B, H, T, hd], dep_key/dep_value [B, G, T, gd].
func (m *Model) prefill() (*graph, error) { return m.prefillChunked(prefillChunks) }

// prefillChunked builds the prefill graph with n query blocks (see attend).
func (m *Model) prefillChunked(n int) (*graph, error) {
	c := m.PredCfg
	d, hd, gd := c.DModel, c.DModel/c.NHeads, c.DModel/graphs.DepHeads
	g := newGraph("kronos_prefill")
	g.causalChunks = n
	w := &weights{ck: m.Predictor}
	b, t := dynamic(dimBatch), dynamic(dimSeq)
	s1 := g.input(graphs.InS1, i64T, b, t)
	s2 := g.input(graphs.InS2, i64T, b, t)
	stamp := g.input(graphs.InStamp, i64T, b, t, fixed(infer.StampWidth))
	last := g.input(graphs.InLast, i64T, b)
	seq := g.newSequence(s1)
	x, err := m.embed(g, s1, s2, stamp)
	if err != nil {
		return nil, err
	}
	keys := make([]string, c.NLayers)
	values := make([]string, c.NLayers)
	for l := 0; l < c.NLayers; l++ {
		p := fmt.Sprintf("transformer.%d", l)
		done := g.in(p)
		x = g.block(w, x, p, d, c.FFDim, func(h string) string {
			var out string
			out, keys[l], values[l] = g.causalAttention(w, h, m.attn(l), seq.pos, seq.mask, seq.ropes)
			return out
		})
		done()
	}
	h := g.rmsNorm(w, x, "norm.weight", d)
	hl := g.op("GatherND", attrs(attrInt("batch_dims", 1)), h, g.op("Unsqueeze", nil, last, g.ints(1)))
	logits := g.linear(w, hl, "head.proj_s1", d, 1<<c.S1Bits, true)
	dk, dv := m.depKV(g, w, h)
	dk = g.heads(dk, graphs.DepHeads, gd)
	dv = g.heads(dv, graphs.DepHeads, gd)

	g.output(logits, graphs.OutS1Logits, f32T, b, fixed(1<<c.S1Bits))
	g.output(hl, graphs.OutHidden, f32T, b, fixed(d))
	for l := 0; l < c.NLayers; l++ {
		g.output(keys[l], graphs.Key(l), f32T, b, fixed(c.NHeads), t, fixed(hd))
		g.output(values[l], graphs.Value(l), f32T, b, fixed(c.NHeads), t, fixed(hd))
	}
	g.output(dk, graphs.OutDepKey, f32T, b, fixed(graphs.DepHeads), t, fixed(gd))
	g.output(dv, graphs.OutDepValue, f32T, b, fixed(graphs.DepHeads), t, fixed(gd))
	return g, w.err
}

// step: one new token per row attending over a KV cache.
func (m *Model) step() (*graph, error) {
	c := m.PredCfg
	d, nh := c.DModel, c.NHeads
	hd, gd := d/nh, d/graphs.DepHeads
	g := newGraph("kronos_step")
	g.fuse = true
	w := &weights{ck: m.Predictor}
	b, cp := dynamic(dimBatch), dynamic(dimCapacity)
	s1 := g.input(graphs.InS1, i64T, b)
	s2 := g.input(graphs.InS2, i64T, b)
	stamp := g.input(graphs.InStamp, i64T, b, fixed(infer.StampWidth))
	pos := g.input(graphs.InPos, i64T, b)
	pastK := make([]string, c.NLayers)
	pastV := make([]string, c.NLayers)
	for l := 0; l < c.NLayers; l++ {
		pastK[l] = g.input(graphs.PastKey(l), f32T, b, fixed(nh), fixed(hd), cp)
		pastV[l] = g.input(graphs.PastValue(l), f32T, b, fixed(nh), cp, fixed(hd))
	}

	// Shared by all layers: the additive cache mask [B, 1, 1, C] (0 where
	// j < pos[b], -inf from pos[b] on), the Split sizes [C, 1] that separate
	// cache and self probabilities, and the RoPE tables [B, 1, 2, hd/2].
	done := g.in("cache")
	capacity := g.op("Gather", attrs(attrInt("axis", 0)), g.op("Shape", nil, pastK[0]), g.scalarI64(3))
	valid := g.op("Less", nil,
		g.op("Range", nil, g.scalarI64(0), capacity, g.scalarI64(1)),
		g.op("Reshape", nil, pos, g.ints(-1, 1, 1, 1)))
	mask := g.op("Where", nil, valid, g.scalarF32(0), g.scalarF32(float32(math.Inf(-1))))
	splits := g.op("Concat", attrs(attrInt("axis", 0)), g.op("Reshape", nil, capacity, g.ints(1)), g.ints(1))
	done()
	ropes := map[string]rope{}

	x, err := m.embed(g, s1, s2, stamp)
	if err != nil {
		return nil, err
	}
	keys := make([]string, c.NLayers)
	values := make([]string, c.NLayers)
	for l := 0; l < c.NLayers; l++ {
		p := fmt.Sprintf("transformer.%d", l)
		a := m.attn(l)
		done := g.in(p)
		x = g.block(w, x, p, d, c.FFDim, func(h string) string {
			defer g.in("attn")()
			r := g.ropeTables(w, a.prefix+".rotary.inv_freq", hd, pos, ropes)
			// [B, 3d] -> queries and keys [B, 2H, 2, hd/2] (rotated
			// together), values [B, d].
			parts := g.node("Split", []string{g.qkv(w, h, a), g.ints(int64(2*d), int64(d))}, 2, attrInt("axis", -1))
			qk := g.applyRope(g.op("Reshape", nil, parts[0], g.ints(0, int64(2*nh), 2, int64(hd/2))), r)
			qkh := g.node("Split", []string{qk, g.ints(int64(nh), int64(nh))}, 2, attrInt("axis", 1))
			q := g.op("Reshape", nil, qkh[0], g.ints(0, int64(nh), 1, int64(hd)))
			k := qkh[1]
			past := g.op("Add", nil, g.op("MatMul", nil, q, pastK[l]), mask) // [B,H,1,C]
			self := g.op("MatMul", nil, q, g.op("Reshape", nil, k, g.ints(0, int64(nh), int64(hd), 1)))
			probs := g.op("Softmax", attrs(attrInt("axis", -1)), g.op("Concat", attrs(attrInt("axis", -1)), past, self))
			pp := g.node("Split", []string{probs, splits}, 2, attrInt("axis", -1))
			v := g.op("Reshape", nil, parts[1], g.ints(0, int64(nh), 1, int64(hd)))
			o := g.op("Add", nil, g.op("MatMul", nil, pp[0], pastV[l]), g.op("Mul", nil, pp[1], v))
			o = g.op("Reshape", nil, o, g.ints(0, int64(d)))
			keys[l] = g.op("Reshape", nil, k, g.ints(0, int64(nh), int64(hd)))
			values[l] = g.op("Reshape", nil, parts[1], g.ints(0, int64(nh), int64(hd)))
			return g.linear(w, o, a.prefix+".out_proj", d, d, true)
		})
		done()
	}
	h := g.rmsNorm(w, x, "norm.weight", d)
	logits := g.linear(w, h, "head.proj_s1", d, 1<<c.S1Bits, true)
	dk, dv := m.depKV(g, w, h)
	gshape := g.ints(0, graphs.DepHeads, int64(gd))
	dk = g.op("Reshape", nil, dk, gshape)
	dv = g.op("Reshape", nil, dv, gshape)

	g.output(logits, graphs.OutS1Logits, f32T, b, fixed(1<<c.S1Bits))
	g.output(h, graphs.OutHidden, f32T, b, fixed(d))
	for l := 0; l < c.NLayers; l++ {
		g.output(keys[l], graphs.Key(l), f32T, b, fixed(nh), fixed(hd))
		g.output(values[l], graphs.Value(l), f32T, b, fixed(nh), fixed(hd))
	}
	g.output(dk, graphs.OutDepKey, f32T, b, fixed(graphs.DepHeads), fixed(gd))
	g.output(dv, graphs.OutDepValue, f32T, b, fixed(graphs.DepHeads), fixed(gd))
	return g, w.err
}

// s2: the dependency-aware layer and the s2 head for a chosen s1 id.
func (m *Model) s2() (*graph, error) {
	c := m.PredCfg
	d, gd := c.DModel, c.DModel/graphs.DepHeads
	v1 := 1 << c.S1Bits
	g := newGraph("kronos_s2")
	w := &weights{ck: m.Predictor}
	b, cp := dynamic(dimBatch), dynamic(dimCapacity)
	s1 := g.input(graphs.InS1, i64T, b)
	hidden := g.input(graphs.InHidden, f32T, b, fixed(d))
	dk := g.input(graphs.InDepKey, f32T, b, fixed(graphs.DepHeads), fixed(gd), cp)
	dv := g.input(graphs.InDepValue, f32T, b, fixed(graphs.DepHeads), cp, fixed(gd))
	length := g.input(graphs.InLength, i64T, b)

	// The query is q_proj(emb_s1[s1]) (no sqrt(d) factor): folded into a
	// [V1, d] table including the bias.
	qw := w.get("dep_layer.cross_attn.q_proj.weight", d, d)
	qt := foldLinear(w.get("embedding.emb_s1.weight", v1, d), 1, qw, v1, d, d, 0, d)
	// The attention scale 1/sqrt(gd) is applied to the table (the same
	// float32 product a Mul after the Gather would compute).
	qb := w.get("dep_layer.cross_attn.q_proj.bias", d)
	scale := float32(1 / math.Sqrt(float64(gd)))
	for v := 0; v < v1; v++ {
		for o := 0; o < d; o++ {
			qt[v*d+o] = float32(qt[v*d+o]+qb[o]) * scale
		}
	}
	defer g.in("dep_layer")()
	q := g.op("Gather", attrs(attrInt("axis", 0)), g.initF32("dep_layer.cross_attn.q_table", []int{v1, d}, qt), s1)
	q = g.op("Reshape", nil, q, g.ints(0, graphs.DepHeads, 1, int64(gd)))
	capacity := g.op("Gather", attrs(attrInt("axis", 0)), g.op("Shape", nil, dk), g.scalarI64(3))
	valid := g.op("Less", nil,
		g.op("Range", nil, g.scalarI64(0), capacity, g.scalarI64(1)),
		g.op("Reshape", nil, length, g.ints(-1, 1, 1, 1)))
	scores := g.op("Where", nil, valid, g.op("MatMul", nil, q, dk), g.scalarF32(float32(math.Inf(-1))))
	probs := g.op("Softmax", attrs(attrInt("axis", -1)), scores)
	o := g.op("Reshape", nil, g.op("MatMul", nil, probs, dv), g.ints(0, int64(d)))
	o = g.linear(w, o, "dep_layer.cross_attn.out_proj", d, d, true)
	y := g.rmsNorm(w, g.op("Add", nil, hidden, o), "dep_layer.norm.weight", d)
	logits := g.linear(w, y, "head.proj_s2", d, 1<<c.S2Bits, true)
	g.output(logits, graphs.OutS2Logits, f32T, b, fixed(1<<c.S2Bits))
	return g, w.err
}
