package triton

import (
	"bytes"
	"context"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kronos-gateway/kronos-gateway/forecast"
	"github.com/kronos-gateway/kronos-gateway/internal/infer"
	pb "github.com/kronos-gateway/kronos-gateway/triton/inferencepb"
	"github.com/kronos-gateway/kronos-gateway/triton/internal/kronostest"
	"github.com/kronos-gateway/kronos-gateway/triton/modelconfig"
	"github.com/kronos-gateway/kronos-gateway/triton/tritontest"
)

// fakeClock is the clock of the breaker's Retry-After hints.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// failInfer makes ModelInfer of the named models (all when empty) fail
// with code c.
func failInfer(c codes.Code, msg string, models ...string) tritontest.Hook {
	return func(_ context.Context, method string, req any) error {
		if method != "ModelInfer" {
			return nil
		}
		if len(models) > 0 && !slices.Contains(models, req.(*pb.ModelInferRequest).GetModelName()) {
			return nil
		}
		return status.Error(c, msg)
	}
}

// breakerFixture is a fake Triton, a client and a breaker around it.
type breakerFixture struct {
	srv   *tritontest.Server
	emb   infer.Backend
	b     *Backend
	br    *Breaker
	reg   *prometheus.Registry
	clock *fakeClock
	logs  *syncBuffer
}

func newBreakerFixture(t *testing.T, o BreakerOptions) *breakerFixture {
	t.Helper()
	srv, emb, _ := fakeTriton(t, kronostest.Tiny, tritontest.Options{}, modelconfig.Params{})
	b, _ := client(t, srv.Addr(), Options{})
	f := &breakerFixture{srv: srv, emb: emb, b: b, reg: prometheus.NewRegistry(),
		clock: &fakeClock{t: time.Unix(1_700_000_000, 0)}, logs: &syncBuffer{}}
	o.Registerer, o.Now = f.reg, f.clock.Now
	o.Logger = slog.New(slog.NewTextHandler(f.logs, nil))
	f.br = NewBreaker(b, o)
	return f
}

func (f *breakerFixture) encode(ctx context.Context) error {
	x := make([]float32, 8*infer.CandleWidth)
	_, err := f.br.Encode(ctx, x, 1, 8)
	return err
}

func (f *breakerFixture) state(t *testing.T) float64 {
	return metricValue(t, f.reg, "kronos_breaker_state", map[string]string{"backend": "triton"})
}

// TestBreakerOpens trips the breaker with UNAVAILABLE answers: after the
// configured number of consecutive failures it opens, refuses calls
// without reaching Triton, and says how long to wait (fake clock).
func TestBreakerOpens(t *testing.T) {
	f := newBreakerFixture(t, BreakerOptions{ConsecutiveFailures: 3, OpenTimeout: 30 * time.Second})
	ctx := testCtx(t)
	if f.state(t) != 0 {
		t.Fatalf("initial state gauge %v", f.state(t))
	}
	f.srv.SetHook(failInfer(codes.Unavailable, "Server not ready"))
	for i := range 3 {
		if err := f.encode(ctx); infer.KindOf(err) != infer.KindUnavailable {
			t.Fatalf("call %d: %v", i, err)
		}
		if want := gobreaker.StateClosed; i < 2 && f.br.State() != want {
			t.Fatalf("open after %d failures", i+1)
		}
	}
	if f.br.State() != gobreaker.StateOpen || f.state(t) != 2 {
		t.Fatalf("state %v, gauge %v after 3 failures; want open, 2", f.br.State(), f.state(t))
	}
	if !strings.Contains(f.logs.String(), "from=closed to=open") {
		t.Fatalf("state change not logged: %s", f.logs.String())
	}
	calls := len(f.srv.Calls())
	f.clock.Advance(10 * time.Second)
	err := f.encode(ctx)
	if infer.KindOf(err) != infer.KindUnavailable {
		t.Fatalf("call while open: %v", err)
	}
	if ra, ok := RetryAfter(err); !ok || ra != 20*time.Second {
		t.Fatalf("retry after %v %v, want 20s (30s open, 10s passed)", ra, ok)
	}
	if len(f.srv.Calls()) != calls {
		t.Fatal("an open breaker let a call reach Triton")
	}
	s, err := f.br.NewSession(ctx, 1)
	if s != nil || infer.KindOf(err) != infer.KindUnavailable {
		t.Fatalf("NewSession while open: %v", err)
	}
	if got := metricValue(t, f.reg, "kronos_breaker_rejections_total", map[string]string{"backend": "triton", "action": "rejected"}); got != 2 {
		t.Fatalf("rejections %v, want 2", got)
	}
}

// TestBreakerRecovers: after the open timeout the breaker lets one trial
// call through (half-open); a failure opens it again, a success closes it.
func TestBreakerRecovers(t *testing.T) {
	// gobreaker reads the system clock for the open -> half-open move, so
	// the open timeout is short and the test waits for the state (never
	// asserting on elapsed time).
	f := newBreakerFixture(t, BreakerOptions{ConsecutiveFailures: 2, OpenTimeout: 5 * time.Millisecond})
	ctx := testCtx(t)
	f.srv.SetHook(failInfer(codes.Unavailable, "connection reset"))
	for range 2 {
		f.encode(ctx)
	}
	waitState := func(want gobreaker.State) {
		for f.br.State() != want {
			if ctx.Err() != nil {
				t.Fatalf("breaker never reached %v", want)
			}
			time.Sleep(time.Millisecond)
		}
	}
	waitState(gobreaker.StateHalfOpen)
	if f.state(t) != 1 {
		t.Fatalf("half-open gauge %v", f.state(t))
	}
	if err := f.encode(ctx); infer.KindOf(err) != infer.KindUnavailable {
		t.Fatalf("failing trial call: %v", err)
	}
	if f.br.State() != gobreaker.StateOpen {
		t.Fatalf("a failed trial left the breaker %v", f.br.State())
	}
	waitState(gobreaker.StateHalfOpen)
	f.srv.SetHook(nil)
	if err := f.encode(ctx); err != nil {
		t.Fatalf("trial call after recovery: %v", err)
	}
	if f.br.State() != gobreaker.StateClosed || f.state(t) != 0 {
		t.Fatalf("state %v gauge %v after a successful trial", f.br.State(), f.state(t))
	}
	if !strings.Contains(f.logs.String(), "from=half-open to=closed") {
		t.Fatalf("recovery not logged: %s", f.logs.String())
	}
}

// TestBreakerIgnoresClientFaults: invalid requests, the caller's own
// cancellation and a full queue never open the breaker.
func TestBreakerIgnoresClientFaults(t *testing.T) {
	f := newBreakerFixture(t, BreakerOptions{ConsecutiveFailures: 2})
	ctx := testCtx(t)
	f.srv.SetHook(failInfer(codes.InvalidArgument, "unexpected shape"))
	for range 4 {
		if err := f.encode(ctx); infer.KindOf(err) != infer.KindInvalid {
			t.Fatal(err)
		}
	}
	f.srv.SetHook(failInfer(codes.Unavailable, "Exceeds maximum queue size"))
	for range 4 {
		if err := f.encode(ctx); infer.KindOf(err) != infer.KindOverloaded {
			t.Fatal(err)
		}
	}
	f.srv.SetHook(cancelCaller) // the caller goes away while Triton works
	for range 4 {
		cctx, cancel := context.WithCancel(ctx)
		setCallerCancel(cancel)
		if err := f.encode(cctx); infer.KindOf(err) != infer.KindCanceled {
			t.Fatal(err)
		}
		cancel()
	}
	if f.br.State() != gobreaker.StateClosed {
		t.Fatalf("client faults opened the breaker")
	}
	c := f.br.Counts()
	if c.TotalSuccesses != 4 || c.TotalFailures != 0 || c.TotalExclusions != 8 {
		t.Fatalf("counts %+v, want 4 successes, 0 failures, 8 exclusions", c)
	}
}

// TestBreakerFallback: with the breaker open, a whole forecast runs on the
// fallback (the embedded backend) and gives the reference ids.
func TestBreakerFallback(t *testing.T) {
	emb, _ := embedded(t, kronostest.Tiny)
	f := newBreakerFixture(t, BreakerOptions{ConsecutiveFailures: 1, Fallback: emb})
	ctx := testCtx(t)
	f.srv.SetHook(failInfer(codes.Unavailable, "Server not ready"))
	if err := f.encode(ctx); infer.KindOf(err) != infer.KindUnavailable {
		t.Fatalf("tripping call: %v", err)
	}
	calls := len(f.srv.Calls())
	ref := loadCase(t, kronostest.Tiny, "short")
	tr := &forecast.Trace{}
	if _, err := (&forecast.Forecaster{Backend: f.br, Trace: tr}).Predict(ctx, ref.jobs(t)); err != nil {
		t.Fatalf("forecast on the fallback: %v", err)
	}
	for i, st := range tr.Steps {
		if !slices.Equal(st.S1, ref.ModelBatch.Steps[i].S1) || !slices.Equal(st.S2, ref.ModelBatch.Steps[i].S2) {
			t.Fatalf("step %d differs from the reference", i)
		}
	}
	if len(f.srv.Calls()) != calls {
		t.Fatal("calls reached Triton while the breaker was open")
	}
	if got := metricValue(t, f.reg, "kronos_breaker_rejections_total", map[string]string{"backend": "triton", "action": "fallback"}); got != 3 {
		t.Fatalf("fallback count %v, want 3 (encode, session, decode)", got)
	}
}

// TestBreakerSessionMovesToFallback: a forecast whose session started on
// Triton continues on the fallback when the breaker opens in the middle of
// it (S2Logits replays the last windows to the new session).
func TestBreakerSessionMovesToFallback(t *testing.T) {
	emb, _ := embedded(t, kronostest.Tiny)
	f := newBreakerFixture(t, BreakerOptions{ConsecutiveFailures: 1, Fallback: emb})
	ctx := testCtx(t)
	ws := windowsOf([]int{30, 12}, 16, 16)
	s, err := f.br.NewSession(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.S1Logits(ctx, ws); err != nil {
		t.Fatal(err)
	}
	// Another request trips the breaker.
	f.srv.SetHook(failInfer(codes.Unavailable, "Server not ready", "tiny-encoder"))
	if err := f.encode(ctx); err == nil {
		t.Fatal("encoder did not fail")
	}
	if f.br.State() != gobreaker.StateOpen {
		t.Fatal("breaker not open")
	}
	calls := len(f.srv.Calls())
	next := []int64{5, 9}
	got, err := s.S2Logits(ctx, next)
	if err != nil {
		t.Fatalf("S2Logits after the breaker opened: %v", err)
	}
	es, err := emb.NewSession(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer es.Close()
	if _, err := es.S1Logits(ctx, ws); err != nil {
		t.Fatal(err)
	}
	want, err := es.S2Logits(ctx, next)
	if err != nil {
		t.Fatal(err)
	}
	for i := range want {
		if math.Abs(float64(got[i]-want[i])) > 1e-6 {
			t.Fatalf("s2 logit %d: %v, embedded %v", i, got[i], want[i])
		}
	}
	if _, err := s.S1Logits(ctx, ws); err != nil {
		t.Fatal(err)
	}
	if len(f.srv.Calls()) != calls {
		t.Fatal("the session kept calling Triton after moving to the fallback")
	}
}

// TestBreakerReady: the readiness probe delegates to Triton while the
// breaker is closed, reports an open breaker without a fallback as
// unavailable with the rest of the open period, and an open breaker with a
// fallback as ready. Probes never trip the breaker.
func TestBreakerReady(t *testing.T) {
	f := newBreakerFixture(t, BreakerOptions{ConsecutiveFailures: 1, OpenTimeout: 30 * time.Second})
	ctx := testCtx(t)
	if err := f.br.Ready(ctx); err != nil {
		t.Fatalf("closed, Triton ready: %v", err)
	}
	f.srv.SetReady("tiny-window", "1", false)
	if err := f.br.Ready(ctx); infer.KindOf(err) != infer.KindUnavailable {
		t.Fatalf("closed, window not ready: %v, want KindUnavailable", err)
	}
	if f.br.State() != gobreaker.StateClosed {
		t.Fatal("a failed probe tripped the breaker")
	}
	f.srv.SetReady("tiny-window", "1", true)

	f.srv.SetHook(failInfer(codes.Unavailable, "Server not ready"))
	if err := f.encode(ctx); infer.KindOf(err) != infer.KindUnavailable {
		t.Fatalf("tripping call: %v", err)
	}
	f.clock.Advance(5 * time.Second)
	err := f.br.Ready(ctx)
	if infer.KindOf(err) != infer.KindUnavailable {
		t.Fatalf("open without fallback: %v, want KindUnavailable", err)
	}
	if ra, ok := RetryAfter(err); !ok || ra != 25*time.Second {
		t.Fatalf("retry after %v %v, want 25s", ra, ok)
	}

	emb, _ := embedded(t, kronostest.Tiny)
	g := newBreakerFixture(t, BreakerOptions{ConsecutiveFailures: 1, Fallback: emb})
	g.srv.SetHook(failInfer(codes.Unavailable, "Server not ready"))
	if err := g.encode(ctx); infer.KindOf(err) != infer.KindUnavailable {
		t.Fatalf("tripping call: %v", err)
	}
	if err := g.br.Ready(ctx); err != nil {
		t.Fatalf("open with a fallback: %v, want ready", err)
	}
}
