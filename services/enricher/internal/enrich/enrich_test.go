package enrich

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/avro"
	"github.com/sluicehq/sluice/pkg/event"
	"github.com/sluicehq/sluice/pkg/pipeline"
	"github.com/sluicehq/sluice/schemas"
)

func TestChain(t *testing.T) {
	add := func(k string) Processor {
		return ProcessorFunc(func(_ context.Context, _ event.Family, m map[string]any) (map[string]any, error) {
			m["order"] = m["order"].(string) + k
			return m, nil
		})
	}
	out, err := Chain{add("a"), add("b")}.Process(context.Background(), event.EdX, map[string]any{"order": ""})
	if err != nil || out["order"] != "ab" {
		t.Fatalf("chain = %v, %v; want order ab", out, err)
	}

	none := ProcessorFunc(func(context.Context, event.Family, map[string]any) (map[string]any, error) { return nil, nil })
	_, err = Chain{none, add("c")}.Process(context.Background(), event.EdX, map[string]any{"order": ""})
	if !errors.Is(err, ErrNoRecord) || !pipeline.IsPermanent(err) {
		t.Fatalf("nil record: err = %v, want permanent ErrNoRecord", err)
	}

	in := map[string]any{"x": 1}
	if out, err := (Chain{}).Process(context.Background(), event.EdX, in); err != nil || out["x"] != 1 {
		t.Fatalf("empty chain = %v, %v", out, err)
	}
}

// TestStampEncodes checks a stamped record against the current
// sluice.Enrichment schema.
func TestStampEncodes(t *testing.T) {
	text, err := schemas.Compose(`{"type":"record","name":"T","namespace":"test","fields":[
		{"name":"enrichment","type":["null","sluice.Enrichment"],"default":null}]}`)
	if err != nil {
		t.Fatal(err)
	}
	c, err := avro.NewCodec(text)
	if err != nil {
		t.Fatal(err)
	}
	rec := map[string]any{"enrichment": nil}
	Stamp(rec, Provenance{EnrichedAt: time.Unix(1, 0), Version: "v", Instance: "i", Topic: "sluice.raw.edx", Partition: 2, Offset: 9})
	if err := c.Validate(rec); err != nil {
		t.Fatalf("stamped record does not encode: %v", err)
	}
}
