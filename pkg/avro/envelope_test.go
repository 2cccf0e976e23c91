package avro

import (
	"bytes"
	"reflect"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/event"
	"github.com/sluicehq/sluice/schemas"
)

func TestEnvelopeRoundTrip(t *testing.T) {
	text, err := schemas.Latest("envelope")
	if err != nil {
		t.Fatal(err)
	}
	c := mustCodec(t, text)
	received := time.Date(2025, 3, 4, 5, 6, 7, 123456000, time.UTC)
	full := event.Envelope{
		EventID:        "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
		Family:         event.EdX,
		EventType:      "problem_check",
		ReceivedAt:     received,
		ClientTime:     received.Add(-time.Second),
		SentTime:       received.Add(-time.Millisecond),
		IP:             "192.0.2.7",
		UserAgent:      "Mozilla/5.0",
		SourceKey:      "key-1",
		Endpoint:       "/v1/events/edx",
		PartitionKey:   "user-9",
		BatchID:        "batch-1",
		BatchIndex:     3,
		Quirks:         []string{"event_json_string", "time_naive"},
		GatewayVersion: "v1.2.3",
		Raw:            []byte(`{"event_type":"problem_check"}`),
	}
	minimal := event.Envelope{
		EventID:        "e",
		Family:         event.Clicks,
		ReceivedAt:     received,
		Endpoint:       "/v1/clicks",
		PartitionKey:   "p",
		BatchIndex:     -1,
		GatewayVersion: "dev",
	}
	noBatch := minimal
	noBatch.BatchIndex = 2 // an index without a batch id is not kept

	for _, tc := range []struct {
		name string
		in   event.Envelope
		want event.Envelope
	}{
		{"full", full, full},
		{"minimal", minimal, minimal},
		{"index without batch id", noBatch, minimal},
		{"first of a batch", withBatch(minimal, "b", 0), withBatch(minimal, "b", 0)},
		{"empty raw", withRaw(minimal, []byte{}), withRaw(minimal, []byte{})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wire, err := c.Encode(nil, EnvelopeNative(&tc.in))
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			v, err := c.DecodeBody(wire[5:])
			if err != nil {
				t.Fatalf("DecodeBody: %v", err)
			}
			got := EnvelopeFromNative(v.(map[string]any))
			for _, ts := range []time.Time{got.ReceivedAt, got.ClientTime, got.SentTime} {
				if !ts.IsZero() && ts.Location() != time.UTC {
					t.Errorf("decoded time %v is not UTC", ts)
				}
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("round trip\n got: %#v\nwant: %#v", got, tc.want)
			}
		})
	}
}

func withBatch(e event.Envelope, id string, i int) event.Envelope {
	e.BatchID, e.BatchIndex = id, i
	return e
}

func withRaw(e event.Envelope, raw []byte) event.Envelope {
	e.Raw = raw
	return e
}

func TestUnionHelpers(t *testing.T) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		name string
		v    any
		str  string
		time time.Time
	}{
		{"nil", nil, "", time.Time{}},
		{"string branch", String("x"), "x", time.Time{}},
		{"bare string", "y", "y", time.Time{}},
		{"time branch", TimeMicros(now), "", now},
		{"millis branch", map[string]any{"long.timestamp-millis": now}, "", now},
		{"bare time", now, "", now},
		{"other branch", Long(1), "", time.Time{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := UnionString(tc.v); got != tc.str {
				t.Errorf("UnionString = %q, want %q", got, tc.str)
			}
			if got := UnionTime(tc.v); !got.Equal(tc.time) {
				t.Errorf("UnionTime = %v, want %v", got, tc.time)
			}
		})
	}
	if TimeMicros(time.Time{}) != nil {
		t.Error("TimeMicros(zero) is not null")
	}
	if OptString("") != nil {
		t.Error(`OptString("") is not null`)
	}
	if got := Strings(nil); got == nil || len(got) != 0 {
		t.Errorf("Strings(nil) = %#v, want an empty array", got)
	}
}

// TestAppendEnvelopeMatchesEncode checks AppendEnvelope byte for byte
// against the encoder given EnvelopeNative, with every field empty and set.
func TestAppendEnvelopeMatchesEncode(t *testing.T) {
	text, err := schemas.Latest("envelope")
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewCodec(text)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 3, 4, 5, 6, 7, 123456789, time.UTC)
	for i, e := range []event.Envelope{
		{EventID: "id", Family: event.EdX, ReceivedAt: at, Endpoint: "/v1/events/edx", PartitionKey: "k", BatchIndex: -1},
		{EventID: "id", Family: event.EdX, ReceivedAt: at, Endpoint: "/v1/events/edx", PartitionKey: "k", BatchIndex: 7},
		{EventID: "0190-…-ü", Family: event.CrowdFrame, EventType: "problem_check", ReceivedAt: at,
			ClientTime: time.Date(1969, 12, 31, 23, 59, 59, 999999999, time.UTC), SentTime: at.Add(-time.Second),
			IP: "2001:db8::1", UserAgent: "Mozilla/5.0", SourceKey: "src", Endpoint: "/event", PartitionKey: "",
			BatchID: "b-1", BatchIndex: 1 << 20, Quirks: []string{"time_z", "event_json_string"},
			GatewayVersion: "v1.2.3", Raw: []byte(`{"a":1}`)},
		{EventID: "x", Family: event.HEC, ReceivedAt: time.Unix(0, 0).UTC(), BatchID: "b", BatchIndex: 0, Raw: []byte{}, Quirks: []string{}},
	} {
		want, err := c.enc.encode(nil, EnvelopeNative(&e))
		if err != nil {
			t.Fatalf("case %d: encoding the native: %v", i, err)
		}
		if got := AppendEnvelope(nil, &e); !bytes.Equal(got, want) {
			t.Fatalf("case %d: AppendEnvelope\n got %x\nwant %x", i, got, want)
		}
	}
}
