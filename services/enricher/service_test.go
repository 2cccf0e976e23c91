package enricher

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap/zaptest"

	"github.com/sluicehq/sluice/pkg/avro"
	"github.com/sluicehq/sluice/pkg/avro/avrotest"
	"github.com/sluicehq/sluice/pkg/event"
	"github.com/sluicehq/sluice/pkg/kafka"
	"github.com/sluicehq/sluice/pkg/kafka/kafkatest"
	"github.com/sluicehq/sluice/pkg/pipeline"
	"github.com/sluicehq/sluice/pkg/telemetry"
	"github.com/sluicehq/sluice/services/enricher/internal/enrich"
)

// clicksEvent is a raw sluice.clicks.Event with the given event id.
func clicksEvent(id string) map[string]any {
	return map[string]any{
		"envelope": avro.EnvelopeNative(&event.Envelope{
			EventID: id, Family: event.Clicks, EventType: "click",
			ReceivedAt: time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC),
			IP:         "192.0.2.1", Endpoint: "/v1/clicks", PartitionKey: "session-1",
			BatchIndex: -1, GatewayVersion: "test",
		}),
		"type":        "click",
		"info":        map[string]any{"x": avro.Double(10), "y": avro.Double(20), "button": avro.Long(1), "target": nil},
		"session":     avro.String("session-1"),
		"page":        nil,
		"client_time": nil,
		"event_id":    nil,
		"sequence":    nil,
		"extra_json":  nil,
		"enrichment":  nil,
	}
}

func eventID(rec map[string]any) string {
	env, _ := rec["envelope"].(map[string]any)
	id, _ := env["event_id"].(string)
	return id
}

// TestEnrich runs the enricher on a raw topic holding good events and three
// kinds of poison, and checks that the good ones are enriched in order, the
// poison is dead-lettered, and every offset is committed.
func TestEnrich(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	kcfg := kafkatest.Cluster(t)
	_, serde := avrotest.Registry(t)
	raw, enriched := event.RawTopic(event.Clicks), event.EnrichedTopic(event.Clicks)
	if err := kafka.EnsureTopics(ctx, kcfg, nil, raw, enriched, event.DLQTopic); err != nil {
		t.Fatal(err)
	}
	rawSubject := avro.ValueSubject(raw)

	// One key, so one partition: the poison in the middle must not stop
	// the events behind it.
	key := []byte("session-1")
	header := kgo.RecordHeader{Key: event.HeaderFamily, Value: []byte(event.Clicks)}
	var in []*kgo.Record
	for _, id := range []string{"ok-1", "ok-2", "poison", "ok-3", "bad-encode", "rejected", "ok-4"} {
		value := []byte("not the confluent wire format")
		if id != "poison" {
			v, err := serde.Encode(rawSubject, clicksEvent(id))
			if err != nil {
				t.Fatalf("encoding %s: %v", id, err)
			}
			value = v
		}
		in = append(in, &kgo.Record{Topic: raw, Key: key, Value: value, Headers: []kgo.RecordHeader{header}})
	}
	cl := newClient(t, kcfg)
	if err := cl.ProduceSync(ctx, in...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	// The processor seam: break one record so that it cannot be encoded and
	// reject another outright.
	proc := enrich.ProcessorFunc(func(_ context.Context, e *enrich.Event) error {
		if e.Family != event.Clicks {
			return fmt.Errorf("family %s", e.Family)
		}
		switch eventID(e.Native) {
		case "bad-encode":
			e.Native["type"] = 42
			e.Modified = true
		case "rejected":
			return pipeline.Permanent(event.Reject("test_reason", "type", "rejected by test"))
		}
		return nil
	})
	cfg := Defaults()
	cfg.Kafka = kcfg
	cfg.Group = kafkatest.UniqueName(t, "enricher")
	cfg.Instance = "test-instance"
	reg := prometheus.NewRegistry()
	ready := &telemetry.Readiness{}
	svc, err := newService(cfg, Deps{Log: zaptest.NewLogger(t), Metrics: reg, Ready: ready, Serde: serde}, proc)
	if err != nil {
		t.Fatal(err)
	}
	if fails := ready.Check(); fails[Stage] == nil {
		t.Error("ready before Start")
	}
	if err := svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := svc.Stop(context.Background()); err != nil {
			t.Errorf("stop: %v", err)
		}
	}()
	if fails := ready.Check(); len(fails) != 0 {
		t.Errorf("not ready after Start: %v", fails)
	}

	out := consume(ctx, t, kcfg, enriched, 4, func(*kgo.Record) bool { return true })
	wantIDs := map[string]*kgo.Record{"ok-1": in[0], "ok-2": in[1], "ok-3": in[3], "ok-4": in[6]}
	var gotIDs []string
	for _, r := range out {
		native, _, err := serde.Decode(ctx, r.Value)
		if err != nil {
			t.Fatalf("decoding enriched record: %v", err)
		}
		rec := native.(map[string]any)
		id := eventID(rec)
		gotIDs = append(gotIDs, id)
		src := wantIDs[id]
		if src == nil {
			t.Errorf("unexpected enriched event %q", id)
			continue
		}
		if !bytes.Equal(r.Key, key) {
			t.Errorf("%s: key %q, want %q", id, r.Key, key)
		}
		if len(r.Headers) != 1 || r.Headers[0].Key != header.Key || !bytes.Equal(r.Headers[0].Value, header.Value) {
			t.Errorf("%s: headers %v, want [%v]", id, r.Headers, header)
		}
		e, ok := rec["enrichment"].(map[string]any)[avro.EnrichmentName].(map[string]any)
		if !ok {
			t.Fatalf("%s: enrichment %v is not set", id, rec["enrichment"])
		}
		if e["raw_topic"] != raw || e["raw_partition"] != src.Partition || e["raw_offset"] != src.Offset ||
			e["enricher_version"] != Version || e["enricher_instance"] != "test-instance" {
			t.Errorf("%s: enrichment %v, want raw %s/%d@%d", id, e, raw, src.Partition, src.Offset)
		}
		if at, _ := e["enriched_at"].(time.Time); time.Since(at) > time.Minute || time.Since(at) < 0 {
			t.Errorf("%s: enriched_at %v is not now", id, at)
		}
		if rec["type"] != "click" {
			t.Errorf("%s: type %v: the event body changed", id, rec["type"])
		}
	}
	if want := []string{"ok-1", "ok-2", "ok-3", "ok-4"}; !slices.Equal(gotIDs, want) {
		t.Errorf("enriched events %v, want %v in order", gotIDs, want)
	}

	dead := consume(ctx, t, kcfg, event.DLQTopic, 3, func(r *kgo.Record) bool { return bytes.Equal(r.Key, key) })
	type wantDead struct {
		src           *kgo.Record
		reason, field string
	}
	want := map[int64]wantDead{
		in[2].Offset: {in[2], event.ReasonUndecodable, ""},
		in[4].Offset: {in[4], event.ReasonEnrichFailed, ""},
		in[5].Offset: {in[5], "test_reason", "type"},
	}
	for _, r := range dead {
		native, _, err := serde.Decode(ctx, r.Value)
		if err != nil {
			t.Fatalf("decoding dead letter: %v", err)
		}
		d := native.(map[string]any)
		off, _ := d["offset"].(map[string]any)["long"].(int64)
		w, ok := want[off]
		if !ok {
			t.Errorf("dead letter for offset %d: %v", off, d)
			continue
		}
		delete(want, off)
		if d["stage"] != Stage || d["reason"] != w.reason || avro.UnionString(d["field"]) != w.field ||
			avro.UnionString(d["topic"]) != raw || avro.UnionString(d["family"]) != string(event.Clicks) {
			t.Errorf("dead letter at %d: %v, want stage %s reason %s field %q", off, d, Stage, w.reason, w.field)
		}
		if !bytes.Equal(d["raw"].([]byte), w.src.Value) {
			t.Errorf("dead letter at %d: raw is not the record value", off)
		}
	}
	if len(want) > 0 {
		t.Errorf("no dead letter for offsets %v", want)
	}

	waitCommitted(ctx, t, cl, cfg.Group, raw)

	if got := testutil.ToFloat64(svc.handler.metrics.enriched.WithLabelValues(string(event.Clicks))); got != 4 {
		t.Errorf("sluice_enricher_events_total{family=clicks} = %v, want 4", got)
	}
	if n := testutil.CollectAndCount(reg, "sluice_dlq_records_total"); n != 3 {
		t.Errorf("sluice_dlq_records_total has %d series, want 3 (one per reason)", n)
	}
}

func newClient(t *testing.T, cfg kafka.Config) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(cfg.Brokers...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// consume reads topic from the start, committed records only, with a fresh
// client until n records
// pass keep, and fails the test if they do not arrive before ctx ends.
func consume(ctx context.Context, t *testing.T, kcfg kafka.Config, topic string, n int, keep func(*kgo.Record) bool) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(kcfg.Brokers...),
		kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("%s: got %d records before the deadline, want %d", topic, len(out), n)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if keep(r) {
				out = append(out, r)
			}
		})
	}
	return out
}

// waitCommitted waits until group's committed offsets on topic reach the
// end of every partition.
func waitCommitted(ctx context.Context, t *testing.T, cl *kgo.Client, group, topic string) {
	t.Helper()
	adm := kadm.NewClient(cl)
	var last error
	for ctx.Err() == nil {
		last = committedToEnd(ctx, adm, group, topic)
		if last == nil {
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("offsets not committed before the deadline: %v", last)
}

func committedToEnd(ctx context.Context, adm *kadm.Client, group, topic string) error {
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return err
	}
	committed, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		return err
	}
	var errs []error
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset == 0 {
			return // nothing to commit
		}
		c, ok := committed.Lookup(o.Topic, o.Partition)
		if !ok || c.At != o.Offset {
			errs = append(errs, fmt.Errorf("%s/%d: committed %d, end %d", o.Topic, o.Partition, c.At, o.Offset))
		}
	})
	return errors.Join(errs...)
}
