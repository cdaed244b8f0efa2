package forecast

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/kronos-gateway/kronos-gateway/internal/infer"
)

// recSession is a fake infer.Session that records every call and returns
// logits from hooks. Unused interface methods panic through the nil
// embedded Session.
type recSession struct {
	infer.Session
	v1, v2 int
	// s1, s2 return one row's logits; nil hooks give one-hot logits for the
	// id chosen by win1/win2.
	s1 func(step, row int, w infer.Window) []float32
	s2 func(step, row int, s1 int64) []float32
	// before runs at the start of every S1Logits call; a non-nil error is
	// returned from it.
	before func(ctx context.Context, step int) error

	windows [][]infer.Window // per S1Logits call, deep copies
	s1Given [][]int64        // per S2Logits call
	hidden  []float32
	closed  bool
}

func (s *recSession) S1Logits(ctx context.Context, windows []infer.Window) ([]float32, error) {
	step := len(s.windows)
	if s.before != nil {
		if err := s.before(ctx, step); err != nil {
			return nil, err
		}
	}
	cp := make([]infer.Window, len(windows))
	for i, w := range windows {
		cp[i] = infer.Window{Start: w.Start, S1: slices.Clone(w.S1), S2: slices.Clone(w.S2), Stamps: slices.Clone(w.Stamps)}
	}
	s.windows = append(s.windows, cp)
	out := make([]float32, 0, len(windows)*s.v1)
	for r, w := range windows {
		if len(w.S1) == 0 {
			out = append(out, make([]float32, s.v1)...)
			continue
		}
		out = append(out, s.s1(step, r, w)...)
	}
	s.hidden = []float32{float32(step), 1, 2}
	return out, nil
}

func (s *recSession) S2Logits(ctx context.Context, s1 []int64) ([]float32, error) {
	step := len(s.s1Given)
	s.s1Given = append(s.s1Given, slices.Clone(s1))
	out := make([]float32, 0, len(s1)*s.v2)
	for r, id := range s1 {
		if len(s.windows[step][r].S1) == 0 {
			out = append(out, make([]float32, s.v2)...)
			continue
		}
		out = append(out, s.s2(step, r, id)...)
	}
	return out, nil
}

func (s *recSession) Close() error { s.closed = true; return nil }

func (s *recSession) LastHidden() []float32 { return s.hidden }

// oneHot returns logits of length v whose argmax is id (with a little
// structure elsewhere so that the argmax is not trivially index 0).
func oneHot(v int, id int64) []float32 {
	out := make([]float32, v)
	for i := range out {
		out[i] = float32(i%3) * 0.1
	}
	out[id] = 5
	return out
}

var greedyParams = Params{Temperature: 1, TopK: 1, TopP: 1, SampleCount: 1}

// testRow builds a seqRow with context ids ctxS1/ctxS2 and the given
// stamps, room for p generated tokens.
func testRow(ctxS1, ctxS2 []int64, stamps []int64, p int, params *Params) seqRow {
	l := len(ctxS1)
	r := seqRow{
		s1: make([]int64, l+p), s2: make([]int64, l+p),
		stamps: stamps, ctxLen: l, predLen: p, params: params, rng: rowRNG(params.Seed, 0),
	}
	copy(r.s1, ctxS1)
	copy(r.s2, ctxS2)
	return r
}

// TestLoopReplay feeds the loop the reference's own logits and checks every
// window (start, end, ids, stamps) against the reference and the generated
// ids against generated_s1/s2.
func TestLoopReplay(t *testing.T) {
	for _, ref := range []caseRef{
		{tinyCases, "tiny", "short"},
		{tinyCases, "tiny", "slide"},
		{tinyCases, "tiny", "long_ctx"},
		{tinyCases, "tiny-fixedte", "slide"},
		{tinyCases, "tiny", "batch3"},
		{tinyCases, "tiny", "samples3"},
		{nanoCases, "kronos-nano", "nano_slide"},
	} {
		t.Run(ref.String(), func(t *testing.T) {
			c := ref.load(t)
			mb := &c.ModelBatch
			v1, v2 := c.vocab()
			maxCtx := c.Params.MaxContext
			rows := make([]seqRow, mb.Rows)
			for r := range rows {
				rows[r] = testRow(mb.ContextS1[r], mb.ContextS2[r], c.fullStamps(mb.RowSeries[r]), c.Params.PredLen, &greedyParams)
			}
			sess := &recSession{
				v1: v1, v2: v2,
				s1: func(step, row int, w infer.Window) []float32 { return f32(mb.Steps[step].S1Logits[row]) },
				s2: func(step, row int, _ int64) []float32 { return f32(mb.Steps[step].S2Logits[row]) },
			}
			tr := &Trace{}
			lp := loop{sess: sess, rows: rows, maxContext: maxCtx, v1: v1, v2: v2, trace: tr}
			if err := lp.run(context.Background()); err != nil {
				t.Fatal(err)
			}
			if len(sess.windows) != len(mb.Steps) {
				t.Fatalf("%d S1Logits calls, want %d", len(sess.windows), len(mb.Steps))
			}
			for i, st := range mb.Steps {
				for r := range rows {
					wantS1, wantS2 := c.fullSeq(r)
					stamps := c.fullStamps(mb.RowSeries[r])
					begin, end := st.Window[0], st.Window[1]
					w := sess.windows[i][r]
					where := fmt.Sprintf("step %d row %d", i, r)
					if w.Start != begin || len(w.S1) != end-begin || len(w.S2) != end-begin {
						t.Fatalf("%s: window start %d len %d/%d, want [%d, %d)", where, w.Start, len(w.S1), len(w.S2), begin, end)
					}
					if !slices.Equal(w.S1, wantS1[begin:end]) || !slices.Equal(w.S2, wantS2[begin:end]) {
						t.Fatalf("%s: window ids differ from the reference sequence", where)
					}
					if !slices.Equal(w.Stamps, stamps[begin*5:end*5]) {
						t.Fatalf("%s: window stamps differ from the stamps of positions [%d, %d)", where, begin, end)
					}
					if tr.Steps[i].WindowStart[r] != begin || tr.Steps[i].WindowEnd[r] != end {
						t.Fatalf("%s: trace window [%d, %d), want [%d, %d)", where, tr.Steps[i].WindowStart[r], tr.Steps[i].WindowEnd[r], begin, end)
					}
					if tr.Steps[i].S1[r] != st.S1[r] || tr.Steps[i].S2[r] != st.S2[r] {
						t.Fatalf("%s: trace ids %d/%d, want %d/%d", where, tr.Steps[i].S1[r], tr.Steps[i].S2[r], st.S1[r], st.S2[r])
					}
				}
				if !slices.Equal(sess.s1Given[i], st.S1) {
					t.Fatalf("step %d: S2Logits got s1 %v, want %v", i, sess.s1Given[i], st.S1)
				}
			}
			for r := range rows {
				wantS1, wantS2 := c.fullSeq(r)
				if !slices.Equal(rows[r].s1, wantS1) || !slices.Equal(rows[r].s2, wantS2) {
					t.Fatalf("row %d: generated ids differ from generated_s1/s2", r)
				}
			}
			if !slices.Equal(tr.Hidden0, []float32{0, 1, 2}) {
				t.Errorf("Hidden0 = %v, want the step-0 LastHidden", tr.Hidden0)
			}
		})
	}
}

// winner is the id the fake predictor makes win for a row at a step.
func winner(step, row, v int, s2 bool) int64 {
	if s2 {
		return int64((step*5 + row*3 + 1) % v)
	}
	return int64((step*7 + row) % v)
}

// TestLoopMixedRows runs rows of different L and P (some finishing early,
// some sliding, one longer than max_context from the start) in one session.
func TestLoopMixedRows(t *testing.T) {
	const maxCtx, v1, v2 = 16, 8, 4
	specs := []struct{ l, p int }{
		{3, 2},  // finishes first
		{10, 9}, // starts sliding at step 6
		{20, 4}, // longer than max_context from the start
		{16, 1},
		{1, 12}, // longest
	}
	var rows []seqRow
	for k, sp := range specs {
		ctxS1 := make([]int64, sp.l)
		ctxS2 := make([]int64, sp.l)
		stamps := make([]int64, (sp.l+sp.p)*5)
		for i := range ctxS1 {
			ctxS1[i], ctxS2[i] = int64((i+k)%v1), int64((2*i+k)%v2)
		}
		for i := range stamps {
			stamps[i] = int64(1000*k + i)
		}
		rows = append(rows, testRow(ctxS1, ctxS2, stamps, sp.p, &greedyParams))
	}
	want := make([][]int64, len(rows)) // expected full s1 sequences
	for r := range rows {
		want[r] = slices.Clone(rows[r].s1[:specs[r].l])
		for i := range specs[r].p {
			want[r] = append(want[r], winner(i, r, v1, false))
		}
	}
	sess := &recSession{
		v1: v1, v2: v2,
		s1: func(step, row int, w infer.Window) []float32 { return oneHot(v1, winner(step, row, v1, false)) },
		s2: func(step, row int, s1 int64) []float32 {
			if s1 != winner(step, row, v1, false) {
				panic(fmt.Sprintf("step %d row %d: S2Logits given s1 %d", step, row, s1))
			}
			return oneHot(v2, winner(step, row, v2, true))
		},
	}
	tr := &Trace{}
	lp := loop{sess: sess, rows: rows, maxContext: maxCtx, v1: v1, v2: v2, trace: tr}
	if err := lp.run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(sess.windows) != 12 {
		t.Fatalf("%d steps, want 12 (the longest P)", len(sess.windows))
	}
	for step, ws := range sess.windows {
		for r, w := range ws {
			sp := specs[r]
			where := fmt.Sprintf("step %d row %d", step, r)
			if step >= sp.p {
				if len(w.S1) != 0 || len(w.S2) != 0 || len(w.Stamps) != 0 {
					t.Fatalf("%s: finished row got a non-empty window", where)
				}
				if tr.Steps[step].WindowStart[r] != -1 || tr.Steps[step].WindowEnd[r] != -1 || tr.Steps[step].S1[r] != -1 {
					t.Fatalf("%s: trace of a finished row not -1", where)
				}
				if sess.s1Given[step][r] != 0 {
					t.Fatalf("%s: finished row passed s1 %d, want 0", where, sess.s1Given[step][r])
				}
				continue
			}
			end := sp.l + step
			begin := max(0, end-maxCtx)
			if w.Start != begin || len(w.S1) != end-begin {
				t.Fatalf("%s: window [%d, %d), want [%d, %d)", where, w.Start, w.Start+len(w.S1), begin, end)
			}
			if !slices.Equal(w.S1, want[r][begin:end]) {
				t.Fatalf("%s: window s1 %v, want %v", where, w.S1, want[r][begin:end])
			}
			if !slices.Equal(w.Stamps, rows[r].stamps[begin*5:end*5]) || w.Stamps[0] != int64(1000*r+begin*5) {
				t.Fatalf("%s: stamps are not those of positions [%d, %d)", where, begin, end)
			}
		}
	}
	for r := range rows {
		if !slices.Equal(rows[r].s1, want[r]) {
			t.Errorf("row %d: s1 %v, want %v", r, rows[r].s1, want[r])
		}
		for i := range specs[r].p {
			if got := rows[r].s2[specs[r].l+i]; got != winner(i, r, v2, true) {
				t.Errorf("row %d step %d: s2 %d, want %d", r, i, got, winner(i, r, v2, true))
			}
		}
	}
}

func TestLoopCancel(t *testing.T) {
	tests := []struct {
		name      string
		ctx       func() (context.Context, context.CancelFunc)
		returnErr bool // the session itself fails with the context's error
		kind      infer.Kind
		calls     int
	}{
		{"canceled between steps", cancelable, false, infer.KindCanceled, 3},
		{"canceled inside the backend", cancelable, true, infer.KindCanceled, 2},
		{"deadline", expired, false, infer.KindTimeout, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := tt.ctx()
			defer cancel()
			rows := []seqRow{testRow([]int64{1, 2}, []int64{0, 1}, make([]int64, 7*5), 5, &greedyParams)}
			sess := &recSession{
				v1: 4, v2: 4,
				s1: func(step, row int, _ infer.Window) []float32 { return oneHot(4, 1) },
				s2: func(step, row int, _ int64) []float32 { return oneHot(4, 2) },
				before: func(ctx context.Context, step int) error {
					if step == 2 {
						cancel()
						if tt.returnErr {
							return fmt.Errorf("backend: %w", ctx.Err())
						}
					}
					return nil
				},
			}
			lp := loop{sess: sess, rows: rows, maxContext: 8, v1: 4, v2: 4}
			err := lp.run(ctx)
			if infer.KindOf(err) != tt.kind {
				t.Fatalf("err = %v (kind %q), want kind %q", err, infer.KindOf(err), tt.kind)
			}
			if len(sess.windows) != tt.calls {
				t.Errorf("%d completed S1Logits calls, want %d", len(sess.windows), tt.calls)
			}
		})
	}
}

func cancelable() (context.Context, context.CancelFunc) {
	return context.WithCancel(context.Background())
}

func expired() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithDeadlineCause(context.Background(), zeroTime, errors.New("test deadline"))
	return ctx, cancel
}

func TestLoopBackendFailures(t *testing.T) {
	unavailable := infer.Errorf(infer.KindUnavailable, "backend down")
	tests := []struct {
		name string
		sess *recSession
		kind infer.Kind
	}{
		{"error keeps its kind", &recSession{v1: 4, v2: 4,
			before: func(context.Context, int) error { return unavailable }}, infer.KindUnavailable},
		{"unclassified error is internal", &recSession{v1: 4, v2: 4,
			before: func(context.Context, int) error { return errors.New("boom") }}, infer.KindInternal},
		{"short logits", &recSession{v1: 4, v2: 4,
			s1: func(int, int, infer.Window) []float32 { return []float32{1} }}, infer.KindInternal},
		{"NaN s2 logits", &recSession{v1: 4, v2: 4,
			s1: func(int, int, infer.Window) []float32 { return oneHot(4, 1) },
			s2: func(int, int, int64) []float32 { return []float32{0, nan32(), 1, 2} }}, infer.KindInternal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rows := []seqRow{testRow([]int64{1}, []int64{0}, make([]int64, 3*5), 2, &greedyParams)}
			lp := loop{sess: tt.sess, rows: rows, maxContext: 8, v1: 4, v2: 4}
			err := lp.run(context.Background())
			if infer.KindOf(err) != tt.kind {
				t.Fatalf("err = %v (kind %q), want %q", err, infer.KindOf(err), tt.kind)
			}
		})
	}
}

// zeroTime is a deadline long past.
var zeroTime = time.Unix(0, 0)

func nan32() float32 { return float32(math.NaN()) }
