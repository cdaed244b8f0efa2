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

// ffn is w2(silu(w1 x) * w3 x), no biases.
func (g *graph) ffn(w *weights, x, prefix string, d, ff int) string {
	defer g.in("ffn")()
	a := g.linear(w, x, prefix+".w1", d, ff, false)
	silu := g.op("Mul", nil, a, g.op("Sigmoid", nil, a))
	b := g.linear(w, x, prefix+".w3", d, ff, false)
	return g.linear(w, g.op("Mul", nil, silu, b), prefix+".w2", ff, d, false)
}

// rope holds the rotary tables for a set of positions: cos and the signed
// sin (-sin for the first half of a head, +sin for the second), both
// [..., hd], so that rotate-half RoPE is x*cos + swap(x)*sin where swap
// exchanges the two halves.
type rope struct {
	cos, sin string
	half     int
}

// ropeTables builds the tables for the int64 positions pos (any shape S;
// the result is [S..., hd]) from the checkpoint's inv_freq buffer. The angle
// is float32(p) * inv_freq rounded to float32, as in the reference. Tables
// are shared by layers whose inv_freq buffers hold the same values.
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
	p = g.op("Unsqueeze", nil, p, g.ints(-1))
	angle := g.op("Mul", nil, p, g.initF32(invFreqName+".cat"+seq, []int{hd}, full))
	r := rope{
		cos:  g.op("Cos", nil, angle),
		sin:  g.op("Mul", nil, g.op("Sin", nil, angle), g.initF32("rope.sign"+seq, []int{hd}, sign)),
		half: half,
	}
	cache[key] = r
	return r
}

// applyRope rotates x [..., hd] with tables broadcastable to it.
func (g *graph) applyRope(x string, r rope) string {
	halves := g.node("Split", []string{x, g.ints(int64(r.half), int64(r.half))}, 2, attrInt("axis", -1))
	swapped := g.op("Concat", attrs(attrInt("axis", -1)), halves[1], halves[0])
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

// causalAttention is multi-head self-attention over a whole sequence x [B,
// T, d] with RoPE at positions 0..T-1 and the additive causal mask [T, T] (0
// where attending is allowed, -inf elsewhere). It returns the out_proj output [B, T, d] and the
// rotated keys and the values, both [B, H, T, hd].
func (g *graph) causalAttention(w *weights, x string, a attnCfg, pos, mask string, ropes map[string]rope) (out, key, value string) {
	defer g.in("attn")()
	hd := a.hd()
	r := g.ropeTables(w, a.prefix+".rotary.inv_freq", hd, pos, ropes)
	q := g.heads(g.linear(w, x, a.prefix+".q_proj", a.d, a.d, true), a.nHeads, hd)
	k := g.heads(g.linear(w, x, a.prefix+".k_proj", a.d, a.d, true), a.nHeads, hd)
	v := g.heads(g.linear(w, x, a.prefix+".v_proj", a.d, a.d, true), a.nHeads, hd)
	q = g.op("Mul", nil, g.applyRope(q, r), g.scalarF32(float32(1/math.Sqrt(float64(hd)))))
	k = g.applyRope(k, r)
	kt := g.op("Transpose", attrs(attrInts("perm", 0, 1, 3, 2)), k)
	scores := g.op("Add", nil, g.op("MatMul", nil, q, kt), mask)
	probs := g.op("Softmax", attrs(attrInt("axis", -1)), scores)
	o := g.op("MatMul", nil, probs, v)
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
