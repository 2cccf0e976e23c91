package native

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/sluicehq/sluice/pkg/avro"
	"github.com/sluicehq/sluice/pkg/avro/avrotest"
	"github.com/sluicehq/sluice/pkg/event"
	"github.com/sluicehq/sluice/pkg/kafka"
	"github.com/sluicehq/sluice/pkg/kafka/kafkatest"
	"github.com/sluicehq/sluice/pkg/pipeline"
	"github.com/sluicehq/sluice/services/gateway/internal/ingest"
)

// Keys of the test sources.
const (
	serverKey  = "server-key-0123456789" // trusted: may vouch for users
	browserKey = "browser-key-012345678"
	edxOnlyKey = "edx-only-key-01234567"
	segSecret  = "segment-secret-0123456789"
	hecTokenA  = "11111111-2222-3333-4444-555555555555"
	hecTokenQS = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
)

// env is a real gateway in this process: echo server on a free loopback
// port, kfake broker, srfake registry, and the native endpoints mounted.
type env struct {
	t       *testing.T
	url     string
	srv     *ingest.Server
	kcfg    kafka.Config
	serde   *avro.Serde
	reg     *prometheus.Registry
	skew    atomic.Int64 // added to the clock, in ns
	limits  ingest.Limits
	started time.Time
}

func (e *env) now() time.Time { return time.Now().Add(time.Duration(e.skew.Load())) }

// newEnv starts a gateway with the test configuration, changed by mutate.
func newEnv(t *testing.T, mutate func(*Config)) *env {
	t.Helper()
	cfg := Defaults()
	cfg.EdX.SegmentSecret = segSecret
	cfg.HEC.Tokens = []HECToken{
		{Token: hecTokenA, SourceID: "hec-a", Sourcetype: "default_st", Index: "main", Indexes: []string{"main", "web"}},
		{Token: hecTokenQS, SourceID: "hec-qs", AllowQueryString: true},
	}
	if mutate != nil {
		mutate(&cfg)
	}
	log := zaptest.NewLogger(t, zaptest.Level(zap.ErrorLevel))
	kcfg := kafkatest.Cluster(t)
	_, serde := avrotest.Registry(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	topics := []string{event.DLQTopic}
	for _, f := range event.Families {
		topics = append(topics, event.RawTopic(f))
	}
	if err := kafka.EnsureTopics(ctx, kcfg, nil, topics...); err != nil {
		t.Fatal(err)
	}
	producer, err := kafka.NewProducer(kcfg, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = producer.Close(context.Background()) })
	reg := prometheus.NewRegistry()
	dlq, err := pipeline.NewDLQ(serde, producer, "test", reg)
	if err != nil {
		t.Fatal(err)
	}
	lim := ingest.Limits{MaxBodyBytes: 1 << 20, MaxDecompressedBytes: 4 << 20, MaxRatio: 100,
		MaxEvents: 1000, MaxEventBytes: 256 << 10, MaxDepth: 32}
	srv, err := ingest.NewServer(ingest.Options{
		Listen: "127.0.0.1:0", Version: "test", Limits: lim, KeepRaw: true,
		Sources: []ingest.Source{
			{ID: "lms", Key: serverKey, Trusted: true},
			{ID: "browser", Key: browserKey},
			{ID: "edx-only", Key: edxOnlyKey, Families: []string{"edx"}},
		},
		ProduceTimeout: 5 * time.Second, RetryAfter: 2 * time.Second,
		ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second,
		IdleTimeout: 10 * time.Second, MaxHeaderBytes: 64 << 10,
	}, ingest.Deps{Log: log, Metrics: reg, Serde: serde, Producer: producer, DLQ: dlq})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, srv: srv, kcfg: kcfg, serde: serde, reg: reg, limits: lim, started: time.Now()}
	if _, err := Mount(cfg, Deps{Log: log, Server: srv, DevKey: true, Now: e.now}); err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop(context.Background()) })
	e.url = "http://" + srv.Addr()
	return e
}

// response is a reply, its body kept for assertions.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("reply %d is not JSON: %q", r.status, r.body)
	}
}

// result decodes a Sluice per-event reply.
func (r response) result(t *testing.T) ingest.Result {
	t.Helper()
	var res ingest.Result
	r.json(t, &res)
	return res
}

// do sends a request; hdr values of "" delete the header.
func (e *env) do(method, path string, body []byte, hdr map[string]string) response {
	e.t.Helper()
	req, err := http.NewRequest(method, e.url+path, bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

func (e *env) post(path string, body []byte, hdr map[string]string) response {
	e.t.Helper()
	return e.do(http.MethodPost, path, body, hdr)
}

// record is one Kafka record decoded from Avro.
type record struct {
	native map[string]any
	json   string
	key    string
}

// envelope returns the record's envelope.
func (r record) envelope() map[string]any {
	env, _ := r.native["envelope"].(map[string]any)
	return env
}

// records reads topic from the start until it holds want records (or
// within has passed) and decodes them. want < 0 reads for the whole time.
func (e *env) records(topic string, want int, within time.Duration) []record {
	e.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.kcfg.Brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		e.t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	var out []record
	for ctx.Err() == nil && (want < 0 || len(out) < want) {
		fs := cl.PollFetches(ctx)
		fs.EachRecord(func(rec *kgo.Record) {
			native, codec, err := e.serde.Decode(context.Background(), rec.Value)
			if err != nil {
				e.t.Fatalf("%s: record does not decode: %v", topic, err)
			}
			js, err := codec.AppendJSON(nil, native)
			if err != nil {
				e.t.Fatalf("%s: record does not render: %v", topic, err)
			}
			m, _ := native.(map[string]any)
			out = append(out, record{native: m, json: string(js), key: string(rec.Key)})
		})
	}
	return out
}

// raw reads the records of a family's raw topic.
func (e *env) raw(fam event.Family, want int) []record {
	e.t.Helper()
	recs := e.records(event.RawTopic(fam), want, 10*time.Second)
	if want >= 0 && len(recs) != want {
		e.t.Fatalf("%s holds %d records, want %d", event.RawTopic(fam), len(recs), want)
	}
	return recs
}

// dlq reads the dead letters.
func (e *env) dlq(want int) []record {
	e.t.Helper()
	recs := e.records(event.DLQTopic, want, 10*time.Second)
	if want >= 0 && len(recs) != want {
		e.t.Fatalf("%s holds %d records, want %d", event.DLQTopic, len(recs), want)
	}
	return recs
}

// noMore checks that topic holds exactly n records after a short wait.
func (e *env) noMore(topic string, n int) {
	e.t.Helper()
	if got := len(e.records(topic, -1, 700*time.Millisecond)); got != n {
		e.t.Fatalf("%s holds %d records, want %d", topic, got, n)
	}
}

// dropped reads sluice_gateway_dropped_events_total{family, rule}.
func (e *env) dropped(fam, rule string) float64 {
	e.t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		e.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "sluice_gateway_dropped_events_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["family"] == fam && labels["rule"] == rule {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func gz(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// lines returns the non-blank lines of a file.
func lines(t testing.TB, path string) [][]byte {
	t.Helper()
	var out [][]byte
	for _, l := range bytes.Split(readFile(t, path), []byte("\n")) {
		if len(bytes.TrimSpace(l)) > 0 {
			out = append(out, l)
		}
	}
	return out
}

// field walks a decoded record by dotted path, unwrapping Avro unions
// ({"string": x}).
func field(m map[string]any, path string) any {
	var cur any = m
	for _, p := range strings.Split(path, ".") {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = unwrap(mm[p])
	}
	return cur
}

func unwrap(v any) any {
	if m, ok := v.(map[string]any); ok && len(m) == 1 {
		for k, x := range m {
			switch k {
			case "string", "long", "int", "double", "float", "boolean", "bytes", "map", "array":
				return x
			}
			if strings.Contains(k, ".") { // a named type or a logical type
				return x
			}
		}
	}
	return v
}
