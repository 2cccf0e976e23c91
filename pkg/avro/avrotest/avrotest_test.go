package avrotest

import (
	"context"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/sr"

	"github.com/sluicehq/sluice/pkg/avro"
	"github.com/sluicehq/sluice/pkg/event"
)

func TestRegistry(t *testing.T) {
	url, serde := Registry(t)
	if !strings.HasPrefix(url, "http://127.0.0.1:") {
		t.Fatalf("URL %q", url)
	}
	subjects := []string{avro.ValueSubject(event.DLQTopic)}
	for _, f := range event.Families {
		subjects = append(subjects, avro.ValueSubject(event.RawTopic(f)), avro.ValueSubject(event.EnrichedTopic(f)))
	}
	for _, s := range subjects {
		if _, err := serde.Subject(s); err != nil {
			t.Errorf("subject %s: %v", s, err)
		}
	}
	// The URL serves the same registry: another client finds the subjects.
	cl, err := sr.NewClient(sr.URLs(url))
	if err != nil {
		t.Fatal(err)
	}
	got, err := cl.Subjects(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(subjects) {
		t.Fatalf("registry has %d subjects, want %d", len(got), len(subjects))
	}
}
