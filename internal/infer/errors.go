package infer

import (
	"errors"
	"fmt"
)

// Kind is the low-cardinality class of an error. It is the only thing the
// gateway looks at to choose an HTTP status, and it doubles as the `outcome`
// label of request metrics.
type Kind string

// The error kinds. Every error that leaves a package of this module wraps
// exactly one of the sentinels below (see Errorf), so errors.Is works across
// layers.
const (
	KindInvalid      Kind = "invalid_input" // the caller's request is wrong (HTTP 422)
	KindTooLarge     Kind = "too_large"     // a body or size limit was exceeded (HTTP 413)
	KindNotFound     Kind = "not_found"     // unknown model, version or route (HTTP 404)
	KindOverloaded   Kind = "overloaded"    // queue full, rate limited (HTTP 429)
	KindUnavailable  Kind = "unavailable"   // not ready, draining, backend down (HTTP 503)
	KindTimeout      Kind = "timeout"       // a deadline expired (HTTP 504)
	KindCanceled     Kind = "canceled"      // the caller went away (HTTP 499)
	KindUnauthorized Kind = "unauthorized"  // missing or wrong API key (HTTP 401)
	KindInternal     Kind = "internal"      // a bug or an unexpected backend failure (HTTP 500)
)

// Sentinels, one per Kind. Match with errors.Is(err, infer.ErrInvalid).
var (
	ErrInvalid      = &kindError{kind: KindInvalid}
	ErrTooLarge     = &kindError{kind: KindTooLarge}
	ErrNotFound     = &kindError{kind: KindNotFound}
	ErrOverloaded   = &kindError{kind: KindOverloaded}
	ErrUnavailable  = &kindError{kind: KindUnavailable}
	ErrTimeout      = &kindError{kind: KindTimeout}
	ErrCanceled     = &kindError{kind: KindCanceled}
	ErrUnauthorized = &kindError{kind: KindUnauthorized}
	ErrInternal     = &kindError{kind: KindInternal}
)

type kindError struct{ kind Kind }

func (e *kindError) Error() string { return string(e.kind) }

var sentinels = []*kindError{ErrInvalid, ErrTooLarge, ErrNotFound, ErrOverloaded,
	ErrUnavailable, ErrTimeout, ErrCanceled, ErrUnauthorized, ErrInternal}

// KindOf returns the kind of err: the first sentinel it wraps, KindTimeout or
// KindCanceled for the context package's errors, and KindInternal otherwise.
// A nil error has the empty kind.
func KindOf(err error) Kind {
	if err == nil {
		return ""
	}
	for _, s := range sentinels {
		if errors.Is(err, s) {
			return s.kind
		}
	}
	if errors.Is(err, errDeadline) {
		return KindTimeout
	}
	if errors.Is(err, errCanceledCtx) {
		return KindCanceled
	}
	return KindInternal
}

// Errorf formats an error that wraps the sentinel of kind k, e.g.
//
//	infer.Errorf(infer.KindInvalid, "candles[%d].high: below low", i)
//
// The message should be fit for the API caller: the gateway returns it.
func Errorf(k Kind, format string, args ...any) error {
	return &wrapped{sentinel: sentinelOf(k), msg: fmt.Sprintf(format, args...)}
}

// Wrap annotates err with kind k while keeping err in the chain (errors.Is on
// either works). A nil err gives nil.
func Wrap(k Kind, err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	return &wrapped{sentinel: sentinelOf(k), msg: fmt.Sprintf(format, args...), cause: err}
}

func sentinelOf(k Kind) *kindError {
	for _, s := range sentinels {
		if s.kind == k {
			return s
		}
	}
	return ErrInternal
}

type wrapped struct {
	sentinel *kindError
	msg      string
	cause    error
}

func (w *wrapped) Error() string {
	if w.cause == nil {
		return w.msg
	}
	if w.msg == "" {
		return w.cause.Error()
	}
	return w.msg + ": " + w.cause.Error()
}

func (w *wrapped) Unwrap() []error {
	if w.cause == nil {
		return []error{w.sentinel}
	}
	return []error{w.sentinel, w.cause}
}

// FieldError is an invalid-input error that names the offending request field
// with a JSON path such as "items[2].candles[17].high".
type FieldError struct {
	Field  string // JSON path of the field
	Reason string // what is wrong, for humans
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

// Unwrap makes every FieldError match ErrInvalid.
func (e *FieldError) Unwrap() error { return ErrInvalid }

// Field returns a *FieldError for path with a formatted reason.
func Field(path, format string, args ...any) error {
	return &FieldError{Field: path, Reason: fmt.Sprintf(format, args...)}
}
