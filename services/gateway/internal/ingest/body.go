package ingest

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Limits bound what one request may cost.
type Limits struct {
	MaxBodyBytes         int64
	MaxDecompressedBytes int64
	// MaxRatio bounds decompressed/compressed size (gzip bombs); bodies that
	// inflate to less than 1 MiB are not held to it.
	MaxRatio      int64
	MaxEvents     int
	MaxEventBytes int
	MaxDepth      int
}

// HTTPError is a request-level failure with its HTTP status and a stable
// reason code. Native endpoints translate it into their own reply shape.
type HTTPError struct {
	Status  int
	Code    string
	Message string
	// RetryAfter, when set, is sent as the Retry-After header (429, 503).
	RetryAfter time.Duration
}

func (e *HTTPError) Error() string { return e.Message }

// Errorf builds an HTTPError.
func Errorf(status int, code, format string, a ...any) *HTTPError {
	return &HTTPError{Status: status, Code: code, Message: fmt.Sprintf(format, a...)}
}

func errf(status int, code, format string, a ...any) *HTTPError {
	return Errorf(status, code, format, a...)
}

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// readBody reads the request body within the limits, inflating gzip. The
// returned release func hands the buffers back to the pool; the body must
// not be used after it. The body is never held beyond the limits: it is
// read through a limit of max_body_bytes+1 (and inflated through one of the
// decompressed limit+1), and every byte read, as sent and as inflated,
// counts against the gateway's in-flight bytes (a's budget), so that a body
// arriving when that bound is reached is refused with 503 as soon as it
// is hit.
func readBody(r *http.Request, lim Limits, a *admission, retryAfter time.Duration) ([]byte, func(), *HTTPError) {
	if r.ContentLength > lim.MaxBodyBytes {
		return nil, func() {}, errf(http.StatusRequestEntityTooLarge, "body_too_large",
			"body of %d bytes is over the %d-byte limit", r.ContentLength, lim.MaxBodyBytes)
	}
	enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding")))
	if enc != "" && enc != "identity" && enc != "gzip" && enc != "x-gzip" {
		return nil, func() {}, errf(http.StatusUnsupportedMediaType, "unsupported_encoding",
			"Content-Encoding %q is not supported (use gzip or none)", enc)
	}
	overloaded := func() *HTTPError {
		he := errf(http.StatusServiceUnavailable, ReasonOverloaded, "the gateway is at its limit of body bytes in flight; retry after the delay")
		he.RetryAfter = retryAfter
		return he
	}
	var body io.Reader = r.Body
	if a != nil {
		body = &budgetReader{r: r.Body, a: a}
	}
	wire := bufPool.Get().(*bytes.Buffer)
	wire.Reset()
	if r.ContentLength > 0 {
		// One allocation of the announced size, not a series of doublings.
		wire.Grow(int(r.ContentLength) + bytes.MinRead)
	}
	release := func() { putBuf(wire) }
	// Read one byte past the limit to tell "exactly at" from "over".
	n, err := wire.ReadFrom(io.LimitReader(body, lim.MaxBodyBytes+1))
	if err != nil {
		release()
		var mbe *http.MaxBytesError
		switch {
		case errors.Is(err, errBudget):
			return nil, func() {}, overloaded()
		case errors.As(err, &mbe):
			return nil, func() {}, errf(http.StatusRequestEntityTooLarge, "body_too_large", "body is over the %d-byte limit", lim.MaxBodyBytes)
		}
		return nil, func() {}, errf(http.StatusBadRequest, "body_unreadable", "reading body: %v", err)
	}
	if n > lim.MaxBodyBytes {
		release()
		return nil, func() {}, errf(http.StatusRequestEntityTooLarge, "body_too_large", "body is over the %d-byte limit", lim.MaxBodyBytes)
	}
	if enc != "gzip" && enc != "x-gzip" {
		return wire.Bytes(), release, nil
	}
	zr, err := gzip.NewReader(bytes.NewReader(wire.Bytes()))
	if err != nil {
		release()
		return nil, func() {}, errf(http.StatusBadRequest, "bad_gzip", "body is not valid gzip: %v", err)
	}
	plain := bufPool.Get().(*bytes.Buffer)
	plain.Reset()
	release = func() { putBuf(wire); putBuf(plain) }
	limit := lim.MaxDecompressedBytes
	if byRatio := max(lim.MaxRatio*n, 1<<20); lim.MaxRatio > 0 && byRatio < limit {
		limit = byRatio
	}
	var inflated io.Reader = zr
	if a != nil {
		inflated = &budgetReader{r: zr, a: a}
	}
	m, err := plain.ReadFrom(io.LimitReader(inflated, limit+1))
	if err != nil {
		release()
		if errors.Is(err, errBudget) {
			return nil, func() {}, overloaded()
		}
		return nil, func() {}, errf(http.StatusBadRequest, "bad_gzip", "inflating body: %v", err)
	}
	if m > limit {
		release()
		return nil, func() {}, errf(http.StatusRequestEntityTooLarge, "decompressed_too_large",
			"body inflates past %d bytes (limit %d bytes, ratio %d)", limit, lim.MaxDecompressedBytes, lim.MaxRatio)
	}
	return plain.Bytes(), release, nil
}

// putBuf returns a buffer to the pool unless it grew large, so one big
// request does not pin memory for ever.
func putBuf(b *bytes.Buffer) {
	if b.Cap() > 4<<20 {
		return
	}
	bufPool.Put(b)
}

// bodyFormat picks the splitter from the Content-Type.
func bodyFormat(r *http.Request) (string, *HTTPError) {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return formatAuto, nil
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return "", errf(http.StatusUnsupportedMediaType, "unsupported_media_type", "Content-Type %q cannot be parsed", ct)
	}
	switch mt {
	case "application/x-ndjson", "application/jsonl", "application/x-jsonlines", "application/jsonlines":
		return formatNDJSON, nil
	case "application/json", "text/plain", "application/octet-stream":
		return formatAuto, nil
	}
	return "", errf(http.StatusUnsupportedMediaType, "unsupported_media_type",
		"Content-Type %q is not supported (use application/json or application/x-ndjson)", mt)
}
