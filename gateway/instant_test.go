package gateway

import (
	"context"
	"sync/atomic"

	"github.com/kronos-gateway/kronos-gateway/internal/infer"
)

// instantBackend is a tiny model that answers at once, for the metrics
// golden test and the overhead benchmarks: 2+2 code bits, every token
// equally likely (sampling stays cheap), decoded candles at the series
// mean. With block set, Encode waits for its context to end (a forecast
// that times out).
type instantBackend struct {
	info  infer.ModelInfo
	block atomic.Bool
}

func newInstantBackend() *instantBackend {
	return &instantBackend{info: infer.ModelInfo{
		Name: "kronos-instant", Version: "1", Checkpoint: "test/Kronos-instant",
		ModelVersion: "test/Kronos-instant@0000", TokenizerVersion: "test/Tokenizer@0000",
		S1Bits: 2, S2Bits: 2, DModel: 4, MaxContext: 512, Backend: "instant", Device: "cpu",
	}}
}

func (b *instantBackend) Info() infer.ModelInfo { return b.info }

func (b *instantBackend) Encode(ctx context.Context, _ []float32, rows, length int) ([]float32, error) {
	if b.block.Load() {
		<-ctx.Done()
		return nil, infer.FromContext(ctx.Err())
	}
	d := b.info.S1Bits + b.info.S2Bits
	q := make([]float32, rows*length*d)
	for i := range q {
		q[i] = 0.5
		if i%3 == 0 {
			q[i] = -0.5
		}
	}
	return q, nil
}

func (b *instantBackend) Decode(_ context.Context, _, _ []int64, rows, width int) ([]float32, error) {
	return make([]float32, rows*width*infer.CandleWidth), nil
}

func (b *instantBackend) NewSession(_ context.Context, rows int) (infer.Session, error) {
	return &instantSession{rows: rows, s1: 1 << b.info.S1Bits, s2: 1 << b.info.S2Bits}, nil
}

func (b *instantBackend) Close() error { return nil }

type instantSession struct{ rows, s1, s2 int }

func (s *instantSession) S1Logits(_ context.Context, _ []infer.Window) ([]float32, error) {
	return make([]float32, s.rows*s.s1), nil
}

func (s *instantSession) S2Logits(_ context.Context, _ []int64) ([]float32, error) {
	return make([]float32, s.rows*s.s2), nil
}

func (s *instantSession) Close() error { return nil }
