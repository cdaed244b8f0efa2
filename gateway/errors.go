package gateway

import (
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/kronos-gateway/kronos-gateway/internal/infer"
	"github.com/kronos-gateway/kronos-gateway/triton"
)

// This file is the only place that turns errors into HTTP statuses.

// Retry-After hints, in seconds, sent with 429 and 503.
const (
	retryAfterOverloaded  = 1
	retryAfterUnavailable = 5
)

// retryAfterError carries a specific Retry-After hint (a rate limit's next
// token) for a 429 or 503 response.
type retryAfterError struct {
	err   error
	after time.Duration
}

func (e *retryAfterError) Error() string { return e.err.Error() }
func (e *retryAfterError) Unwrap() error { return e.err }

// withRetryAfter attaches a Retry-After hint to err; the header gets the
// hint rounded up to whole seconds, at least 1.
func withRetryAfter(err error, after time.Duration) error {
	return &retryAfterError{err: err, after: after}
}

// retryHint returns the Retry-After hint err carries: the gateway's own
// (withRetryAfter), or the Triton backend's (triton.RetryAfter: the rest
// of the circuit breaker's open period, or the wait after a full Triton
// queue).
func retryHint(err error) (time.Duration, bool) {
	var hint *retryAfterError
	if errors.As(err, &hint) {
		return hint.after, true
	}
	return triton.RetryAfter(err)
}

// retryAfterSeconds is the Retry-After value of a hint.
func retryAfterSeconds(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}

// statusOfKind is the HTTP status of each error kind.
var statusOfKind = map[infer.Kind]int{
	infer.KindInvalid:      http.StatusUnprocessableEntity,
	infer.KindTooLarge:     http.StatusRequestEntityTooLarge,
	infer.KindNotFound:     http.StatusNotFound,
	infer.KindOverloaded:   http.StatusTooManyRequests,
	infer.KindUnavailable:  http.StatusServiceUnavailable,
	infer.KindTimeout:      http.StatusGatewayTimeout,
	infer.KindCanceled:     499, // client closed request (nginx)
	infer.KindUnauthorized: http.StatusUnauthorized,
	infer.KindInternal:     http.StatusInternalServerError,
}

// errorEnvelope is the body of every error response:
//
//	{"error":{"kind":"invalid_input","message":"...","field":"candles[3].high","request_id":"..."}}
type errorEnvelope struct {
	Error errorBody `json:"error"`
}

type errorBody struct {
	Kind      infer.Kind `json:"kind"`
	Message   string     `json:"message"`
	Field     string     `json:"field,omitempty"`
	RequestID string     `json:"request_id,omitempty"`
}

// classify returns the HTTP status, the error kind (the outcome label) and
// the message for the client. Errors of this module carry their kind
// (infer.KindOf); Fiber's and fasthttp's own errors (*fiber.Error: unknown
// route, wrong method, body too large, bad request line) keep their status
// and get the closest kind. Internal errors never leak their text.
func classify(err error) (status int, kind infer.Kind, message string) {
	var fe *fiber.Error
	if errors.As(err, &fe) && infer.KindOf(err) == infer.KindInternal {
		status, kind = fe.Code, kindOfStatus(fe.Code)
		message = fe.Message
		if status >= 500 {
			message = http.StatusText(status)
		}
		return status, kind, message
	}
	kind = infer.KindOf(err)
	status = statusOfKind[kind]
	if kind == infer.KindInternal {
		return status, kind, "internal error; the request id identifies it in the server log"
	}
	return status, kind, err.Error()
}

// kindOfStatus picks the error kind of a status produced by Fiber itself.
func kindOfStatus(status int) infer.Kind {
	switch {
	case status == http.StatusNotFound:
		return infer.KindNotFound
	case status == http.StatusRequestEntityTooLarge || status == http.StatusRequestHeaderFieldsTooLarge:
		return infer.KindTooLarge
	case status == http.StatusRequestTimeout || status == http.StatusGatewayTimeout:
		return infer.KindTimeout
	case status == http.StatusTooManyRequests:
		return infer.KindOverloaded
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return infer.KindUnauthorized
	case status == http.StatusServiceUnavailable:
		return infer.KindUnavailable
	case status >= 400 && status < 500:
		return infer.KindInvalid
	}
	return infer.KindInternal
}

// writeError writes err as the error envelope and returns its kind.
func writeError(c *fiber.Ctx, err error, requestID string) infer.Kind {
	status, kind, message := classify(err)
	body := errorBody{Kind: kind, Message: message, RequestID: requestID}
	var fieldErr *infer.FieldError
	if errors.As(err, &fieldErr) {
		body.Field = fieldErr.Field
	}
	after, hinted := retryHint(err)
	switch {
	case (status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable) && hinted:
		c.Set(fiber.HeaderRetryAfter, strconv.Itoa(retryAfterSeconds(after)))
	case status == http.StatusTooManyRequests:
		c.Set(fiber.HeaderRetryAfter, strconv.Itoa(retryAfterOverloaded))
	case status == http.StatusServiceUnavailable:
		c.Set(fiber.HeaderRetryAfter, strconv.Itoa(retryAfterUnavailable))
	case status == http.StatusUnauthorized:
		c.Set(fiber.HeaderWWWAuthenticate, `Bearer realm="kronos-gateway"`)
	}
	b, mErr := json.Marshal(errorEnvelope{Error: body})
	if mErr != nil { // cannot happen: only strings
		b = []byte(`{"error":{"kind":"internal","message":"internal error"}}`)
	}
	c.Status(status)
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	_ = c.Send(b) // Send only copies into the response buffer
	return kind
}
