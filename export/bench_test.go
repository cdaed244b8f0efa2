package export

import (
	"testing"

	"github.com/kronos-gateway/kronos-gateway/checkpoint"
	"github.com/kronos-gateway/kronos-gateway/internal/graphs"
	"github.com/kronos-gateway/kronos-gateway/internal/infer"
)

// Benchmarks of the predictor graphs at Kronos-small size (random weights)
// with two intra-op threads: the budget is about 2 s for a 400-candle
// context and 120 steps on 2 cores, i.e. one prefill of 400 tokens plus 120
// step and s2 calls.

func smallModel(b *testing.B) *Model {
	b.Helper()
	tok, pred, _, err := checkpoint.RandomPair("small", 1)
	if err != nil {
		b.Fatal(err)
	}
	m, err := NewModel(tok, pred)
	if err != nil {
		b.Fatal(err)
	}
	return m
}

func benchSession(b *testing.B, m *Model, role graphs.Role) *session {
	b.Helper()
	needORT(b)
	mp, err := m.Graph(role)
	if err != nil {
		b.Fatal(err)
	}
	return newSessionThreads(b, mp, 2)
}

func syntheticWindow(n int) window {
	w := window{}
	for p := 0; p < n; p++ {
		w.s1 = append(w.s1, int64(p*37%1024))
		w.s2 = append(w.s2, int64(p*91%1024))
		w.stamp = append(w.stamp, int64(p*5%60), int64(p/12%24), int64(p/288%7), int64(1+p/288%28), 6)
	}
	return w
}

func BenchmarkSmallPrefill400(b *testing.B) {
	m := smallModel(b)
	s := benchSession(b, m, graphs.Prefill)
	in := prefillInputs([]window{syntheticWindow(400)}, 0)
	b.ResetTimer()
	for range b.N {
		s.run(b, in)
	}
}

func BenchmarkSmallStep(b *testing.B) {
	m := smallModel(b)
	s := benchSession(b, m, graphs.Step)
	cache := newCache(m, 1, 520)
	in := cache.stepInputs([]int64{5}, []int64{7}, []int64{0, 10, 2, 3, 6}, []int64{400})
	b.ResetTimer()
	for range b.N {
		s.run(b, in)
	}
}

func BenchmarkSmallS2(b *testing.B) {
	m := smallModel(b)
	s := benchSession(b, m, graphs.S2)
	cache := newCache(m, 1, 520)
	in := cache.s2Inputs([]int64{5}, make([]float32, m.PredCfg.DModel), []int64{401})
	b.ResetTimer()
	for range b.N {
		s.run(b, in)
	}
}

func BenchmarkSmallEncoder400(b *testing.B) {
	m := smallModel(b)
	s := benchSession(b, m, graphs.Encoder)
	x := make([]float32, 400*infer.CandleWidth)
	for i := range x {
		x[i] = float32(i%13)/6 - 1
	}
	in := map[string]tensor{graphs.InX: f32Tensor(x, 1, 400, infer.CandleWidth)}
	b.ResetTimer()
	for range b.N {
		s.run(b, in)
	}
}

// BenchmarkSmallForecast400x120 is the predictor work of one greedy
// forecast at Kronos-small size: a prefill of 400 tokens, then 120 step and
// s2 calls over a cache of capacity 520 (cache bookkeeping excluded).
func BenchmarkSmallForecast400x120(b *testing.B) {
	m := smallModel(b)
	prefill := benchSession(b, m, graphs.Prefill)
	step := benchSession(b, m, graphs.Step)
	s2 := benchSession(b, m, graphs.S2)
	pin := prefillInputs([]window{syntheticWindow(400)}, 0)
	cache := newCache(m, 1, 520)
	hidden := make([]float32, m.PredCfg.DModel)
	b.ResetTimer()
	for range b.N {
		prefill.run(b, pin)
		for i := range 120 {
			pos := int64(400 + i)
			step.run(b, cache.stepInputs([]int64{5}, []int64{7}, []int64{0, 10, 2, 3, 6}, []int64{pos}))
			s2.run(b, cache.s2Inputs([]int64{5}, hidden, []int64{pos + 1}))
		}
	}
}
