package forecast

import (
	"context"
	"fmt"
	"testing"

	"github.com/kronos-gateway/kronos-gateway/internal/infer"
)

func BenchmarkSample(b *testing.B) {
	const v = 1024
	logits := make([]float32, v)
	for i := range logits {
		logits[i] = float32(splitmix64(uint64(i))%4000)/500 - 4
	}
	for _, p := range []Params{
		{Temperature: 1, TopK: 1, TopP: 1},
		{Temperature: 1, TopP: 0.9},
		{Temperature: 1, TopK: 20, TopP: 1},
		{Temperature: 1, TopP: 1},
	} {
		b.Run(fmt.Sprintf("top_k=%d,top_p=%v", p.TopK, p.TopP), func(b *testing.B) {
			var smp sampler
			rng := rowRNG(1, 0)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := smp.sample(logits, &p, rng); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// constSession returns the same logits at every step: it measures the
// loop's own overhead (windows, sampling, bookkeeping).
type constSession struct {
	infer.Session
	s1, s2 []float32
}

func (s *constSession) S1Logits(context.Context, []infer.Window) ([]float32, error) { return s.s1, nil }
func (s *constSession) S2Logits(context.Context, []int64) ([]float32, error)        { return s.s2, nil }

func BenchmarkLoop(b *testing.B) {
	const rows, l, p, maxCtx, v = 16, 400, 60, 420, 1024
	logits := make([]float32, rows*v)
	for i := range logits {
		logits[i] = float32(splitmix64(uint64(i))%4000)/500 - 4
	}
	params := sampled(1, rows)
	stamps := make([]int64, (l+p)*infer.StampWidth)
	ctx := make([]int64, l)
	b.ReportAllocs()
	for b.Loop() {
		rs := make([]seqRow, rows)
		for r := range rs {
			rs[r] = testRow(ctx, ctx, stamps, p, &params)
		}
		lp := loop{sess: &constSession{s1: logits, s2: logits}, rows: rs, maxContext: maxCtx, v1: v, v2: v}
		if err := lp.run(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
}
