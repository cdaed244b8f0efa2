package infer

import "context"

var (
	errDeadline    = context.DeadlineExceeded
	errCanceledCtx = context.Canceled
)

// FromContext converts a context error into this package's vocabulary:
// DeadlineExceeded becomes KindTimeout and Canceled KindCanceled. Other errors
// are returned unchanged.
func FromContext(err error) error {
	switch err {
	case context.DeadlineExceeded:
		return Wrap(KindTimeout, err, "")
	case context.Canceled:
		return Wrap(KindCanceled, err, "")
	}
	return err
}
