package triton

import (
	"context"
	"errors"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kronos-gateway/kronos-gateway/internal/infer"
)

// Messages Triton puts into UNAVAILABLE statuses that tell overload apart
// from an outage (core: scheduler_utils.cc, dynamic_batch_scheduler.cc).
const (
	msgQueueFull    = "Exceeds maximum queue size"
	msgQueueTimeout = "Request timeout expired"
)

// RetryAfterError is an error that carries a hint for how long the caller
// should wait before retrying: the rest of the breaker's open period, or
// Options.OverloadRetryAfter for a full Triton queue. It wraps an error of
// kind infer.KindUnavailable or infer.KindOverloaded; the gateway sends
// After as the Retry-After header (rounded up to whole seconds).
type RetryAfterError struct {
	// After is how long to wait; always > 0.
	After time.Duration
	// Err is the underlying error (its kind decides the HTTP status).
	Err error
}

func (e *RetryAfterError) Error() string { return e.Err.Error() }

// Unwrap returns the underlying error.
func (e *RetryAfterError) Unwrap() error { return e.Err }

// RetryAfter returns the retry hint carried by err, if any.
func RetryAfter(err error) (time.Duration, bool) {
	var ra *RetryAfterError
	if errors.As(err, &ra) && ra.After > 0 {
		return ra.After, true
	}
	return 0, false
}

// classify maps the error of one RPC into the infer vocabulary. parent is
// the caller's context (the RPC ran under a child with the per-call
// deadline); what names the call for the message. See the package
// documentation for the table.
func classify(parent context.Context, err error, what string, overloadRetry time.Duration) error {
	if err == nil {
		return nil
	}
	// The caller's own context ended: report it as such (canceled is
	// excluded from the breaker; a caller deadline is a timeout).
	if perr := parent.Err(); perr != nil {
		return infer.Wrap(infer.KindOf(infer.FromContext(perr)), perr, "triton: %s", what)
	}
	st, ok := status.FromError(err)
	if !ok {
		if errors.Is(err, context.DeadlineExceeded) {
			return infer.Wrap(infer.KindTimeout, err, "triton: %s", what)
		}
		return infer.Wrap(infer.KindInternal, err, "triton: %s", what)
	}
	msg := st.Message()
	var k infer.Kind
	switch st.Code() {
	case codes.Unavailable:
		k = infer.KindUnavailable
		if strings.Contains(msg, msgQueueFull) {
			e := infer.Wrap(infer.KindOverloaded, err, "triton: %s: queue full", what)
			if overloadRetry > 0 {
				return &RetryAfterError{After: overloadRetry, Err: e}
			}
			return e
		}
	case codes.NotFound:
		k = infer.KindNotFound
	case codes.InvalidArgument, codes.OutOfRange:
		k = infer.KindInvalid
	case codes.DeadlineExceeded:
		k = infer.KindTimeout
	case codes.Canceled:
		// The caller's context is still live (checked above), so the
		// server or the transport canceled the call: not the caller's
		// doing, and 499 would be a lie.
		k = infer.KindUnavailable
	case codes.FailedPrecondition, codes.Aborted:
		k = infer.KindUnavailable
	default:
		// Internal, Unknown, Unimplemented, ResourceExhausted (grpc-go's
		// own receive limit), Unauthenticated, PermissionDenied, ...
		k = infer.KindInternal
	}
	return infer.Wrap(k, err, "triton: %s", what)
}

// callerCanceled reports whether err is the caller's own cancellation.
func callerCanceled(err error) bool { return errors.Is(err, context.Canceled) }
