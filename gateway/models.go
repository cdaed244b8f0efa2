package gateway

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/kronos-gateway/kronos-gateway/internal/infer"
)

// Models is the registry of the models a gateway serves: a name (the one
// clients put in a request's "model" field, infer.ModelInfo.Name) maps to a
// slot that holds the backend serving it now.
//
// Every forecast leases the slot's current backend for its whole duration,
// so that all its backend calls (encode, the session, decode) go to one set
// of weights. Swap replaces a slot's backend atomically: forecasts that
// start afterwards get the new one, those already running finish on the old
// one, which is closed once the last of them released it. No request fails
// because of a swap.
//
// Models is safe for concurrent use. The set of names is fixed at
// NewModels.
type Models struct {
	def   string
	names []string // sorted
	slots map[string]*slot
	// m receives model metrics (setModel/dropModel); nil until an App
	// adopts the registry.
	m      atomic.Pointer[metrics]
	closed atomic.Bool
}

// slot holds the current generation of one model.
type slot struct {
	name   string
	swapMu sync.Mutex // serialises Swap and Close on this slot
	cur    atomic.Pointer[generation]
}

// generation is one backend of a slot with the count of forecasts using
// it. Once retired (swapped out or closed), drained is closed when the
// count reaches zero.
type generation struct {
	backend infer.Backend
	info    infer.ModelInfo
	refs    atomic.Int64
	retired atomic.Bool
	once    sync.Once
	drained chan struct{}
}

func newGeneration(b infer.Backend) *generation {
	return &generation{backend: b, info: b.Info(), drained: make(chan struct{})}
}

func (g *generation) markDrained() { g.once.Do(func() { close(g.drained) }) }

// release drops one reference.
func (g *generation) release() {
	if g.refs.Add(-1) == 0 && g.retired.Load() {
		g.markDrained()
	}
}

// retire marks g as replaced and returns a channel closed once no forecast
// uses it any more.
func (g *generation) retire() <-chan struct{} {
	g.retired.Store(true)
	if g.refs.Load() == 0 {
		g.markDrained()
	}
	return g.drained
}

// NewModels builds a registry of the given backends, keyed by their
// Info().Name, which must be distinct; def names the default model (the
// one of a request without "model") and must be among them. The registry
// owns the backends from then on: Swap and Close close them.
func NewModels(def string, backends ...infer.Backend) (*Models, error) {
	if len(backends) == 0 {
		return nil, errors.New("gateway: no model to serve")
	}
	m := &Models{def: def, slots: make(map[string]*slot, len(backends))}
	for _, b := range backends {
		if b == nil {
			return nil, errors.New("gateway: nil backend")
		}
		name := b.Info().Name
		if _, dup := m.slots[name]; dup {
			return nil, fmt.Errorf("gateway: model %q is loaded twice", name)
		}
		s := &slot{name: name}
		s.cur.Store(newGeneration(b))
		m.slots[name] = s
		m.names = append(m.names, name)
	}
	sort.Strings(m.names)
	if _, ok := m.slots[def]; !ok {
		return nil, fmt.Errorf("gateway: the default model %q is not among the loaded models (%s)",
			def, strings.Join(m.names, ", "))
	}
	return m, nil
}

// Default is the name of the default model.
func (m *Models) Default() string { return m.def }

// Names lists the loaded models, sorted.
func (m *Models) Names() []string { return append([]string(nil), m.names...) }

// Info describes the backend serving name now ("" is the default model).
func (m *Models) Info(name string) (infer.ModelInfo, bool) {
	if name == "" {
		name = m.def
	}
	s, ok := m.slots[name]
	if !ok {
		return infer.ModelInfo{}, false
	}
	return s.cur.Load().info, true
}

// Infos describes every model served now, in name order.
func (m *Models) Infos() []infer.ModelInfo {
	out := make([]infer.ModelInfo, 0, len(m.names))
	for _, n := range m.names {
		out = append(out, m.slots[n].cur.Load().info)
	}
	return out
}

// lease is one forecast's hold on a backend; release it exactly once.
type lease struct {
	gen  *generation
	once sync.Once
}

func (l *lease) backend() infer.Backend { return l.gen.backend }
func (l *lease) info() infer.ModelInfo  { return l.gen.info }
func (l *lease) release()               { l.once.Do(l.gen.release) }

var errModelsClosed = infer.Errorf(infer.KindUnavailable, "the models are unloaded: the server is shutting down")

// acquire leases the current backend of name ("" is the default model). An
// unknown name is an invalid-input error on field "model" listing the
// loaded models.
func (m *Models) acquire(name string) (*lease, error) {
	if name == "" {
		name = m.def
	}
	s, ok := m.slots[name]
	if !ok {
		return nil, infer.Field("model", "unknown model %q; loaded models: %s", clip(name), strings.Join(m.names, ", "))
	}
	for {
		if m.closed.Load() {
			return nil, errModelsClosed
		}
		g := s.cur.Load()
		g.refs.Add(1)
		// Only a generation that is still current after the increment is
		// safe: Swap stores the new generation before it looks at the
		// count of the old one, so it sees this reference.
		if s.cur.Load() == g && !g.retired.Load() {
			return &lease{gen: g}, nil
		}
		g.release()
	}
}

// Swap makes b the backend of the loaded model name; b.Info().Name must be
// name. The switch is atomic: every forecast that leases the model after
// it gets b, and the forecasts already running keep the old backend. Swap
// then waits until those have finished (each is bounded by its request's
// timeout), closes the old backend and returns the error of closing it.
// Swaps of one model are serialised. On error before the switch (unknown
// model, wrong name, closed registry) b is not adopted and the caller
// keeps it.
func (m *Models) Swap(name string, b infer.Backend) error {
	if b == nil {
		return infer.Errorf(infer.KindInvalid, "swap %q: no backend", name)
	}
	s, ok := m.slots[name]
	if !ok {
		return infer.Errorf(infer.KindNotFound, "swap: unknown model %q; loaded models: %s", name, strings.Join(m.names, ", "))
	}
	g := newGeneration(b)
	if g.info.Name != name {
		return infer.Errorf(infer.KindInvalid, "swap %q: the new backend serves %q", name, g.info.Name)
	}
	s.swapMu.Lock()
	defer s.swapMu.Unlock()
	if m.closed.Load() {
		return errModelsClosed
	}
	old := s.cur.Swap(g)
	if mt := m.m.Load(); mt != nil {
		mt.dropModel(old.info)
		mt.setModel(g.info, true)
	}
	<-old.retire()
	if err := old.backend.Close(); err != nil {
		return fmt.Errorf("swap %q: closing the old backend (version %s): %w", name, old.info.Version, err)
	}
	return nil
}

// Close unloads every model: new forecasts are refused (KindUnavailable),
// and each backend is closed once the forecasts that leased it have
// finished. It returns the errors of closing them. Close is idempotent.
func (m *Models) Close() error {
	if m.closed.Swap(true) {
		return nil
	}
	var errs []error
	for _, n := range m.names {
		s := m.slots[n]
		s.swapMu.Lock()
		g := s.cur.Load()
		<-g.retire()
		if err := g.backend.Close(); err != nil {
			errs = append(errs, fmt.Errorf("closing model %q: %w", n, err))
		}
		if mt := m.m.Load(); mt != nil {
			mt.setReady(g.info.Backend, g.info.Name, false)
		}
		s.swapMu.Unlock()
	}
	return errors.Join(errs...)
}

// adopt wires the registry's metrics to mt and records every model.
func (m *Models) adopt(mt *metrics) {
	m.m.Store(mt)
	for _, info := range m.Infos() {
		mt.setModel(info, true)
	}
}

// defaultView is an infer.Backend over the registry's default model: Info
// is always the current backend's, and each call leases it (a session
// keeps its lease until closed). Forecasts do not use it (they lease one
// backend for all their calls); it serves code that wants "the model" such
// as health reports.
type defaultView struct{ m *Models }

func (v defaultView) Info() infer.ModelInfo {
	info, _ := v.m.Info("")
	return info
}

func (v defaultView) Encode(ctx context.Context, x []float32, rows, length int) ([]float32, error) {
	l, err := v.m.acquire("")
	if err != nil {
		return nil, err
	}
	defer l.release()
	return l.backend().Encode(ctx, x, rows, length)
}

func (v defaultView) Decode(ctx context.Context, s1, s2 []int64, rows, width int) ([]float32, error) {
	l, err := v.m.acquire("")
	if err != nil {
		return nil, err
	}
	defer l.release()
	return l.backend().Decode(ctx, s1, s2, rows, width)
}

func (v defaultView) NewSession(ctx context.Context, rows int) (infer.Session, error) {
	l, err := v.m.acquire("")
	if err != nil {
		return nil, err
	}
	s, err := l.backend().NewSession(ctx, rows)
	if err != nil {
		l.release()
		return nil, err
	}
	return &leasedSession{Session: s, l: l}, nil
}

// Close does nothing: the registry owns the backends.
func (v defaultView) Close() error { return nil }

// leasedSession releases its lease when closed.
type leasedSession struct {
	infer.Session
	l *lease
}

func (s *leasedSession) Close() error {
	defer s.l.release()
	return s.Session.Close()
}
