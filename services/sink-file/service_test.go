package sinkfile

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
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
	"github.com/sluicehq/sluice/pkg/telemetry"
)

// enrichedClick is an enriched sluice.clicks.Event.
func enrichedClick(id string, received time.Time, rawOffset int64) map[string]any {
	return map[string]any{
		"envelope": avro.EnvelopeNative(&event.Envelope{
			EventID: id, Family: event.Clicks, EventType: "click", ReceivedAt: received,
			Endpoint: "/v1/clicks", PartitionKey: "session-1", BatchIndex: -1, GatewayVersion: "test",
			Raw: []byte(`{"type":"click"}`),
		}),
		"type":        "click",
		"info":        map[string]any{"x": avro.Double(10.5), "y": avro.Double(20), "button": avro.Long(1), "target": nil},
		"session":     avro.String("session-1"),
		"page":        nil,
		"client_time": nil,
		"event_id":    nil,
		"sequence":    nil,
		"extra_json":  nil,
		"enrichment": avro.Record(avro.EnrichmentName, map[string]any{
			"enriched_at":       received.Add(time.Second),
			"enricher_version":  "test",
			"enricher_instance": "test-1",
			"raw_topic":         event.RawTopic(event.Clicks),
			"raw_partition":     int32(0),
			"raw_offset":        rawOffset,
		}),
	}
}

type jsonLine struct {
	Envelope struct {
		EventID    string `json:"event_id"`
		ReceivedAt string `json:"received_at"`
		Raw        string `json:"raw"`
	} `json:"envelope"`
	Type string `json:"type"`
	Info struct {
		X float64 `json:"x"`
	} `json:"info"`
	Enrichment struct {
		RawOffset int64 `json:"raw_offset"`
	} `json:"enrichment"`
}

// TestSink writes enriched events of two days on two partitions, plus a
// poison record, and checks the files, the dead letter and the commits.
func TestSink(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	kcfg := kafkatest.Cluster(t)
	_, serde := avrotest.Registry(t)
	topic := event.EnrichedTopic(event.Clicks)
	if err := kafka.EnsureTopics(ctx, kcfg, nil, topic, event.DLQTopic); err != nil {
		t.Fatal(err)
	}
	day1 := time.Date(2025, 3, 4, 23, 59, 59, 0, time.UTC)
	day2 := time.Date(2025, 3, 5, 0, 0, 1, 0, time.UTC)
	type input struct {
		id        string
		partition int32
		received  time.Time
	}
	inputs := []input{
		{"a1", 0, day1}, {"a2", 0, day1}, {"a3", 0, day2},
		{"poison", 2, day1},
		{"b1", 2, day1}, {"b2", 2, day2},
	}
	var recs []*kgo.Record
	for i, in := range inputs {
		value := []byte{0, 0, 0, 0} // short of a wire-format header
		if in.id != "poison" {
			v, err := serde.Encode(avro.ValueSubject(topic), enrichedClick(in.id, in.received, int64(100+i)))
			if err != nil {
				t.Fatal(err)
			}
			value = v
		}
		recs = append(recs, &kgo.Record{Topic: topic, Partition: in.partition, Key: []byte(in.id), Value: value})
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(kcfg.Brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	dir := filepath.Join(t.TempDir(), "sink")
	cfg := Defaults()
	cfg.Kafka = kcfg
	cfg.Group = kafkatest.UniqueName(t, "sink-file")
	cfg.Dir = dir
	reg := prometheus.NewRegistry()
	ready := &telemetry.Readiness{}
	svc, err := New(cfg, Deps{Log: zaptest.NewLogger(t), Metrics: reg, Ready: ready, Serde: serde})
	if err != nil {
		t.Fatal(err)
	}
	if fails := ready.Check(); len(fails) != 0 {
		t.Errorf("not ready: %v", fails)
	}
	if err := svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			_ = svc.Stop(context.Background())
		}
	}()

	file := func(day time.Time, p int32) string {
		return filepath.Join(dir, "clicks", day.Format("2006-01-02"), fmt.Sprintf("%s-p%d.jsonl", topic, p))
	}
	want := map[string][]string{ // file → event ids in order
		file(day1, 0): {"a1", "a2"},
		file(day2, 0): {"a3"},
		file(day1, 2): {"b1"},
		file(day2, 2): {"b2"},
	}
	got := waitLines(ctx, t, dir, 5)
	for path, ids := range want {
		lines := got[path]
		if len(lines) != len(ids) {
			t.Errorf("%s: %d lines, want %d", path, len(lines), len(ids))
			continue
		}
		for i, l := range lines {
			var j jsonLine
			if err := json.Unmarshal([]byte(l), &j); err != nil {
				t.Fatalf("%s line %d is not JSON: %v\n%s", path, i, err, l)
			}
			if j.Envelope.EventID != ids[i] {
				t.Errorf("%s line %d: event %s, want %s", path, i, j.Envelope.EventID, ids[i])
			}
			if _, err := time.Parse(time.RFC3339, j.Envelope.ReceivedAt); err != nil || !strings.HasSuffix(j.Envelope.ReceivedAt, "Z") {
				t.Errorf("%s line %d: received_at %q is not RFC 3339 UTC", path, i, j.Envelope.ReceivedAt)
			}
			if j.Type != "click" || j.Info.X != 10.5 || j.Envelope.Raw != `{"type":"click"}` || j.Enrichment.RawOffset < 100 {
				t.Errorf("%s line %d: fields lost in rendering: %s", path, i, l)
			}
		}
	}
	if len(got) != len(want) {
		t.Errorf("files %v, want %d files", keys(got), len(want))
	}

	dead := consumeDLQ(ctx, t, kcfg)
	native, _, err := serde.Decode(ctx, dead.Value)
	if err != nil {
		t.Fatal(err)
	}
	d := native.(map[string]any)
	if d["stage"] != Stage || d["reason"] != event.ReasonUndecodable || avro.UnionString(d["topic"]) != topic ||
		d["partition"].(map[string]any)["int"] != int32(2) || d["offset"].(map[string]any)["long"] != recs[3].Offset {
		t.Errorf("dead letter %v, want stage %s, reason %s, %s/2@%d", d, Stage, event.ReasonUndecodable, topic, recs[3].Offset)
	}

	if err := svc.Stop(ctx); err != nil {
		t.Fatalf("stop: %v", err)
	}
	stopped = true
	if err := committedToEnd(ctx, kadm.NewClient(cl), cfg.Group, topic); err != nil {
		t.Errorf("after stop: %v", err)
	}

	if n := testutil.ToFloat64(svc.handler.metrics.events.WithLabelValues(string(event.Clicks))); n != 5 {
		t.Errorf("sluice_sink_file_events_total{family=clicks} = %v, want 5", n)
	}
	var size int64
	for path := range want {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		size += fi.Size()
	}
	if n := testutil.ToFloat64(svc.handler.metrics.bytes.WithLabelValues(string(event.Clicks))); n != float64(size) {
		t.Errorf("sluice_sink_file_bytes_total{family=clicks} = %v, want the files' size %d", n, size)
	}
	if n := testutil.CollectAndCount(reg, "sluice_sink_file_fsync_seconds"); n != 1 {
		t.Errorf("fsync histogram missing")
	}
}

// waitLines reads every file under dir until they hold n lines in all,
// and fails the test if they do not before ctx ends.
func waitLines(ctx context.Context, t *testing.T, dir string, n int) map[string][]string {
	t.Helper()
	for {
		got := map[string][]string{}
		total := 0
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			defer f.Close()
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				got[path] = append(got[path], sc.Text())
				total++
			}
			return sc.Err()
		})
		if err != nil {
			t.Fatal(err)
		}
		if total >= n {
			return got
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%d lines under %s before the deadline, want %d", total, dir, n)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func consumeDLQ(ctx context.Context, t *testing.T, kcfg kafka.Config) *kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(kcfg.Brokers...), kgo.ConsumeTopics(event.DLQTopic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatal("no dead letter before the deadline")
		}
		var found *kgo.Record
		fs.EachRecord(func(r *kgo.Record) {
			if string(r.Key) == "poison" {
				found = r
			}
		})
		if found != nil {
			return found
		}
	}
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

func keys(m map[string][]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
