package enrich

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/avro"
	"github.com/sluicehq/sluice/pkg/event"
	"github.com/sluicehq/sluice/schemas"
)

func TestChain(t *testing.T) {
	add := func(k string) Processor {
		return ProcessorFunc(func(_ context.Context, e *Event) error {
			e.Native["order"] = e.Native["order"].(string) + k
			return nil
		})
	}
	e := &Event{Family: event.EdX, Native: map[string]any{"order": ""}}
	if err := (Chain{add("a"), add("b")}).Process(context.Background(), e); err != nil || e.Native["order"] != "ab" {
		t.Fatalf("chain = %v, %v; want order ab", e.Native, err)
	}

	boom := errors.New("boom")
	fail := ProcessorFunc(func(context.Context, *Event) error { return boom })
	e = &Event{Native: map[string]any{"order": ""}}
	if err := (Chain{fail, add("c")}).Process(context.Background(), e); !errors.Is(err, boom) || e.Native["order"] != "" {
		t.Fatalf("failing chain: err = %v, order %q; want boom before c ran", err, e.Native["order"])
	}

	e = &Event{Native: map[string]any{"x": 1}}
	if err := (Chain{}).Process(context.Background(), e); err != nil || e.Native["x"] != 1 {
		t.Fatalf("empty chain = %v, %v", e.Native, err)
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
	e := &Event{Native: map[string]any{"enrichment": nil}}
	Stamp(e, Provenance{EnrichedAt: time.Unix(1, 0), Version: "v", Instance: "i", Topic: "sluice.raw.edx", Partition: 2, Offset: 9})
	if err := c.Validate(e.Native); err != nil {
		t.Fatalf("stamped record does not encode: %v", err)
	}
	e.Out["geo"] = avro.Record(GeoName, map[string]any{"ip_kind": "absent"})
	if err := c.Validate(e.Native); err != nil {
		t.Fatalf("stamped record with geo does not encode: %v", err)
	}
}

func TestNativeReaders(t *testing.T) {
	if Str(avro.String("x")) != "x" || Str("y") != "y" || Str(nil) != "" || Str(avro.Long(1)) != "" {
		t.Error("Str")
	}
	if v, ok := Int(avro.Long(7)); !ok || v != 7 {
		t.Error("Int long union")
	}
	if v, ok := Int(int32(3)); !ok || v != 3 {
		t.Error("Int int32")
	}
	if _, ok := Int(avro.String("7")); ok {
		t.Error("Int of a string")
	}
	if b, ok := Bool(avro.Boolean(true)); !ok || !b {
		t.Error("Bool")
	}
	inner := map[string]any{"a": 1, "b": 2}
	if Rec(map[string]any{"sluice.x.R": inner})["a"] != 1 || Rec(inner)["b"] != 2 || Rec(nil) != nil {
		t.Error("Rec")
	}
	// A record of one field is not mistaken for a union branch.
	one := map[string]any{"section": avro.String("s")}
	if Rec(one)["section"] == nil {
		t.Error("Rec of a one-field record")
	}
	if RecBranch(map[string]any{"sluice.x.R": inner}, "sluice.x.Other") != nil {
		t.Error("RecBranch of another branch")
	}
	now := time.Unix(5, 0)
	if !Time(map[string]any{"long.timestamp-micros": now}).Equal(now) || !Time(now).Equal(now) {
		t.Error("Time")
	}
}
