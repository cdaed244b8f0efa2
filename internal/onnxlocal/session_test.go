package onnxlocal

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/kronos-gateway/kronos-gateway/internal/infer"
)

// sessionCases are fed step by step to a Session.
var sessionCases = []struct {
	conf confConfig
	name string
}{
	{tinyConf, "short"},
	{tinyConf, "slide"},
	{tinyConf, "long_ctx"},
	{tinyConf, "batch3"},
	{tinyConf, "samples3"},
	{nanoConf, "nano_short"},
	{nanoConf, "nano_slide"},
}

// runCase feeds every step's reference windows and chosen s1 ids to a new
// session and returns the logits of every step, [step][rows*V].
func runCase(ctx context.Context, b *Backend, cc *confCase) (s1, s2 [][]float32, hidden0 []float32, err error) {
	s, err := b.OpenSession(ctx, cc.ModelBatch.Rows)
	if err != nil {
		return nil, nil, nil, err
	}
	defer s.Close()
	return feedCase(ctx, s, cc)
}

// feedCase runs every step of a case on an open session.
func feedCase(ctx context.Context, s *Session, cc *confCase) (s1, s2 [][]float32, hidden0 []float32, err error) {
	mb := &cc.ModelBatch
	for i, st := range mb.Steps {
		ws := make([]infer.Window, mb.Rows)
		for r := range ws {
			ws[r] = cc.window(r, i)
		}
		l1, err := s.S1Logits(ctx, ws)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("step %d: S1Logits: %w", i, err)
		}
		if i == 0 {
			hidden0 = s.LastHidden()
		}
		l2, err := s.S2Logits(ctx, st.S1)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("step %d: S2Logits: %w", i, err)
		}
		s1, s2 = append(s1, l1), append(s2, l2)
	}
	return s1, s2, hidden0, nil
}

func TestSessionConformance(t *testing.T) {
	for _, tc := range sessionCases {
		for _, noKV := range []bool{false, true} {
			name := fmt.Sprintf("%s/%s/kv=%v", tc.conf.name, tc.name, !noKV)
			t.Run(name, func(t *testing.T) {
				b := openConf(t, tc.conf, Options{DisableKVCache: noKV})
				cc := loadCase(t, tc.conf, tc.name)
				if cc.Params.MaxContext != tc.conf.maxContext {
					t.Fatalf("case max_context %d, config %d", cc.Params.MaxContext, tc.conf.maxContext)
				}
				s, err := b.OpenSession(context.Background(), cc.ModelBatch.Rows)
				if err != nil {
					t.Fatal(err)
				}
				defer s.Close()
				s1, s2, h0, err := feedCase(context.Background(), s, cc)
				if err != nil {
					t.Fatal(err)
				}
				want := expectedStats(cc, noKV)
				if got := s.Stats(); got != want {
					t.Errorf("Stats() = %+v, want %+v", got, want)
				}
				checkClose(t, "initial_context_hidden_last", h0, flat2(cc.ModelBatch.InitialHidden), 1e-4)
				for i, st := range cc.ModelBatch.Steps {
					checkClose(t, fmt.Sprintf("steps[%d].s1_logits", i), s1[i], flat2(st.S1Logits), 1e-4)
					checkClose(t, fmt.Sprintf("steps[%d].s2_logits", i), s2[i], flat2(st.S2Logits), 1e-4)
					if t.Failed() {
						t.Fatalf("first failing step: %d (window %v)", i, st.Window)
					}
				}
			})
		}
	}
}

// expectedStats counts the graph calls a session should make for a case:
// a prefill at the first step and whenever the window start moves, a step
// otherwise (every step is a prefill without the cache).
func expectedStats(cc *confCase, noKV bool) SessionStats {
	var st SessionStats
	rows := cc.ModelBatch.Rows
	for i, step := range cc.ModelBatch.Steps {
		if noKV || i == 0 || step.Window[0] != cc.ModelBatch.Steps[i-1].Window[0] {
			st.PrefillCalls++
			st.PrefillRows += rows
		} else {
			st.StepCalls++
			st.StepRows += rows
		}
	}
	return st
}

// TestSessionRestart reuses one session for a second forecast whose windows
// are shorter than the first one's: the cache must be reset, not extended.
func TestSessionRestart(t *testing.T) {
	for _, noKV := range []bool{false, true} {
		t.Run(fmt.Sprintf("kv=%v", !noKV), func(t *testing.T) {
			b := openConf(t, tinyConf, Options{DisableKVCache: noKV})
			ctx := context.Background()
			s, err := b.OpenSession(ctx, 1)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			for _, name := range []string{"slide", "short", "short"} {
				cc := loadCase(t, tinyConf, name)
				s1, s2, _, err := feedCase(ctx, s, cc)
				if err != nil {
					t.Fatal(err)
				}
				for i, st := range cc.ModelBatch.Steps {
					checkClose(t, fmt.Sprintf("%s steps[%d].s1_logits", name, i), s1[i], flat2(st.S1Logits), 1e-4)
					checkClose(t, fmt.Sprintf("%s steps[%d].s2_logits", name, i), s2[i], flat2(st.S2Logits), 1e-4)
				}
				if t.Failed() {
					t.FailNow()
				}
			}
		})
	}
}

// TestSessionMixedRows runs three cases of one config as the rows of one
// session, so that calls mix stepping rows, prefilled rows of different
// lengths, a prefilled row between two stepping rows, and finished rows.
func TestSessionMixedRows(t *testing.T) {
	// short: 48 -> 12 steps (steps throughout); long_ctx: 80 -> 10 steps
	// (window slides from the start: a prefill at every step); slide:
	// 56 -> 16 steps (steps, then slides for the last 8).
	names := []string{"short", "long_ctx", "slide"}
	for _, tc := range []struct {
		name string
		noKV bool
		mode int
	}{
		{"kv=true/layout=auto", false, stepAuto},
		{"kv=true/layout=span", false, stepSpan},
		{"kv=true/layout=gather", false, stepGather},
		{"kv=false", true, stepAuto},
	} {
		noKV := tc.noKV
		t.Run(tc.name, func(t *testing.T) {
			b := openConf(t, tinyConf, Options{DisableKVCache: noKV})
			b.stepMode = tc.mode
			ccs := make([]*confCase, len(names))
			steps := 0
			for i, n := range names {
				ccs[i] = loadCase(t, tinyConf, n)
				steps = max(steps, len(ccs[i].ModelBatch.Steps))
			}
			ctx := context.Background()
			s, err := b.OpenSession(ctx, len(names))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			v1, v2 := 1<<b.Info().S1Bits, 1<<b.Info().S2Bits
			// Expected graph calls: per step, one prefill call if any row
			// prefills and one step call if any row steps.
			var want SessionStats
			for i := range steps {
				pre, stp := 0, 0
				for _, cc := range ccs {
					if i >= len(cc.ModelBatch.Steps) {
						continue
					}
					if noKV || i == 0 || cc.ModelBatch.Steps[i].Window[0] != cc.ModelBatch.Steps[i-1].Window[0] {
						pre++
					} else {
						stp++
					}
				}
				want.PrefillRows += pre
				want.StepRows += stp
				if pre > 0 {
					want.PrefillCalls++
				}
				if stp > 0 {
					want.StepCalls++
					if tc.mode == stepGather {
						want.GatheredSteps++
					}
				}
			}
			for i := range steps {
				ws := make([]infer.Window, len(names))
				s1 := make([]int64, len(names))
				for r, cc := range ccs {
					if i < len(cc.ModelBatch.Steps) {
						ws[r] = cc.window(0, i)
						s1[r] = cc.ModelBatch.Steps[i].S1[0]
					} else {
						s1[r] = 99 // ignored for a finished row
					}
				}
				l1, err := s.S1Logits(ctx, ws)
				if err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
				l2, err := s.S2Logits(ctx, s1)
				if err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
				for r, cc := range ccs {
					w1, w2 := make([]float32, v1), make([]float32, v2) // finished rows stay zero
					if i < len(cc.ModelBatch.Steps) {
						w1, w2 = cc.ModelBatch.Steps[i].S1Logits[0], cc.ModelBatch.Steps[i].S2Logits[0]
					}
					checkClose(t, fmt.Sprintf("step %d row %d (%s) s1_logits", i, r, names[r]), l1[r*v1:(r+1)*v1], w1, 1e-4)
					checkClose(t, fmt.Sprintf("step %d row %d (%s) s2_logits", i, r, names[r]), l2[r*v2:(r+1)*v2], w2, 1e-4)
				}
				if t.Failed() {
					t.FailNow()
				}
			}
			if got := s.Stats(); got != want {
				t.Errorf("Stats() = %+v, want %+v", got, want)
			}
			if !noKV && (want.StepCalls == 0 || want.PrefillCalls <= 1) {
				t.Errorf("the cases no longer mix steps and prefills: %+v", want)
			}
		})
	}
}

func TestUseGather(t *testing.T) {
	win := func(n int) infer.Window { return infer.Window{S1: make([]int64, n)} }
	for _, tc := range []struct {
		name string
		mode int
		rows []int
		ws   []infer.Window
		want bool
	}{
		{"contiguous", stepAuto, []int{1, 2}, []infer.Window{{}, win(100), win(100)}, false},
		{"one dummy, long rows", stepAuto, []int{0, 2}, []infer.Window{win(300), {}, win(300)}, false},
		{"many dummies, short rows", stepAuto, []int{0, 5}, []infer.Window{win(11), {}, {}, {}, {}, win(11)}, true},
		{"forced span", stepSpan, []int{0, 5}, []infer.Window{win(11), {}, {}, {}, {}, win(11)}, false},
		{"forced gather", stepGather, []int{1, 2}, []infer.Window{{}, win(100), win(100)}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &Session{b: &Backend{stepMode: tc.mode}, d: dims{c: 64}, stepRows: tc.rows}
			if got := s.useGather(tc.ws); got != tc.want {
				t.Errorf("useGather = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestSessionsConcurrent runs several sessions of one backend at once; each
// must give exactly the result of a session run alone.
func TestSessionsConcurrent(t *testing.T) {
	b := openConf(t, tinyConf, Options{})
	names := []string{"short", "slide", "batch3", "short"}
	ctx := context.Background()
	type result struct{ s1, s2 [][]float32 }
	alone := map[string]result{}
	for _, n := range names {
		s1, s2, _, err := runCase(ctx, b, loadCase(t, tinyConf, n))
		if err != nil {
			t.Fatal(err)
		}
		alone[n] = result{s1, s2}
	}
	got := make([]result, len(names))
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, n := range names {
		wg.Go(func() {
			s1, s2, _, err := runCase(ctx, b, loadCase(t, tinyConf, n))
			got[i], errs[i] = result{s1, s2}, err
		})
	}
	wg.Wait()
	for i, n := range names {
		if errs[i] != nil {
			t.Fatalf("%s: %v", n, errs[i])
		}
		for st := range got[i].s1 {
			if !slices.Equal(got[i].s1[st], alone[n].s1[st]) || !slices.Equal(got[i].s2[st], alone[n].s2[st]) {
				t.Errorf("%s (session %d): step %d differs from the same case run alone", n, i, st)
			}
		}
	}
}

func TestSessionErrors(t *testing.T) {
	b := openConf(t, tinyConf, Options{})
	cc := loadCase(t, tinyConf, "short")
	ctx := context.Background()
	good := cc.window(0, 0)
	long := cc.window(0, 0)
	for len(long.S1) <= 64 {
		long.S1, long.S2, long.Stamps = append(long.S1, 0), append(long.S2, 0), append(long.Stamps, 0, 0, 0, 1, 1)
	}
	badStamp := cc.window(0, 0)
	badStamp.Stamps = slices.Clone(badStamp.Stamps)
	badStamp.Stamps[4] = 13 // month 13 does not exist
	short := cc.window(0, 0)
	short.S2 = short.S2[:3]
	for _, tc := range []struct {
		name string
		ws   []infer.Window
	}{
		{"row count", []infer.Window{good, good}},
		{"too long", []infer.Window{long}},
		{"stamp range", []infer.Window{badStamp}},
		{"ragged", []infer.Window{short}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := b.NewSession(ctx, 1)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if _, err := s.S1Logits(ctx, tc.ws); infer.KindOf(err) != infer.KindInvalid {
				t.Errorf("S1Logits: %v, want kind %q", err, infer.KindInvalid)
			}
		})
	}
	t.Run("s2 before s1", func(t *testing.T) {
		s, err := b.NewSession(ctx, 1)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if _, err := s.S2Logits(ctx, []int64{0}); infer.KindOf(err) != infer.KindInvalid {
			t.Errorf("S2Logits: %v, want kind %q", err, infer.KindInvalid)
		}
	})
}
