package avro

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/url"

	"github.com/twmb/franz-go/pkg/sr"
)

// registryError marks an error met while asking the registry for a schema,
// as opposed to one in the value itself.
type registryError struct{ err error }

func (e registryError) Error() string { return e.err.Error() }
func (e registryError) Unwrap() error { return e.err }

// IsTransient reports whether an error from Serde.Decode, Serde.Codec or a
// Codec may pass if the same value is tried again later, so the caller
// should retry rather than dead-letter the value.
//
// Transient: a context ended; the registry could not be reached, timed out
// or sent an unreadable answer; it answered 5xx, 429 (slow down), 408, or
// 401/403 (our credentials, not the value, are at fault).
//
// Permanent, the value's own fault: not the Confluent wire format
// (ErrNotConfluent), a schema id the registry does not know (404), any
// other 4xx, a schema that does not compile, and bytes that do not decode
// with their schema.
func IsTransient(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var re *sr.ResponseError
	if errors.As(err, &re) {
		switch re.StatusCode {
		case http.StatusRequestTimeout, http.StatusTooManyRequests, http.StatusUnauthorized, http.StatusForbidden:
			return true
		}
		return re.StatusCode >= 500
	}
	var ue *url.Error
	var ne net.Error
	var rerr registryError
	return errors.As(err, &ue) || errors.As(err, &ne) || errors.As(err, &rerr)
}
