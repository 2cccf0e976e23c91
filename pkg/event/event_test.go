package event

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"
)

func TestParseFamily(t *testing.T) {
	for _, f := range Families {
		t.Run(string(f), func(t *testing.T) {
			got, ok := ParseFamily(string(f))
			if !ok || got != f {
				t.Fatalf("ParseFamily(%q) = %q, %v", f, got, ok)
			}
		})
	}
	for _, s := range []string{"", "EDX", "edx ", "sluice", "dlq", "edx.v1"} {
		t.Run("reject/"+s, func(t *testing.T) {
			if got, ok := ParseFamily(s); ok || got != "" {
				t.Fatalf("ParseFamily(%q) = %q, %v; want \"\", false", s, got, ok)
			}
		})
	}
}

func TestTopics(t *testing.T) {
	if got := RawTopic(EdX); got != "sluice.raw.edx" {
		t.Errorf("RawTopic = %q", got)
	}
	if got := EnrichedTopic(Clicks); got != "sluice.enriched.clicks" {
		t.Errorf("EnrichedTopic = %q", got)
	}
	seen := map[string]bool{DLQTopic: true}
	for _, f := range Families {
		for _, topic := range []string{RawTopic(f), EnrichedTopic(f)} {
			if seen[topic] {
				t.Errorf("topic %s is used twice", topic)
			}
			seen[topic] = true
		}
	}
}

func TestFamilyOfTopic(t *testing.T) {
	for _, tc := range []struct {
		topic string
		want  Family
		ok    bool
	}{
		{"sluice.raw.edx", EdX, true},
		{"sluice.enriched.hec", HEC, true},
		{"sluice.raw.workstation", Workstation, true},
		{"sluice.raw.", "", false},
		{"sluice.enriched.", "", false},
		{"sluice.raw.nope", "", false},
		{"sluice.raw.edx.extra", "", false},
		{"sluice.dlq", "", false},
		{"edx", "", false},
		{"", "", false},
		{"other.raw.edx", "", false},
	} {
		t.Run(tc.topic, func(t *testing.T) {
			got, ok := FamilyOfTopic(tc.topic)
			if got != tc.want || ok != tc.ok {
				t.Fatalf("FamilyOfTopic(%q) = %q, %v; want %q, %v", tc.topic, got, ok, tc.want, tc.ok)
			}
		})
	}
	for _, f := range Families {
		for _, topic := range []string{RawTopic(f), EnrichedTopic(f)} {
			if got, ok := FamilyOfTopic(topic); !ok || got != f {
				t.Errorf("FamilyOfTopic(%q) = %q, %v; want %q", topic, got, ok, f)
			}
		}
	}
}

func TestReject(t *testing.T) {
	for _, tc := range []struct {
		name string
		rej  *Rejection
		want string
	}{
		{"with field", Reject(ReasonMissingField, "event_type", "%s is required", "event_type"), "missing_field: event_type: event_type is required"},
		{"without field", Reject(ReasonInvalidJSON, "", "unexpected end of input at byte %d", 12), "invalid_json: unexpected end of input at byte 12"},
		{"no args", Reject(ReasonTooManyEvents, "", "too many"), "too_many_events: too many"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.rej.Error(); got != tc.want {
				t.Fatalf("Error() = %q, want %q", got, tc.want)
			}
			if tc.rej.Index != 0 {
				t.Fatalf("Index = %d, want 0 (callers set it)", tc.rej.Index)
			}
		})
	}

	t.Run("errors.As through wrapping", func(t *testing.T) {
		err := fmt.Errorf("decoding: %w", Reject(ReasonSchemaViolation, "x", "bad"))
		var rej *Rejection
		if !errors.As(err, &rej) || rej.Code != ReasonSchemaViolation || rej.Field != "x" {
			t.Fatalf("errors.As = %v, %+v", errors.As(err, &rej), rej)
		}
	})

	t.Run("json", func(t *testing.T) {
		for _, tc := range []struct {
			rej  *Rejection
			want string
		}{
			{&Rejection{Index: 3, Code: "c", Field: "f", Message: "m"}, `{"index":3,"code":"c","field":"f","message":"m"}`},
			{&Rejection{Index: 0, Code: "c", Message: "m"}, `{"index":0,"code":"c","message":"m"}`},
		} {
			b, err := json.Marshal(tc.rej)
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tc.want {
				t.Errorf("json = %s, want %s", b, tc.want)
			}
		}
	})
}
