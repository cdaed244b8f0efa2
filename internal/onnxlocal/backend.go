package onnxlocal

import (
	"context"
	"path/filepath"
	"runtime"
	"sync"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/kronos-gateway/kronos-gateway/internal/graphs"
	"github.com/kronos-gateway/kronos-gateway/internal/infer"
)

// stampLimits are the sizes of the five time tables (minute, hour, weekday,
// day, month); a stamp feature must be below its limit.
var stampLimits = [infer.StampWidth]int64{60, 24, 7, 32, 13}

// dims are the sizes a backend needs, taken from the manifest.
type dims struct {
	nl, h, hd, d int // predictor layers, heads, head size, width
	g, gd        int // dependency heads (4) and their size
	v1, v2       int // vocabulary sizes
	s1Bits       int
	s2Bits       int
	dq           int // tokenizer code width s1_bits+s2_bits
	c            int // max context = KV-cache capacity
}

// graph is one loaded ONNX graph.
type graph struct {
	role    graphs.Role
	path    string
	inputs  []string
	outputs []string
	sess    *ort.DynamicAdvancedSession
}

// Backend runs one model version with ONNX Runtime in-process. It implements
// infer.Backend and is safe for concurrent use.
type Backend struct {
	opt  Options
	info infer.ModelInfo
	dims dims

	graphs map[graphs.Role]*graph

	// mu is held for reading by every graph run and for writing by Close,
	// so Close never destroys a session that is running.
	mu     sync.RWMutex
	closed bool

	// stepMode forces a step layout (stepSpan, stepGather) in tests; the
	// zero value chooses by cost.
	stepMode int

	// Test hooks (nil outside tests): testHookBeforeRun runs after the
	// cancellation watcher is armed and before ORT runs a graph;
	// testHookTerminated runs after the watcher has set the terminate flag.
	testHookBeforeRun  func()
	testHookTerminated func()
}

var _ infer.Backend = (*Backend)(nil)

// Open loads the five graphs of one model version. See Options for the
// defaults. A missing repository, model or version is a KindNotFound error;
// a missing or unusable ONNX Runtime library is KindUnavailable.
func Open(opt Options) (*Backend, error) {
	opt = opt.withDefaults()
	v, err := resolveVersion(opt.RepoDir, opt.Model, opt.Version)
	if err != nil {
		return nil, err
	}
	opt.Version = v.name
	m := v.manifests[graphs.Prefill]
	d, err := dimsOf(m, opt.MaxContext)
	if err != nil {
		return nil, err
	}
	opt.MaxContext = d.c
	if err := ensureEnv(opt.LibPath); err != nil {
		return nil, err
	}
	b := &Backend{
		opt:  opt,
		dims: d,
		info: infer.ModelInfo{
			Name:                opt.Model,
			Version:             v.name,
			Checkpoint:          m.Checkpoint,
			TokenizerCheckpoint: m.TokenizerCheckpoint,
			ModelVersion:        m.ModelVersion,
			TokenizerVersion:    m.TokenizerVersion,
			S1Bits:              d.s1Bits,
			S2Bits:              d.s2Bits,
			DModel:              d.d,
			MaxContext:          d.c,
			Backend:             "embedded",
			Device:              "cpu",
		},
		graphs: make(map[graphs.Role]*graph, len(graphs.Roles)),
	}
	so, err := b.sessionOptions()
	if err != nil {
		return nil, err
	}
	defer so.Destroy()
	// The first ORT session of a process sets the flush-to-zero mode of
	// the thread that creates it, for good; keep Go's IEEE arithmetic on
	// that thread by restoring its control register afterwards.
	runtime.LockOSThread()
	csr := getMXCSR()
	defer func() {
		setMXCSR(csr)
		runtime.UnlockOSThread()
	}()
	var maps map[uintptr]uintptr
	if !opt.NoHugePages {
		maps = anonRegions()
	}
	for _, r := range graphs.Roles {
		in, out := ioNames(r, d.nl)
		g := &graph{role: r, path: filepath.Join(v.dirs[r], modelFile), inputs: in, outputs: out}
		g.sess, err = ort.NewDynamicAdvancedSession(g.path, in, out, so)
		if err != nil {
			b.destroyGraphs()
			return nil, infer.Wrap(infer.KindInternal, err, "onnxlocal: loading %s", g.path)
		}
		b.graphs[r] = g
	}
	// Mostly ORT's pre-packed weights, read in full at every step.
	hugePagesSince(maps)
	return b, nil
}

// dimsOf derives the sizes from a manifest; maxContext overrides the
// manifest's default when > 0.
func dimsOf(m *graphs.Manifest, maxContext int) (dims, error) {
	p, t := m.Predictor, m.Tokenizer
	if p.DModel <= 0 || p.NHeads <= 0 || p.NLayers <= 0 || p.DModel%p.NHeads != 0 ||
		p.DModel%graphs.DepHeads != 0 || p.S1Bits <= 0 || p.S2Bits <= 0 || p.S1Bits > 20 || p.S2Bits > 20 ||
		t.S1Bits+t.S2Bits <= 0 {
		return dims{}, infer.Errorf(infer.KindInternal, "onnxlocal: manifest of %s: unusable predictor/tokenizer configuration", m.Model)
	}
	if maxContext <= 0 {
		maxContext = m.DefaultMaxContext
	}
	if maxContext <= 0 {
		return dims{}, infer.Errorf(infer.KindInternal, "onnxlocal: manifest of %s has no default_max_context and Options.MaxContext is 0", m.Model)
	}
	return dims{
		nl: p.NLayers, h: p.NHeads, hd: p.DModel / p.NHeads, d: p.DModel,
		g: graphs.DepHeads, gd: p.DModel / graphs.DepHeads,
		v1: 1 << p.S1Bits, v2: 1 << p.S2Bits, s1Bits: p.S1Bits, s2Bits: p.S2Bits,
		dq: t.S1Bits + t.S2Bits, c: maxContext,
	}, nil
}

// ioNames lists the input and output tensor names of a role, in the order
// the run helpers pass them.
func ioNames(r graphs.Role, nl int) (in, out []string) {
	switch r {
	case graphs.Encoder:
		return []string{graphs.InX}, []string{graphs.OutQuant}
	case graphs.Decoder:
		return []string{graphs.InS1, graphs.InS2}, []string{graphs.OutX}
	case graphs.Prefill:
		in = []string{graphs.InS1, graphs.InS2, graphs.InStamp, graphs.InLast}
	case graphs.Step:
		in = []string{graphs.InS1, graphs.InS2, graphs.InStamp, graphs.InPos}
		for l := 0; l < nl; l++ {
			in = append(in, graphs.PastKey(l), graphs.PastValue(l))
		}
	case graphs.S2:
		return []string{graphs.InS1, graphs.InHidden, graphs.InDepKey, graphs.InDepValue, graphs.InLength},
			[]string{graphs.OutS2Logits}
	}
	out = []string{graphs.OutS1Logits, graphs.OutHidden}
	for l := 0; l < nl; l++ {
		out = append(out, graphs.Key(l), graphs.Value(l))
	}
	out = append(out, graphs.OutDepKey, graphs.OutDepValue)
	return in, out
}

// sessionOptions builds the ORT session options shared by the five graphs.
func (b *Backend) sessionOptions() (*ort.SessionOptions, error) {
	so, err := ort.NewSessionOptions()
	if err != nil {
		return nil, infer.Wrap(infer.KindUnavailable, err, "onnxlocal: session options")
	}
	set := []func() error{
		func() error { return so.SetIntraOpNumThreads(b.opt.IntraOpThreads) },
		func() error { return so.SetInterOpNumThreads(b.opt.InterOpThreads) },
		func() error { return so.SetExecutionMode(ort.ExecutionModeSequential) },
		func() error { return so.SetGraphOptimizationLevel(ort.GraphOptimizationLevelEnableAll) },
	}
	if b.opt.Spinning {
		// Spin between the nodes of a run, not after it: every graph has
		// its own thread pool, and workers left spinning after a run
		// would compete with the next graph's (and the Go code's) threads.
		set = append(set, func() error { return so.AddSessionConfigEntry("session.force_spinning_stop", "1") })
	} else {
		set = append(set, func() error { return so.AddSessionConfigEntry("session.intra_op.allow_spinning", "0") })
	}
	if !b.opt.KeepDenormals {
		// ORT's worker threads; run sets the calling thread.
		set = append(set, func() error { return so.AddSessionConfigEntry("session.set_denormal_as_zero", "1") })
	}
	for _, f := range set {
		if err := f(); err != nil {
			so.Destroy()
			return nil, infer.Wrap(infer.KindInternal, err, "onnxlocal: session options")
		}
	}
	return so, nil
}

// Info describes the model served.
func (b *Backend) Info() infer.ModelInfo { return b.info }

// Options returns the options in effect, defaults and the resolved version
// filled in.
func (b *Backend) Options() Options { return b.opt }

// Close releases the backend's ORT sessions after running calls finish.
// Sessions still open fail afterwards with KindUnavailable. Close is
// idempotent.
func (b *Backend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	b.destroyGraphs()
	return nil
}

func (b *Backend) destroyGraphs() {
	for r, g := range b.graphs {
		if g.sess != nil {
			g.sess.Destroy()
		}
		delete(b.graphs, r)
	}
}

// run executes graph r with the given tensors (in the order of ioNames)
// under ctx; ro is the caller's RunOptions, which run leaves reusable. The
// caller must hold b.mu for reading.
func (b *Backend) run(ctx context.Context, r graphs.Role, ro *ort.RunOptions, in, out []ort.Value) error {
	if err := ctx.Err(); err != nil {
		return infer.FromContext(err)
	}
	if b.closed {
		return infer.Errorf(infer.KindUnavailable, "onnxlocal: backend %s version %s is closed", b.info.Name, b.info.Version)
	}
	g := b.graphs[r]
	var (
		stop  func() bool
		fired chan struct{}
	)
	if done := ctx.Done(); done != nil {
		fired = make(chan struct{})
		stop = context.AfterFunc(ctx, func() {
			ro.Terminate()
			if b.testHookTerminated != nil {
				b.testHookTerminated()
			}
			close(fired)
		})
	}
	if b.testHookBeforeRun != nil {
		b.testHookBeforeRun()
	}
	var err error
	if b.opt.KeepDenormals {
		err = g.sess.RunWithOptions(in, out, ro)
	} else {
		err = runFlushingDenormals(g.sess, in, out, ro)
	}
	if stop != nil && !stop() {
		// The watcher has fired (or is firing): wait for it, then clear the
		// flag so that ro can be used again.
		<-fired
		ro.UnsetTerminate()
	}
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return infer.FromContext(cerr)
		}
		return infer.Wrap(infer.KindInternal, err, "onnxlocal: running %s", g.path)
	}
	return nil
}

// runFlushingDenormals runs a session with flush-to-zero and
// denormals-are-zero set on the calling OS thread, which computes part of
// every node next to ORT's workers (set up by the session option
// session.set_denormal_as_zero). The thread is locked for the call and its
// control register restored afterwards, so Go code keeps IEEE arithmetic.
func runFlushingDenormals(s *ort.DynamicAdvancedSession, in, out []ort.Value, ro *ort.RunOptions) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	csr := getMXCSR()
	setMXCSR(csr | mxcsrFlushDenormals)
	defer setMXCSR(csr)
	return s.RunWithOptions(in, out, ro)
}

// Encode runs the tokenizer encoder on normalised candles x
// [rows][length][6] and returns quant_input [rows][length][S1Bits+S2Bits].
func (b *Backend) Encode(ctx context.Context, x []float32, rows, length int) ([]float32, error) {
	if rows <= 0 || length <= 0 || len(x) != rows*length*infer.CandleWidth {
		return nil, infer.Errorf(infer.KindInvalid, "onnxlocal: encode: %d values for %d rows of %d candles", len(x), rows, length)
	}
	out := make([]float32, rows*length*b.dims.dq)
	var tl tensorList
	defer tl.destroy()
	xin := tl.f32(ort.NewShape(int64(rows), int64(length), infer.CandleWidth), x)
	q := tl.f32(ort.NewShape(int64(rows), int64(length), int64(b.dims.dq)), out)
	if tl.err != nil {
		return nil, tl.err
	}
	if err := b.runOnce(ctx, graphs.Encoder, []ort.Value{xin}, []ort.Value{q}); err != nil {
		return nil, err
	}
	return out, nil
}

// Decode runs the tokenizer decoder on token ids [rows][width] and returns
// normalised candles [rows][width][6].
func (b *Backend) Decode(ctx context.Context, s1, s2 []int64, rows, width int) ([]float32, error) {
	if rows <= 0 || width <= 0 || len(s1) != rows*width || len(s2) != rows*width {
		return nil, infer.Errorf(infer.KindInvalid, "onnxlocal: decode: %d/%d ids for %d rows of %d tokens", len(s1), len(s2), rows, width)
	}
	if err := checkIDs("s1", s1, b.dims.v1); err != nil {
		return nil, err
	}
	if err := checkIDs("s2", s2, b.dims.v2); err != nil {
		return nil, err
	}
	out := make([]float32, rows*width*infer.CandleWidth)
	var tl tensorList
	defer tl.destroy()
	shape := ort.NewShape(int64(rows), int64(width))
	a := tl.i64(shape, s1)
	c := tl.i64(shape, s2)
	x := tl.f32(ort.NewShape(int64(rows), int64(width), infer.CandleWidth), out)
	if tl.err != nil {
		return nil, tl.err
	}
	if err := b.runOnce(ctx, graphs.Decoder, []ort.Value{a, c}, []ort.Value{x}); err != nil {
		return nil, err
	}
	return out, nil
}

// runOnce runs a graph with a RunOptions of its own, holding the read lock.
func (b *Backend) runOnce(ctx context.Context, r graphs.Role, in, out []ort.Value) error {
	if err := ctx.Err(); err != nil {
		return infer.FromContext(err)
	}
	ro, err := ort.NewRunOptions()
	if err != nil {
		return infer.Wrap(infer.KindInternal, err, "onnxlocal: run options")
	}
	defer ro.Destroy()
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.run(ctx, r, ro, in, out)
}

// checkIDs checks that every id is in [0, n).
func checkIDs(name string, ids []int64, n int) error {
	for i, v := range ids {
		if v < 0 || v >= int64(n) {
			return infer.Errorf(infer.KindInvalid, "onnxlocal: %s[%d] = %d outside [0, %d)", name, i, v, n)
		}
	}
	return nil
}

// checkStamps checks that every time feature indexes its table.
func checkStamps(name string, st []int64) error {
	for i, v := range st {
		if lim := stampLimits[i%infer.StampWidth]; v < 0 || v >= lim {
			return infer.Errorf(infer.KindInvalid, "onnxlocal: %s[%d][%d] = %d outside [0, %d)", name, i/infer.StampWidth, i%infer.StampWidth, v, lim)
		}
	}
	return nil
}

// tensorList creates ORT tensors over Go slices (no copy) and destroys them
// together. The first error sticks; later calls return nil tensors.
type tensorList struct {
	vals []ort.Value
	err  error
}

func (t *tensorList) f32(shape ort.Shape, data []float32) ort.Value {
	if t.err != nil {
		return nil
	}
	v, err := ort.NewTensor(shape, data)
	if err != nil {
		t.err = infer.Wrap(infer.KindInternal, err, "onnxlocal: tensor %v", shape)
		return nil
	}
	t.vals = append(t.vals, v)
	return v
}

func (t *tensorList) i64(shape ort.Shape, data []int64) ort.Value {
	if t.err != nil {
		return nil
	}
	v, err := ort.NewTensor(shape, data)
	if err != nil {
		t.err = infer.Wrap(infer.KindInternal, err, "onnxlocal: tensor %v", shape)
		return nil
	}
	t.vals = append(t.vals, v)
	return v
}

// destroy releases every tensor and resets the list for reuse.
func (t *tensorList) destroy() {
	for _, v := range t.vals {
		v.Destroy()
	}
	t.vals = t.vals[:0]
	t.err = nil
}
