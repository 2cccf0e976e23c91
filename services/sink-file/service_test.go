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
	"sync/atomic"
	"syscall"
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
	"github.com/sluicehq/sluice/services/sink-file/internal/filewriter"
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
	cfg.RotateAge = 200 * time.Millisecond
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
		return filepath.Join(dir, "clicks", day.Format("2006-01-02"), fmt.Sprintf("%s+%d", topic, p))
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
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			fi, _ := d.Info()
			size += fi.Size()
		}
		return err
	})
	if n := testutil.ToFloat64(svc.handler.metrics.bytes.WithLabelValues(string(event.Clicks))); n != float64(size) {
		t.Errorf("sluice_sink_file_bytes_total{family=clicks} = %v, want the files' size %d", n, size)
	}
	if n := testutil.CollectAndCount(reg, "sluice_sink_file_fsync_seconds"); n != 1 {
		t.Errorf("fsync histogram missing")
	}
}

// waitLines reads every published file under dir until they hold n lines
// in all, and fails the test if they do not before ctx ends. It returns
// the lines by <folder>/<topic>+<partition>, in offset order.
func waitLines(ctx context.Context, t *testing.T, dir string, n int) map[string][]string {
	t.Helper()
	for {
		got := map[string][]string{}
		total := 0
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			topic, p, _, _, ok := filewriter.ParseName(d.Name())
			if !ok {
				return nil
			}
			key := filepath.Join(filepath.Dir(path), fmt.Sprintf("%s+%d", topic, p))
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			defer f.Close()
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				got[key] = append(got[key], sc.Text())
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

// produceClicks produces n enriched click events to partition p of the
// clicks topic, ids prefix-0 … prefix-(n-1), and returns their offsets.
func produceClicks(ctx context.Context, t *testing.T, kcfg kafka.Config, serde *avro.Serde, p int32, prefix string, n int, received time.Time) {
	t.Helper()
	topic := event.EnrichedTopic(event.Clicks)
	cl, err := kgo.NewClient(kgo.SeedBrokers(kcfg.Brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	recs := make([]*kgo.Record, n)
	for i := range recs {
		id := fmt.Sprintf("%s-%d", prefix, i)
		v, err := serde.Encode(avro.ValueSubject(topic), enrichedClick(id, received, int64(i)))
		if err != nil {
			t.Fatal(err)
		}
		recs[i] = &kgo.Record{Topic: topic, Partition: p, Key: []byte(id), Value: v}
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// eventIDs reads every published file under dir and counts event ids.
func eventIDs(t *testing.T, dir string) map[string]int {
	t.Helper()
	ids := map[string]int{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if _, _, _, _, ok := filewriter.ParseName(d.Name()); !ok {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			var j jsonLine
			if err := json.Unmarshal([]byte(l), &j); err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
			ids[j.Envelope.EventID]++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// waitFor polls cond every 20 ms until it holds or ctx ends.
func waitFor(ctx context.Context, t *testing.T, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func testConfig(t *testing.T, kcfg kafka.Config, dir string) Config {
	cfg := Defaults()
	cfg.Kafka = kcfg
	cfg.Group = kafkatest.UniqueName(t, "sink-file")
	cfg.Dir = dir
	cfg.RotateAge = 200 * time.Millisecond
	cfg.DiskRetry = 100 * time.Millisecond
	return cfg
}

// TestResumeFromFileNames lays out what a crash between publishing and
// committing leaves (a published file for offsets 0..4 of partition 1, a
// temporary file of a group after it, nothing committed) and checks that
// the sink resumes at offset 5, removes the temporary file and commits.
func TestResumeFromFileNames(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	kcfg := kafkatest.Cluster(t)
	_, serde := avrotest.Registry(t)
	topic := event.EnrichedTopic(event.Clicks)
	if err := kafka.EnsureTopics(ctx, kcfg, nil, topic, event.DLQTopic); err != nil {
		t.Fatal(err)
	}
	received := time.Date(2025, 5, 1, 12, 0, 0, 0, time.UTC)
	produceClicks(ctx, t, kcfg, serde, 1, "e", 10, received)

	dir := filepath.Join(t.TempDir(), "sink")
	folder := filepath.Join(dir, "clicks", "2025-05-01")
	if err := os.MkdirAll(folder, 0o755); err != nil {
		t.Fatal(err)
	}
	var before strings.Builder
	for i := 0; i < 5; i++ {
		fmt.Fprintf(&before, `{"envelope":{"event_id":"e-%d"}}`+"\n", i)
	}
	published := filepath.Join(folder, filewriter.FinalName(topic, 1, 0, 4, false))
	leftover := filepath.Join(folder, ".sluice.enriched.clicks+1+0000000005.jsonl.tmp")
	for path, data := range map[string]string{published: before.String(), leftover: `{"envelope":{"event_id":"e-5"}}` + "\n"} {
		if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	cfg := testConfig(t, kcfg, dir)
	svc, err := New(cfg, Deps{Log: zaptest.NewLogger(t), Serde: serde})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer svc.Stop(context.Background())
	waitFor(ctx, t, "10 events in published files", func() bool { return len(eventIDs(t, dir)) == 10 })
	for id, n := range eventIDs(t, dir) {
		if n != 1 {
			t.Errorf("event %s written %d times", id, n)
		}
	}
	if _, err := os.Stat(leftover); !os.IsNotExist(err) {
		t.Errorf("leftover temporary file still there: %v", err)
	}
	if _, err := os.Stat(filepath.Join(folder, filewriter.FinalName(topic, 1, 5, 9, false))); err != nil {
		t.Errorf("offsets 5..9 not in one file: %v", err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(kcfg.Brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	waitFor(ctx, t, "offsets committed to the end", func() bool {
		return committedToEnd(ctx, kadm.NewClient(cl), cfg.Group, topic) == nil
	})
}

// TestDiskFull makes every write fail with ENOSPC and checks that the sink
// pauses (unready, sluice_sink_file_paused 1), commits nothing past what is
// published, then resumes once writes succeed and writes every event once.
func TestDiskFull(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	kcfg := kafkatest.Cluster(t)
	_, serde := avrotest.Registry(t)
	topic := event.EnrichedTopic(event.Clicks)
	if err := kafka.EnsureTopics(ctx, kcfg, nil, topic, event.DLQTopic); err != nil {
		t.Fatal(err)
	}
	received := time.Date(2025, 5, 2, 12, 0, 0, 0, time.UTC)
	produceClicks(ctx, t, kcfg, serde, 0, "before", 50, received)

	dir := filepath.Join(t.TempDir(), "sink")
	var full atomic.Bool
	var refused atomic.Int64
	fault := func(op, _ string) error {
		if full.Load() && (op == "write" || op == "sync") {
			refused.Add(1)
			return syscall.ENOSPC
		}
		return nil
	}
	cfg := testConfig(t, kcfg, dir)
	cfg.RotateEvents = 20
	reg := prometheus.NewRegistry()
	ready := &telemetry.Readiness{}
	svc, err := newService(cfg, Deps{Log: zaptest.NewLogger(t), Metrics: reg, Ready: ready, Serde: serde}, hooks{}, fault)
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer svc.Stop(context.Background())
	waitFor(ctx, t, "the first 50 events", func() bool { return len(eventIDs(t, dir)) == 50 })

	full.Store(true)
	produceClicks(ctx, t, kcfg, serde, 0, "during", 50, received)
	waitFor(ctx, t, "the sink to pause", func() bool { return len(ready.Check()) > 0 })
	if got := ready.Check()[Stage]; got == nil || !errors.Is(got, syscall.ENOSPC) {
		t.Errorf("readiness error %v, want one wrapping ENOSPC", got)
	}
	paused := svc.handler.metrics.paused
	if v := testutil.ToFloat64(paused); v != 1 {
		t.Errorf("sluice_sink_file_paused = %v while the disk is full", v)
	}
	// Paused: probes keep failing, nothing more is published or committed.
	n := refused.Load()
	waitFor(ctx, t, "two more failed probes", func() bool { return refused.Load() >= n+2 })
	if got := len(eventIDs(t, dir)); got != 50 {
		t.Errorf("%d events published while the disk is full, want 50", got)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(kcfg.Brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	offs, err := kadm.NewClient(cl).FetchOffsets(ctx, cfg.Group)
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := offs.Lookup(topic, 0); ok && o.At > 50 {
		t.Errorf("committed %d while paused, past the 50 published", o.At)
	}

	full.Store(false)
	waitFor(ctx, t, "every event once the disk has room", func() bool { return len(eventIDs(t, dir)) == 100 })
	waitFor(ctx, t, "ready again", func() bool { return len(ready.Check()) == 0 })
	if v := testutil.ToFloat64(paused); v != 0 {
		t.Errorf("sluice_sink_file_paused = %v after resuming", v)
	}
	for id, n := range eventIDs(t, dir) {
		if n != 1 {
			t.Errorf("event %s written %d times", id, n)
		}
	}
	waitFor(ctx, t, "offsets committed to the end", func() bool {
		return committedToEnd(ctx, kadm.NewClient(cl), cfg.Group, topic) == nil
	})
	if v := testutil.ToFloat64(svc.handler.metrics.writeErrors); v < 1 {
		t.Errorf("sluice_sink_file_write_errors_total = %v", v)
	}
}

// TestReadOnlyFolder makes the day's folder read-only (which only binds a
// process without CAP_DAC_OVERRIDE) and checks the same pause and resume.
func TestReadOnlyFolder(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root writes to read-only folders; TestDiskFull covers the pause through the fault seam")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	kcfg := kafkatest.Cluster(t)
	_, serde := avrotest.Registry(t)
	topic := event.EnrichedTopic(event.Clicks)
	if err := kafka.EnsureTopics(ctx, kcfg, nil, topic, event.DLQTopic); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "sink")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o555); err != nil {
		t.Fatal(err)
	}
	defer os.Chmod(dir, 0o755)
	ready := &telemetry.Readiness{}
	cfg := testConfig(t, kcfg, dir)
	svc, err := New(cfg, Deps{Log: zaptest.NewLogger(t), Ready: ready, Serde: serde})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer svc.Stop(context.Background())
	produceClicks(ctx, t, kcfg, serde, 2, "ro", 30, time.Date(2025, 5, 3, 0, 0, 0, 0, time.UTC))
	waitFor(ctx, t, "the sink to pause", func() bool { return svc.handler.ready() != nil })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	waitFor(ctx, t, "every event", func() bool { return len(eventIDs(t, dir)) == 30 })
	waitFor(ctx, t, "ready again", func() bool { return len(ready.Check()) == 0 })
}
