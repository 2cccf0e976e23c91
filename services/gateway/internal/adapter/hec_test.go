package adapter

import (
	"bytes"
	"encoding/json"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/event"
)

// hecStacked splits a HEC batch body (envelopes one after the other, no
// array) into the envelopes' JSON texts.
func hecStacked(tb testing.TB, body string) []string {
	tb.Helper()
	dec := json.NewDecoder(strings.NewReader(body))
	var out []string
	for {
		var m json.RawMessage
		if err := dec.Decode(&m); err == io.EOF {
			return out
		} else if err != nil {
			tb.Fatal(err)
		}
		out = append(out, string(bytes.TrimSpace(m)))
	}
}

func TestHECAdapt(t *testing.T) {
	batch := hecStacked(t, famRead(t, "hec/edge_processor_batch.txt"))
	if len(batch) != 2 {
		t.Fatalf("%d envelopes in the Edge Processor example, want 2", len(batch))
	}
	readme := strings.TrimSpace(famRead(t, "clicks/readme_example_mousedown.json"))
	for _, tc := range []struct {
		name, raw, typ, key string
		quirks              []string
		clientTime          time.Time
		want                map[string]string
	}{
		{"edge_processor/string_event", batch[0], "manual", "192.0.2.10", nil, time.Time{}, map[string]string{
			"event_json": `"\"Hello, world!\""`, "event_kind": `"string"`, "event_text": `"Hello, world!"`,
			"sourcetype": `"manual"`, "host": "null", "time": "null", "fields": "null", "extra_json": "null",
		}},
		{"edge_processor/indexed_fields", batch[1], "", "192.0.2.10", nil, time.Time{}, map[string]string{
			"event_json": `"\"something happened\""`, "fields": `{"category":"[\"foo\",\"bar\"]","severity":"INFO"}`,
			"envelope.event_type": "null",
		}},
		// The dejavu PHP proxy forwards the agent's body unchanged.
		{"dejavu_proxy", `{"event":` + readme + `}`, "", "192.0.2.10", nil, time.Time{}, map[string]string{
			"event_kind": `"object"`, "event_text": "null",
			"event_json": `"{\"type\":\"mousedown\",\"info\":{\"x\":138,\"y\":136,\"target\":{\"id\":\"(1,1)\",\"class\":\"class: (1,1)\"}}}"`,
		}},
		// Synthetic below.
		{"format_doc_time", `{"time":1433188255.500,"host":"web-1","source":"app","sourcetype":"_json","index":"main","event":{"a":1}}`,
			"_json", "web-1", nil, time.Unix(1433188255, 500e6), map[string]string{
				"time": "1433188255.5", "host": `"web-1"`, "source": `"app"`, "index": `"main"`,
				"envelope.client_time": `"2015-06-01T19:50:55.5Z"`, "event_json": `"{\"a\":1}"`,
			}},
		{"string_time", `{"time":"1433188255.25","source":"app","event":"x"}`, "", "app", []string{"time_string"}, time.Unix(1433188255, 250e6), map[string]string{
			"time": "1433188255.25",
		}},
		{"millis_time", `{"time":1433188255500,"event":"x"}`, "", "192.0.2.10", []string{"time_millis"}, time.Unix(1433188255, 500e6), map[string]string{
			"time": "1433188255.5",
		}},
		{"nanos_time", `{"time":"1433188255500000000","event":"x"}`, "", "192.0.2.10", []string{"time_string", "time_nanos"}, time.Unix(1433188255, 500e6), nil},
		{"zero_event", `{"event":0}`, "", "192.0.2.10", nil, time.Time{}, map[string]string{"event_kind": `"number"`, "event_json": `"0"`}},
		{"empty_object_event", `{"event":{}}`, "", "192.0.2.10", nil, time.Time{}, map[string]string{"event_kind": `"object"`, "event_json": `"{}"`}},
		{"empty_array_event", `{"event":[]}`, "", "192.0.2.10", nil, time.Time{}, map[string]string{"event_kind": `"array"`, "event_json": `"[]"`}},
		{"spaced_event_compacted", `{"event": { "a" : [1, 2] } }`, "", "192.0.2.10", nil, time.Time{}, map[string]string{"event_json": `"{\"a\":[1,2]}"`}},
		{"unknown_envelope_key", `{"event":"x","channel":"c1"}`, "", "192.0.2.10", []string{"unknown_envelope_key"}, time.Time{}, map[string]string{
			"extra_json": `"{\"channel\":\"c1\"}"`,
		}},
		{"field_values", `{"event":"x","fields":{"n":3,"b":true,"s":"v","e":[]}}`, "", "192.0.2.10", nil, time.Time{}, map[string]string{
			"fields": `{"b":"true","e":"[]","n":"3","s":"v"}`,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, js := famAdapt(t, event.HEC, HEC{}.Adapt, famInput(t, tc.raw))
			if out.EventType != tc.typ || out.PartitionKey != tc.key || !slices.Equal(out.Quirks, tc.quirks) || out.Unknown {
				t.Errorf("EventType %q PartitionKey %q Quirks %q Unknown %v; want %q %q %q false",
					out.EventType, out.PartitionKey, out.Quirks, out.Unknown, tc.typ, tc.key, tc.quirks)
			}
			if !out.ClientTime.Equal(tc.clientTime) {
				t.Errorf("ClientTime = %v, want %v", out.ClientTime, tc.clientTime)
			}
			famExpect(t, js, tc.want)
		})
	}
}

func TestHECReject(t *testing.T) {
	for _, tc := range []struct {
		name, raw, code, field string
		hecCode                int
	}{
		{"missing_event", `{"time":1433188255,"host":"h"}`, ReasonHECEventRequired, "event", 12},
		{"blank_event", `{"event":" "}`, ReasonHECEventBlank, "event", 13},
		{"empty_event", `{"event":""}`, ReasonHECEventBlank, "event", 13},
		{"null_event", `{"event":null}`, event.ReasonInvalidField, "event", 6},
		{"false_event", `{"event":false}`, event.ReasonInvalidField, "event", 6},
		{"time_word", `{"event":"x","time":"now"}`, event.ReasonInvalidField, "time", 6},
		{"time_negative", `{"event":"x","time":-1}`, event.ReasonInvalidField, "time", 6},
		{"time_object", `{"event":"x","time":{}}`, event.ReasonInvalidField, "time", 6},
		{"time_huge", `{"event":"x","time":1e30}`, event.ReasonInvalidField, "time", 6},
		{"host_number", `{"event":"x","host":1}`, event.ReasonInvalidField, "host", 6},
		{"fields_nested", `{"event":"x","fields":{"a":{"b":"c"}}}`, ReasonHECIndexedFields, "fields.a", 15},
		{"fields_array_of_objects", `{"event":"x","fields":{"a":[{"b":"c"}]}}`, ReasonHECIndexedFields, "fields.a", 15},
		{"fields_not_object", `{"event":"x","fields":"a=b"}`, ReasonHECIndexedFields, "fields", 15},
	} {
		t.Run(tc.name, func(t *testing.T) {
			famReject(t, HEC{}.Adapt, famInput(t, tc.raw), tc.code, tc.field)
			if got := HECErrorCode(tc.code); got != tc.hecCode {
				t.Errorf("HECErrorCode(%s) = %d, want %d", tc.code, got, tc.hecCode)
			}
		})
	}
}

func FuzzHECAdapt(f *testing.F) {
	seeds := hecStacked(f, famRead(f, "hec/edge_processor_batch.txt"))
	seeds = append(seeds,
		`{"event":`+strings.TrimSpace(famRead(f, "clicks/readme_example_mousedown.json"))+`}`,
		`{"time":"1433188255.500","host":"h","source":"s","sourcetype":"t","index":"i","event":{"a":[1,"b",null]},"fields":{"x":["1","2"]}}`,
		`{"event":" ","time":1433188255500000000}`,
	)
	famFuzz(f, event.HEC, HEC{}.Adapt, seeds)
}

func BenchmarkHECAdapt(b *testing.B) {
	b.Run("object_event", func(b *testing.B) {
		famBench(b, event.HEC, HEC{}.Adapt, `{"time":1433188255.500,"host":"web-1","source":"dejavu","sourcetype":"_json","event":`+
			strings.TrimSpace(famRead(b, "clicks/readme_example_mousedown.json"))+`}`)
	})
	b.Run("indexed_fields", func(b *testing.B) {
		famBench(b, event.HEC, HEC{}.Adapt, hecStacked(b, famRead(b, "hec/edge_processor_batch.txt"))[1])
	})
}
