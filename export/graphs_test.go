package export

import (
	"fmt"
	"math"
	"testing"

	"github.com/kronos-gateway/kronos-gateway/internal/graphs"
	"github.com/kronos-gateway/kronos-gateway/internal/infer"
)

func graphSession(t *testing.T, m *Model, role graphs.Role) *session {
	t.Helper()
	needORT(t)
	mp, err := m.Graph(role)
	if err != nil {
		t.Fatal(err)
	}
	return newSession(t, mp)
}

func TestEncoderConformance(t *testing.T) {
	for _, c := range allConfigs {
		needORT(t)
		s := graphSession(t, loadModel(t, c), graphs.Encoder)
		for _, cs := range c.cases {
			t.Run(name(c, cs), func(t *testing.T) {
				cc := loadCase(t, c, cs)
				rows, l := cc.MB.Rows, cc.MB.ContextLen
				var x []float32
				var ref []float64
				for r := 0; r < rows; r++ {
					for _, v := range cc.Series[cc.MB.RowSeries[r]].XNorm {
						for _, f := range v {
							x = append(x, float32(f))
						}
					}
					ref = append(ref, flat2(cc.MB.QuantInput[r])...)
				}
				got := s.run(t, map[string]tensor{graphs.InX: f32Tensor(x, int64(rows), int64(l), infer.CandleWidth)})[graphs.OutQuant]
				compare(t, "quant_input", got.f32, ref, 1e-3)
				for i := range ref {
					if (got.f32[i] > 0) != (ref[i] > 0) {
						t.Fatalf("quant_input[%d] = %v, reference %v: the sign (BSQ bit) differs", i, got.f32[i], ref[i])
					}
				}
			})
		}
	}
}

func TestDecoderConformance(t *testing.T) {
	for _, c := range allConfigs {
		needORT(t)
		s := graphSession(t, loadModel(t, c), graphs.Decoder)
		for _, cs := range c.cases {
			t.Run(name(c, cs), func(t *testing.T) {
				cc := loadCase(t, c, cs)
				rows, w := cc.MB.Rows, len(cc.MB.FinalS1[0])
				var s1, s2 []int64
				var ref []float64
				for r := 0; r < rows; r++ {
					s1 = append(s1, cc.MB.FinalS1[r]...)
					s2 = append(s2, cc.MB.FinalS2[r]...)
					ref = append(ref, flat2(cc.MB.Decoded[r])...)
				}
				got := s.run(t, map[string]tensor{
					graphs.InS1: i64Tensor(s1, int64(rows), int64(w)),
					graphs.InS2: i64Tensor(s2, int64(rows), int64(w)),
				})[graphs.OutX]
				compare(t, "decoded", got.f32, ref, 1e-4)
			})
		}
	}
}

// window is one batch row of a prefill: ids and stamps of a token window.
type window struct {
	s1, s2, stamp []int64
}

// initialWindow is the window fed at step 0 for row r.
func initialWindow(cc *confCase, r int) window {
	b, e := cc.MB.Steps[0].Window[0], cc.MB.Steps[0].Window[1]
	s1, s2 := cc.tokens(r, b, e)
	return window{s1: s1, s2: s2, stamp: cc.stampRows(cc.MB.RowSeries[r], b, e)}
}

// prefillInputs right-pads the windows to length t (t = 0: the longest).
func prefillInputs(ws []window, t int) map[string]tensor {
	for _, w := range ws {
		t = max(t, len(w.s1))
	}
	b := len(ws)
	s1 := make([]int64, b*t)
	s2 := make([]int64, b*t)
	stamp := make([]int64, b*t*infer.StampWidth)
	last := make([]int64, b)
	for i, w := range ws {
		copy(s1[i*t:], w.s1)
		copy(s2[i*t:], w.s2)
		copy(stamp[i*t*infer.StampWidth:], w.stamp)
		// Padding: valid ids and stamps that differ from the real ones.
		for p := len(w.s1); p < t; p++ {
			s1[i*t+p], s2[i*t+p] = int64(p%3), int64(p%5)
			copy(stamp[(i*t+p)*infer.StampWidth:], []int64{int64(p % 60), 3, 4, 5, 6})
		}
		last[i] = int64(len(w.s1) - 1)
	}
	return map[string]tensor{
		graphs.InS1:    i64Tensor(s1, int64(b), int64(t)),
		graphs.InS2:    i64Tensor(s2, int64(b), int64(t)),
		graphs.InStamp: i64Tensor(stamp, int64(b), int64(t), infer.StampWidth),
		graphs.InLast:  i64Tensor(last, int64(b)),
	}
}

// rowOf returns row i of a [B, ...] tensor.
func rowOf(x tensor, i int) []float32 {
	n := len(x.f32) / int(x.shape[0])
	return x.f32[i*n : (i+1)*n]
}

func TestPrefillConformance(t *testing.T) {
	for _, c := range allConfigs {
		needORT(t)
		s := graphSession(t, loadModel(t, c), graphs.Prefill)
		for _, cs := range c.cases {
			t.Run(name(c, cs), func(t *testing.T) {
				cc := loadCase(t, c, cs)
				var ws []window
				for r := 0; r < cc.MB.Rows; r++ {
					ws = append(ws, initialWindow(cc, r))
				}
				out := s.run(t, prefillInputs(ws, 0))
				compare(t, "s1_logits", out[graphs.OutS1Logits].f32, flat2(cc.MB.InitialS1Logits), 1e-4)
				compare(t, "hidden", out[graphs.OutHidden].f32, flat2(cc.MB.InitialContextHiddenLast), 1e-4)
			})
		}
	}
}

// TestPrefillPadding puts windows of different lengths (48, 56 and 64
// tokens, from three cases of the same model) in one right-padded batch
// with extra padding: every row must still match its own reference.
func TestPrefillPadding(t *testing.T) {
	needORT(t)
	s := graphSession(t, loadModel(t, tiny), graphs.Prefill)
	var ws []window
	var logits, hidden []float64
	for _, cs := range []string{"short", "slide", "long_ctx"} {
		cc := loadCase(t, tiny, cs)
		ws = append(ws, initialWindow(cc, 0))
		logits = append(logits, cc.MB.InitialS1Logits[0]...)
		hidden = append(hidden, cc.MB.InitialContextHiddenLast[0]...)
	}
	out := s.run(t, prefillInputs(ws, 67))
	compare(t, "s1_logits", out[graphs.OutS1Logits].f32, logits, 1e-4)
	compare(t, "hidden", out[graphs.OutHidden].f32, hidden, 1e-4)
	if got := out[graphs.Key(0)].shape; got[2] != 67 {
		t.Errorf("key_0 shape %v, want T = 67 on axis 2", got)
	}
}

// kvCache holds the predictor cache of a batch in the step graph's layout:
// keys [B, H, hd, C] (transposed), values [B, H, C, hd], dependency keys
// [B, G, gd, C] and values [B, G, C, gd].
type kvCache struct {
	b, c, nl, h, hd, gd int
	keys, values        [][]float32
	depK, depV          []float32
}

// newCache makes a cache of capacity c whose entries hold finite junk
// (masked entries must not matter).
func newCache(m *Model, b, c int) *kvCache {
	p := m.PredCfg
	k := &kvCache{b: b, c: c, nl: p.NLayers, h: p.NHeads, hd: p.DModel / p.NHeads, gd: p.DModel / graphs.DepHeads}
	junk := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(i%7) - 3
		}
		return v
	}
	for l := 0; l < k.nl; l++ {
		k.keys = append(k.keys, junk(b*k.h*k.hd*c))
		k.values = append(k.values, junk(b*k.h*k.hd*c))
	}
	k.depK, k.depV = junk(b*graphs.DepHeads*k.gd*c), junk(b*graphs.DepHeads*k.gd*c)
	return k
}

// put writes position p of row b: key/value [heads, hd] of one layer into
// the transposed key and plain value layouts.
func put(keys, values []float32, b, heads, hd, c, p int, k, v []float32) {
	for h := 0; h < heads; h++ {
		for j := 0; j < hd; j++ {
			keys[((b*heads+h)*hd+j)*c+p] = k[h*hd+j]
			values[((b*heads+h)*c+p)*hd+j] = v[h*hd+j]
		}
	}
}

// fromPrefill copies positions 0..n_b-1 of every row of a prefill output
// ([B, H, T, hd] per layer) into the cache.
func (k *kvCache) fromPrefill(out map[string]tensor, n []int) {
	for b := range n {
		for p := 0; p < n[b]; p++ {
			for l := 0; l < k.nl; l++ {
				kk, vv := out[graphs.Key(l)], out[graphs.Value(l)]
				t := int(kk.shape[2])
				k.putRow(k.keys[l], k.values[l], b, k.h, k.hd, p, kk.f32, vv.f32, t)
			}
			dk, dv := out[graphs.OutDepKey], out[graphs.OutDepValue]
			k.putRow(k.depK, k.depV, b, graphs.DepHeads, k.gd, p, dk.f32, dv.f32, int(dk.shape[2]))
		}
	}
}

// putRow copies position p of row b from [B, heads, T, hd] tensors.
func (k *kvCache) putRow(keys, values []float32, b, heads, hd, p int, src, srcV []float32, t int) {
	kv := make([]float32, heads*hd)
	vv := make([]float32, heads*hd)
	for h := 0; h < heads; h++ {
		off := ((b*heads+h)*t + p) * hd
		copy(kv[h*hd:], src[off:off+hd])
		copy(vv[h*hd:], srcV[off:off+hd])
	}
	put(keys, values, b, heads, hd, k.c, p, kv, vv)
}

// fromStep writes a step output (key_l [B, H, hd] ...) at positions pos.
func (k *kvCache) fromStep(out map[string]tensor, pos []int64) {
	for b, p := range pos {
		for l := 0; l < k.nl; l++ {
			put(k.keys[l], k.values[l], b, k.h, k.hd, k.c, int(p), rowOf(out[graphs.Key(l)], b), rowOf(out[graphs.Value(l)], b))
		}
		put(k.depK, k.depV, b, graphs.DepHeads, k.gd, k.c, int(p), rowOf(out[graphs.OutDepKey], b), rowOf(out[graphs.OutDepValue], b))
	}
}

func (k *kvCache) stepInputs(s1, s2, stamp, pos []int64) map[string]tensor {
	b := int64(k.b)
	in := map[string]tensor{
		graphs.InS1:    i64Tensor(s1, b),
		graphs.InS2:    i64Tensor(s2, b),
		graphs.InStamp: i64Tensor(stamp, b, infer.StampWidth),
		graphs.InPos:   i64Tensor(pos, b),
	}
	for l := 0; l < k.nl; l++ {
		in[graphs.PastKey(l)] = f32Tensor(k.keys[l], b, int64(k.h), int64(k.hd), int64(k.c))
		in[graphs.PastValue(l)] = f32Tensor(k.values[l], b, int64(k.h), int64(k.c), int64(k.hd))
	}
	return in
}

func (k *kvCache) s2Inputs(s1 []int64, hidden []float32, length []int64) map[string]tensor {
	b := int64(k.b)
	return map[string]tensor{
		graphs.InS1:       i64Tensor(s1, b),
		graphs.InHidden:   f32Tensor(hidden, b, int64(len(hidden))/b),
		graphs.InDepKey:   f32Tensor(k.depK, b, graphs.DepHeads, int64(k.gd), int64(k.c)),
		graphs.InDepValue: f32Tensor(k.depV, b, graphs.DepHeads, int64(k.c), int64(k.gd)),
		graphs.InLength:   i64Tensor(length, b),
	}
}

// TestLoopConformance runs the cached autoregressive loop with the prefill,
// step and s2 graphs on the reference tokens and compares the s1 and s2
// logits of every step while the window still starts at position 0 (after
// that the reference recomputes the window, which a cache cannot do).
func TestLoopConformance(t *testing.T) {
	for _, c := range allConfigs {
		needORT(t)
		m := loadModel(t, c)
		prefill := graphSession(t, m, graphs.Prefill)
		step := graphSession(t, m, graphs.Step)
		s2 := graphSession(t, m, graphs.S2)
		for _, cs := range c.cases {
			t.Run(name(c, cs), func(t *testing.T) {
				cc := loadCase(t, c, cs)
				if cc.MB.Steps[0].Window[0] != 0 {
					t.Skip("the context is longer than max_context: no cached steps")
				}
				rows, l := cc.MB.Rows, cc.MB.ContextLen
				var ws []window
				n := make([]int, rows)
				for r := range rows {
					ws = append(ws, initialWindow(cc, r))
					n[r] = l
				}
				out := prefill.run(t, prefillInputs(ws, 0))
				cache := newCache(m, rows, l+cc.Params.PredLen+3)
				cache.fromPrefill(out, n)
				hidden := out[graphs.OutHidden].f32
				length := make([]int64, rows)
				pos := make([]int64, rows)
				for i, st := range cc.MB.Steps {
					if st.Window[0] != 0 {
						break
					}
					if i > 0 {
						var s1, s2, stamp []int64
						for r := range rows {
							s1 = append(s1, cc.MB.GeneratedS1[r][i-1])
							s2 = append(s2, cc.MB.GeneratedS2[r][i-1])
							stamp = append(stamp, cc.Series[cc.MB.RowSeries[r]].YStamp[i-1]...)
							pos[r] = int64(l + i - 1)
						}
						out = step.run(t, cache.stepInputs(s1, s2, stamp, pos))
						compare(t, stepField(i, "s1_logits"), out[graphs.OutS1Logits].f32, flat2(st.S1Logits), 1e-4)
						cache.fromStep(out, pos)
						hidden = out[graphs.OutHidden].f32
					}
					for r := range rows {
						if got := argmax(rowOf(out[graphs.OutS1Logits], r)); got != st.S1[r] {
							t.Fatalf("step %d row %d: s1 argmax %d, reference chose %d", i, r, got, st.S1[r])
						}
						length[r] = int64(l + i)
					}
					chosen, ref := st.S1, st.S2Logits
					if i == 0 {
						chosen, ref = cc.MB.InitialS1Argmax, cc.MB.InitialS2Logits
					}
					logits := s2.run(t, cache.s2Inputs(chosen, hidden, length))[graphs.OutS2Logits]
					compare(t, stepField(i, "s2_logits"), logits.f32, flat2(ref), 1e-4)
					for r := range rows {
						if got := argmax(rowOf(logits, r)); got != st.S2[r] {
							t.Fatalf("step %d row %d: s2 argmax %d, reference chose %d", i, r, got, st.S2[r])
						}
					}
					if t.Failed() {
						return
					}
				}
			})
		}
	}
}

func stepField(i int, f string) string { return fmt.Sprintf("steps[%d].%s", i, f) }

// TestStepMixedPositions runs one step for two rows at different positions
// (48 and 56) in one call and compares with the reference and with
// separate one-row calls.
func TestStepMixedPositions(t *testing.T) {
	needORT(t)
	m := loadModel(t, tiny)
	prefill := graphSession(t, m, graphs.Prefill)
	step := graphSession(t, m, graphs.Step)
	var cases []*confCase
	var ws []window
	for _, cs := range []string{"short", "slide"} {
		cc := loadCase(t, tiny, cs)
		cases = append(cases, cc)
		ws = append(ws, initialWindow(cc, 0))
	}
	const capacity = 70
	var s1, s2, stamp, pos []int64
	var ref []float64
	n := make([]int, len(cases))
	for i, cc := range cases {
		l := cc.MB.ContextLen
		n[i] = l
		s1 = append(s1, cc.MB.GeneratedS1[0][0])
		s2 = append(s2, cc.MB.GeneratedS2[0][0])
		stamp = append(stamp, cc.Series[0].YStamp[0]...)
		pos = append(pos, int64(l))
		ref = append(ref, cc.MB.Steps[1].S1Logits[0]...)
	}
	cache := newCache(m, len(cases), capacity)
	cache.fromPrefill(prefill.run(t, prefillInputs(ws, 0)), n)
	both := step.run(t, cache.stepInputs(s1, s2, stamp, pos))
	compare(t, "steps[1].s1_logits", both[graphs.OutS1Logits].f32, ref, 1e-4)

	for i := range cases {
		one := newCache(m, 1, capacity)
		one.fromPrefill(prefill.run(t, prefillInputs(ws[i:i+1], 0)), n[i:i+1])
		alone := step.run(t, one.stepInputs(s1[i:i+1], s2[i:i+1], stamp[i*infer.StampWidth:(i+1)*infer.StampWidth], pos[i:i+1]))
		for _, out := range []string{graphs.OutS1Logits, graphs.OutHidden, graphs.Key(0), graphs.Value(1), graphs.OutDepKey} {
			got := rowOf(both[out], i)
			want := alone[out].f32
			for j := range want {
				if d := math.Abs(float64(got[j] - want[j])); d > 1e-5*math.Max(1, math.Abs(float64(want[j]))) {
					t.Fatalf("row %d %s[%d]: batched %v, alone %v", i, out, j, got[j], want[j])
				}
			}
		}
	}
}
