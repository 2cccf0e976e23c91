package avro

import (
	"time"

	"github.com/sluicehq/sluice/pkg/event"
)

// Names of the shared records, as they appear in union branches.
const (
	EnvelopeName   = "sluice.Envelope"
	EnrichmentName = "sluice.Enrichment"
)

// EnvelopeNative returns the native value of a sluice.Envelope record.
func EnvelopeNative(e *event.Envelope) map[string]any {
	var batchIndex any
	if e.BatchID != "" && e.BatchIndex >= 0 {
		batchIndex = Int(int32(e.BatchIndex))
	}
	var raw any
	if e.Raw != nil {
		raw = Bytes(e.Raw)
	}
	quirks := Strings(e.Quirks)
	return map[string]any{
		"event_id":        e.EventID,
		"family":          string(e.Family),
		"event_type":      OptString(e.EventType),
		"received_at":     e.ReceivedAt,
		"client_time":     TimeMicros(e.ClientTime),
		"sent_time":       TimeMicros(e.SentTime),
		"ip":              OptString(e.IP),
		"user_agent":      OptString(e.UserAgent),
		"source_key":      OptString(e.SourceKey),
		"endpoint":        e.Endpoint,
		"partition_key":   e.PartitionKey,
		"batch_id":        OptString(e.BatchID),
		"batch_index":     batchIndex,
		"quirks":          quirks,
		"gateway_version": e.GatewayVersion,
		"raw":             raw,
	}
}

// EnvelopeFromNative reads back every field of a decoded sluice.Envelope;
// it undoes EnvelopeNative. Raw shares the decoded value's bytes.
func EnvelopeFromNative(m map[string]any) event.Envelope {
	e := event.Envelope{BatchIndex: -1}
	e.EventID, _ = m["event_id"].(string)
	fam, _ := m["family"].(string)
	e.Family = event.Family(fam)
	e.EventType = UnionString(m["event_type"])
	e.ReceivedAt, _ = m["received_at"].(time.Time)
	e.ClientTime = UnionTime(m["client_time"])
	e.SentTime = UnionTime(m["sent_time"])
	e.IP = UnionString(m["ip"])
	e.UserAgent = UnionString(m["user_agent"])
	e.SourceKey = UnionString(m["source_key"])
	e.Endpoint, _ = m["endpoint"].(string)
	e.PartitionKey, _ = m["partition_key"].(string)
	e.BatchID = UnionString(m["batch_id"])
	if i, ok := unionBranch(m["batch_index"], "int").(int32); ok {
		e.BatchIndex = int(i)
	}
	e.Raw, _ = unionBranch(m["raw"], "bytes").([]byte)
	e.GatewayVersion, _ = m["gateway_version"].(string)
	if q, ok := m["quirks"].([]any); ok {
		for _, s := range q {
			if s, ok := s.(string); ok {
				e.Quirks = append(e.Quirks, s)
			}
		}
	}
	return e
}

// unionBranch returns the named branch of a decoded union value (goavro's
// one-key map), or v itself when it is bare (built by the helpers in
// native.go, or nil).
func unionBranch(v any, branch string) any {
	if m, ok := v.(map[string]any); ok {
		return m[branch]
	}
	return v
}

// UnionString returns the string branch of a nullable union value, decoded
// (a one-key map) or bare (a string), or "".
func UnionString(v any) string {
	if m, ok := v.(map[string]any); ok {
		s, _ := m["string"].(string)
		return s
	}
	s, _ := v.(string)
	return s
}

// UnionTime returns the timestamp branch of a nullable union value,
// decoded (a one-key map) or bare (a time.Time), or the zero time.
func UnionTime(v any) time.Time {
	if m, ok := v.(map[string]any); ok {
		for _, x := range m {
			t, _ := x.(time.Time)
			return t
		}
	}
	t, _ := v.(time.Time)
	return t
}

// AppendEnvelope appends the Avro binary of e as a sluice.Envelope record
// (schemas/envelope): the bytes Encode writes for EnvelopeNative(e), in
// the schema's field order, without building the map. The gateway's fast
// paths write the envelope this way; TestAppendEnvelopeMatchesEncode
// checks it against the encoder for every field, and a schema change that
// it does not follow fails that test.
func AppendEnvelope(dst []byte, e *event.Envelope) []byte {
	dst = appendAvroString(dst, e.EventID)
	dst = appendAvroString(dst, string(e.Family))
	dst = appendOptString(dst, e.EventType)
	dst = appendTimeMicros(dst, e.ReceivedAt)
	dst = appendOptTimeMicros(dst, e.ClientTime)
	dst = appendOptTimeMicros(dst, e.SentTime)
	dst = appendOptString(dst, e.IP)
	dst = appendOptString(dst, e.UserAgent)
	dst = appendOptString(dst, e.SourceKey)
	dst = appendAvroString(dst, e.Endpoint)
	dst = appendAvroString(dst, e.PartitionKey)
	dst = appendOptString(dst, e.BatchID)
	if e.BatchID != "" && e.BatchIndex >= 0 {
		dst = appendLong(append(dst, 2), int64(int32(e.BatchIndex))) // branch 1: int
	} else {
		dst = append(dst, 0) // branch 0: null
	}
	if len(e.Quirks) > 0 {
		dst = appendLong(dst, int64(len(e.Quirks)))
		for _, q := range e.Quirks {
			dst = appendAvroString(dst, q)
		}
	}
	dst = append(dst, 0) // end of the quirks array
	dst = appendAvroString(dst, e.GatewayVersion)
	if e.Raw != nil {
		dst = append(dst, 2) // branch 1: bytes
		dst = append(appendLong(dst, int64(len(e.Raw))), e.Raw...)
	} else {
		dst = append(dst, 0)
	}
	return dst
}

// AppendNull appends the null branch (index 0) of a ["null", ...] union.
func AppendNull(dst []byte) []byte { return append(dst, 0) }

// AppendString appends an Avro string.
func AppendString(dst []byte, s string) []byte { return appendAvroString(dst, s) }

// AppendUnionString appends the "string" branch (index 1) of a
// ["null", "string"] union, even for "".
func AppendUnionString(dst []byte, s string) []byte { return appendAvroString(append(dst, 2), s) }

// AppendLong appends an Avro long (zig-zag varint).
func AppendLong(dst []byte, v int64) []byte { return appendLong(dst, v) }

// AppendOptTimeMicros appends a ["null", timestamp-micros] union: null
// for the zero time.
func AppendOptTimeMicros(dst []byte, t time.Time) []byte { return appendOptTimeMicros(dst, t) }

func appendOptString(dst []byte, s string) []byte {
	if s == "" {
		return append(dst, 0)
	}
	return appendAvroString(append(dst, 2), s)
}

// appendTimeMicros writes a timestamp-micros as goavro does (the encoder
// uses it too).
func appendTimeMicros(dst []byte, t time.Time) []byte {
	return appendLong(dst, t.Unix()*1e6+int64(t.Nanosecond()/1e3))
}

func appendOptTimeMicros(dst []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(dst, 0)
	}
	return appendTimeMicros(append(dst, 2), t)
}
