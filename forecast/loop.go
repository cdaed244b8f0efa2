package forecast

import (
	"context"
	"math/rand/v2"

	"github.com/kronos-gateway/kronos-gateway/internal/infer"
)

// seqRow is one model row of the autoregressive loop: one sample path of
// one job.
type seqRow struct {
	// s1, s2 are the full token sequence, len L+P: the L context ids, then
	// the ids generated so far (the rest is filled step by step).
	s1, s2 []int64
	// stamps are the time features of every position, [(L+P)][StampWidth]:
	// context stamps, then prediction stamps. The rows of a job share them.
	stamps  []int64
	ctxLen  int // L
	predLen int // P
	params  *Params
	rng     *rand.Rand
}

// span returns the window [start, end) of the row at step i, or ok false
// when the row has already generated all its tokens.
func (r *seqRow) span(i, maxContext int) (start, end int, ok bool) {
	if i >= r.predLen {
		return -1, -1, false
	}
	end = r.ctxLen + i
	return max(0, end-maxContext), end, true
}

// window returns the predictor input of the row at step i: a sub-slice of the
// full sequence (no copy), or the empty window of a finished row.
func (r *seqRow) window(i, maxContext int) infer.Window {
	start, end, ok := r.span(i, maxContext)
	if !ok {
		return infer.Window{}
	}
	return infer.Window{
		Start:  start,
		S1:     r.s1[start:end],
		S2:     r.s2[start:end],
		Stamps: r.stamps[start*infer.StampWidth : end*infer.StampWidth],
	}
}

// loop runs the autoregressive generation of a batch of rows in one session.
type loop struct {
	sess       infer.Session
	rows       []seqRow
	maxContext int
	v1, v2     int    // vocabulary sizes 2^S1Bits, 2^S2Bits
	trace      *Trace // nil unless tracing
}

// run generates every row's P tokens. Step i feeds each unfinished row the
// window [max(0, L+i-maxContext), L+i) of its full sequence, samples s1 from
// the last position's logits, then s2 given that s1, and appends both at
// position L+i. Rows that have finished get an empty window. The context is
// checked before every step.
func (lp *loop) run(ctx context.Context) error {
	steps := 0
	for i := range lp.rows {
		steps = max(steps, lp.rows[i].predLen)
	}
	n := len(lp.rows)
	windows := make([]infer.Window, n)
	chosen := make([]int64, n)
	var smp sampler
	for step := range steps {
		if err := ctx.Err(); err != nil {
			return infer.FromContext(err)
		}
		for r := range lp.rows {
			windows[r] = lp.rows[r].window(step, lp.maxContext)
		}
		s1Logits, err := lp.sess.S1Logits(ctx, windows)
		if err != nil {
			return backendErr(ctx, err, "forecast: step %d: s1 logits", step)
		}
		if len(s1Logits) != n*lp.v1 {
			return infer.Errorf(infer.KindInternal, "forecast: step %d: backend returned %d s1 logits, want %d x %d", step, len(s1Logits), n, lp.v1)
		}
		if step == 0 && lp.trace != nil {
			if hr, ok := lp.sess.(infer.HiddenReporter); ok {
				lp.trace.Hidden0 = append([]float32(nil), hr.LastHidden()...)
			}
		}
		if err := lp.choose(&smp, step, s1Logits, lp.v1, chosen, true); err != nil {
			return err
		}
		s2Logits, err := lp.sess.S2Logits(ctx, chosen)
		if err != nil {
			return backendErr(ctx, err, "forecast: step %d: s2 logits", step)
		}
		if len(s2Logits) != n*lp.v2 {
			return infer.Errorf(infer.KindInternal, "forecast: step %d: backend returned %d s2 logits, want %d x %d", step, len(s2Logits), n, lp.v2)
		}
		var s1Chosen []int64
		if lp.trace != nil {
			s1Chosen = append([]int64(nil), chosen...)
		}
		if err := lp.choose(&smp, step, s2Logits, lp.v2, chosen, false); err != nil {
			return err
		}
		if lp.trace != nil {
			lp.traceStep(step, s1Logits, s2Logits, s1Chosen, chosen)
		}
	}
	return nil
}

// choose samples one id per unfinished row from logits [rows][v] and writes
// it into the row's sequence at position L+step and into out (0 for
// finished rows).
func (lp *loop) choose(smp *sampler, step int, logits []float32, v int, out []int64, s1 bool) error {
	for r := range lp.rows {
		row := &lp.rows[r]
		if step >= row.predLen {
			out[r] = 0
			continue
		}
		id, err := smp.sample(logits[r*v:(r+1)*v], row.params, row.rng)
		if err != nil {
			return infer.Wrap(infer.KindInternal, err, "forecast: step %d, row %d", step, r)
		}
		out[r] = id
		pos := row.ctxLen + step
		if s1 {
			row.s1[pos] = id
		} else {
			row.s2[pos] = id
		}
	}
	return nil
}

func (lp *loop) traceStep(step int, s1Logits, s2Logits []float32, s1, s2 []int64) {
	n := len(lp.rows)
	ts := TraceStep{
		WindowStart: make([]int, n),
		WindowEnd:   make([]int, n),
		S1Logits:    s1Logits,
		S2Logits:    s2Logits,
		S1:          s1,
		S2:          append([]int64(nil), s2...),
	}
	for r := range lp.rows {
		ts.WindowStart[r], ts.WindowEnd[r], _ = lp.rows[r].span(step, lp.maxContext)
		if step >= lp.rows[r].predLen {
			ts.S1[r], ts.S2[r] = -1, -1
		}
	}
	lp.trace.Steps = append(lp.trace.Steps, ts)
}

// backendErr classifies a backend failure: the context's error when it is
// done (the backend most likely stopped because of it), otherwise err with
// its own kind (KindInternal for an unclassified error).
func backendErr(ctx context.Context, err error, format string, args ...any) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return infer.FromContext(ctxErr)
	}
	return infer.Wrap(infer.KindOf(err), err, format, args...)
}
