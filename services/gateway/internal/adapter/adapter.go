// Package adapter maps each family's native JSON to the family part of its
// Avro record, repairing known quirks and rejecting what cannot be repaired
// with a reason and a field path.
package adapter

import (
	"time"

	"github.com/bytedance/sonic"

	"github.com/sluicehq/sluice/pkg/event"
)

// JSON is the decoder events are read with, by the gateway (Input.Value)
// and by the fast paths (escaped strings), so that both read every event
// alike: numbers stay exact (json.Number). sonic copies the event once
// (its []byte entry point converts to a string) and, with CopyString off,
// the decoded strings share that copy instead of taking an allocation
// each (~2.3 µs and 28 allocations per KB-sized edX event); the request's
// pooled body buffer is never referenced. sonic decodes such an event in
// ~5 µs, against ~18 µs for a streaming decoder; see docs/dependencies.md.
var JSON = sonic.Config{UseNumber: true, ValidateString: true}.Froze()

// Input is one event as the gateway split it from a request.
type Input struct {
	// Raw is the event's bytes exactly as received (one array element or
	// one NDJSON line). Adapters must not retain or modify it.
	Raw []byte
	// Value is Raw decoded as a JSON object; numbers are json.Number.
	Value map[string]any
	Meta  Meta
	// MaxDepth is the deepest nesting a fast path takes (the gateway's
	// limits.max_depth; 0: no limit but the fast scan's own). A deeper
	// event goes the general way, which measures it and refuses it.
	MaxDepth int
	// fastTop holds the top-level members a fast path found (Value is
	// then nil), for TopString.
	fastTop []fastMember
}

// TopString returns the event's top-level member key when it is a string;
// ok is false when it is absent, null or of another type. It reads Value,
// or, when a fast path took the event instead of the decoder, the
// top-level members it found, so drop rules work on both.
func (in *Input) TopString(key string) (string, bool) {
	if in.Value != nil {
		s, ok := in.Value[key].(string)
		return s, ok
	}
	for i := range in.fastTop { // keys are unique: the fast path refuses duplicates
		if m := &in.fastTop[i]; m.key == key {
			if fastScalar(m.value) != 's' {
				return "", false
			}
			return fastString(m.value)
		}
	}
	return "", false
}

// Meta is what the gateway knows about the request an event came in.
type Meta struct {
	ReceivedAt     time.Time
	IP             string
	UserAgent      string
	Referer        string
	AcceptLanguage string
	Host           string
	Endpoint       string
	// Username is set only when the request was made with a trusted server
	// key that may vouch for a user (edX /event); else empty.
	Username string
	// Strict rejects event types the adapter does not know.
	Strict bool
}

// Output is the family part of an event's Avro record.
type Output struct {
	// Fields holds every field of the family's record schema except
	// "envelope" and "enrichment", as goavro native values (see pkg/avro).
	Fields map[string]any
	// EventID is a client-supplied event id, or "" for the gateway to mint one.
	EventID      string
	EventType    string
	PartitionKey string
	ClientTime   time.Time
	SentTime     time.Time
	// Quirks names the input irregularities the adapter repaired.
	Quirks []string
	// Unknown is true when the event type is not one the adapter knows;
	// such events are kept generically and counted.
	Unknown bool
}

// Adapter maps one family's events. Implementations are stateless and safe
// for concurrent use.
type Adapter interface {
	Family() event.Family
	// Adapt maps in to the family record. A non-nil Rejection means the
	// event is refused; its Index is filled in by the caller.
	Adapt(in *Input) (*Output, *event.Rejection)
}

// All returns an adapter for every family, by family.
func All() map[event.Family]Adapter {
	m := map[event.Family]Adapter{}
	for _, a := range []Adapter{EdX{}, CrowdFrame{}, Weaklayer{}, Workstation{}, Clicks{}, HEC{}} {
		m[a.Family()] = a
	}
	return m
}
