package adapter

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/sluicehq/sluice/pkg/event"
)

// HEC adapts Splunk HTTP Event Collector event envelopes (reference
// hec-and-sinks.md section 1.3) to schemas/hec, so that HEC senders such as
// the dejavu PHP proxy and Splunk logging libraries can send to Sluice. It
// validates the envelope as Splunk does; the event itself is kept whole as
// JSON text.
type HEC struct{}

// Family implements Adapter.
func (HEC) Family() event.Family { return event.HEC }

// Rejection reasons of the HEC family, named after Splunk's error texts.
const (
	// ReasonHECEventRequired: the envelope has no event (HEC code 12).
	ReasonHECEventRequired = "event_field_required"
	// ReasonHECEventBlank: the event is a blank string (HEC code 13).
	ReasonHECEventBlank = "event_field_blank"
	// ReasonHECIndexedFields: fields is not a flat object of strings or
	// arrays of scalars (HEC code 15).
	ReasonHECIndexedFields = "indexed_fields_invalid"
)

// HECErrorCode returns the HEC error code a receiver answers for a
// rejection of this family: 12, 13 and 15 for the reasons above, 6
// (invalid data format) for any other.
func HECErrorCode(reason string) int {
	switch reason {
	case ReasonHECEventRequired:
		return 12
	case ReasonHECEventBlank:
		return 13
	case ReasonHECIndexedFields:
		return 15
	}
	return 6
}

var hecKnown = newKeySet("event", "time", "host", "source", "sourcetype", "index", "fields")

// Adapt implements Adapter.
func (HEC) Adapt(in *Input) (*Output, *event.Rejection) {
	m := in.Value
	ev, found := m["event"]
	if !found {
		return nil, event.Reject(ReasonHECEventRequired, "event", "Event field is required")
	}
	out := &Output{}
	f := make(map[string]any, 11)
	f["event_text"] = nil
	var kind string
	switch e := ev.(type) {
	case nil:
		return nil, event.Reject(event.ReasonInvalidField, "event", "must not be null")
	case bool:
		if !e {
			// Splunk answers code 6 for false (and for null).
			return nil, event.Reject(event.ReasonInvalidField, "event", "must not be false")
		}
		kind = "boolean"
	case string:
		if strings.TrimSpace(e) == "" {
			return nil, event.Reject(ReasonHECEventBlank, "event", "Event field cannot be blank")
		}
		kind = "string"
		f["event_text"] = map[string]any{"string": e}
	case map[string]any:
		kind = "object"
	case []any:
		kind = "array"
	default:
		kind = "number"
	}
	f["event_kind"] = kind
	text, rej := hecEventJSON(in.Raw, ev)
	if rej != nil {
		return nil, rej
	}
	f["event_json"] = text

	f["time"] = nil
	if tv, found := m["time"]; found && tv != nil {
		sec, quirks, rej := hecTime(tv)
		if rej != nil {
			return nil, rej
		}
		out.Quirks = append(out.Quirks, quirks...)
		f["time"] = map[string]any{"double": sec}
		whole := math.Floor(sec)
		out.ClientTime = time.Unix(int64(whole), int64(math.Round((sec-whole)*1e6))*1e3)
	}

	var r unionReader
	host := r.String(m, "", "host")
	source := r.String(m, "", "source")
	sourcetype := r.String(m, "", "sourcetype")
	f["host"], f["source"], f["sourcetype"] = host, source, sourcetype
	f["index"] = r.String(m, "", "index")
	if r.rej != nil {
		return nil, r.rej
	}

	f["fields"] = nil
	if fv, found := m["fields"]; found && fv != nil {
		fm, ok := fv.(map[string]any)
		if !ok {
			return nil, event.Reject(ReasonHECIndexedFields, "fields", "must be an object")
		}
		vals := make(map[string]any, len(fm))
		for k, v := range fm {
			s, rej := hecFieldValue(k, v)
			if rej != nil {
				return nil, rej
			}
			vals[k] = s
		}
		f["fields"] = map[string]any{"map": vals}
	}

	extra := unknownMembers(m, hecKnown)
	if extra != nil {
		// Splunk skips such an event silently; Sluice keeps it and says so.
		out.Quirks = append(out.Quirks, "unknown_envelope_key")
	}
	ej, err := unionJSON(extra)
	if err != nil {
		return nil, event.Reject(event.ReasonInvalidField, "", "rendering unknown members: %v", err)
	}
	f["extra_json"] = ej

	out.EventType = unionText(sourcetype)
	out.PartitionKey = unionText(host)
	if out.PartitionKey == "" {
		out.PartitionKey = unionText(source)
	}
	if out.PartitionKey == "" {
		out.PartitionKey = in.Meta.IP
	}
	if out.PartitionKey == "" {
		out.PartitionKey = "anonymous"
	}
	out.Fields = f
	return out, nil
}

// unionText returns the string of a ["null","string"] value, or "".
func unionText(v any) string {
	if m, ok := v.(map[string]any); ok {
		s, _ := m["string"].(string)
		return s
	}
	return ""
}

// hecEventJSON returns the event's JSON text, sliced from the raw envelope
// when possible.
func hecEventJSON(raw []byte, ev any) (string, *event.Rejection) {
	if members, ok := rawMembers(raw, nil); ok {
		if b := rawLookup(members, "event"); len(b) > 0 && rawKindMatches(b[0], ev) {
			if text, ok := compactJSON(b); ok {
				return text, nil
			}
		}
	}
	text, err := jsonText(ev)
	if err != nil {
		return "", event.Reject(event.ReasonInvalidField, "event", "rendering: %v", err)
	}
	return text, nil
}

// hecTime reads the envelope time: epoch seconds as a number or a decimal
// string. Like Splunk it reads larger values by magnitude: 13 to 14 digits
// as milliseconds, 15 to 17 as microseconds, more as nanoseconds.
func hecTime(v any) (float64, []string, *event.Rejection) {
	var quirks []string
	var f float64
	switch t := v.(type) {
	case json.Number:
		var err error
		if f, err = strconv.ParseFloat(string(t), 64); err != nil {
			return 0, nil, event.Reject(event.ReasonInvalidField, "time", "must be epoch seconds")
		}
	case string:
		s := strings.TrimSpace(t)
		if !isDecimal(s) {
			return 0, nil, event.Reject(event.ReasonInvalidField, "time", "must be epoch seconds, got %q", t)
		}
		f, _ = strconv.ParseFloat(s, 64)
		quirks = append(quirks, "time_string")
	default:
		if n, ok := asFloat64(v); ok {
			f = n
			break
		}
		return 0, nil, wrongType("time", "a number or a numeric string", v)
	}
	if math.IsNaN(f) || math.IsInf(f, 0) || f < 0 {
		return 0, nil, event.Reject(event.ReasonInvalidField, "time", "must be non-negative epoch seconds")
	}
	switch {
	case f >= 1e17:
		f /= 1e9
		quirks = append(quirks, "time_nanos")
	case f >= 1e14:
		f /= 1e6
		quirks = append(quirks, "time_micros")
	case f >= 1e11:
		f /= 1e3
		quirks = append(quirks, "time_millis")
	}
	if f >= 1e11 {
		return 0, nil, event.Reject(event.ReasonInvalidField, "time", "out of range")
	}
	return f, quirks, nil
}

// isDecimal reports whether s is digits with at most one '.'.
func isDecimal(s string) bool {
	digits, dots := 0, 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
			digits++
		case c == '.':
			dots++
		default:
			return false
		}
	}
	return digits > 0 && dots <= 1
}

// hecFieldValue returns an indexed field's value as stored: strings as they
// are, arrays of scalars, numbers, booleans and null as JSON text. Nested
// objects and arrays are refused, as Splunk does (code 15).
func hecFieldValue(key string, v any) (string, *event.Rejection) {
	switch t := v.(type) {
	case string:
		return t, nil
	case map[string]any:
		return "", event.Reject(ReasonHECIndexedFields, "fields."+key, "must not be an object")
	case []any:
		for _, it := range t {
			switch it.(type) {
			case map[string]any, []any:
				return "", event.Reject(ReasonHECIndexedFields, "fields."+key, "must be an array of strings")
			}
		}
	}
	s, err := jsonText(v)
	if err != nil {
		return "", event.Reject(ReasonHECIndexedFields, "fields."+key, "rendering: %v", err)
	}
	return s, nil
}
