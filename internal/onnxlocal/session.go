package onnxlocal

import (
	"context"
	"slices"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/kronos-gateway/kronos-gateway/internal/graphs"
	"github.com/kronos-gateway/kronos-gateway/internal/infer"
)

// Session is the predictor state of one batch of rows: per-row KV caches in
// Go memory and the hidden state of the last S1Logits call. It implements
// infer.Session and infer.HiddenReporter and is not safe for concurrent use.
type Session struct {
	b    *Backend
	d    dims
	rows int
	kv   bool
	ro   *ort.RunOptions

	// Caches; row r occupies [r*rowKV, (r+1)*rowKV) of every layer's keys
	// [rows,H,hd,C] and values [rows,H,C,hd] (nil with DisableKVCache), and
	// [r*rowDep, (r+1)*rowDep) of depK [rows,G,gd,C] and depV [rows,G,C,gd].
	keys, values [][]float32
	depK, depV   []float32
	rowKV        int
	rowDep       int

	hidden []float32 // [rows,d] at the last position of the last S1Logits call
	state  []rowState
	called bool // S1Logits has succeeded at least once
	closed bool
	stats  SessionStats

	// Reused scratch buffers.
	tl               tensorList
	prefillRows      []int
	stepRows         []int
	graphRows        []int // session row of each row of a step call, -1 for a dummy
	gatherK, gatherV [][]float32
	ids1, ids2       []int64
	stamps           []int64
	idx              []int64
	outs             [][]float32 // one per output of the prefill/step graphs
	s2out            []float32
}

// SessionStats counts the graph calls of a session: how often the cache
// could be used.
type SessionStats struct {
	PrefillCalls int // prefill graph runs
	PrefillRows  int // rows computed by them
	StepCalls    int // step graph runs
	StepRows     int // rows computed by them (excluding dummy rows)
	// GatheredSteps counts the step runs whose rows were gathered into a
	// scratch buffer rather than run in place.
	GatheredSteps int
}

// Stats returns the session's counters.
func (s *Session) Stats() SessionStats { return s.stats }

// rowState is what the session knows about one row.
type rowState struct {
	active bool // the row's window at the last S1Logits call was non-empty
	// n is the number of valid cache entries (the last window's length);
	// the dependency cache is always valid for the last window.
	n int
	// valid reports that the KV cache holds the keys and values of the
	// window (start, s1, s2, stamps); only then may the next call step.
	valid          bool
	start          int
	s1, s2, stamps []int64
	// hw bounds the cache entries that may be non-zero: [0, hw).
	hw int
}

var (
	_ infer.Session        = (*Session)(nil)
	_ infer.HiddenReporter = (*Session)(nil)
)

// NewSession opens a predictor session for rows rows. It allocates the KV
// caches up front: rows * (2*NL + 2) * d * MaxContext float32 values (only
// the 2 dependency caches with DisableKVCache).
func (b *Backend) NewSession(ctx context.Context, rows int) (infer.Session, error) {
	return b.OpenSession(ctx, rows)
}

// OpenSession is NewSession with the concrete type.
func (b *Backend) OpenSession(ctx context.Context, rows int) (*Session, error) {
	if err := ctx.Err(); err != nil {
		return nil, infer.FromContext(err)
	}
	if rows <= 0 {
		return nil, infer.Errorf(infer.KindInvalid, "onnxlocal: session with %d rows", rows)
	}
	b.mu.RLock()
	closed := b.closed
	b.mu.RUnlock()
	if closed {
		return nil, infer.Errorf(infer.KindUnavailable, "onnxlocal: backend %s version %s is closed", b.info.Name, b.info.Version)
	}
	ro, err := ort.NewRunOptions()
	if err != nil {
		return nil, infer.Wrap(infer.KindInternal, err, "onnxlocal: run options")
	}
	d := b.dims
	s := &Session{
		b: b, d: d, rows: rows, kv: !b.opt.DisableKVCache, ro: ro,
		rowKV:  d.h * d.hd * d.c,
		rowDep: d.g * d.gd * d.c,
		hidden: make([]float32, rows*d.d),
		state:  make([]rowState, rows),
		outs:   make([][]float32, 2*d.nl+4),
	}
	s.depK = make([]float32, rows*s.rowDep)
	s.depV = make([]float32, rows*s.rowDep)
	if s.kv {
		s.keys = make([][]float32, d.nl)
		s.values = make([][]float32, d.nl)
		for l := range d.nl {
			s.keys[l] = make([]float32, rows*s.rowKV)
			s.values[l] = make([]float32, rows*s.rowKV)
		}
	}
	return s, nil
}

// Close releases the session's buffers and ORT objects. It is idempotent.
func (s *Session) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	s.tl.destroy()
	s.ro.Destroy()
	s.keys, s.values, s.depK, s.depV, s.hidden, s.state, s.outs = nil, nil, nil, nil, nil, nil, nil
	return nil
}

// LastHidden returns the predictor's final-norm hidden state [rows][d] at
// the last position of every window of the last S1Logits call (zero for
// rows that were skipped).
func (s *Session) LastHidden() []float32 {
	out := make([]float32, s.rows*s.d.d)
	if s.closed {
		return out
	}
	for r := range s.rows {
		if s.state[r].active {
			copy(out[r*s.d.d:(r+1)*s.d.d], s.hidden[r*s.d.d:])
		}
	}
	return out
}

// invalidate forgets every cache, so the next call prefills every row.
func (s *Session) invalidate() {
	for r := range s.state {
		s.state[r].valid = false
		s.state[r].active = false
	}
	s.called = false
}

// checkWindows validates the windows of one S1Logits call.
func (s *Session) checkWindows(ws []infer.Window) error {
	if len(ws) != s.rows {
		return infer.Errorf(infer.KindInvalid, "onnxlocal: %d windows for a session of %d rows", len(ws), s.rows)
	}
	for r, w := range ws {
		n := len(w.S1)
		if len(w.S2) != n || len(w.Stamps) != n*infer.StampWidth {
			return infer.Errorf(infer.KindInvalid, "onnxlocal: window %d: %d s1, %d s2 ids and %d stamp values", r, n, len(w.S2), len(w.Stamps))
		}
		if n > s.d.c {
			return infer.Errorf(infer.KindInvalid, "onnxlocal: window %d has %d tokens, max context is %d", r, n, s.d.c)
		}
		if w.Start < 0 {
			return infer.Errorf(infer.KindInvalid, "onnxlocal: window %d starts at %d", r, w.Start)
		}
	}
	return nil
}

// canStep reports whether window w of row r extends the cached window by
// exactly one token.
func (s *Session) canStep(r int, w infer.Window) bool {
	st := &s.state[r]
	n := st.n
	return s.kv && st.valid && w.Start == st.start && len(w.S1) == n+1 && n > 0 &&
		slices.Equal(w.S1[:n], st.s1) && slices.Equal(w.S2[:n], st.s2) &&
		slices.Equal(w.Stamps[:n*infer.StampWidth], st.stamps)
}

// S1Logits returns the s1 logits [rows][2^S1Bits] at the last position of
// every window. See the package documentation for how rows are computed.
func (s *Session) S1Logits(ctx context.Context, windows []infer.Window) ([]float32, error) {
	if s.closed {
		return nil, infer.Errorf(infer.KindUnavailable, "onnxlocal: session is closed")
	}
	if err := ctx.Err(); err != nil {
		return nil, infer.FromContext(err)
	}
	if err := s.checkWindows(windows); err != nil {
		return nil, err
	}
	s.prefillRows, s.stepRows = s.prefillRows[:0], s.stepRows[:0]
	for r, w := range windows {
		switch {
		case len(w.S1) == 0:
		case s.canStep(r, w):
			s.stepRows = append(s.stepRows, r)
		default:
			s.prefillRows = append(s.prefillRows, r)
		}
	}
	// Validate only what the graphs will read: the new token of a stepping
	// row (its prefix was validated when it was first fed), every token of
	// a prefilled row.
	for _, r := range s.stepRows {
		w := windows[r]
		n := len(w.S1)
		if err := s.checkToken(r, w, n-1); err != nil {
			return nil, err
		}
	}
	for _, r := range s.prefillRows {
		w := windows[r]
		if err := checkIDs("s1", w.S1, s.d.v1); err != nil {
			return nil, err
		}
		if err := checkIDs("s2", w.S2, s.d.v2); err != nil {
			return nil, err
		}
		if err := checkStamps("stamps", w.Stamps); err != nil {
			return nil, err
		}
	}

	res := make([]float32, s.rows*s.d.v1)
	s.b.mu.RLock()
	defer s.b.mu.RUnlock()
	if len(s.prefillRows) > 0 {
		if err := s.prefill(ctx, windows, res); err != nil {
			s.invalidate()
			return nil, err
		}
	}
	if len(s.stepRows) > 0 {
		if err := s.step(ctx, windows, res); err != nil {
			s.invalidate()
			return nil, err
		}
	}
	for r, w := range windows {
		s.state[r].active = len(w.S1) > 0
	}
	s.called = true
	return res, nil
}

// checkToken validates position i of row r's window.
func (s *Session) checkToken(r int, w infer.Window, i int) error {
	if err := checkIDs("s1", w.S1[i:i+1], s.d.v1); err != nil {
		return err
	}
	if err := checkIDs("s2", w.S2[i:i+1], s.d.v2); err != nil {
		return err
	}
	return checkStamps("stamps", w.Stamps[i*infer.StampWidth:(i+1)*infer.StampWidth])
}

// grow returns buf resized to n elements, reallocating only when needed.
// The contents are unspecified.
func grow[T any](buf []T, n int) []T {
	if cap(buf) < n {
		return make([]T, n)
	}
	return buf[:n]
}

// prefill runs the prefill graph over the rows in s.prefillRows and loads
// their caches.
func (s *Session) prefill(ctx context.Context, ws []infer.Window, res []float32) error {
	d := s.d
	bp := len(s.prefillRows)
	t := 0
	for _, r := range s.prefillRows {
		t = max(t, len(ws[r].S1))
	}
	s.ids1 = grow(s.ids1, bp*t)
	s.ids2 = grow(s.ids2, bp*t)
	s.stamps = grow(s.stamps, bp*t*infer.StampWidth)
	s.idx = grow(s.idx, bp)
	clear(s.ids1)
	clear(s.ids2)
	clear(s.stamps)
	for i, r := range s.prefillRows {
		w := ws[r]
		copy(s.ids1[i*t:], w.S1)
		copy(s.ids2[i*t:], w.S2)
		copy(s.stamps[i*t*infer.StampWidth:], w.Stamps)
		s.idx[i] = int64(len(w.S1) - 1)
	}
	B, T := int64(bp), int64(t)
	tl := &s.tl
	defer tl.destroy()
	in := []ort.Value{
		tl.i64(ort.NewShape(B, T), s.ids1),
		tl.i64(ort.NewShape(B, T), s.ids2),
		tl.i64(ort.NewShape(B, T, infer.StampWidth), s.stamps),
		tl.i64(ort.NewShape(B), s.idx),
	}
	out := s.outputs(bp, t)
	if tl.err != nil {
		return tl.err
	}
	if err := s.b.run(ctx, graphs.Prefill, s.ro, in, out); err != nil {
		return err
	}
	s.stats.PrefillCalls++
	s.stats.PrefillRows += bp
	logits, hid := s.outs[0], s.outs[1]
	for i, r := range s.prefillRows {
		w := ws[r]
		n := len(w.S1)
		copy(res[r*d.v1:(r+1)*d.v1], logits[i*d.v1:])
		copy(s.hidden[r*d.d:(r+1)*d.d], hid[i*d.d:(i+1)*d.d])
		st := &s.state[r]
		// A full window can never be extended by one token (the next one
		// slides), so its keys and values are not worth caching.
		keep := s.kv && n < d.c
		if keep {
			kvOff, kvLen := i*d.h*t*d.hd, d.h*t*d.hd
			for l := range d.nl {
				kc := s.keys[l][r*s.rowKV : (r+1)*s.rowKV]
				vc := s.values[l][r*s.rowKV : (r+1)*s.rowKV]
				putKeys(kc, s.outs[2+2*l][kvOff:kvOff+kvLen], d.h, d.hd, t, d.c, n)
				putValues(vc, s.outs[3+2*l][kvOff:kvOff+kvLen], d.h, d.hd, t, d.c, n)
				if st.hw > n {
					zeroKeys(kc, d.h, d.hd, d.c, n, st.hw)
					zeroValues(vc, d.h, d.hd, d.c, n, st.hw)
				}
			}
		}
		depOff, depLen := i*d.g*t*d.gd, d.g*t*d.gd
		dk := s.depK[r*s.rowDep : (r+1)*s.rowDep]
		dv := s.depV[r*s.rowDep : (r+1)*s.rowDep]
		putKeys(dk, s.outs[2+2*d.nl][depOff:depOff+depLen], d.g, d.gd, t, d.c, n)
		putValues(dv, s.outs[3+2*d.nl][depOff:depOff+depLen], d.g, d.gd, t, d.c, n)
		if st.hw > n {
			zeroKeys(dk, d.g, d.gd, d.c, n, st.hw)
			zeroValues(dv, d.g, d.gd, d.c, n, st.hw)
		}
		st.n, st.hw = n, n
		st.valid = keep
		st.start = w.Start
		if keep {
			st.s1 = append(st.s1[:0], w.S1...)
			st.s2 = append(st.s2[:0], w.S2...)
			st.stamps = append(st.stamps[:0], w.Stamps...)
		}
	}
	return nil
}

// outputs builds the output tensors shared by the prefill (t > 0:
// per-position keys/values [b,heads,t,size]) and step (t == 0: [b,heads,size])
// graphs over the session's scratch buffers.
func (s *Session) outputs(b, t int) []ort.Value {
	d := s.d
	B := int64(b)
	f := func(k int, shape ort.Shape) ort.Value {
		s.outs[k] = grow(s.outs[k], int(shape.FlattenedSize()))
		return s.tl.f32(shape, s.outs[k])
	}
	kv := func(heads, size int) ort.Shape {
		if t > 0 {
			return ort.NewShape(B, int64(heads), int64(t), int64(size))
		}
		return ort.NewShape(B, int64(heads), int64(size))
	}
	out := make([]ort.Value, 0, len(s.outs))
	out = append(out, f(0, ort.NewShape(B, int64(d.v1))), f(1, ort.NewShape(B, int64(d.d))))
	for l := range d.nl {
		out = append(out, f(2+2*l, kv(d.h, d.hd)), f(3+2*l, kv(d.h, d.hd)))
	}
	out = append(out, f(2+2*d.nl, kv(d.g, d.gd)), f(3+2*d.nl, kv(d.g, d.gd)))
	return out
}

// span returns the smallest range [lo, hi] holding every row in rows
// (sorted ascending, non-empty).
func span(rows []int) (lo, hi int) { return rows[0], rows[len(rows)-1] }

// Step layouts: how the rows of one step call are laid out for the graph.
const (
	stepAuto   = iota // choose by cost (useGather)
	stepSpan          // the cache rows [lo, hi] in place, dummies between
	stepGather        // the stepping rows copied into a gather buffer
)

// useGather decides the layout of a step call. The span layout costs a
// dummy row a full read of its cache (capacity C per layer) inside the
// graph; the gather layout costs every stepping row a copy of its valid
// entries (a read and a write of n per layer). Gather when that is cheaper.
func (s *Session) useGather(ws []infer.Window) bool {
	switch s.b.stepMode {
	case stepSpan:
		return false
	case stepGather:
		return true
	}
	lo, hi := span(s.stepRows)
	dummies := hi - lo + 1 - len(s.stepRows)
	if dummies == 0 {
		return false
	}
	copied := 0
	for _, r := range s.stepRows {
		copied += len(ws[r].S1) - 1
	}
	return dummies*s.d.c > 2*copied
}

// step runs the step graph for the rows in s.stepRows and appends the new
// keys/values to their caches. Usually the graph runs directly on the cache
// rows [lo, hi] (zero copy), rows of the range that do not step getting a
// dummy token (ids 0, position 0) whose outputs are dropped; when those
// dummies would cost more than copying, the stepping rows' caches are
// gathered into a scratch buffer instead (see useGather).
func (s *Session) step(ctx context.Context, ws []infer.Window, res []float32) error {
	d := s.d
	gather := s.useGather(ws)
	s.graphRows = s.graphRows[:0]
	if gather {
		s.graphRows = append(s.graphRows, s.stepRows...)
	} else {
		lo, hi := span(s.stepRows)
		for r := lo; r <= hi; r++ {
			s.graphRows = append(s.graphRows, -1)
		}
		for _, r := range s.stepRows {
			s.graphRows[r-lo] = r
		}
	}
	k := len(s.graphRows)
	s.ids1 = grow(s.ids1, k)
	s.ids2 = grow(s.ids2, k)
	s.stamps = grow(s.stamps, k*infer.StampWidth)
	s.idx = grow(s.idx, k)
	clear(s.ids1)
	clear(s.ids2)
	clear(s.stamps)
	clear(s.idx)
	for i, r := range s.graphRows {
		if r < 0 {
			continue
		}
		w := ws[r]
		p := len(w.S1) - 1
		s.ids1[i], s.ids2[i] = w.S1[p], w.S2[p]
		copy(s.stamps[i*infer.StampWidth:(i+1)*infer.StampWidth], w.Stamps[p*infer.StampWidth:])
		s.idx[i] = int64(p)
	}
	K := int64(k)
	tl := &s.tl
	defer tl.destroy()
	in := []ort.Value{
		tl.i64(ort.NewShape(K), s.ids1),
		tl.i64(ort.NewShape(K), s.ids2),
		tl.i64(ort.NewShape(K, infer.StampWidth), s.stamps),
		tl.i64(ort.NewShape(K), s.idx),
	}
	H, hd, C := int64(d.h), int64(d.hd), int64(d.c)
	for l := range d.nl {
		var kc, vc []float32
		if gather {
			kc, vc = s.gatherLayer(l)
		} else {
			lo := s.graphRows[0]
			kc, vc = s.keys[l][lo*s.rowKV:(lo+k)*s.rowKV], s.values[l][lo*s.rowKV:(lo+k)*s.rowKV]
		}
		in = append(in, tl.f32(ort.NewShape(K, H, hd, C), kc), tl.f32(ort.NewShape(K, H, C, hd), vc))
	}
	out := s.outputs(k, 0)
	if tl.err != nil {
		return tl.err
	}
	if err := s.b.run(ctx, graphs.Step, s.ro, in, out); err != nil {
		return err
	}
	s.stats.StepCalls++
	s.stats.StepRows += len(s.stepRows)
	if gather {
		s.stats.GatheredSteps++
	}
	logits, hid := s.outs[0], s.outs[1]
	for i, r := range s.graphRows {
		if r < 0 {
			continue
		}
		w := ws[r]
		p := int(s.idx[i])
		copy(res[r*d.v1:(r+1)*d.v1], logits[i*d.v1:])
		copy(s.hidden[r*d.d:(r+1)*d.d], hid[i*d.d:(i+1)*d.d])
		kvOff, kvLen := i*d.h*d.hd, d.h*d.hd
		for l := range d.nl {
			setKey(s.keys[l][r*s.rowKV:(r+1)*s.rowKV], s.outs[2+2*l][kvOff:kvOff+kvLen], d.h, d.hd, d.c, p)
			setValue(s.values[l][r*s.rowKV:(r+1)*s.rowKV], s.outs[3+2*l][kvOff:kvOff+kvLen], d.h, d.hd, d.c, p)
		}
		depOff, depLen := i*d.g*d.gd, d.g*d.gd
		setKey(s.depK[r*s.rowDep:(r+1)*s.rowDep], s.outs[2+2*d.nl][depOff:depOff+depLen], d.g, d.gd, d.c, p)
		setValue(s.depV[r*s.rowDep:(r+1)*s.rowDep], s.outs[3+2*d.nl][depOff:depOff+depLen], d.g, d.gd, d.c, p)
		st := &s.state[r]
		st.n = p + 1
		st.hw = max(st.hw, p+1)
		st.s1 = append(st.s1, w.S1[p])
		st.s2 = append(st.s2, w.S2[p])
		st.stamps = append(st.stamps, w.Stamps[p*infer.StampWidth:(p+1)*infer.StampWidth]...)
	}
	return nil
}

// gatherLayer copies the valid cache entries of layer l of every row in
// s.graphRows into the gather buffers and returns them ([k,H,hd,C] keys,
// [k,H,C,hd] values). Entries past a row's length keep whatever finite
// values the buffer held; the step graph masks them.
func (s *Session) gatherLayer(l int) (keys, values []float32) {
	d := s.d
	k := len(s.graphRows)
	if len(s.gatherK) < d.nl {
		s.gatherK, s.gatherV = make([][]float32, d.nl), make([][]float32, d.nl)
	}
	if len(s.gatherK[l]) < k*s.rowKV {
		s.gatherK[l], s.gatherV[l] = make([]float32, k*s.rowKV), make([]float32, k*s.rowKV)
	}
	keys, values = s.gatherK[l][:k*s.rowKV], s.gatherV[l][:k*s.rowKV]
	for i, r := range s.graphRows {
		n := s.state[r].n
		src, dst := s.keys[l][r*s.rowKV:(r+1)*s.rowKV], keys[i*s.rowKV:(i+1)*s.rowKV]
		for he := range d.h * d.hd {
			copy(dst[he*d.c:he*d.c+n], src[he*d.c:he*d.c+n])
		}
		src, dst = s.values[l][r*s.rowKV:(r+1)*s.rowKV], values[i*s.rowKV:(i+1)*s.rowKV]
		for h := range d.h {
			copy(dst[h*d.c*d.hd:(h*d.c+n)*d.hd], src[h*d.c*d.hd:(h*d.c+n)*d.hd])
		}
	}
	return keys, values
}

// S2Logits returns the s2 logits [rows][2^S2Bits] given the s1 id chosen for
// every row at the last S1Logits call; rows skipped there are left zero.
func (s *Session) S2Logits(ctx context.Context, s1 []int64) ([]float32, error) {
	if s.closed {
		return nil, infer.Errorf(infer.KindUnavailable, "onnxlocal: session is closed")
	}
	if err := ctx.Err(); err != nil {
		return nil, infer.FromContext(err)
	}
	if !s.called {
		return nil, infer.Errorf(infer.KindInvalid, "onnxlocal: S2Logits before a successful S1Logits")
	}
	if len(s1) != s.rows {
		return nil, infer.Errorf(infer.KindInvalid, "onnxlocal: %d s1 ids for a session of %d rows", len(s1), s.rows)
	}
	d := s.d
	res := make([]float32, s.rows*d.v2)
	lo, hi := -1, -1
	for r := range s.rows {
		if !s.state[r].active {
			continue
		}
		if err := checkIDs("s1", s1[r:r+1], d.v1); err != nil {
			return nil, err
		}
		if lo < 0 {
			lo = r
		}
		hi = r
	}
	if lo < 0 {
		return res, nil
	}
	k := hi - lo + 1
	s.ids1 = grow(s.ids1, k)
	s.idx = grow(s.idx, k)
	for i := range k {
		if st := &s.state[lo+i]; st.active {
			s.ids1[i], s.idx[i] = s1[lo+i], int64(st.n)
		} else {
			// Dummy row: one entry of whatever (finite) the cache holds.
			s.ids1[i], s.idx[i] = 0, 1
		}
	}
	K, G, gd, C := int64(k), int64(d.g), int64(d.gd), int64(d.c)
	tl := &s.tl
	defer tl.destroy()
	s.s2out = grow(s.s2out, k*d.v2)
	in := []ort.Value{
		tl.i64(ort.NewShape(K), s.ids1),
		tl.f32(ort.NewShape(K, int64(d.d)), s.hidden[lo*d.d:(hi+1)*d.d]),
		tl.f32(ort.NewShape(K, G, gd, C), s.depK[lo*s.rowDep:(hi+1)*s.rowDep]),
		tl.f32(ort.NewShape(K, G, C, gd), s.depV[lo*s.rowDep:(hi+1)*s.rowDep]),
		tl.i64(ort.NewShape(K), s.idx),
	}
	out := []ort.Value{tl.f32(ort.NewShape(K, int64(d.v2)), s.s2out)}
	if tl.err != nil {
		return nil, tl.err
	}
	s.b.mu.RLock()
	err := s.b.run(ctx, graphs.S2, s.ro, in, out)
	s.b.mu.RUnlock()
	if err != nil {
		return nil, err
	}
	for r := lo; r <= hi; r++ {
		if s.state[r].active {
			copy(res[r*d.v2:(r+1)*d.v2], s.s2out[(r-lo)*d.v2:])
		}
	}
	return res, nil
}

// putKeys writes positions [0, n) of src [heads,t,size] into dst
// [heads,size,c] (transposed).
//
// The transpose goes in tiles of keyTile positions, so that the cache lines
// of dst written for one tile are still cached for its next feature rows
// (a position at a time wrote one float per cache line: 2-3 times slower,
// about 6 ms for a 400-token Kronos-small prefill).
func putKeys(dst, src []float32, heads, size, t, c, n int) {
	for h := range heads {
		s := src[h*t*size:]
		dh := dst[h*size*c:]
		for j0 := 0; j0 < n; j0 += keyTile {
			j1 := min(j0+keyTile, n)
			for e := range size {
				row := dh[e*c+j0 : e*c+j1]
				for i := range row {
					row[i] = s[(j0+i)*size+e]
				}
			}
		}
	}
}

// keyTile is the number of positions putKeys transposes at a time.
const keyTile = 64

// putValues writes positions [0, n) of src [heads,t,size] into dst
// [heads,c,size].
func putValues(dst, src []float32, heads, size, t, c, n int) {
	for h := range heads {
		copy(dst[h*c*size:h*c*size+n*size], src[h*t*size:h*t*size+n*size])
	}
}

// zeroKeys clears positions [from, to) of dst [heads,size,c].
func zeroKeys(dst []float32, heads, size, c, from, to int) {
	for he := range heads * size {
		clear(dst[he*c+from : he*c+to])
	}
}

// zeroValues clears positions [from, to) of dst [heads,c,size].
func zeroValues(dst []float32, heads, size, c, from, to int) {
	for h := range heads {
		clear(dst[(h*c+from)*size : (h*c+to)*size])
	}
}

// setKey writes src [heads,size] at position p of dst [heads,size,c].
func setKey(dst, src []float32, heads, size, c, p int) {
	for he, v := range src[:heads*size] {
		dst[he*c+p] = v
	}
}

// setValue writes src [heads,size] at position p of dst [heads,c,size].
func setValue(dst, src []float32, heads, size, c, p int) {
	for h := range heads {
		copy(dst[(h*c+p)*size:(h*c+p+1)*size], src[h*size:(h+1)*size])
	}
}
