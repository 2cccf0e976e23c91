// Package pipeline holds the contracts between stages: error classes that
// callers switch on (permanent, throttled, retryable) and the dead-letter
// writer every stage uses so that no input is dropped silently.
package pipeline

import (
	"errors"
	"time"
)

type permanent struct{ err error }

func (p permanent) Error() string { return p.err.Error() }
func (p permanent) Unwrap() error { return p.err }

// Permanent marks err as one that retrying cannot fix (bad data); the
// caller sends the input to the DLQ and moves on.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanent{err}
}

// IsPermanent reports whether err was marked Permanent.
func IsPermanent(err error) bool {
	var p permanent
	return errors.As(err, &p)
}

type throttle struct {
	err   error
	after time.Duration
}

func (t throttle) Error() string { return t.err.Error() }
func (t throttle) Unwrap() error { return t.err }

// Throttle marks err as a request to slow down and retry after d.
func Throttle(err error, d time.Duration) error {
	if err == nil {
		return nil
	}
	return throttle{err, d}
}

// RetryAfter returns the delay a Throttle error asked for.
func RetryAfter(err error) (time.Duration, bool) {
	var t throttle
	if errors.As(err, &t) {
		return t.after, true
	}
	return 0, false
}
