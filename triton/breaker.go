package triton

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"

	"github.com/kronos-gateway/kronos-gateway/internal/infer"
)

// Breaker defaults for zero-valued BreakerOptions fields.
const (
	DefaultBreakerName        = "triton"
	DefaultBreakerFailures    = 5
	DefaultBreakerOpenTimeout = 30 * time.Second
	DefaultBreakerHalfOpen    = 1
)

// BreakerOptions configure NewBreaker. Every zero field takes the default
// named in its comment.
type BreakerOptions struct {
	// Name is the backend label of the metrics and logs (default "triton").
	Name string
	// ConsecutiveFailures opens the breaker after this many failed calls in
	// a row in the closed state (default 5; KRONOS_BREAKER_FAILURES).
	ConsecutiveFailures uint32
	// Interval clears the closed state's counts periodically (default 0:
	// never; only a success resets the consecutive count;
	// KRONOS_BREAKER_INTERVAL).
	Interval time.Duration
	// OpenTimeout is how long the breaker stays open before letting trial
	// calls through (half-open) (default 30 s; KRONOS_BREAKER_OPEN_TIMEOUT).
	OpenTimeout time.Duration
	// HalfOpenMaxRequests is the number of trial calls allowed while
	// half-open; that many successes close the breaker, one failure opens
	// it again (default 1; KRONOS_BREAKER_HALF_OPEN_REQUESTS).
	HalfOpenMaxRequests uint32
	// Fallback, when set, serves the calls the breaker rejects (normally
	// the embedded ONNX Runtime backend of the same model). Without it a
	// rejected call fails with a *RetryAfterError of KindUnavailable.
	Fallback infer.Backend
	// Registerer receives kronos_breaker_state{backend} and
	// kronos_breaker_rejections_total{backend,action} (nil: not registered).
	Registerer prometheus.Registerer
	// Logger logs state changes (default slog.Default()).
	Logger *slog.Logger
	// Now is the clock used for Retry-After hints (default time.Now).
	// gobreaker itself reads the system clock.
	Now func() time.Time
}

func (o BreakerOptions) withDefaults() BreakerOptions {
	if o.Name == "" {
		o.Name = DefaultBreakerName
	}
	if o.ConsecutiveFailures == 0 {
		o.ConsecutiveFailures = DefaultBreakerFailures
	}
	if o.OpenTimeout <= 0 {
		o.OpenTimeout = DefaultBreakerOpenTimeout
	}
	if o.HalfOpenMaxRequests == 0 {
		o.HalfOpenMaxRequests = DefaultBreakerHalfOpen
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Breaker is an infer.Backend that guards another (the Triton backend)
// with a circuit breaker (github.com/sony/gobreaker/v2). Every backend and
// session call is one breaker request. Outcomes count as follows:
//
//   - excluded (neither success nor failure): the caller's own
//     cancellation (context.Canceled in the chain) and KindOverloaded
//     (Triton's queue is full: load, not an outage);
//   - success: no error, KindInvalid (the request was wrong, e.g.
//     INVALID_ARGUMENT) and KindNotFound;
//   - failure: everything else (UNAVAILABLE, DEADLINE_EXCEEDED, INTERNAL,
//     a pinned version that disappeared, ...).
//
// While the breaker is open (or half-open with its trial calls in flight)
// a call goes to BreakerOptions.Fallback, or fails with a *RetryAfterError
// of KindUnavailable whose After is the rest of the open period. A session
// that is rejected mid-forecast moves to a fallback session for the rest of
// the forecast (replaying the last windows to it when needed).
type Breaker struct {
	inner infer.Backend
	opt   BreakerOptions
	cb    *gobreaker.CircuitBreaker[any]

	openedAt   atomic.Int64 // opt.Now() in Unix ns when the breaker last opened
	rejections *prometheus.CounterVec
}

var _ infer.Backend = (*Breaker)(nil)

// NewBreaker wraps inner. The breaker starts closed.
func NewBreaker(inner infer.Backend, o BreakerOptions) *Breaker {
	o = o.withDefaults()
	b := &Breaker{inner: inner, opt: o}
	b.cb = gobreaker.NewCircuitBreaker[any](gobreaker.Settings{
		Name:        o.Name,
		MaxRequests: o.HalfOpenMaxRequests,
		Interval:    o.Interval,
		Timeout:     o.OpenTimeout,
		ReadyToTrip: func(c gobreaker.Counts) bool {
			return c.ConsecutiveFailures >= o.ConsecutiveFailures
		},
		OnStateChange: b.onStateChange,
		IsSuccessful:  breakerSuccess,
		IsExcluded:    breakerExcluded,
	})
	b.rejections = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kronos_breaker_rejections_total",
		Help: "Calls the circuit breaker did not let through, by backend and action (fallback: served by the fallback backend; rejected: failed with Retry-After).",
	}, []string{"backend", "action"})
	if o.Registerer != nil {
		state := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "kronos_breaker_state",
			Help:        "Circuit breaker state: 0 closed, 1 half-open, 2 open.",
			ConstLabels: prometheus.Labels{"backend": o.Name},
		}, func() float64 { return stateValue(b.cb.State()) })
		register(o.Registerer, state)
		b.rejections = register(o.Registerer, b.rejections)
	}
	return b
}

// breakerSuccess is gobreaker's IsSuccessful: client errors do not count
// against the backend.
func breakerSuccess(err error) bool {
	switch infer.KindOf(err) {
	case "", infer.KindInvalid, infer.KindNotFound:
		return true
	}
	return false
}

// breakerExcluded is gobreaker's IsExcluded.
func breakerExcluded(err error) bool {
	return callerCanceled(err) || infer.KindOf(err) == infer.KindOverloaded
}

// stateValue is the gauge value of a state.
func stateValue(s gobreaker.State) float64 {
	switch s {
	case gobreaker.StateHalfOpen:
		return 1
	case gobreaker.StateOpen:
		return 2
	}
	return 0
}

func (b *Breaker) onStateChange(name string, from, to gobreaker.State) {
	if to == gobreaker.StateOpen {
		b.openedAt.Store(b.opt.Now().UnixNano())
	}
	level := slog.LevelInfo
	if to == gobreaker.StateOpen {
		level = slog.LevelWarn
	}
	b.opt.Logger.Log(context.Background(), level, "circuit breaker state change",
		"backend", name, "from", from.String(), "to", to.String(),
		"fallback", b.opt.Fallback != nil, "open_timeout", b.opt.OpenTimeout)
}

// State returns the breaker's state (this may move an expired open state
// to half-open).
func (b *Breaker) State() gobreaker.State { return b.cb.State() }

// Counts returns the breaker's counts in the current generation.
func (b *Breaker) Counts() gobreaker.Counts { return b.cb.Counts() }

// Inner returns the guarded backend.
func (b *Breaker) Inner() infer.Backend { return b.inner }

// retryAfter is the hint for a rejected call: the rest of the open period,
// at least one second.
func (b *Breaker) retryAfter() time.Duration {
	left := time.Duration(b.openedAt.Load()+int64(b.opt.OpenTimeout)) - time.Duration(b.opt.Now().UnixNano())
	return max(left, time.Second)
}

// rejected reports whether err is gobreaker's refusal to run a call.
func rejected(err error) bool {
	return errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests)
}

// rejectErr is the error of a rejected call served by no fallback.
func (b *Breaker) rejectErr(err error) error {
	b.rejections.WithLabelValues(b.opt.Name, "rejected").Inc()
	return &RetryAfterError{After: b.retryAfter(),
		Err: infer.Wrap(infer.KindUnavailable, err, "%s: circuit breaker %s", b.opt.Name, b.cb.State())}
}

// try runs call through the breaker; rej reports that the breaker refused
// to run it (err is then gobreaker's sentinel).
func try[T any](b *Breaker, call func() (T, error)) (v T, rej bool, err error) {
	r, err := b.cb.Execute(func() (any, error) { return call() })
	if rejected(err) {
		return v, true, err
	}
	if err != nil {
		return v, false, err
	}
	return r.(T), false, nil
}

// guard runs call through the breaker; a rejected call is served by
// fallback on BreakerOptions.Fallback, or fails with a RetryAfterError.
func guard[T any](b *Breaker, call func() (T, error), fallback func(infer.Backend) (T, error)) (T, error) {
	v, rej, err := try(b, call)
	if !rej {
		return v, err
	}
	if b.opt.Fallback != nil {
		b.rejections.WithLabelValues(b.opt.Name, "fallback").Inc()
		return fallback(b.opt.Fallback)
	}
	return v, b.rejectErr(err)
}

// Info describes the guarded backend's model.
func (b *Breaker) Info() infer.ModelInfo { return b.inner.Info() }

// Encode runs the guarded backend's encoder (or the fallback's).
func (b *Breaker) Encode(ctx context.Context, x []float32, rows, length int) ([]float32, error) {
	return guard(b, func() ([]float32, error) { return b.inner.Encode(ctx, x, rows, length) },
		func(f infer.Backend) ([]float32, error) { return f.Encode(ctx, x, rows, length) })
}

// Decode runs the guarded backend's decoder (or the fallback's).
func (b *Breaker) Decode(ctx context.Context, s1, s2 []int64, rows, width int) ([]float32, error) {
	return guard(b, func() ([]float32, error) { return b.inner.Decode(ctx, s1, s2, rows, width) },
		func(f infer.Backend) ([]float32, error) { return f.Decode(ctx, s1, s2, rows, width) })
}

// NewSession opens a session on the guarded backend (or on the fallback).
func (b *Breaker) NewSession(ctx context.Context, rows int) (infer.Session, error) {
	return guard(b, func() (infer.Session, error) {
		inner, err := b.inner.NewSession(ctx, rows)
		if err != nil {
			return nil, err
		}
		return &breakerSession{b: b, rows: rows, inner: inner}, nil
	}, func(f infer.Backend) (infer.Session, error) {
		fb, err := f.NewSession(ctx, rows)
		if err != nil {
			return nil, err
		}
		return &breakerSession{b: b, rows: rows, fb: fb}, nil
	})
}

// Ready reports whether the breaker's backend can serve forecasts now, for
// a readiness probe. It does not go through the breaker (a probe never
// trips it):
//
//   - open, without a fallback: KindUnavailable with a *RetryAfterError (the
//     rest of the open period);
//   - open, with a fallback: the fallback's Ready when it has one, else nil
//     (the fallback serves);
//   - closed or half-open: the guarded backend's Ready when it has one
//     (the Triton backend: Triton and every model ready at the pinned
//     version), else nil.
func (b *Breaker) Ready(ctx context.Context) error {
	type readier interface{ Ready(context.Context) error }
	if b.cb.State() == gobreaker.StateOpen {
		if b.opt.Fallback == nil {
			return &RetryAfterError{After: b.retryAfter(),
				Err: infer.Errorf(infer.KindUnavailable, "%s: circuit breaker open", b.opt.Name)}
		}
		if r, ok := b.opt.Fallback.(readier); ok {
			return r.Ready(ctx)
		}
		return nil
	}
	if r, ok := b.inner.(readier); ok {
		return r.Ready(ctx)
	}
	return nil
}

// Close closes the guarded backend (not the fallback, which the caller
// owns).
func (b *Breaker) Close() error { return b.inner.Close() }

// breakerSession runs a session's calls through the breaker, moving to a
// fallback session when the breaker rejects one.
type breakerSession struct {
	b     *Breaker
	rows  int
	inner infer.Session // nil once on the fallback
	fb    infer.Session // the fallback session once switched

	// Copies of the last S1Logits windows (only with a fallback), replayed
	// to a fallback session opened at S2Logits.
	last []infer.Window
}

func (s *breakerSession) S1Logits(ctx context.Context, windows []infer.Window) ([]float32, error) {
	if s.fb != nil {
		return s.fb.S1Logits(ctx, windows)
	}
	if s.b.opt.Fallback != nil {
		s.keep(windows)
	}
	out, rej, err := try(s.b, func() ([]float32, error) { return s.inner.S1Logits(ctx, windows) })
	if !rej {
		return out, err
	}
	if s.b.opt.Fallback == nil {
		return nil, s.b.rejectErr(err)
	}
	if err := s.switchToFallback(ctx); err != nil {
		return nil, err
	}
	return s.fb.S1Logits(ctx, windows)
}

func (s *breakerSession) S2Logits(ctx context.Context, s1 []int64) ([]float32, error) {
	if s.fb != nil {
		return s.fb.S2Logits(ctx, s1)
	}
	out, rej, err := try(s.b, func() ([]float32, error) { return s.inner.S2Logits(ctx, s1) })
	if !rej {
		return out, err
	}
	if s.b.opt.Fallback == nil || s.last == nil {
		return nil, s.b.rejectErr(err)
	}
	if err := s.switchToFallback(ctx); err != nil {
		return nil, err
	}
	if _, err := s.fb.S1Logits(ctx, s.last); err != nil {
		return nil, err
	}
	return s.fb.S2Logits(ctx, s1)
}

// switchToFallback opens the fallback session for the rest of the forecast.
func (s *breakerSession) switchToFallback(ctx context.Context) error {
	s.b.rejections.WithLabelValues(s.b.opt.Name, "fallback").Inc()
	fb, err := s.b.opt.Fallback.NewSession(ctx, s.rows)
	if err != nil {
		return err
	}
	s.fb = fb
	s.inner.Close()
	s.inner = nil
	return nil
}

// keep copies windows into s.last (the caller may reuse its slices).
func (s *breakerSession) keep(windows []infer.Window) {
	if cap(s.last) < len(windows) {
		s.last = make([]infer.Window, len(windows))
	}
	s.last = s.last[:len(windows)]
	for i, w := range windows {
		c := &s.last[i]
		c.Start = w.Start
		c.S1 = append(c.S1[:0], w.S1...)
		c.S2 = append(c.S2[:0], w.S2...)
		c.Stamps = append(c.Stamps[:0], w.Stamps...)
	}
}

func (s *breakerSession) Close() error {
	var errs []error
	if s.inner != nil {
		errs = append(errs, s.inner.Close())
	}
	if s.fb != nil {
		errs = append(errs, s.fb.Close())
	}
	return errors.Join(errs...)
}
