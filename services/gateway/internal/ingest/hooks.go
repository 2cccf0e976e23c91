package ingest

import (
	"context"
	"errors"
	"net/http"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/sluicehq/sluice/pkg/event"
	"github.com/sluicehq/sluice/services/gateway/internal/adapter"
)

// The methods below are the hook the native endpoints (package native) use
// to mount their routes on this server without forking the ingest path:
// they authenticate, read and split bodies with the same limits, and hand
// their events to Ingest, which is the pipeline behind /v1/events/{family}.
// A native endpoint frames its wire format into Items and may override the
// family adapter (Request.Adapt) and add drop rules (Request.Drop); it then
// writes the Result in its own reply shape.

// Ingest runs a batch of events through the pipeline: decode, adapt,
// Avro-encode, produce and wait for the broker's ack, dead-letter every
// rejection. See Pipeline.Ingest.
func (s *Server) Ingest(ctx context.Context, req *Request) *Result {
	return s.pipe.Ingest(ctx, req)
}

// Authenticate finds the request's source by its Sluice key
// (Authorization: Bearer <key> or X-Sluice-Key) and checks that it may
// send fam. Errors are *HTTPError (401 missing or invalid key, 403 family
// not allowed).
func (s *Server) Authenticate(c echo.Context, fam event.Family) (*Source, error) {
	return s.authenticate(c, fam)
}

// PresentedKey returns the Sluice key the request presents (headers, or
// ?key= as browser keys may send it; see requestKey), or "".
func PresentedKey(r *http.Request) string {
	k, _ := requestKey(r)
	return k
}

// Meta returns what the request says about its events: receive time,
// client IP (X-Forwarded-For only from trusted proxies), User-Agent,
// Referer, Accept-Language and Host, each as valid UTF-8.
func (s *Server) Meta(c echo.Context) adapter.Meta { return s.meta(c) }

// ReadBody reads the request body within the configured limits, inflating
// gzip. release hands the buffers back to a pool: the body must not be used
// after it. Errors are *HTTPError (413, 415, 400).
func (s *Server) ReadBody(r *http.Request) (body []byte, release func(), err error) {
	b, rel, herr := s.readBody(r)
	if herr != nil {
		return nil, rel, herr
	}
	return b, rel, nil
}

// readBody reads r's body within the limits and the request's share of the
// in-flight bytes (503 overloaded past it).
func (s *Server) readBody(r *http.Request) ([]byte, func(), *HTTPError) {
	return readBody(r, s.opts.Limits, admissionFrom(r.Context()), s.retryAfterFor(ReasonOverloaded))
}

// BatchID returns the client's batch id: the Idempotency-Key header, or
// ?idempotency_key= (sendBeacon cannot set headers), at most 128 bytes
// (400 bad_idempotency_key past it). Events of a batch sent with one and
// without event ids of their own get ids derived from the source, the batch
// id and their index, so a retried batch carries the same ids.
func (s *Server) BatchID(r *http.Request) (string, error) {
	id, err := batchID(r)
	if err != nil {
		return "", err
	}
	return id, nil
}

// SetRetryAfter sets the Retry-After header when he carries a delay
// (429 and 503 refusals). Endpoints that write their own error replies
// call it.
func SetRetryAfter(c echo.Context, he *HTTPError) {
	if he != nil && he.RetryAfter > 0 {
		c.Response().Header().Set("Retry-After", retryAfterValue(he.RetryAfter))
	}
}

// RetryAfterHeader renders d as a Retry-After value: whole seconds, at
// least 1.
func RetryAfterHeader(d time.Duration) string { return retryAfterValue(d) }

// SetRefusalWriter makes request-level errors under the path prefix (the
// refusals of backpressure, rate limits and authentication that the
// middleware returns before the endpoint runs) be written by write, in the
// endpoint's own reply shape. Retry-After is already set. Call it before
// Start.
func (s *Server) SetRefusalWriter(prefix string, write func(c echo.Context, he *HTTPError) error) {
	s.refusalWriters = append(s.refusalWriters, refusalWriter{prefix: prefix, write: write})
}

// Split cuts a body into events as /v1/events does: a JSON array, one
// object, or NDJSON when ndjson is true (or when the body holds several
// objects). Errors: ErrTooManyEvents, or a description of the bad body.
func (s *Server) Split(body []byte, ndjson bool) ([]Item, error) {
	format := formatAuto
	if ndjson {
		format = formatNDJSON
	}
	return split(body, format, s.opts.Limits.MaxEvents)
}

// Limits returns the request limits.
func (s *Server) Limits() Limits { return s.opts.Limits }

// RetryAfter is the delay sent with a 503 answering res: the backpressure
// delay when the gateway was overloaded (res.Unavailable is ErrOverloaded),
// else the general one (res may be nil: Kafka unreachable, shutting down).
//
// A Result whose RateLimited is set is answered 429 with Retry-After
// RetryAfterHeader(res.RateLimited).
func (s *Server) RetryAfter(res *Result) time.Duration {
	if res != nil && errors.Is(res.Unavailable, ErrOverloaded) {
		return s.retryAfterFor(ReasonOverloaded)
	}
	return s.opts.RetryAfter
}

// Reply writes res the way /v1/events does: 200, 207 with the per-event
// errors, or 503 with Retry-After when Kafka took none.
func (s *Server) Reply(c echo.Context, res *Result) error { return s.reply(c, res) }

// SetDrop installs a drop rule for the generic /v1/events/{fam} endpoint,
// e.g. the edX staff /event_logs rule. Call it before Start.
func (s *Server) SetDrop(fam event.Family, fn DropFunc) {
	if s.drops == nil {
		s.drops = map[event.Family]DropFunc{}
	}
	s.drops[fam] = fn
}

// validText returns s unchanged when it is valid UTF-8, else s read as
// Latin-1 (HTTP header bytes from older clients), so that every string the
// gateway stamps on an event is valid UTF-8.
func validText(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return string(latin1ToUTF8([]byte(s)))
}
