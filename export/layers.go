package export

import (
	"encoding/binary"
	"hash/fnv"
	"math"
	"strconv"

	"github.com/kronos-gateway/kronos-gateway/checkpoint"
)

// rmsEps is the epsilon of every RMSNorm in Kronos.
const rmsEps = 1e-5

// weights reads float32 tensors from one checkpoint. Errors are sticky like
// the graph's: a missing tensor or a wrong shape is kept in err and a zero
// slice of the requested shape is returned so the caller can go on.
type weights struct {
	ck  *checkpoint.Checkpoint
	err error
}

func (w *weights) get(name string, shape ...int) []float32 {
	if w.err == nil {
		v, err := w.ck.F32(name, shape...)
		if err == nil {
			return v
		}
		w.err = err
	}
	return make([]float32, numel(shape))
}

// transpose returns the [cols, rows] transpose of a row-major [rows, cols]
// matrix.
func transpose(m []float32, rows, cols int) []float32 {
	t := make([]float32, len(m))
	for r := 0; r < rows; r++ {
		for c := 0; c < cols; c++ {
			t[c*rows+r] = m[r*cols+c]
		}
	}
	return t
}

// linear is y = x W^T + b for the checkpoint Linear layer prefix (weight
// [out, in], optional bias [out]). The weight is stored transposed, [in,
// out], so MatMul needs no Transpose node; x may have any leading dims.
func (g *graph) linear(w *weights, x, prefix string, in, out int, bias bool) string {
	wt := transpose(w.get(prefix+".weight", out, in), out, in)
	y := g.op("MatMul", nil, x, g.initF32(prefix+".weight_t", []int{in, out}, wt))
	if bias {
		y = g.op("Add", nil, y, g.initF32(prefix+".bias", []int{out}, w.get(prefix+".bias", out)))
	}
	return y
}

// linearPart is one checkpoint Linear layer of a fused product: its prefix,
// output width and a factor its weight and bias are multiplied by (1 for
// none).
type linearPart struct {
	prefix string
	out    int
	scale  float32
}

// linears computes several Linear layers that share their input x as one
// product: y = x [W_1^T | W_2^T | ...] + [b_1 | b_2 | ...], the outputs
// concatenated along the last axis in the order of parts. One wide product
// reads the same weights as the separate ones but costs one kernel call
// and, with several threads, one synchronisation instead of one per layer.
// Each output feature is still the dot product of x with one weight row, so
// the results equal the separate layers' up to the summation order inside
// the kernel. A part's scale multiplies its weights and bias in float32
// (exact for a power of two). name names the concatenated initializers.
func (g *graph) linears(w *weights, x, name string, in int, bias bool, parts ...linearPart) string {
	total := 0
	for _, p := range parts {
		total += p.out
	}
	wt := make([]float32, in*total)
	var b []float32
	col := 0
	for _, p := range parts {
		m := w.get(p.prefix+".weight", p.out, in) // [out, in]
		for o := 0; o < p.out; o++ {
			for i := 0; i < in; i++ {
				wt[i*total+col+o] = m[o*in+i] * p.scale
			}
		}
		if bias {
			for _, v := range w.get(p.prefix+".bias", p.out) {
				b = append(b, v*p.scale)
			}
		}
		col += p.out
	}
	y := g.op("MatMul", nil, x, g.initF32(name+".weight_t", []int{in, total}, wt))
	if bias {
		y = g.op("Add", nil, y, g.initF32(name+".bias", []int{total}, b))
	}
	return y
}

// rmsNorm is x / sqrt(mean(x^2) + 1e-5) * weight over the last axis, in the
// Pow/ReduceMean/Add/Sqrt/Div/Mul form that ONNX Runtime fuses into a single
// SimplifiedLayerNormalization kernel.
func (g *graph) rmsNorm(w *weights, x, weightName string, d int) string {
	sq := g.op("Pow", nil, x, g.scalarF32(2))
	ms := g.op("ReduceMean", attrs(attrInts("axes", -1), attrInt("keepdims", 1)), sq)
	den := g.op("Sqrt", nil, g.op("Add", nil, ms, g.scalarF32(rmsEps)))
	y := g.op("Div", nil, x, den)
	return g.op("Mul", nil, y, g.initF32(weightName, []int{d}, w.get(weightName, d)))
}

// ffn is w2(silu(w1 x) * w3 x), no biases; silu(a) = a * sigmoid(a) is the
// pattern ONNX Runtime fuses into one kernel. With g.fuse, w1 and w3 run as
// one product [d, 2 ff] whose output is split in two.
func (g *graph) ffn(w *weights, x, prefix string, d, ff int) string {
	defer g.in("ffn")()
	var a, b string
	if g.fuse {
		ab := g.linears(w, x, prefix+".w13", d, false, linearPart{prefix + ".w1", ff, 1}, linearPart{prefix + ".w3", ff, 1})
		parts := g.node("Split", []string{ab, g.ints(int64(ff), int64(ff))}, 2, attrInt("axis", -1))
		a, b = parts[0], parts[1]
	} else {
		a = g.linear(w, x, prefix+".w1", d, ff, false)
		b = g.linear(w, x, prefix+".w3", d, ff, false)
	}
	silu := g.op("Mul", nil, a, g.op("Sigmoid", nil, a))
	return g.linear(w, g.op("Mul", nil, silu, b), prefix+".w2", ff, d, false)
}

// rope holds the rotary tables for a set of positions: cos and the signed
// sin (-sin for the first half of a head, +sin for the second), both shaped
// [..., 1, 2, hd/2] (a unit heads axis, then a head's two halves on their
// own axis), so that rotate-half RoPE is x*cos + swap(x)*sin where swap
// exchanges the halves.
type rope struct {
	cos, sin string
}

// ropeTables builds the tables for the int64 positions pos (any shape S;
// the result is [S..., 1, 2, hd/2]) from the checkpoint's inv_freq buffer. The
// angle is float32(p) * inv_freq rounded to float32, as in the reference.
// Tables are shared by layers whose inv_freq buffers hold the same values
// (in Kronos, all layers of a graph), so they are computed once per graph.
func (g *graph) ropeTables(w *weights, invFreqName string, hd int, pos string, cache map[string]rope) rope {
	half := hd / 2
	inv := w.get(invFreqName, half)
	h := fnv.New64a()
	var b [4]byte
	for _, v := range inv {
		binary.LittleEndian.PutUint32(b[:], math.Float32bits(v))
		h.Write(b[:])
	}
	key := pos + "|" + strconv.FormatUint(h.Sum64(), 16)
	if r, ok := cache[key]; ok {
		return r
	}
	defer g.in("rope")()
	full := make([]float32, hd)
	sign := make([]float32, hd)
	for j := 0; j < half; j++ {
		full[j], full[j+half] = inv[j], inv[j]
		sign[j], sign[j+half] = -1, 1
	}
	// Initializer names are made unique by the per-graph sequence number.
	seq := strconv.Itoa(len(cache))
	p := g.op("Cast", attrs(attrInt("to", int64(f32T))), pos)
	p = g.op("Unsqueeze", nil, p, g.ints(-1, -2, -3))
	angle := g.op("Mul", nil, p, g.initF32(invFreqName+".cat"+seq, []int{2, half}, full))
	r := rope{
		cos: g.op("Cos", nil, angle),
		sin: g.op("Mul", nil, g.op("Sin", nil, angle), g.initF32("rope.sign"+seq, []int{2, half}, sign)),
	}
	cache[key] = r
	return r
}

// applyRope rotates x [..., heads, 2, hd/2] (heads viewed as their two
// halves) with tables broadcastable to it. The halves are exchanged by one
// Gather over the axis of size 2 (one copy, where a Split and a Concat made
// two).
func (g *graph) applyRope(x string, r rope) string {
	swapped := g.op("Gather", attrs(attrInt("axis", -2)), x, g.ints(1, 0))
	return g.op("Add", nil, g.op("Mul", nil, x, r.cos), g.op("Mul", nil, swapped, r.sin))
}

// heads reshapes [B, T, d] to [B, heads, T, hd].
func (g *graph) heads(x string, heads, hd int) string {
	x = g.op("Reshape", nil, x, g.ints(0, 0, int64(heads), int64(hd)))
	return g.op("Transpose", attrs(attrInts("perm", 0, 2, 1, 3)), x)
}

// attnCfg describes one self-attention layer.
type attnCfg struct {
	prefix string // checkpoint prefix of the attention module, e.g. "encoder.0.self_attn"
	d      int    // model width
	nHeads int
}

func (a attnCfg) hd() int { return a.d / a.nHeads }

// scale is the attention's 1/sqrt(hd), folded into the query projection.
func (a attnCfg) scale() float32 { return float32(1 / math.Sqrt(float64(a.hd()))) }

// qkv is the fused q/k/v projection of x [..., d] -> [..., 3d]: queries
// (multiplied by 1/sqrt(hd): RoPE is linear, so scaling before the rotation
// equals scaling the scores), then keys, then values.
func (g *graph) qkv(w *weights, x string, a attnCfg) string {
	return g.linears(w, x, a.prefix+".qkv_proj", a.d, true,
		linearPart{a.prefix + ".q_proj", a.d, a.scale()},
		linearPart{a.prefix + ".k_proj", a.d, 1},
		linearPart{a.prefix + ".v_proj", a.d, 1})
}

// causalAttention is multi-head self-attention over a whole sequence x [B,
// T, d] with RoPE at positions 0..T-1 and the additive causal mask [T, T] (0
// where attending is allowed, -inf elsewhere). It returns the out_proj output [B, T, d] and the
// rotated keys and the values, both [B, H, T, hd].
//
// The queries' projection carries the 1/sqrt(hd) scale (see qkv). Queries
// and keys are rotated in the [B, T, H, 2, hd/2] view of their projections
// before the transpose to heads.
func (g *graph) causalAttention(w *weights, x string, a attnCfg, pos, mask string, ropes map[string]rope) (out, key, value string) {
	defer g.in("attn")()
	hd, nh := a.hd(), a.nHeads
	r := g.ropeTables(w, a.prefix+".rotary.inv_freq", hd, pos, ropes) // [T, 1, 2, hd/2]
	rotated := func(p linearPart, name string) string {
		y := g.linears(w, x, name, a.d, true, p)
		y = g.applyRope(g.op("Reshape", nil, y, g.ints(0, 0, int64(nh), 2, int64(hd/2))), r)
		y = g.op("Reshape", nil, y, g.ints(0, 0, int64(nh), int64(hd)))
		return g.op("Transpose", attrs(attrInts("perm", 0, 2, 1, 3)), y)
	}
	q := rotated(linearPart{a.prefix + ".q_proj", a.d, a.scale()}, a.prefix+".q_proj.scaled")
	k := rotated(linearPart{a.prefix + ".k_proj", a.d, 1}, a.prefix+".k_proj")
	v := g.heads(g.linear(w, x, a.prefix+".v_proj", a.d, a.d, true), nh, hd)
	o := g.attend(q, g.op("Transpose", attrs(attrInts("perm", 0, 1, 3, 2)), k), v, mask)
	o = g.op("Transpose", attrs(attrInts("perm", 0, 2, 1, 3)), o)
	o = g.op("Reshape", nil, o, g.ints(0, 0, int64(a.d)))
	return g.linear(w, o, a.prefix+".out_proj", a.d, a.d, true), k, v
}

// block is one pre-norm transformer block: x + Attn(norm1 x), then
// + FFN(norm2 x). attn maps the normalised input to the attention output.
func (g *graph) block(w *weights, x, prefix string, d, ff int, attn func(h string) string) string {
	h := g.rmsNorm(w, x, prefix+".norm1.weight", d)
	x = g.op("Add", nil, x, attn(h))
	h = g.rmsNorm(w, x, prefix+".norm2.weight", d)
	return g.op("Add", nil, x, g.ffn(w, h, prefix+".ffn", d, ff))
}

// sequence holds what the whole-sequence graphs (encoder, decoder, prefill)
// share across layers: positions 0..T-1 and the additive causal mask [T, T]
// (0 for j <= i, -inf above the diagonal). Adding a mask is much cheaper in
// ONNX Runtime than a broadcasting Where over [B, H, T, T]; every row keeps
// its finite diagonal, so the softmax is well defined.
type sequence struct {
	pos, mask string
	ropes     map[string]rope
}

// newSequence derives positions and the causal mask from ids, an int64 or
// float tensor whose axis 1 is the sequence.
func (g *graph) newSequence(ids string) sequence {
	defer g.in("seq")()
	t := g.op("Gather", attrs(attrInt("axis", 0)), g.op("Shape", nil, ids), g.scalarI64(1))
	pos := g.op("Range", nil, g.scalarI64(0), t, g.scalarI64(1))
	row := g.op("Unsqueeze", nil, pos, g.ints(1)) // i, [T, 1]
	col := g.op("Unsqueeze", nil, pos, g.ints(0)) // j, [1, T]
	mask := g.op("Where", nil, g.op("LessOrEqual", nil, col, row), g.scalarF32(0), g.scalarF32(float32(math.Inf(-1))))
	return sequence{pos: pos, mask: mask, ropes: map[string]rope{}}
}

// attend is softmax(q kt + mask) v for queries q [B, H, T, hd], transposed
// keys kt [B, H, hd, T], values v [B, H, T, hd] and the additive causal
// mask [T, T]; the result is [B, H, T, hd].
//
// With g.causalChunks = n > 1 the query positions are cut into n blocks
// [b_i, b_i+1), b_i = i*T/n, and block i attends only keys 0..b_i+1 - 1:
// the scores above the diagonal blocks are all masked, so skipping them
// changes no value (a masked score contributes an exact 0 to the softmax)
// while the products, the mask addition and the softmax shrink to (n+1)/2n
// of the full [T, T] (3/4 for two blocks). For T < n some blocks are
// empty.
func (g *graph) attend(q, kt, v, mask string) string {
	n := g.causalChunks
	if n <= 1 {
		scores := g.op("Add", nil, g.op("MatMul", nil, q, kt), mask)
		return g.op("MatMul", nil, g.op("Softmax", attrs(attrInt("axis", -1)), scores), v)
	}
	b := g.chunkBounds(mask, n)
	outs := make([]string, n)
	for i := range outs {
		qi, kti, vi := g.op("Slice", nil, q, b[i], b[i+1], g.ints(2)), kt, v
		if i < n-1 {
			kti = g.op("Slice", nil, kt, g.ints(0), b[i+1], g.ints(3))
			vi = g.op("Slice", nil, v, g.ints(0), b[i+1], g.ints(2))
		}
		scores := g.op("Add", nil, g.op("MatMul", nil, qi, kti), g.chunkMask(mask, b, i))
		outs[i] = g.op("MatMul", nil, g.op("Softmax", attrs(attrInt("axis", -1)), scores), vi)
	}
	return g.op("Concat", attrs(attrInt("axis", 2)), outs...)
}

// chunkBounds returns the block bounds b_0..b_n of attend (int64 [1]
// tensors, b_0 = 0, b_n = T) for the mask [T, T], built once per graph.
func (g *graph) chunkBounds(mask string, n int) []string {
	key := mask + "|" + strconv.Itoa(n)
	if b, ok := g.chunks[key]; ok {
		return b
	}
	defer g.in("seq")()
	t := g.op("Gather", attrs(attrInt("axis", 0)), g.op("Shape", nil, mask), g.ints(0))
	b := []string{g.ints(0)}
	for i := 1; i < n; i++ {
		b = append(b, g.op("Div", nil, g.op("Mul", nil, t, g.ints(int64(i))), g.ints(int64(n))))
	}
	b = append(b, t)
	if g.chunks == nil {
		g.chunks = map[string][]string{}
	}
	g.chunks[key] = b
	return b
}

// chunkMask is rows [b_i, b_i+1) and columns [0, b_i+1) of the mask, built
// once per graph.
func (g *graph) chunkMask(mask string, b []string, i int) string {
	key := mask + "|" + strconv.Itoa(len(b)-1) + "|" + strconv.Itoa(i)
	if m, ok := g.chunks[key]; ok {
		return m[0]
	}
	defer g.in("seq")()
	m := g.op("Slice", nil, mask,
		g.op("Concat", attrs(attrInt("axis", 0)), b[i], g.ints(0)),
		g.op("Concat", attrs(attrInt("axis", 0)), b[i+1], b[i+1]))
	g.chunks[key] = []string{m}
	return m
}
