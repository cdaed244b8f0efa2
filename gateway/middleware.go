package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"github.com/kronos-gateway/kronos-gateway/internal/infer"
)

// HeaderRequestID carries the request id in both directions.
const HeaderRequestID = "X-Request-ID"

// maxRequestIDLen bounds a request id accepted from a client.
const maxRequestIDLen = 128

// Keys of the per-request values kept in fiber.Ctx.Locals.
type localKey int

const (
	localRequestID localKey = iota // string
	localRoute                     // string: the route label
	localOutcome                   // string: the outcome of a non-2xx answer that is not an error (readyz 503)
)

// routeUnmatched is the route label of requests that match no route.
const routeUnmatched = "unmatched"

// requestID returns the request id of c: the one set by the middleware, or
// for errors raised by fasthttp before any middleware ran, the client's or a
// new one.
func requestID(c *fiber.Ctx) string {
	if id, ok := c.Locals(localRequestID).(string); ok {
		return id
	}
	id := c.Get(HeaderRequestID)
	if !validRequestID(id) {
		return uuid.NewString()
	}
	return strings.Clone(id) // c.Get aliases a buffer reused after the request
}

// validRequestID accepts 1..128 printable ASCII characters without spaces,
// so a client's id is safe to echo in headers and logs.
func validRequestID(id string) bool {
	if id == "" || len(id) > maxRequestIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] <= ' ' || id[i] > '~' {
			return false
		}
	}
	return true
}

// withRequestID is the outermost middleware: it keeps the client's
// X-Request-ID when it is sane, or makes a uuid, and returns it in the
// response header.
func (a *App) withRequestID(c *fiber.Ctx) error {
	id := requestID(c)
	c.Locals(localRequestID, id)
	c.Set(HeaderRequestID, id)
	return c.Next()
}

// accessLog handles the error of the chain below it (so that the status is
// known), bounds the request with RequestTimeout, and logs one JSON line per
// request.
func (a *App) accessLog(c *fiber.Ctx) error {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), a.opts.RequestTimeout)
	defer cancel()
	c.SetUserContext(ctx)

	outcome := "ok"
	var chainErr error
	if err := c.Next(); err != nil {
		chainErr = a.refine(err)
		outcome = string(writeError(c, chainErr, requestID(c)))
	} else if o, ok := c.Locals(localOutcome).(string); ok {
		outcome = o
	}
	if a.draining.Load() {
		// fasthttp keeps serving a connection that was busy when the
		// shutdown grace period ran out; do not let it be reused.
		c.Context().SetConnectionClose()
	}
	route, _ := c.Locals(localRoute).(string)
	if route == "" {
		route = routeUnmatched
	}
	latency := time.Since(start)
	a.metrics.observeRequest(route, c.Response().StatusCode(), outcome, latency, chainErr)
	a.logRequest(c, route, outcome, latency, chainErr)
	return nil
}

// logRequest writes the access-log line: info for successes and client
// errors, warn for 5xx other than internal, error for internal errors.
func (a *App) logRequest(c *fiber.Ctx, route, outcome string, latency time.Duration, err error) {
	status := c.Response().StatusCode()
	level := slog.LevelInfo
	switch {
	case outcome == string(infer.KindInternal):
		level = slog.LevelError
	case status >= 500:
		level = slog.LevelWarn
	}
	attrs := []slog.Attr{
		slog.String("request_id", requestID(c)),
		slog.String("method", c.Method()),
		slog.String("route", route),
		slog.Int("status", status),
		slog.Float64("latency_ms", float64(latency.Microseconds())/1000),
		slog.String("outcome", outcome),
		slog.Int("bytes_in", len(c.Request().Body())),
		slog.Int("bytes_out", len(c.Response().Body())),
	}
	if id, ok := c.Locals(localKeyID).(string); ok {
		attrs = append(attrs, slog.String("key_id", id)) // a hash; keys are never logged
	}
	if err != nil {
		attrs = append(attrs, slog.String("error", err.Error()))
	}
	a.log.LogAttrs(context.Background(), level, "request", attrs...)
}

// recoverPanic turns a panic below it into an internal error and logs the
// stack, so that no request can take the process down.
func (a *App) recoverPanic(c *fiber.Ctx) (err error) {
	defer func() {
		if r := recover(); r != nil {
			a.log.Error("panic in handler",
				slog.String("request_id", requestID(c)),
				slog.String("panic", fmt.Sprint(r)),
				slog.String("stack", string(debug.Stack())))
			err = infer.Errorf(infer.KindInternal, "panic: %v", r)
		}
	}()
	return c.Next()
}

// handleError is Fiber's Config.ErrorHandler. The middleware chain handles
// its own errors, so this only sees errors that fasthttp raises before the
// chain runs (a body over the limit, an unparsable request line); it writes
// the same envelope and the same access-log line.
func (a *App) handleError(c *fiber.Ctx, err error) error {
	id := requestID(c)
	c.Set(HeaderRequestID, id)
	c.Locals(localRequestID, id)
	err = a.refine(err)
	outcome := writeError(c, err, id)
	// No route matched yet: label the request with its path only when that
	// is a registered route (all are static), never with a raw path.
	route := routeUnmatched
	if p := c.Path(); a.routes[p] {
		route = strings.Clone(p) // c.Path() is zero-copy: its bytes are reused by later requests
	}
	a.metrics.observeRequest(route, c.Response().StatusCode(), string(outcome), 0, err)
	a.logRequest(c, route, string(outcome), 0, err)
	return nil
}

// refine replaces Fiber's terse errors with ones that tell the client what
// to do.
func (a *App) refine(err error) error {
	switch {
	case errors.Is(err, fiber.ErrRequestEntityTooLarge):
		return rejected(ReasonBodyTooLarge, infer.Errorf(infer.KindTooLarge,
			"request body exceeds the limit of %d bytes (KRONOS_MAX_BODY_BYTES)", a.opts.MaxBodyBytes))
	case errors.Is(err, fiber.ErrMethodNotAllowed):
		return fiber.NewError(fiber.StatusMethodNotAllowed, "method not allowed on this route")
	}
	return err
}
