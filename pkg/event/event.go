// Package event defines what Sluice knows about an event independent of any
// transport: families, topics, the envelope the gateway stamps on each event
// and the reasons an event can be rejected. It does no I/O.
package event

import (
	"fmt"
	"time"
)

// Family is an event family id, e.g. "edx".
type Family string

// The families Sluice ingests.
const (
	EdX         Family = "edx"
	CrowdFrame  Family = "crowdframe"
	Weaklayer   Family = "weaklayer"
	Workstation Family = "workstation"
	Clicks      Family = "clicks"
	HEC         Family = "hec"
)

// Families lists every family, in a stable order.
var Families = []Family{EdX, CrowdFrame, Weaklayer, Workstation, Clicks, HEC}

// ParseFamily returns the family with the given id.
func ParseFamily(s string) (Family, bool) {
	for _, f := range Families {
		if string(f) == s {
			return f, true
		}
	}
	return "", false
}

// Topic names.
const (
	RawPrefix      = "sluice.raw."
	EnrichedPrefix = "sluice.enriched."
	DLQTopic       = "sluice.dlq"
)

// RawTopic is the topic the gateway produces a family's events to.
func RawTopic(f Family) string { return RawPrefix + string(f) }

// EnrichedTopic is the topic the enricher produces a family's events to.
func EnrichedTopic(f Family) string { return EnrichedPrefix + string(f) }

// FamilyOfTopic returns the family of a raw or enriched topic.
func FamilyOfTopic(topic string) (Family, bool) {
	for _, p := range []string{RawPrefix, EnrichedPrefix} {
		if len(topic) > len(p) && topic[:len(p)] == p {
			return ParseFamily(topic[len(p):])
		}
	}
	return "", false
}

// Kafka record header keys set on every event record.
const (
	HeaderFamily  = "sluice-family"
	HeaderEventID = "sluice-event-id"
)

// Envelope is what the gateway knows about an accepted event. Its fields map
// one to one onto the sluice.Envelope Avro record (schemas/envelope).
type Envelope struct {
	EventID        string
	Family         Family
	EventType      string // empty when the family has none
	ReceivedAt     time.Time
	ClientTime     time.Time // zero when unknown
	SentTime       time.Time // zero when unknown
	IP             string
	UserAgent      string
	SourceKey      string // the key's id, never its secret
	Endpoint       string
	PartitionKey   string
	BatchID        string
	BatchIndex     int // -1 when the request carried no batch id
	Quirks         []string
	GatewayVersion string
	Raw            []byte
}

// Rejection says why one event was not accepted. Code is a stable,
// machine-readable reason; Field is the path of the offending field.
type Rejection struct {
	Index   int    `json:"index"`
	Code    string `json:"code"`
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

func (r *Rejection) Error() string {
	if r.Field != "" {
		return fmt.Sprintf("%s: %s: %s", r.Code, r.Field, r.Message)
	}
	return r.Code + ": " + r.Message
}

// Reason codes used across services. Adapters may add family-specific ones.
const (
	ReasonInvalidJSON     = "invalid_json"
	ReasonNotObject       = "not_object"
	ReasonMissingField    = "missing_field"
	ReasonInvalidField    = "invalid_field"
	ReasonSchemaViolation = "schema_violation"
	ReasonEventTooLarge   = "event_too_large"
	ReasonUnknownType     = "unknown_type"
	ReasonForbiddenType   = "forbidden_type"
	ReasonProduceFailed   = "produce_failed"
	ReasonEnrichFailed    = "enrich_failed"
	ReasonUndecodable     = "undecodable"
	ReasonTooManyEvents   = "too_many_events"
)

// Reject builds a Rejection with Index 0; the caller sets Index to the
// event's position in its request.
func Reject(code, field, format string, a ...any) *Rejection {
	return &Rejection{Code: code, Field: field, Message: fmt.Sprintf(format, a...)}
}
