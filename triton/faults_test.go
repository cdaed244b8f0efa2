package triton

import (
	"context"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kronos-gateway/kronos-gateway/internal/infer"
	pb "github.com/kronos-gateway/kronos-gateway/triton/inferencepb"
	"github.com/kronos-gateway/kronos-gateway/triton/internal/kronostest"
	"github.com/kronos-gateway/kronos-gateway/triton/modelconfig"
	"github.com/kronos-gateway/kronos-gateway/triton/tritontest"
)

// breakerCount is how the breaker counts an error.
type breakerCount string

const (
	countSuccess  breakerCount = "success"
	countFailure  breakerCount = "failure"
	countExcluded breakerCount = "excluded"
)

func countOf(err error) breakerCount {
	switch {
	case breakerExcluded(err):
		return countExcluded
	case breakerSuccess(err):
		return countSuccess
	}
	return countFailure
}

// blockUntilDone is a hook that holds ModelInfer until its context ends
// (a server slower than any deadline).
func blockUntilDone(ctx context.Context, method string, _ any) error {
	if method == "ModelInfer" {
		<-ctx.Done()
		return status.FromContextError(ctx.Err()).Err()
	}
	return nil
}

// TestErrorMapping injects each failure Triton can produce into ModelInfer
// (through the fake's hook) and checks the infer kind the client returns,
// the Retry-After hint and how the breaker counts it: the table of the
// package documentation.
func TestErrorMapping(t *testing.T) {
	srv, _, _ := fakeTriton(t, kronostest.Tiny, tritontest.Options{}, modelconfig.Params{})
	b, _ := client(t, srv.Addr(), Options{InferTimeout: 200 * time.Millisecond})
	ws := windowsOf([]int{10}, 16, 16)
	tests := []struct {
		name  string
		hook  tritontest.Hook
		ctx   func() (context.Context, context.CancelFunc)
		kind  infer.Kind
		retry time.Duration
		count breakerCount
	}{
		{name: "queue full", hook: failWith(codes.Unavailable, "Exceeds maximum queue size"),
			kind: infer.KindOverloaded, retry: DefaultOverloadRetry, count: countExcluded},
		{name: "queue timeout", hook: failWith(codes.Unavailable, "Request timeout expired"),
			kind: infer.KindUnavailable, count: countFailure},
		{name: "server not ready", hook: failWith(codes.Unavailable, "Server not ready"),
			kind: infer.KindUnavailable, count: countFailure},
		{name: "pinned version gone", hook: failWith(codes.NotFound, "Request for unknown model: 'tiny-window' version 1 is not found"),
			kind: infer.KindUnavailable, count: countFailure},
		{name: "invalid argument", hook: failWith(codes.InvalidArgument, "unexpected shape for input 's1'"),
			kind: infer.KindInvalid, count: countSuccess},
		{name: "server deadline", hook: failWith(codes.DeadlineExceeded, "deadline"),
			kind: infer.KindTimeout, count: countFailure},
		{name: "server canceled", hook: failWith(codes.Canceled, "GRPC server is shutting down"),
			kind: infer.KindUnavailable, count: countFailure},
		{name: "internal", hook: failWith(codes.Internal, "onnx runtime error 6"),
			kind: infer.KindInternal, count: countFailure},
		{name: "unimplemented", hook: failWith(codes.Unimplemented, "not supported"),
			kind: infer.KindInternal, count: countFailure},
		{name: "slow beyond the per-call deadline", hook: blockUntilDone,
			kind: infer.KindTimeout, count: countFailure},
		{name: "caller's deadline", hook: blockUntilDone,
			ctx: func() (context.Context, context.CancelFunc) {
				return context.WithTimeout(context.Background(), 20*time.Millisecond)
			},
			kind: infer.KindTimeout, count: countFailure},
		{name: "caller canceled", hook: cancelCaller,
			ctx:  func() (context.Context, context.CancelFunc) { return context.WithCancel(context.Background()) },
			kind: infer.KindCanceled, count: countExcluded},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			if tc.ctx != nil {
				ctx, cancel = tc.ctx()
			}
			defer cancel()
			setCallerCancel(cancel)
			srv.SetHook(tc.hook)
			defer srv.SetHook(nil)
			s, err := b.NewSession(context.Background(), 1)
			if err != nil {
				t.Fatal(err)
			}
			_, err = s.S1Logits(ctx, ws)
			if err == nil {
				t.Fatal("no error")
			}
			if k := infer.KindOf(err); k != tc.kind {
				t.Fatalf("kind %s, want %s (%v)", k, tc.kind, err)
			}
			ra, ok := RetryAfter(err)
			if ra != tc.retry || ok != (tc.retry > 0) {
				t.Fatalf("retry after %v %v, want %v", ra, ok, tc.retry)
			}
			if c := countOf(err); c != tc.count {
				t.Fatalf("breaker counts it as %s, want %s", c, tc.count)
			}
		})
	}
}

func failWith(c codes.Code, msg string) tritontest.Hook {
	return func(_ context.Context, method string, _ any) error {
		if method == "ModelInfer" {
			return status.Error(c, msg)
		}
		return nil
	}
}

// callerCancel holds the cancel function of the current subtest's context.
var callerCancel struct {
	sync.Mutex
	f context.CancelFunc
}

func setCallerCancel(f context.CancelFunc) {
	callerCancel.Lock()
	callerCancel.f = f
	callerCancel.Unlock()
}

// cancelCaller cancels the caller's context while the server holds the
// request, then waits for the cancellation to reach the server.
func cancelCaller(ctx context.Context, method string, _ any) error {
	if method != "ModelInfer" {
		return nil
	}
	callerCancel.Lock()
	f := callerCancel.f
	callerCancel.Unlock()
	f()
	<-ctx.Done()
	return status.FromContextError(ctx.Err()).Err()
}

// TestControlErrors maps control-plane errors (unknown model, bad load
// request).
func TestControlErrors(t *testing.T) {
	srv, _, _ := fakeTriton(t, kronostest.Tiny, tritontest.Options{Explicit: true}, modelconfig.Params{})
	ctx := testCtx(t)
	b, _ := client(t, srv.Addr(), Options{})

	_, err := New(ctx, Options{URL: srv.Addr(), Model: "nope", Logger: quiet})
	if infer.KindOf(err) != infer.KindNotFound {
		t.Fatalf("unknown model: %v, want KindNotFound", err)
	}
	if err := b.Load(ctx, "tiny-window", LoadOptions{Files: map[string][]byte{"2/model.onnx": {1}}}); infer.KindOf(err) != infer.KindInvalid {
		t.Fatalf("files without config: %v", err)
	}
	if err := b.Load(ctx, "tiny-window", LoadOptions{Config: &pb.ModelConfig{Name: "tiny-window"}, Files: map[string][]byte{"../x": {1}}}); infer.KindOf(err) != infer.KindInvalid {
		t.Fatalf("escaping file path: %v", err)
	}
	if err := b.Load(ctx, "tiny-unknown", LoadOptions{}); infer.KindOf(err) != infer.KindInternal {
		t.Fatalf("load of a model not in the repository: %v", err)
	}
	ok, err := b.ModelReady(ctx, "tiny-window", "7")
	if err != nil || ok {
		t.Fatalf("ModelReady of a missing version: %v %v", ok, err)
	}
}

// TestQueueFull fills the fake's queue (one execution slot, max_queue_size
// 1): the third concurrent request is rejected with Triton's message and
// the client reports KindOverloaded with a Retry-After hint; the other two
// complete once the first is released.
func TestQueueFull(t *testing.T) {
	srv, _, _ := fakeTriton(t, kronostest.Tiny, tritontest.Options{MaxConcurrent: 1}, modelconfig.Params{CPUMaxQueue: 1})
	b, _ := client(t, srv.Addr(), Options{})
	gate := make(chan struct{})
	started := make(chan struct{}, 3)
	srv.Wrap("tiny-window", func(next tritontest.Model) tritontest.Model {
		return tritontest.ModelFunc(func(ctx context.Context, in map[string]*tritontest.Tensor) (map[string]*tritontest.Tensor, error) {
			started <- struct{}{}
			<-gate
			return next.Infer(ctx, in)
		})
	})
	ctx := testCtx(t)
	ws := windowsOf([]int{12}, 16, 16)
	run := func() error {
		s, err := b.NewSession(ctx, 1)
		if err != nil {
			return err
		}
		_, err = s.S1Logits(ctx, ws)
		return err
	}
	errs := make(chan error, 2)
	go func() { errs <- run() }()
	<-started // the first request holds the only execution slot
	go func() { errs <- run() }()
	for srv.Queued("tiny-window") < 1 { // the second waits in the queue
		time.Sleep(time.Millisecond)
	}
	err := run()
	if infer.KindOf(err) != infer.KindOverloaded {
		t.Fatalf("third request: %v, want KindOverloaded", err)
	}
	if ra, ok := RetryAfter(err); !ok || ra != DefaultOverloadRetry {
		t.Fatalf("retry hint %v %v", ra, ok)
	}
	close(gate)
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatalf("held or queued request: %v", err)
		}
	}
}
