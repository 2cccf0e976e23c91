package ingest

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
)

// Backpressure: what the gateway holds at once is bounded, and a request
// past a bound is refused with 503 and Retry-After instead of queueing.
//
//   - In-flight bytes (Options.MaxInflightBytes): the request bodies the
//     gateway holds, as sent and as inflated, counted while they are read
//     and until the request is answered. A request whose Content-Length does
//     not fit in what is left is refused before its body is read; a body
//     without a Content-Length (chunked) is refused as soon as it reaches
//     the bound.
//   - In-flight requests (Options.MaxInflightRequests): requests being
//     processed (decoded, adapted, validated, encoded). The slot is taken
//     only once the body is in, so that clients that send their bodies
//     slowly hold none, and given back once the records are handed to the
//     producer: a request waiting for the brokers' acks uses no CPU, and
//     holding the slot then would leave the CPU idle while acks are slow.
//     A request that finds every slot taken waits for one, at most
//     Options.QueueTimeout, behind a bounded number of others; past
//     either it is refused. A request arriving while the slots and the
//     queue are full is refused before its body is read.
//   - Requests waiting for acks (Options.MaxAwaitingAcks): a request whose
//     records are built takes an ack slot before it gives its processing
//     slot back, waiting for one while it holds the processing slot. When
//     Kafka acks more slowly than the CPU builds, the ack slots fill, then
//     the processing slots, and new requests are refused: what is in
//     flight, and so the latency of what is accepted, stays bounded.
//   - The overload cut (guard.cut): the queue and the ack slots are long
//     while the gateway keeps up, and short under overload. Long, three
//     times as many requests as there are processing slots may wait (bursts,
//     and as many closed-loop clients as the gateway can serve, wait
//     briefly instead of being sent away for Retry-After), and every ack
//     slot serves (more records in flight batch better and raise
//     throughput). Short, a quarter as many may wait and a quarter of the
//     ack slots serve (acks; the rest, acksExtra, stand unused): under
//     overload every place in either is a request's worth of latency for
//     what is accepted. The cut holds while two things are true: the CPU is
//     saturated (cpuload.go), and the processing bound turned a request
//     away within the last refusalMemory. The CPU alone does not decide
//     it: a gateway whose clients all get in (closed-loop clients, as many
//     as it can serve) is as busy as an overloaded one, but its clients
//     already bound what is in flight, and cutting would only refuse them.
//     Requests turned away show that demand outruns what the long bounds
//     admit.
//   - Open connections (Options.MaxConnections, connlimit.go): a request
//     on a connection past the bound is refused before its body is read,
//     and that connection closed after the answer.
//   - Kafka unavailable (health.go): while the circuit is open, requests are
//     refused before their body is read.
//   - Shutting down: requests that arrive after SIGTERM on a connection that
//     is still open are refused before their body is read.
//
// Per-source rate limits (ratelimit.go) answer 429 instead.

// Refusal reasons, the label of sluice_gateway_refused_requests_total and
// sluice_gateway_refused_events_total, and the error codes of the replies.
const (
	ReasonOverloaded       = "overloaded"
	ReasonKafkaUnavailable = "kafka_unavailable"
	ReasonRateLimited      = "rate_limited"
	ReasonShuttingDown     = "shutting_down"
)

// ErrOverloaded is Result.Unavailable when the gateway had no processing
// slot free for the request.
var ErrOverloaded = errors.New("the gateway is at its in-flight request limit")

// ErrCircuitOpen is Result.Unavailable when the request was not produced
// because Kafka is known to be unreachable.
var ErrCircuitOpen = errors.New("kafka is unreachable")

// Retryable reports whether a per-event error code means "not stored, send
// it again" rather than a problem with the event.
func Retryable(code string) bool {
	switch code {
	case "produce_failed", ReasonOverloaded, ReasonKafkaUnavailable, ReasonRateLimited, ReasonShuttingDown:
		return true
	}
	return false
}

// guard holds the gateway-wide in-flight counts.
type guard struct {
	maxRequests int64
	maxBytes    int64
	slots       chan struct{} // one per processing slot; nil: unbounded
	// acks has one slot per request waiting for acks (nil: unbounded);
	// acksExtra the slots unused while the overload cut holds.
	acks, acksExtra chan struct{}
	// queueLen is the most requests waiting for a slot, queueLenCut while
	// the overload cut holds.
	queueLen, queueLenCut int64
	cpu                   *cpuSaturation // nil: never saturated
	queueTimeout          time.Duration
	// epoch is when the guard was made; turnedAway is when the processing
	// bound last turned a request away, as time since epoch plus one (0:
	// never).
	epoch      time.Time
	turnedAway atomic.Int64
	waiting    atomic.Int64 // requests waiting for a slot
	processing atomic.Int64 // requests holding a processing slot
	bytes      atomic.Int64 // body bytes held
	admitted   atomic.Int64 // guarded requests between admission and answer
	// producedUnanswered counts requests some of whose events are stored
	// and whose answer is not written yet.
	producedUnanswered atomic.Int64
}

// admission is one guarded request's share of the bounds; it lives in the
// request's context from the admit middleware until the answer.
type admission struct {
	g     *guard
	bytes int64 // reserved body bytes
	slot  bool  // holds a processing slot
	// produced: some of the request's events are stored (counted in
	// guard.producedUnanswered until the answer).
	produced bool
	// hadSlot: the request held a slot and gave it back to wait for acks;
	// a later part of it (an archive ingested in chunks) waits for a slot
	// rather than being refused halfway.
	hadSlot bool
	ackSlot chan struct{} // the ack slots it holds one of (nil: none)
	// rate is the request's source-key rate-limit state, set by
	// authenticate (ratelimit.go).
	rate *rateAdmission
}

type admissionKey struct{}

func admissionFrom(ctx context.Context) *admission {
	a, _ := ctx.Value(admissionKey{}).(*admission)
	return a
}

// reserve takes n more body bytes, or reports that the bound is reached.
func (a *admission) reserve(n int64) bool {
	if a == nil || n <= 0 {
		return true
	}
	if held := a.g.bytes.Add(n); a.g.maxBytes > 0 && held > a.g.maxBytes {
		a.g.bytes.Add(-n)
		return false
	}
	a.bytes += n
	return true
}

func newGuard(maxRequests, maxAwaitingAcks int, maxBytes int64, queueTimeout time.Duration, cpu *cpuSaturation) *guard {
	g := &guard{maxRequests: int64(maxRequests), maxBytes: maxBytes, queueTimeout: queueTimeout, cpu: cpu,
		queueLen: int64(max(3*maxRequests, 1)), queueLenCut: int64(max(maxRequests/4, 1)), epoch: time.Now()}
	if maxRequests > 0 {
		g.slots = make(chan struct{}, maxRequests)
	}
	if maxAwaitingAcks > 0 {
		// A quarter of the ack slots serve always, the rest only while
		// the overload cut does not hold (see the comment at the top).
		base := (maxAwaitingAcks + 3) / 4
		g.acks = make(chan struct{}, base)
		if extra := maxAwaitingAcks - base; extra > 0 {
			g.acksExtra = make(chan struct{}, extra)
		}
	}
	return g
}

// toAcks moves the request from the processing stage to waiting for acks:
// it takes an ack slot (waiting for one while it still holds its
// processing slot, which is what pushes back on new requests) and then
// gives its processing slot back.
func (a *admission) toAcks() {
	if a == nil {
		return
	}
	if g := a.g; g.acks != nil && a.ackSlot == nil {
		a.ackSlot = g.takeAckSlot()
	}
	a.releaseSlot()
}

// takeAckSlot takes an ack slot, waiting for one, and returns the slots
// it is one of: a base one if free, else, unless the overload cut holds,
// an extra one.
func (g *guard) takeAckSlot() chan struct{} {
	select {
	case g.acks <- struct{}{}:
		return g.acks
	default:
	}
	if g.acksExtra == nil || g.cut() {
		g.acks <- struct{}{}
		return g.acks
	}
	select {
	case g.acks <- struct{}{}:
		return g.acks
	case g.acksExtra <- struct{}{}:
		return g.acksExtra
	}
}

// awaitingAcks is the number of ack slots taken.
func (g *guard) awaitingAcks() int {
	return len(g.acks) + len(g.acksExtra)
}

// acked gives the ack slot back once the acks (or errors) are in.
func (a *admission) acked() {
	if a == nil || a.ackSlot == nil {
		return
	}
	<-a.ackSlot
	a.ackSlot = nil
}

// refusalMemory is how long a request turned away at the processing
// bound counts towards the overload cut: as long as a saturation of the
// CPU takes to end (cpuload.go), so that the cut, once made, holds while
// the overload does.
const refusalMemory = calmWindows * saturationWindow

// cut reports whether the overload cut holds (see the comment at the top):
// the CPU is saturated and the processing bound turned a request away
// within the last refusalMemory.
func (g *guard) cut() bool {
	if !g.cpu.Saturated() {
		return false
	}
	at := g.turnedAway.Load()
	return at != 0 && time.Since(g.epoch)+1-time.Duration(at) < refusalMemory
}

// turnAway records that the processing bound refused a request.
func (g *guard) turnAway() {
	g.turnedAway.Store(int64(time.Since(g.epoch)) + 1)
}

// queueLimit is the queue's current length (see the comment at the top).
func (g *guard) queueLimit() int64 {
	if g.cut() {
		return g.queueLenCut
	}
	return g.queueLen
}

// full reports whether every slot is taken and the queue is full: a new
// request would be refused.
func (g *guard) full() bool {
	if g.slots == nil || g.processing.Load() < g.maxRequests {
		return false
	}
	return g.queueTimeout <= 0 || g.waiting.Load() >= g.queueLimit()
}

// takeSlot takes a processing slot, once per request, waiting for one at
// most the queue timeout and behind at most queueLimit others.
func (a *admission) takeSlot() bool {
	if a == nil || a.slot {
		return true
	}
	g := a.g
	if g.slots != nil && a.hadSlot {
		g.slots <- struct{}{}
	} else if g.slots != nil {
		select {
		case g.slots <- struct{}{}:
		default:
			if g.queueTimeout <= 0 {
				g.turnAway()
				return false
			}
			if g.waiting.Add(1) > g.queueLimit() {
				g.waiting.Add(-1)
				g.turnAway()
				return false
			}
			t := time.NewTimer(g.queueTimeout)
			select {
			case g.slots <- struct{}{}:
				t.Stop()
				g.waiting.Add(-1)
			case <-t.C:
				g.waiting.Add(-1)
				g.turnAway()
				return false
			}
		}
	}
	g.processing.Add(1)
	a.slot = true
	return true
}

// releaseSlot gives the processing slot back, once the request's records
// are handed to the producer.
func (a *admission) releaseSlot() {
	if a == nil || !a.slot {
		return
	}
	a.g.processing.Add(-1)
	if a.g.slots != nil {
		<-a.g.slots
	}
	a.slot = false
	a.hadSlot = true
}

// release gives back everything the request holds, once it is answered.
func (a *admission) release() {
	a.acked()
	a.releaseSlot()
	if a.bytes > 0 {
		a.g.bytes.Add(-a.bytes)
		a.bytes = 0
	}
	if a.produced {
		a.g.producedUnanswered.Add(-1)
		a.produced = false
	}
}

// guarded reports whether a request goes through admission: every POST,
// and GET /event (edX user_track sends events as query parameters). Static
// files, health checks and preflights do not.
func guarded(r *http.Request) bool {
	switch r.Method {
	case http.MethodPost, http.MethodPut:
		return true
	case http.MethodGet:
		return r.URL.Path == "/event"
	}
	return false
}

// admit is the middleware that applies the bounds before a handler reads
// the body.
func (s *Server) admit(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		over := overflowConn(r.Context())
		if over {
			// A connection past limits.max_connections (connlimit.go)
			// serves one request: it is closed after the answer.
			c.Response().Header().Set("Connection", "close")
		}
		if !guarded(r) {
			return next(c)
		}
		if s.draining.Load() {
			// A request that reached a connection still open after SIGTERM:
			// refused unread, and the connection closed, so that the client
			// sends it to another instance.
			c.Response().Header().Set("Connection", "close")
			return s.refuse(ReasonShuttingDown, "", "the gateway is shutting down; retry (another instance will take it)")
		}
		if err := s.health.err(); err != nil {
			closeUnread(c)
			return s.refuse(ReasonKafkaUnavailable, "", "events cannot be stored right now: %v; retry after the delay", err)
		}
		if over {
			return s.refuse(ReasonOverloaded, "", "the gateway is at its limit of %d open connections; retry after the delay", s.opts.MaxConnections)
		}
		g := s.guard
		if g.full() {
			g.turnAway()
			closeUnread(c)
			return s.refuse(ReasonOverloaded, "", "the gateway is at its limit of %d requests in flight and %d waiting; retry after the delay", g.maxRequests, g.queueLimit())
		}
		if cl := r.ContentLength; cl > 0 && cl <= s.opts.Limits.MaxBodyBytes && g.maxBytes > 0 && g.bytes.Load()+cl > g.maxBytes {
			closeUnread(c)
			return s.refuse(ReasonOverloaded, "", "the gateway is at its limit of %d body bytes in flight; retry after the delay", g.maxBytes)
		}
		a := &admission{g: g}
		g.admitted.Add(1)
		defer func() {
			a.release()
			g.admitted.Add(-1)
		}()
		c.SetRequest(r.WithContext(context.WithValue(r.Context(), admissionKey{}, a)))
		return next(c)
	}
}

// closeUnread marks the connection of a request refused before its body
// was read for closing after the answer, unless the body is small enough
// to be in the socket already: Go's server would otherwise read (discard)
// up to 256 KiB of it before sending the answer, which a client that sends
// its body slowly would delay for as long as it liked. A small body is
// discarded, and the connection kept.
func closeUnread(c echo.Context) {
	if cl := c.Request().ContentLength; cl < 0 || cl > discardableBody {
		c.Response().Header().Set("Connection", "close")
	}
}

// discardableBody is the largest unread body left to Go's server to
// discard (keeping the connection) after a refusal.
const discardableBody = 64 << 10

// refuse counts a refused request and returns its 503 (429 for
// rate_limited), with Retry-After.
func (s *Server) refuse(reason string, family string, format string, a ...any) *HTTPError {
	s.m.refusedRequests.WithLabelValues(reason).Inc()
	status := http.StatusServiceUnavailable
	if reason == ReasonRateLimited {
		status = http.StatusTooManyRequests
	}
	he := errf(status, reason, format, a...)
	he.RetryAfter = s.retryAfterFor(reason)
	return he
}

// retryAfterFor is the Retry-After of a refusal for reason: the shorter
// OverloadRetryAfter for a backpressure bound, RetryAfter for the rest.
func (s *Server) retryAfterFor(reason string) time.Duration {
	if reason == ReasonOverloaded && s.opts.OverloadRetryAfter > 0 {
		return s.opts.OverloadRetryAfter
	}
	return s.opts.RetryAfter
}

// retryAfterValue renders a delay as whole seconds, at least 1.
func retryAfterValue(d time.Duration) string {
	secs := int((d + time.Second - 1) / time.Second)
	return strconv.Itoa(max(secs, 1))
}

// budgetReader counts what it reads against the request's in-flight bytes.
type budgetReader struct {
	r   io.Reader
	a   *admission
	err error // set when the budget refused a read
}

var errBudget = errors.New("in-flight byte limit reached")

func (b *budgetReader) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	n, err := b.r.Read(p)
	if n > 0 && !b.a.reserve(int64(n)) {
		b.err = errBudget
		return 0, b.err
	}
	return n, err
}
