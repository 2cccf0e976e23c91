package standalone

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/sluicehq/sluice/pkg/app"
	"github.com/sluicehq/sluice/pkg/event"
	"github.com/sluicehq/sluice/pkg/telemetry"
	"github.com/sluicehq/sluice/services/gateway"
)

// eapDir holds the real Open edX tracking logs (edx-analytics-pipeline
// acceptance fixtures, AGPL-3.0) kept as the edX adapter's test data.
const eapDir = "../gateway/internal/adapter/testdata/edx/eap"

type running struct {
	cfg     Config
	gateway string
	regURL  string
	stop    func()
}

// startPipeline runs the whole standalone pipeline in this process on free
// loopback ports, with its data under dir.
func startPipeline(t *testing.T, dir string) *running {
	t.Helper()
	cfg := Defaults()
	cfg.DataDir = dir
	cfg.KafkaAddr = "127.0.0.1:0"
	cfg.RegistryAddr = "127.0.0.1:0"
	cfg.Gateway.Listen = "127.0.0.1:0"
	for _, k := range []*time.Duration{&cfg.Enricher.Kafka.HeartbeatInterval, &cfg.SinkFile.Kafka.HeartbeatInterval} {
		*k = 300 * time.Millisecond
	}
	// Publish sink files within a second, so tests see their lines soon.
	cfg.SinkFile.RotateAge = time.Second
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	log := zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	env := app.Env{Log: log, Metrics: prometheus.NewRegistry(), Ready: &telemetry.Readiness{}}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	comps, err := Build(ctx, &cfg, env)
	if err != nil {
		t.Fatal(err)
	}
	var gw *gateway.Service
	var reg *registry
	for _, c := range comps {
		switch v := c.(type) {
		case *gateway.Service:
			gw = v
		case *registry:
			reg = v
		}
	}
	runCtx, stopRun := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.Run(runCtx, log, 30*time.Second, comps...) }()
	// app.Run starts the components; wait until the gateway listens.
	deadline := time.Now().Add(30 * time.Second)
	for gw.Addr() == cfg.Gateway.Listen && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	r := &running{cfg: cfg, gateway: "http://" + gw.Addr(), regURL: reg.URL()}
	var stopped bool
	r.stop = func() {
		if stopped {
			return
		}
		stopped = true
		stopRun()
		if err := <-done; err != nil {
			t.Errorf("pipeline stopped with error: %v", err)
		}
	}
	t.Cleanup(r.stop)
	return r
}

type reply struct {
	Accepted int               `json:"accepted"`
	Rejected int               `json:"rejected"`
	Errors   []event.Rejection `json:"errors"`
	Error    string            `json:"error"`
}

func post(t *testing.T, url string, body []byte, hdr map[string]string) (int, reply) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer dev")
	for k, v := range hdr {
		if v == "" {
			req.Header.Del(k)
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r reply
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("reply %d is not JSON: %q", resp.StatusCode, b)
	}
	return resp.StatusCode, r
}

// sinkLines counts the JSON lines the file sink wrote for a family.
func sinkLines(t *testing.T, dir, family string) (int, []map[string]any) {
	t.Helper()
	var n int
	var sample []map[string]any
	_ = filepath.WalkDir(filepath.Join(dir, "sink", family), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasPrefix(d.Name(), ".") || strings.HasSuffix(d.Name(), ".tmp") {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return nil
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 8<<20)
		for sc.Scan() {
			n++
			if len(sample) < 50 {
				var m map[string]any
				if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
					t.Errorf("%s: line %d is not JSON: %v", p, n, err)
				}
				sample = append(sample, m)
			}
		}
		return nil
	})
	return n, sample
}

func waitForLines(t *testing.T, dir, family string, want int, within time.Duration) []map[string]any {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		n, sample := sinkLines(t, dir, family)
		if n == want {
			return sample
		}
		if n > want {
			t.Fatalf("file sink holds %d %s lines, more than the %d accepted", n, family, want)
		}
		if time.Now().After(deadline) {
			t.Fatalf("file sink holds %d %s lines after %s, want %d", n, family, within, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestEdXSampleLogsReachTheFileSink posts every real edX log as NDJSON and
// checks the per-line verdicts, the file sink's line count within 10 s, the
// Confluent framing of the raw topic, and that a restart loses nothing.
func TestEdXSampleLogsReachTheFileSink(t *testing.T) {
	dir := t.TempDir()
	p := startPipeline(t, dir)
	files, err := filepath.Glob(filepath.Join(eapDir, "*.log*"))
	if err != nil || len(files) < 17 {
		t.Fatalf("want the 18 edx-analytics-pipeline files in %s, found %d (%v)", eapDir, len(files), err)
	}
	accepted := 0
	for _, f := range files {
		body, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		objects, other := 0, 0
		for _, line := range bytes.Split(bytes.TrimSuffix(body, []byte("\n")), []byte("\n")) {
			var m map[string]any
			switch {
			case len(body) == 0:
			case json.Unmarshal(line, &m) == nil:
				objects++
			default:
				other++
			}
		}
		code, r := post(t, p.gateway+"/v1/events/edx", body, map[string]string{"Content-Type": "application/x-ndjson"})
		name := filepath.Base(f)
		if r.Accepted != objects || r.Rejected != other || len(r.Errors) != other {
			t.Errorf("%s: accepted %d rejected %d (%d errors), want %d and %d", name, r.Accepted, r.Rejected, len(r.Errors), objects, other)
		}
		if want := map[bool]int{true: 200, false: 207}[other == 0]; code != want {
			t.Errorf("%s: status %d, want %d", name, code, want)
		}
		for _, e := range r.Errors {
			if e.Code != "empty_line" && e.Code != event.ReasonInvalidJSON {
				t.Errorf("%s: line %d rejected with %s: %s", name, e.Index, e.Code, e.Message)
			}
		}
		t.Logf("%-55s %4d accepted %3d reported", name, r.Accepted, r.Rejected)
		accepted += r.Accepted
	}
	sample := waitForLines(t, dir, "edx", accepted, 10*time.Second)
	for _, m := range sample {
		env, _ := m["envelope"].(map[string]any)
		if env["family"] != "edx" || m["enrichment"] == nil || m["time_raw"] == nil {
			t.Fatalf("sink line lacks the event's fields: %v", m)
		}
	}

	// The raw topic holds Confluent-framed Avro whose schema id the
	// registry resolves.
	cl, err := kgo.NewClient(kgo.SeedBrokers(p.cfg.KafkaAddr), kgo.ConsumeTopics(event.RawTopic(event.EdX)),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	fs := cl.PollRecords(ctx, 10)
	cancel()
	cl.Close()
	recs := fs.Records()
	if len(recs) == 0 {
		t.Fatalf("no records on %s: %v", event.RawTopic(event.EdX), fs.Errors())
	}
	v := recs[0].Value
	if len(v) < 5 || v[0] != 0 {
		t.Fatalf("record value does not start with the Confluent magic byte: % x", v[:min(8, len(v))])
	}
	rc, err := sr.NewClient(sr.URLs(p.regURL))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rc.SchemaByID(context.Background(), int(binary.BigEndian.Uint32(v[1:5]))); err != nil {
		t.Fatalf("registry does not resolve the record's schema id: %v", err)
	}

	// Restart on the same data: nothing acknowledged is lost, nothing is
	// written twice, and new events still flow.
	p.stop()
	p = startPipeline(t, dir)
	code, r := post(t, p.gateway+"/v1/events/edx", []byte(`{"username":"after-restart","time":"2026-01-01T00:00:00Z"}`), nil)
	if code != 200 || r.Accepted != 1 {
		t.Fatalf("after restart: %d %+v", code, r)
	}
	waitForLines(t, dir, "edx", accepted+1, 15*time.Second)
}

// TestBadInputIsRefused covers the request-level refusals and a schema
// violation reported per event and dead-lettered.
func TestBadInputIsRefused(t *testing.T) {
	dir := t.TempDir()
	p := startPipeline(t, dir)
	url := p.gateway + "/v1/events/edx"

	if code, r := post(t, url, []byte("this is not json"), nil); code != 400 {
		t.Errorf("non-JSON body: %d %+v, want 400", code, r)
	}
	if code, _ := post(t, url, []byte(`{"username":"u"}`), map[string]string{"Authorization": "Bearer wrong"}); code != 401 {
		t.Errorf("wrong key: %d, want 401", code)
	}
	if code, _ := post(t, url, []byte(`{"username":"u"}`), map[string]string{"Authorization": ""}); code != 401 {
		t.Errorf("missing key: %d, want 401", code)
	}
	if code, _ := post(t, url, []byte(`{"username":"u"}`), map[string]string{"Content-Encoding": "br"}); code != 415 {
		t.Errorf("brotli: %d, want 415", code)
	}
	big := bytes.Repeat([]byte("a"), 20<<20)
	if code, r := post(t, url, big, nil); code != 413 {
		t.Errorf("20 MB body: %d %+v, want 413", code, r)
	}
	// gzip of 1 GiB of zeros (about 1 MB: deflate tops out near 1000:1;
	// made with `head -c 1G /dev/zero | gzip -9`).
	bomb, err := os.ReadFile("testdata/bomb-1gib.gz")
	if err != nil {
		t.Fatal(err)
	}
	if code, r := post(t, url, bomb, map[string]string{"Content-Encoding": "gzip"}); code != 413 {
		t.Errorf("gzip bomb of %d bytes: %d %+v, want 413", len(bomb), code, r)
	}
	// A schema violation: context must be an object.
	code, r := post(t, url, []byte(`[{"username":"u","time":"2026-01-01T00:00:00Z"},{"username":"v","time":"2026-01-01T00:00:00Z","context":42}]`), nil)
	if code != 207 || r.Accepted != 1 || r.Rejected != 1 || len(r.Errors) != 1 || r.Errors[0].Index != 1 || r.Errors[0].Field == "" {
		t.Fatalf("schema violation: %d %+v", code, r)
	}
	t.Logf("schema violation reported as %+v", r.Errors[0])
	// ... and it is in the DLQ.
	cl, err := kgo.NewClient(kgo.SeedBrokers(p.cfg.KafkaAddr), kgo.ConsumeTopics(event.DLQTopic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var found bool
	for !found && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(rec *kgo.Record) {
			if bytes.Contains(rec.Value, []byte(`"context":42`)) {
				found = true
			}
		})
	}
	if !found {
		t.Fatal(fmt.Sprintf("the rejected event is not in %s", event.DLQTopic))
	}
}
