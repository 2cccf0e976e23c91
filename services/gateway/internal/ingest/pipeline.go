package ingest

import (
	"bytes"
	"context"
	"crypto/sha1" //nolint:gosec // UUIDv5 is defined on SHA-1; not used for security
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/sluicehq/sluice/pkg/avro"
	"github.com/sluicehq/sluice/pkg/event"
	"github.com/sluicehq/sluice/pkg/kafka"
	"github.com/sluicehq/sluice/pkg/pipeline"
	"github.com/sluicehq/sluice/services/gateway/internal/adapter"
)

// Pipeline is the one ingest path every endpoint ends in: decode → adapt →
// Avro-validate → produce → per-event result, with every rejection written
// to the DLQ. It replies only after the broker has acknowledged.
type Pipeline struct {
	adapters map[event.Family]adapter.Adapter
	codecs   map[event.Family]*avro.Codec
	// fast holds the families whose adapter's fast path passed checkFast
	// (fast.go) with the family's schema.
	fast           map[event.Family]adapter.FastAdapter
	producer       *kafka.Producer
	dlq            *pipeline.DLQ
	version        string
	keepRaw        bool
	produceTimeout time.Duration
	limits         Limits
	maxRecordBytes int // kafka.max_message_bytes
	health         *brokerHealth
	m              *metrics
	log            *zap.Logger
	accepted       []func([]Accepted) // observers, accepted.go
	// beforeProduce, when set (tests), runs while the request still holds
	// its processing slot, after its records are built.
	beforeProduce func()
}

// Request is one batch of events for one family.
type Request struct {
	Family    event.Family
	Endpoint  string
	SourceKey string
	Strict    bool
	BatchID   string
	Meta      adapter.Meta
	Items     []Item
	// Adapt overrides the family adapter (native endpoints that add
	// request context, e.g. the Weaklayer token's sensor).
	Adapt func(in *adapter.Input) (*adapter.Output, *event.Rejection)
	// Drop, when set, sees each decoded event before it is adapted. A
	// non-empty rule means a configured rule deliberately does not store the
	// event (e.g. the edX staff /event_logs rule, an ignored segment.io
	// channel): it is counted in sluice_gateway_dropped_events_total by
	// family and rule and listed in Result.Ignored with message, and it is
	// neither produced nor dead-lettered.
	Drop DropFunc
	// StopAtFirstReject stops at the first rejected event: the events
	// before it are produced, it is dead-lettered, and the rest are skipped
	// (Result.Skipped), neither stored nor dead-lettered, for the client to
	// resend. This is Splunk HEC's partial-ingestion contract.
	StopAtFirstReject bool
	// IndexOffset is added to each item's index in the envelope's
	// batch_index, the batch-derived event ids and the dead letters, for an
	// endpoint that ingests one client batch in several requests.
	IndexOffset int
}

// DropFunc decides whether a configured drop rule applies to an event; it
// returns the rule's name ("" to keep the event) and a message for the
// client. It must not modify in.
type DropFunc func(in *adapter.Input) (rule, message string)

// Ignored is an event a drop rule did not store.
type Ignored struct {
	Index   int    `json:"index"`
	Rule    string `json:"rule"`
	Message string `json:"message"`
}

// Result is the outcome of a Request.
type Result struct {
	Accepted int               `json:"accepted"`
	Rejected int               `json:"rejected"`
	Errors   []event.Rejection `json:"errors"`
	// Ignored lists the events a drop rule did not store (Request.Drop);
	// they count neither as accepted nor as rejected.
	Ignored []Ignored `json:"ignored,omitempty"`
	// Skipped counts the events after the first rejection that were not
	// looked at (Request.StopAtFirstReject).
	Skipped int `json:"skipped,omitempty"`
	// Unavailable is set when no event could be produced because Kafka is
	// unavailable (or the gateway is overloaded, ErrOverloaded, or the
	// rejections could not be dead-lettered): the caller answers 503 and
	// the client retries.
	Unavailable error `json:"-"`
	// RateLimited is set when the source key is over its rate limit: the
	// caller answers 429 with this as Retry-After.
	RateLimited time.Duration `json:"-"`
	// DLQFailed reports that the rejected events could not be written to
	// the dead-letter topic: the reply is their only record.
	DLQFailed bool `json:"dlq_failed,omitempty"`
}

// Ingest runs the batch through the pipeline.
//
// Before any work it may refuse the whole batch, each event with a
// retryable code and none dead-lettered: kafka_unavailable while the
// circuit is open (Result.Unavailable), rate_limited when the source key
// is over its rate limit (Result.RateLimited), overloaded when no
// processing slot is free (Result.Unavailable is ErrOverloaded).
func (p *Pipeline) Ingest(ctx context.Context, req *Request) *Result {
	res := &Result{Errors: []event.Rejection{}}
	if err := p.health.err(); err != nil {
		return p.refuseAll(req, res, ReasonKafkaUnavailable, err)
	}
	if a := admissionFrom(ctx); a != nil {
		if wait := a.rate.chargeEvents(time.Now(), len(req.Items), req.bodyBytes()); wait > 0 {
			res.RateLimited = wait
			return p.refuseAll(req, res, ReasonRateLimited, nil)
		}
		if !a.takeSlot() {
			return p.refuseAll(req, res, ReasonOverloaded, ErrOverloaded)
		}
		defer func() {
			if res.Accepted > 0 && !a.produced {
				// Stored: from here until the answer is written, a cut-off
				// would leave the client without the answer.
				a.produced = true
				a.g.producedUnanswered.Add(1)
			}
		}()
	}
	codec := p.codecs[req.Family]
	adapt := req.Adapt
	if adapt == nil {
		adapt = p.adapters[req.Family].Adapt
	}
	meta := req.Meta
	meta.Endpoint = req.Endpoint
	meta.Strict = req.Strict
	recs := make([]*kgo.Record, 0, len(req.Items))
	// This call's reference to the arena: released once it no longer
	// reads recs, the producer's when franz-go has let go of them.
	ar := getRecArena(len(req.Items))
	defer ar.release()
	recIndex := make([]int, 0, len(req.Items))
	var dead []*pipeline.DeadLetter
	reject := func(i int, rj *event.Rejection, raw []byte) {
		rj.Index = i
		res.Errors = append(res.Errors, *rj)
		p.m.events.WithLabelValues(string(req.Family), "rejected", rj.Code).Inc()
		msg := rj.Message
		if limit := p.maxDeadRaw(); len(raw) > limit {
			// The dead letter must itself fit in a Kafka record.
			msg = fmt.Sprintf("%s (raw truncated from %d to %d bytes)", msg, len(raw), limit)
			raw = raw[:limit]
		}
		dead = append(dead, &pipeline.DeadLetter{
			Stage: "gateway", Family: req.Family, Endpoint: req.Endpoint, SourceKey: req.SourceKey,
			IP: meta.IP, Index: req.IndexOffset + i, Reason: rj.Code, Field: rj.Field, Message: msg,
			Raw: bytes.Clone(raw), Offset: -1, Time: meta.ReceivedAt,
		})
	}
	for i := range req.Items {
		it := &req.Items[i]
		rec, rule, rj := p.build(ar, codec, adapt, req, &meta, i, it)
		if rule != nil {
			res.Ignored = append(res.Ignored, *rule)
			p.m.dropped.WithLabelValues(string(req.Family), rule.Rule).Inc()
			continue
		}
		if rj != nil {
			reject(i, rj, it.Raw)
			if req.StopAtFirstReject {
				res.Skipped = len(req.Items) - i - 1
				break
			}
			continue
		}
		recs = append(recs, rec)
		recIndex = append(recIndex, i)
	}

	if p.beforeProduce != nil {
		p.beforeProduce()
	}
	// The CPU work is done: waiting for the acks needs no processing slot,
	// but an ack slot (guard.go).
	adm := admissionFrom(ctx)
	adm.toAcks()

	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.produceTimeout)
	defer cancel()
	if tripped := p.health.trippedCh(); tripped != nil && len(recs)+len(dead) > 0 {
		// Fail fast: when the circuit opens (Kafka found unreachable), stop
		// waiting for acks and answer 503 rather than holding the request
		// for the whole produce timeout.
		cctx, ccancel := context.WithCancelCause(pctx)
		pctx = cctx
		defer ccancel(nil)
		go func() {
			select {
			case <-tripped:
				ccancel(ErrCircuitOpen)
			case <-cctx.Done():
			}
		}()
	}
	t0 := time.Now()
	// Every path reaches this call, which releases the producer's
	// reference to the arena, at once when recs is empty.
	errs := p.producer.ProduceAllThen(pctx, recs, ar.release)
	p.m.produce.Observe(time.Since(t0).Seconds())
	adm.acked()
	failed, tooLarge := 0, 0
	var firstErr error
	for j, i := range recIndex {
		if errs != nil && errs[j] != nil {
			if isTooLarge(errs[j]) {
				if size := recordSize(recs[j]); p.permanentlyTooLarge(size) {
					tooLarge++
					reject(i, event.Reject(event.ReasonEventTooLarge, "",
						"the event encodes to a %d-byte record, over the %d bytes Kafka takes (kafka.max_message_bytes)", size, p.maxRecordBytes),
						req.Items[i].Raw)
					continue
				}
				p.log.Error("kafka refused a record batch as too large although the record is small: the broker's message.max.bytes (or the topic's max.message.bytes) is below kafka.max_message_bytes",
					zap.Int("record_bytes", recordSize(recs[j])), zap.Int("max_message_bytes", p.maxRecordBytes), zap.Error(errs[j]))
			}
			failed++
			if firstErr == nil {
				firstErr = errs[j]
			}
			rj := event.Reject(event.ReasonProduceFailed, "", "not stored, retry: %v", errs[j])
			rj.Index = i
			res.Errors = append(res.Errors, *rj)
			p.m.events.WithLabelValues(string(req.Family), "failed", event.ReasonProduceFailed).Inc()
			continue
		}
		res.Accepted++
	}
	if res.Accepted > 0 {
		p.m.events.WithLabelValues(string(req.Family), "accepted", "").Add(float64(res.Accepted))
		p.notifyAccepted(req, recIndex, recs, func(j int) bool { return errs == nil || errs[j] == nil })
	}
	switch {
	case res.Accepted > 0:
		p.health.success()
	case failed > 0 && failed == len(recs)-tooLarge && isUnavailable(firstErr):
		res.Unavailable = firstErr
		if !errors.Is(firstErr, ErrCircuitOpen) {
			p.health.failure(firstErr)
		}
	}
	if len(dead) > 0 {
		if err := p.dlq.Send(pctx, dead); err != nil {
			p.m.dlqFailures.WithLabelValues(string(req.Family)).Add(float64(len(dead)))
			p.log.Error("writing rejected events to the DLQ", zap.Int("events", len(dead)), zap.Error(err))
			res.DLQFailed = true
			if res.Accepted == 0 && res.Unavailable == nil {
				// Nothing was stored and the rejections are not in the DLQ
				// either: the client must send the batch again (503), not be
				// told it was dealt with (207).
				res.Unavailable = fmt.Errorf("writing rejected events to the dead-letter topic: %w", err)
			}
		}
	}
	res.Rejected = len(req.Items) - res.Accepted - len(res.Ignored) - res.Skipped
	if len(res.Errors) > 1 {
		sortRejections(res.Errors)
	}
	return res
}

// refuseAll answers a batch refused before any work: every event gets the
// retryable code, none is produced or dead-lettered.
func (p *Pipeline) refuseAll(req *Request, res *Result, reason string, unavailable error) *Result {
	msg := "not stored: "
	switch reason {
	case ReasonRateLimited:
		msg += fmt.Sprintf("the source key is over its rate limit; retry after %s s", retryAfterValue(res.RateLimited))
	case ReasonOverloaded:
		msg += "the gateway is at its in-flight request limit; retry after the delay"
	default:
		msg += "kafka is unreachable; retry after the delay"
	}
	for i := range req.Items {
		res.Errors = append(res.Errors, event.Rejection{Index: i, Code: reason, Message: msg})
	}
	res.Rejected = len(req.Items)
	res.Unavailable = unavailable
	p.m.refusedRequests.WithLabelValues(reason).Inc()
	p.m.refusedEvents.WithLabelValues(string(req.Family), reason).Add(float64(len(req.Items)))
	return res
}

// bodyBytes is what the batch's events weigh, for the byte rate limit of
// a request whose Content-Length was not known.
func (req *Request) bodyBytes() int64 {
	var n int64
	for i := range req.Items {
		n += int64(len(req.Items[i].Raw))
	}
	return n
}

// deadLetterOverhead is room left in a record for a dead letter's fields
// other than the raw bytes.
const deadLetterOverhead = 16 << 10

// maxDeadRaw is the most raw bytes a dead letter carries.
func (p *Pipeline) maxDeadRaw() int {
	return max(p.maxRecordBytes-deadLetterOverhead, 1024)
}

// permanentlyTooLarge tells a record that can never fit (reject it) from a
// small one the broker refused with its batch (a broker limit below
// kafka.max_message_bytes: a configuration error, retried).
func (p *Pipeline) permanentlyTooLarge(size int) bool {
	return p.maxRecordBytes <= 0 || size*2 > p.maxRecordBytes
}

func recordSize(r *kgo.Record) int {
	n := len(r.Key) + len(r.Value)
	for _, h := range r.Headers {
		n += len(h.Key) + len(h.Value)
	}
	return n
}

func isTooLarge(err error) bool {
	return errors.Is(err, kerr.MessageTooLarge) || errors.Is(err, kerr.RecordListTooLarge)
}

// build turns one item into a Kafka record, or says which drop rule kept
// it out, or why it cannot be stored.
func (p *Pipeline) build(ar *recArena, codec *avro.Codec, adapt func(*adapter.Input) (*adapter.Output, *event.Rejection),
	req *Request, meta *adapter.Meta, i int, it *Item) (*kgo.Record, *Ignored, *event.Rejection) {
	if it.Reject != nil {
		rj := *it.Reject
		return nil, nil, &rj
	}
	if it.blank {
		return nil, nil, event.Reject("empty_line", "", "line %d is empty", i)
	}
	if len(it.Raw) > p.limits.MaxEventBytes {
		return nil, nil, event.Reject(event.ReasonEventTooLarge, "", "event of %d bytes is over the %d-byte limit", len(it.Raw), p.limits.MaxEventBytes)
	}
	if it.depth > p.limits.MaxDepth {
		return nil, nil, p.tooDeep(it.depth)
	}
	raw := it.Raw
	if !utf8.Valid(raw) {
		// Non-UTF-8 bytes (seen in User-Agent strings of older shippers):
		// read the event as Latin-1 and say so.
		raw = latin1ToUTF8(raw)
		it.Quirks = append(it.Quirks, "latin1_event")
	} else if fa := p.fast[req.Family]; fa != nil && req.Adapt == nil {
		// The fast path bounds the nesting itself (Input.MaxDepth).
		if rec, took, ign := p.buildFast(ar, fa, codec, req, meta, i, it); took {
			return rec, ign, nil
		}
	}
	if it.depth == depthUnknown {
		// Measured before the decoder sees it, malformed or not: the depth
		// reached counts, so that a deep one is refused for it.
		if _, it.depth, _ = scanValue(it.Raw, 0); it.depth > p.limits.MaxDepth {
			return nil, nil, p.tooDeep(it.depth)
		}
	}
	v, rj := decodeObject(raw)
	if rj != nil {
		return nil, nil, rj
	}
	in := &adapter.Input{Raw: raw, Value: v, Meta: *meta}
	if req.Drop != nil {
		if rule, msg := req.Drop(in); rule != "" {
			return nil, &Ignored{Index: i, Rule: rule, Message: msg}, nil
		}
	}
	out, rj := adapt(in)
	if rj != nil {
		return nil, nil, rj
	}
	env := p.envelope(req, meta, i, it, out, raw)
	if out.Unknown {
		p.m.unknownInc(req.Family)
		if req.Strict {
			return nil, nil, event.Reject(event.ReasonUnknownType, "type", "event type %q is not known and the source is strict", out.EventType)
		}
	}
	rec := out.Fields
	rec["envelope"] = avro.EnvelopeNative(&env)
	rec["enrichment"] = nil
	// The record holds the event's fields and, with keep_raw, the event
	// once more: room for both, so that the buffer rarely grows.
	value, err := codec.Encode(ar.bytes(2*len(it.Raw)+512), rec)
	if err != nil {
		return nil, nil, event.Reject(event.ReasonSchemaViolation, schemaField(err), "%s", schemaMessage(err))
	}
	return p.record(ar, req, &env, ar.used(value)), nil, nil
}

// tooDeep is the rejection of an event that nests depth levels deep, over
// limits.max_depth.
func (p *Pipeline) tooDeep(depth int) *event.Rejection {
	return event.Reject("too_deep", "", "event nests %d levels deep, over the limit of %d", depth, p.limits.MaxDepth)
}

// envelope is the envelope of item i of req, whose bytes (as read: UTF-8)
// are raw and which the adapter mapped to out.
func (p *Pipeline) envelope(req *Request, meta *adapter.Meta, i int, it *Item, out *adapter.Output, raw []byte) event.Envelope {
	env := event.Envelope{
		EventID:        out.EventID,
		Family:         req.Family,
		EventType:      out.EventType,
		ReceivedAt:     meta.ReceivedAt,
		ClientTime:     out.ClientTime,
		SentTime:       out.SentTime,
		IP:             meta.IP,
		UserAgent:      meta.UserAgent,
		SourceKey:      req.SourceKey,
		Endpoint:       req.Endpoint,
		PartitionKey:   out.PartitionKey,
		BatchID:        req.BatchID,
		BatchIndex:     req.IndexOffset + i,
		Quirks:         joinQuirks(it.Quirks, out.Quirks),
		GatewayVersion: p.version,
	}
	if env.EventID == "" {
		if req.BatchID != "" {
			// A retried batch gets the same ids, so duplicates are visible downstream.
			env.EventID = BatchEventID(req.SourceKey, req.BatchID, req.IndexOffset+i)
		} else {
			env.EventID = uuid.Must(uuid.NewV7()).String()
		}
	}
	if p.keepRaw {
		env.Raw = raw
	}
	return env
}

// joinQuirks is the framing's quirks then the adapter's. The envelope is
// encoded before either slice changes, so one alone is used as is.
func joinQuirks(framing, adapter []string) []string {
	switch {
	case len(framing) == 0:
		return adapter
	case len(adapter) == 0:
		return framing
	}
	return slices.Concat(framing, adapter)
}

// record is the Kafka record of an event with envelope env and Avro
// value (Confluent-framed), taken from ar (nil: allocated on its own).
func (p *Pipeline) record(ar *recArena, req *Request, env *event.Envelope, value []byte) *kgo.Record {
	// The key and the event id header share one piece of memory; the family
	// header's bytes are shared by every record (the client does not
	// modify them).
	kid := ar.bytes(len(env.PartitionKey) + len(env.EventID))
	kid = ar.used(append(append(kid, env.PartitionKey...), env.EventID...))
	n := len(env.PartitionKey)
	r := ar.record()
	h := ar.headers()
	fam := familyRecordOf(req.Family)
	h[0] = kgo.RecordHeader{Key: event.HeaderFamily, Value: fam.header}
	h[1] = kgo.RecordHeader{Key: event.HeaderEventID, Value: kid[n:]}
	*r = kgo.Record{
		Topic:   fam.topic,
		Key:     kid[:n:n],
		Value:   value,
		Headers: h,
		// One clock read per Ingest call rather than the producer's one
		// per record. Not received_at: a request ingested in parts (a
		// large archive) can outlast the producer's delivery timeout,
		// which counts from this time.
		Timestamp: ar.now(),
	}
	return r
}

// recArena hands out the records of one request, their headers and their
// bytes (values, keys) from a few large pieces of memory instead of four
// allocations per event, and the pieces are used again by later requests
// (recArenas): fresh memory costs more to allocate and zero than reused
// memory costs to overwrite.
//
// Two parties read what an arena handed out: franz-go, until every
// record's promise has run, which may be after the request was answered
// (the produce timeout, the circuit opening), and the Ingest call, until
// it returns (the observers' event ids, the size of a record Kafka refused
// as too large). So an arena starts with two references, released by
// Ingest when it returns and by the producer when the last promise has run
// (kafka.Producer.ProduceAllThen); the last release puts it back into the
// pool. Nothing that outlives the call points into it: the Result's
// messages are formatted, dead letters copy the raw bytes, observers copy
// what they keep.
// A nil *recArena allocates each piece on its own.
type recArena struct {
	recs []kgo.Record
	hdrs []kgo.RecordHeader
	buf  []byte // len: bytes handed out; cap: the current chunk
	// chunks are the byte chunks the arena has allocated, handed out again
	// in order after a reset; chunks[:next] are in use.
	chunks [][]byte
	next   int
	refs   atomic.Int32
	// in is the fast path's input, one event at a time: nothing keeps it
	// past the event.
	in adapter.Input
	// ts is the records' Kafka timestamp, read when the arena is taken.
	ts time.Time
}

// recArenaChunk is the size of a byte chunk: about 20 typical edX records.
// It is just under the largest size the runtime allocates from its per-CPU
// caches of small objects (32 KiB less an 8-byte header): a larger chunk is
// a large object, whose fresh pages cost more to zero and map than the
// events' own allocations saved.
const recArenaChunk = 32<<10 - 64

// An arena that grew past these bounds (a request of many or large
// events) is left to the garbage collector rather than pooled, so that
// idle arenas hold little memory.
const (
	recArenaMaxBytes   = 1 << 20
	recArenaMaxRecords = 4096
)

// recArenas holds the arenas no request references any more.
var recArenas = sync.Pool{New: func() any { return new(recArena) }}

// getRecArena returns an arena with room for the records of events events,
// holding two references (see recArena).
func getRecArena(events int) *recArena {
	a := recArenas.Get().(*recArena)
	if cap(a.recs) < events {
		a.recs = make([]kgo.Record, 0, events)
	}
	if cap(a.hdrs) < 2*events {
		a.hdrs = make([]kgo.RecordHeader, 0, 2*events)
	}
	a.refs.Store(2)
	a.ts = time.Now()
	return a
}

// release drops one reference; the last one resets the arena and puts it
// back into the pool.
func (a *recArena) release() {
	switch n := a.refs.Add(-1); {
	case n > 0:
		return
	case n < 0:
		// A third release would free an arena another request may
		// already be writing.
		panic("ingest: record arena released once too often")
	}
	if a.reset() {
		recArenas.Put(a)
	}
}

// reset empties the arena for another request and keeps its memory; it
// reports whether the arena is small enough to be pooled. The records and
// headers handed out are cleared: they point at the last request's context
// and at values too large for a chunk, which the pool must not keep alive.
// The chunks' bytes are left as they are: a piece is always overwritten
// before it is handed out.
func (a *recArena) reset() bool {
	if cap(a.recs) > recArenaMaxRecords || len(a.chunks)*recArenaChunk > recArenaMaxBytes {
		return false
	}
	clear(a.recs)
	clear(a.hdrs)
	a.in = adapter.Input{}
	a.recs, a.hdrs, a.buf, a.next = a.recs[:0], a.hdrs[:0], nil, 0
	return true
}

// now is the time the arena was taken, the records' timestamp (nil: the
// clock).
func (a *recArena) now() time.Time {
	if a == nil {
		return time.Now()
	}
	return a.ts
}

// input returns the arena's adapter input, to be overwritten for the next
// event.
func (a *recArena) input() *adapter.Input {
	if a == nil {
		return new(adapter.Input)
	}
	return &a.in
}

func (a *recArena) record() *kgo.Record {
	if a == nil || len(a.recs) == cap(a.recs) {
		return new(kgo.Record)
	}
	a.recs = a.recs[:len(a.recs)+1]
	return &a.recs[len(a.recs)-1]
}

// headers returns room for a record's two headers.
func (a *recArena) headers() []kgo.RecordHeader {
	if a == nil || cap(a.hdrs)-len(a.hdrs) < 2 {
		return make([]kgo.RecordHeader, 2)
	}
	n := len(a.hdrs)
	a.hdrs = a.hdrs[:n+2]
	return a.hdrs[n : n+2 : n+2]
}

// bytes returns an empty slice with room for at least n bytes, to be
// appended to and then handed to used. An append past n moves the slice
// out of the arena, which is safe (used then takes nothing).
func (a *recArena) bytes(n int) []byte {
	if a == nil || n > recArenaChunk/4 {
		return make([]byte, 0, n)
	}
	if cap(a.buf)-len(a.buf) < n {
		// The next chunk: one this request does not use yet.
		if a.next == len(a.chunks) {
			a.chunks = append(a.chunks, make([]byte, 0, recArenaChunk))
		}
		a.buf = a.chunks[a.next][:0]
		a.next++
	}
	return a.buf[len(a.buf):len(a.buf)]
}

// used marks b, which bytes returned, as taken, and caps it so that an
// append to it cannot reach the next piece.
func (a *recArena) used(b []byte) []byte {
	b = b[:len(b):len(b)]
	if a == nil || len(b) == 0 || cap(a.buf) == len(a.buf) {
		return b
	}
	if rest := a.buf[len(a.buf):cap(a.buf)]; &rest[0] == &b[0] {
		a.buf = a.buf[:len(a.buf)+len(b)]
	}
	return b
}

// familyRecord is what every record of a family shares: its raw topic and
// its family header's bytes (the client does not modify them).
type familyRecord struct {
	topic  string
	header []byte
}

// familyRecords holds each family's, made once.
var familyRecords = func() map[event.Family]familyRecord {
	m := make(map[event.Family]familyRecord, len(event.Families))
	for _, f := range event.Families {
		m[f] = familyRecord{event.RawTopic(f), []byte(f)}
	}
	return m
}()

func familyRecordOf(f event.Family) familyRecord {
	if fr, ok := familyRecords[f]; ok {
		return fr
	}
	return familyRecord{event.RawTopic(f), []byte(f)}
}

var batchNS = uuid.MustParse("6f1c2a52-3c4e-4f53-9a51-5c1d2e3f4a5b")

// BatchEventID is the event id the gateway gives the index-th event of a
// batch sent with an Idempotency-Key and without an event id of its own: a
// name-based UUID (v5) of the source key, the batch id and the index, so
// that a retried batch carries the same ids (docs/retries.md).
//
// This runs once per event of every such batch, so the namespace and the
// name "<source>/<batch>/<index>" are hashed from a stack buffer with
// sha1.Sum (uuid.NewSHA1 allocates a hash, its sum and its name); the test
// holds the result equal to uuid.NewSHA1's.
func BatchEventID(sourceKey, batchID string, index int) string {
	var buf [160]byte
	b := append(buf[:0], batchNS[:]...)
	b = append(b, sourceKey...)
	b = append(b, '/')
	b = append(b, batchID...)
	b = append(b, '/')
	b = strconv.AppendInt(b, int64(index), 10)
	sum := sha1.Sum(b)
	var u uuid.UUID
	copy(u[:], sum[:])
	u[6] = (u[6] & 0x0f) | 0x50 // version 5
	u[8] = (u[8] & 0x3f) | 0x80 // RFC 4122 variant
	return u.String()
}

// decodeObject decodes one event.
func decodeObject(raw []byte) (map[string]any, *event.Rejection) {
	var v any
	if err := adapter.JSON.Unmarshal(raw, &v); err != nil {
		return nil, event.Reject(event.ReasonInvalidJSON, "", "event is not valid JSON: %s", jsonMessage(err))
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, event.Reject(event.ReasonNotObject, "", "event is a JSON %s, not an object", jsonKind(v))
	}
	return m, nil
}

// latin1ToUTF8 decodes b as ISO 8859-1.
func latin1ToUTF8(b []byte) []byte {
	out := make([]byte, 0, len(b)+len(b)/4)
	for _, c := range b {
		out = utf8.AppendRune(out, rune(c))
	}
	return out
}

func jsonMessage(err error) string {
	msg := err.Error()
	if len(msg) > 200 {
		msg = msg[:200]
	}
	return msg
}

func jsonKind(v any) string {
	switch v.(type) {
	case []any:
		return "array"
	case string:
		return "string"
	case nil:
		return "null"
	case bool:
		return "boolean"
	default:
		return "number"
	}
}

var fieldRE = regexp.MustCompile(`field "([^"]+)"`)

// schemaField extracts the field path from a goavro encoding error, which
// nests `field "x"` once per record level.
func schemaField(err error) string {
	ms := fieldRE.FindAllStringSubmatch(err.Error(), -1)
	parts := make([]string, 0, len(ms))
	for _, m := range ms {
		parts = append(parts, m[1])
	}
	return strings.Join(parts, ".")
}

func schemaMessage(err error) string {
	msg := err.Error()
	if i := strings.LastIndex(msg, ": "); i >= 0 && i+2 < len(msg) {
		msg = "value does not match the schema: " + msg[i+2:]
	}
	if len(msg) > 300 {
		msg = msg[:300]
	}
	return msg
}

// isUnavailable reports whether a produce error means Kafka cannot take
// records right now (as opposed to a problem with the record).
func isUnavailable(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, kgo.ErrRecordTimeout) ||
		errors.Is(err, kgo.ErrMaxBuffered) || errors.Is(err, kgo.ErrClientClosed) || errors.Is(err, ErrCircuitOpen) {
		return true
	}
	var ke *kerr.Error
	if errors.As(err, &ke) {
		return ke.Retriable
	}
	return !errors.Is(err, kerr.MessageTooLarge) && !errors.Is(err, kerr.RecordListTooLarge)
}

func sortRejections(rs []event.Rejection) {
	slices.SortStableFunc(rs, func(a, b event.Rejection) int { return a.Index - b.Index })
}
