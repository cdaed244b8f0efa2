package conformance

import (
	"context"
	"math"
	"math/bits"
	"slices"

	"github.com/kronos-gateway/kronos-gateway/internal/infer"
)

// Replay returns a backend that plays back a case's recorded model outputs
// (encoder output, step logits, step-0 hidden state, decoded candles) instead
// of running a model. Before answering, every call checks that its input is
// the reference's: the encoder input equals x_norm (abs 2e-4), every window
// has the recorded bounds, ids and stamps, the s1 ids passed to S2Logits are
// the recorded ones, and the decoded ids are final_s1/final_s2. A difference
// is a KindInternal error naming it.
//
// Running a case on Replay checks everything around the model (filling,
// statistics, time features, the sampling loop's bookkeeping, the final
// averaging and de-normalisation) and the comparison harness itself.
func Replay(c *Case) infer.Backend { return &replay{c: c} }

type replay struct{ c *Case }

func (b *replay) Info() infer.ModelInfo {
	mb := &b.c.ModelBatch
	v1, v2 := len(mb.Steps[0].S1Logits[0]), len(mb.Steps[0].S2Logits[0])
	return infer.ModelInfo{
		Name: "replay", Version: "1", Backend: "replay", Device: "none",
		S1Bits: bits.Len(uint(v1)) - 1, S2Bits: bits.Len(uint(v2)) - 1,
		DModel: len(mb.InitialContextHiddenLast[0]), MaxContext: b.c.Params.MaxContext,
	}
}

func (b *replay) Close() error { return nil }

func replayErr(format string, args ...any) error {
	return infer.Errorf(infer.KindInternal, "replay: "+format, args...)
}

func (b *replay) Encode(_ context.Context, x []float32, rows, length int) ([]float32, error) {
	c := b.c
	if rows != len(c.Series) || length != c.Params.Lookback {
		return nil, replayErr("encode of %d x %d, want %d x %d", rows, length, len(c.Series), c.Params.Lookback)
	}
	var out []float32
	for s, se := range c.Series {
		want := flat2(se.XNorm)
		for i, v := range want {
			if g := x[s*len(want)+i]; !(math.Abs(float64(g)-v) <= 2e-4) {
				return nil, replayErr("encoder input of series %d differs from x_norm at %d: %v, want %v", s, i, g, v)
			}
		}
		out = append(out, to32(flat2(c.ModelBatch.QuantInput[s*c.Params.SampleCount]))...)
	}
	return out, nil
}

func (b *replay) Decode(_ context.Context, s1, s2 []int64, rows, width int) ([]float32, error) {
	mb := &b.c.ModelBatch
	w := mb.FinalWindow[1] - mb.FinalWindow[0]
	if rows != mb.Rows || width != w {
		return nil, replayErr("decode of %d x %d, want %d x %d", rows, width, mb.Rows, w)
	}
	if !slices.Equal(s1, flatI(mb.FinalS1)) || !slices.Equal(s2, flatI(mb.FinalS2)) {
		return nil, replayErr("decoder ids differ from final_s1/final_s2")
	}
	return to32(flat3(mb.Decoded)), nil
}

func (b *replay) NewSession(_ context.Context, rows int) (infer.Session, error) {
	if rows != b.c.ModelBatch.Rows {
		return nil, replayErr("session of %d rows, want %d", rows, b.c.ModelBatch.Rows)
	}
	return &replaySession{c: b.c, step: -1}, nil
}

type replaySession struct {
	c    *Case
	step int
}

func (s *replaySession) S1Logits(_ context.Context, windows []infer.Window) ([]float32, error) {
	c, mb := s.c, &s.c.ModelBatch
	s.step++
	if s.step >= len(mb.Steps) || len(windows) != mb.Rows {
		return nil, replayErr("call %d with %d windows", s.step, len(windows))
	}
	st := &mb.Steps[s.step]
	begin, end := st.Window[0], st.Window[1]
	for r, w := range windows {
		se := mb.RowSeries[r]
		full1 := append(slices.Clone(mb.ContextS1[r]), mb.GeneratedS1[r]...)
		full2 := append(slices.Clone(mb.ContextS2[r]), mb.GeneratedS2[r]...)
		stamps := append(flatI(c.Series[se].XStamp), flatI(c.Series[se].YStamp)...)
		switch {
		case w.Start != begin || len(w.S1) != end-begin:
			return nil, replayErr("step %d row %d: window [%d, %d), want [%d, %d)", s.step, r, w.Start, w.Start+len(w.S1), begin, end)
		case !slices.Equal(w.S1, full1[begin:end]) || !slices.Equal(w.S2, full2[begin:end]):
			return nil, replayErr("step %d row %d: window ids differ from the reference sequence", s.step, r)
		case !slices.Equal(w.Stamps, stamps[begin*infer.StampWidth:end*infer.StampWidth]):
			return nil, replayErr("step %d row %d: window stamps differ from x_stamp/y_stamp", s.step, r)
		}
	}
	return to32(flat2(st.S1Logits)), nil
}

func (s *replaySession) S2Logits(_ context.Context, s1 []int64) ([]float32, error) {
	st := &s.c.ModelBatch.Steps[s.step]
	if !slices.Equal(s1, st.S1) {
		return nil, replayErr("step %d: s1 %v, want %v", s.step, s1, st.S1)
	}
	return to32(flat2(st.S2Logits)), nil
}

// LastHidden returns the recorded step-0 hidden state (the only one the
// vectors hold).
func (s *replaySession) LastHidden() []float32 {
	if s.step != 0 {
		return nil
	}
	return to32(flat2(s.c.ModelBatch.InitialContextHiddenLast))
}

func (s *replaySession) Close() error { return nil }
