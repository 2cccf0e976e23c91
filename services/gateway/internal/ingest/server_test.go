package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/sluicehq/sluice/pkg/avro/avrotest"
	"github.com/sluicehq/sluice/pkg/event"
	"github.com/sluicehq/sluice/pkg/kafka"
	"github.com/sluicehq/sluice/pkg/kafka/kafkatest"
	"github.com/sluicehq/sluice/pkg/pipeline"
)

const testKey = "test-key-0123456789"

// testGW is a gateway server in this process on a free loopback port, with
// an in-process kfake broker the test can make unreachable (down) or slow
// (hold: produce requests wait until it is closed).
type testGW struct {
	t       *testing.T
	url     string
	srv     *Server
	cluster *kfake.Cluster
	kcfg    kafka.Config
	reg     *prometheus.Registry
	down    atomic.Bool
	hold    atomic.Pointer[chan struct{}]
	// holdBuild: requests wait, holding their processing slot, after their
	// records are built, until it is closed.
	holdBuild atomic.Pointer[chan struct{}]
}

type gwSetup struct {
	opts      *Options
	kcfg      *kafka.Config
	noDLQ     bool // leave the DLQ topic uncreated, so dead letters cannot be written
	logErrors bool
}

func newTestGW(t *testing.T, mutate func(*gwSetup)) *testGW {
	t.Helper()
	g := &testGW{t: t}
	g.cluster = kafkatest.Fake(t)
	g.cluster.ControlKey(-1, func(kmsg.Request) (kmsg.Response, error, bool) {
		if g.down.Load() {
			g.cluster.KeepControl()
			return nil, errors.New("broker down (test)"), true
		}
		return nil, nil, false
	})
	g.cluster.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		if ch := g.hold.Load(); ch != nil {
			g.cluster.SleepControl(func() { <-*ch })
		}
		return nil, nil, false
	})
	kcfg := kafka.Defaults()
	kcfg.Brokers = g.cluster.ListenAddrs()
	kcfg.Partitions = 1
	kcfg.DeliveryTimeout = 5 * time.Second
	opts := Options{
		Listen: "127.0.0.1:0", Version: "test",
		Limits: Limits{MaxBodyBytes: 1 << 20, MaxDecompressedBytes: 4 << 20, MaxRatio: 100, MaxEvents: 1000,
			MaxEventBytes: 256 << 10, MaxDepth: 32},
		Sources: []Source{{ID: "src", Key: testKey}},
		KeepRaw: true,
		// Distinct delays, so that each refusal shows which one it sent:
		// 1 s for backpressure (overloaded), 2 s for everything else.
		ProduceTimeout: 5 * time.Second, RetryAfter: 2 * time.Second, OverloadRetryAfter: time.Second,
		ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second,
		IdleTimeout: 10 * time.Second, MaxHeaderBytes: 64 << 10,
		ProbeInterval: 50 * time.Millisecond, ProbeTimeout: 500 * time.Millisecond, CircuitFailures: 2,
	}
	setup := &gwSetup{opts: &opts, kcfg: &kcfg}
	if mutate != nil {
		mutate(setup)
	}
	g.kcfg = kcfg
	level := zap.ErrorLevel + 1
	if setup.logErrors {
		level = zap.ErrorLevel
	}
	log := zaptest.NewLogger(t, zaptest.Level(level))
	_, serde := avrotest.Registry(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	topics := []string{}
	if !setup.noDLQ {
		topics = append(topics, event.DLQTopic)
	}
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
	t.Cleanup(func() { producer.Client().Close() })
	g.reg = prometheus.NewRegistry()
	dlq, err := pipeline.NewDLQ(serde, producer, "test", g.reg)
	if err != nil {
		t.Fatal(err)
	}
	g.srv, err = NewServer(opts, Deps{Log: log, Metrics: g.reg, Serde: serde, Producer: producer, DLQ: dlq})
	if err != nil {
		t.Fatal(err)
	}
	g.srv.pipe.beforeProduce = func() {
		if ch := g.holdBuild.Load(); ch != nil {
			<-*ch
		}
	}
	if err := g.srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if ch := g.hold.Swap(nil); ch != nil {
			close(*ch)
		}
		if ch := g.holdBuild.Swap(nil); ch != nil {
			close(*ch)
		}
		g.down.Store(false)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = g.srv.Stop(ctx)
	})
	g.url = "http://" + g.srv.Addr()
	return g
}

// holdProcessing makes requests wait, holding their processing slot, once
// their records are built, until the returned func runs.
func (g *testGW) holdProcessing() (release func()) {
	ch := make(chan struct{})
	g.holdBuild.Store(&ch)
	var once atomic.Bool
	return func() {
		if once.CompareAndSwap(false, true) {
			g.holdBuild.Store(nil)
			close(ch)
		}
	}
}

// holdProduce makes produce requests wait until the returned func runs.
func (g *testGW) holdProduce() (release func()) {
	ch := make(chan struct{})
	g.hold.Store(&ch)
	var once atomic.Bool
	return func() {
		if once.CompareAndSwap(false, true) {
			g.hold.Store(nil)
			close(ch)
		}
	}
}

type gwResp struct {
	status     int
	retryAfter string
	body       map[string]any
	raw        []byte
	took       time.Duration
}

func (r gwResp) code() string { s, _ := r.body["error"].(string); return s }

func (r gwResp) errorCodes() []string {
	var out []string
	errs, _ := r.body["errors"].([]any)
	for _, e := range errs {
		m, _ := e.(map[string]any)
		c, _ := m["code"].(string)
		out = append(out, c)
	}
	return out
}

func (g *testGW) post(path string, body io.Reader, hdr map[string]string) gwResp {
	g.t.Helper()
	req, err := http.NewRequest(http.MethodPost, g.url+path, body)
	if err != nil {
		g.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testKey)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	if cl, ok := hdr["Content-Length"]; ok {
		fmt.Sscan(cl, &req.ContentLength)
	}
	t0 := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		g.t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	r := gwResp{status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After"), raw: b, took: time.Since(t0)}
	_ = json.Unmarshal(b, &r.body)
	return r
}

func edxLines(n int, prefix string) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, `{"username":"u%d","event_type":"t","time":"2026-01-02T03:04:05Z","event_id":"%s-%d","event":{"n":%d}}`+"\n", i%3, prefix, i, i)
	}
	return b.String()
}

func ndjson() map[string]string { return map[string]string{"Content-Type": "application/x-ndjson"} }

// stalledBody is a request body that sends head and then blocks until
// closed, recording how much of it the server read.
type stalledBody struct {
	head []byte
	read atomic.Int64
	done chan struct{}
}

func (s *stalledBody) Read(p []byte) (int, error) {
	if len(s.head) > 0 {
		n := copy(p, s.head)
		s.head = s.head[n:]
		s.read.Add(int64(n))
		return n, nil
	}
	<-s.done
	return 0, io.ErrUnexpectedEOF
}

func TestOverloadRefusedBeforeTheBodyIsRead(t *testing.T) {
	g := newTestGW(t, func(s *gwSetup) { s.opts.MaxInflightRequests = 1 })
	release := g.holdProcessing()
	defer release()
	// The first request takes the only processing slot and is held in it.
	first := make(chan gwResp, 1)
	go func() { first <- g.post("/v1/events/edx", strings.NewReader(edxLines(3, "a")), ndjson()) }()
	deadline := time.Now().Add(5 * time.Second)
	for g.srv.guard.processing.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	// The second announces a body it never finishes sending: the answer
	// must come without the body having been read.
	body := &stalledBody{done: make(chan struct{})}
	defer close(body.done)
	r := g.post("/v1/events/edx", body, map[string]string{"Content-Type": "application/x-ndjson", "Content-Length": "100000"})
	if r.status != http.StatusServiceUnavailable || r.code() != ReasonOverloaded || r.retryAfter != "1" {
		t.Fatalf("second request: %d %q Retry-After %q: %s", r.status, r.code(), r.retryAfter, r.raw)
	}
	release()
	if f := <-first; f.status != http.StatusOK {
		t.Fatalf("first request: %d %s", f.status, f.raw)
	}
	if got := testutil.ToFloat64(g.srv.m.refusedRequests.WithLabelValues(ReasonOverloaded)); got != 1 {
		t.Fatalf("refused_requests{overloaded} = %v", got)
	}
	// The slot is free again.
	if r := g.post("/v1/events/edx", strings.NewReader(edxLines(2, "c")), ndjson()); r.status != http.StatusOK {
		t.Fatalf("after release: %d %s", r.status, r.raw)
	}
}

func TestRequestsWaitBrieflyForASlot(t *testing.T) {
	for _, tc := range []struct {
		name       string
		saturated  bool
		turnedAway bool // a request was turned away just before
		queue      int  // requests the queue holds with 1 processing slot
	}{
		{"the CPU keeps up: three times the slots", false, true, 3},
		{"the CPU is saturated, but nobody was turned away: three times the slots", true, false, 3},
		{"the CPU is saturated and a request was turned away: a quarter of the slots, at least 1", true, true, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newTestGW(t, func(s *gwSetup) {
				s.opts.MaxInflightRequests = 1
				s.opts.QueueTimeout = 3 * time.Second
			})
			gd := g.srv.guard
			gd.cpu = &cpuSaturation{}
			gd.cpu.saturated.Store(tc.saturated)
			if tc.turnedAway {
				gd.turnAway()
			}
			if got, want := g.gauge("sluice_gateway_overload_cut"), map[bool]float64{false: 0, true: 1}[tc.queue == 1]; got != want {
				t.Fatalf("overload_cut gauge = %v, want %v", got, want)
			}
			if got, want := g.gauge("sluice_gateway_cpu_saturated"), map[bool]float64{false: 0, true: 1}[tc.saturated]; got != want {
				t.Fatalf("cpu_saturated gauge = %v, want %v", got, want)
			}
			release := g.holdProcessing()
			defer release()
			replies := make(chan gwResp, 1+tc.queue)
			go func() { replies <- g.post("/v1/events/edx", strings.NewReader(edxLines(2, "a")), ndjson()) }()
			waitFor(t, func() bool { return g.srv.guard.processing.Load() == 1 })
			// The next ones wait in the queue for the slot.
			for i := range tc.queue {
				go func() {
					replies <- g.post("/v1/events/edx", strings.NewReader(edxLines(2, fmt.Sprintf("q%d", i))), ndjson())
				}()
				waitFor(t, func() bool { return g.srv.guard.waiting.Load() == int64(i+1) })
			}
			if got := g.gauge("sluice_gateway_waiting_requests"); got != float64(tc.queue) {
				t.Fatalf("waiting_requests gauge = %v, want %d", got, tc.queue)
			}
			// The queue is full: the next is refused before its body is read.
			body := &stalledBody{done: make(chan struct{})}
			defer close(body.done)
			refused := make(chan gwResp, 1)
			go func() {
				refused <- g.post("/v1/events/edx", body, map[string]string{"Content-Type": "application/x-ndjson", "Content-Length": "100000"})
			}()
			var r gwResp
			select {
			case r = <-refused:
			case <-time.After(5 * time.Second):
				t.Fatal("the request past the queue was not answered: it was let in")
			}
			if r.status != http.StatusServiceUnavailable || r.code() != ReasonOverloaded || body.read.Load() != 0 {
				t.Fatalf("request past the queue: %d %s (%d bytes read)", r.status, r.raw, body.read.Load())
			}
			// That refusal is a request turned away: with the CPU
			// saturated, the cut now holds.
			if gd.cut() != tc.saturated {
				t.Fatalf("after a refusal with the CPU saturated %v: cut %v", tc.saturated, gd.cut())
			}
			release()
			for range 1 + tc.queue {
				if r := <-replies; r.status != http.StatusOK {
					t.Fatalf("queued request: %d %s", r.status, r.raw)
				}
			}
		})
	}
}

func TestQueueTimeout(t *testing.T) {
	g := newTestGW(t, func(s *gwSetup) {
		s.opts.MaxInflightRequests = 1
		s.opts.QueueTimeout = 100 * time.Millisecond
	})
	release := g.holdProcessing()
	defer release()
	first := make(chan gwResp, 1)
	go func() { first <- g.post("/v1/events/edx", strings.NewReader(edxLines(2, "a")), ndjson()) }()
	waitFor(t, func() bool { return g.srv.guard.processing.Load() == 1 })
	r := g.post("/v1/events/edx", strings.NewReader(edxLines(2, "b")), ndjson())
	if r.status != http.StatusServiceUnavailable || r.code() != ReasonOverloaded || r.retryAfter != "1" {
		t.Fatalf("after the queue timeout: %d Retry-After %q %s", r.status, r.retryAfter, r.raw)
	}
	if codes := r.errorCodes(); len(codes) != 2 || codes[0] != ReasonOverloaded {
		t.Fatalf("event codes %v", codes)
	}
	release()
	if f := <-first; f.status != http.StatusOK {
		t.Fatalf("first: %d", f.status)
	}
}

// TestWaitingForAcksHoldsNoSlot: a request whose records are handed to the
// producer gives its processing slot back while it waits for the acks, so
// slow acks do not leave the CPU idle; both requests are answered once the
// acks come.
func TestWaitingForAcksHoldsNoSlot(t *testing.T) {
	g := newTestGW(t, func(s *gwSetup) { s.opts.MaxInflightRequests = 1 })
	release := g.holdProduce()
	defer release()
	replies := make(chan gwResp, 2)
	go func() { replies <- g.post("/v1/events/edx", strings.NewReader(edxLines(2, "a")), ndjson()) }()
	waitFor(t, func() bool { return g.srv.guard.admitted.Load() == 1 && g.srv.guard.processing.Load() == 0 })
	go func() { replies <- g.post("/v1/events/edx", strings.NewReader(edxLines(2, "b")), ndjson()) }()
	waitFor(t, func() bool { return g.srv.guard.admitted.Load() == 2 && g.srv.guard.processing.Load() == 0 })
	release()
	for range 2 {
		if r := <-replies; r.status != http.StatusOK {
			t.Fatalf("request waiting for acks: %d %s", r.status, r.raw)
		}
	}
	if got := testutil.ToFloat64(g.srv.m.refusedRequests.WithLabelValues(ReasonOverloaded)); got != 0 {
		t.Fatalf("refused_requests{overloaded} = %v", got)
	}
}

// TestAckSlotsPushBack: with every ack slot taken, a built request waits
// holding its processing slot, so the next request is refused: slow acks
// bound what is in flight.
func TestAckSlotsPushBack(t *testing.T) {
	g := newTestGW(t, func(s *gwSetup) { s.opts.MaxInflightRequests = 1; s.opts.MaxAwaitingAcks = 1 })
	release := g.holdProduce()
	defer release()
	replies := make(chan gwResp, 2)
	go func() { replies <- g.post("/v1/events/edx", strings.NewReader(edxLines(2, "a")), ndjson()) }()
	waitFor(t, func() bool { return g.srv.guard.admitted.Load() == 1 && g.srv.guard.processing.Load() == 0 })
	go func() { replies <- g.post("/v1/events/edx", strings.NewReader(edxLines(2, "b")), ndjson()) }()
	waitFor(t, func() bool { return g.srv.guard.admitted.Load() == 2 && g.srv.guard.processing.Load() == 1 })
	if acks, slots := g.gauge("sluice_gateway_awaiting_acks_requests"), g.gauge("sluice_gateway_inflight_requests"); acks != 1 || slots != 1 {
		t.Fatalf("awaiting_acks_requests = %v, inflight_requests = %v; want 1 and 1", acks, slots)
	}
	if r := g.post("/v1/events/edx", strings.NewReader(edxLines(2, "c")), ndjson()); r.status != http.StatusServiceUnavailable || r.code() != ReasonOverloaded {
		t.Fatalf("third request: %d %s", r.status, r.raw)
	}
	release()
	for range 2 {
		if r := <-replies; r.status != http.StatusOK {
			t.Fatalf("request waiting for an ack slot: %d %s", r.status, r.raw)
		}
	}
	if n := len(g.srv.guard.acks); n != 0 {
		t.Fatalf("%d ack slots still taken", n)
	}
	if got := g.gauge("sluice_gateway_awaiting_acks_requests"); got != 0 {
		t.Fatalf("awaiting_acks_requests = %v after the answers", got)
	}
}

// gauge reads a gauge without labels from the gateway's registry.
func (g *testGW) gauge(name string) float64 {
	g.t.Helper()
	mfs, err := g.reg.Gather()
	if err != nil {
		g.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	g.t.Fatalf("gauge %s not registered", name)
	return 0
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestInflightBytes(t *testing.T) {
	g := newTestGW(t, func(s *gwSetup) { s.opts.MaxInflightBytes = 64 << 10 })
	// Announced over what is free: refused unread.
	body := &stalledBody{done: make(chan struct{})}
	defer close(body.done)
	r := g.post("/v1/events/edx", body, map[string]string{"Content-Type": "application/x-ndjson", "Content-Length": "100000"})
	if r.status != http.StatusServiceUnavailable || r.code() != ReasonOverloaded || r.retryAfter != "1" {
		t.Fatalf("announced body: %d %q Retry-After %q %q", r.status, r.code(), r.retryAfter, r.raw)
	}
	if n := body.read.Load(); n != 0 {
		t.Fatalf("%d body bytes were read", n)
	}
	// Not announced (chunked): refused as soon as the bound is reached.
	big := edxLines(400, "big") // ~60 KB
	big += big
	r = g.post("/v1/events/edx", io.MultiReader(strings.NewReader(big)), ndjson())
	if r.status != http.StatusServiceUnavailable || r.code() != ReasonOverloaded || r.retryAfter != "1" {
		t.Fatalf("chunked body over the bound: %d Retry-After %q %s", r.status, r.retryAfter, r.raw)
	}
	if held := g.srv.guard.bytes.Load(); held != 0 {
		t.Fatalf("%d bytes still held after the answers", held)
	}
	// A body that fits is taken.
	if r := g.post("/v1/events/edx", strings.NewReader(edxLines(10, "ok")), ndjson()); r.status != http.StatusOK {
		t.Fatalf("small body: %d %s", r.status, r.raw)
	}
}

func TestRateLimitPerSourceKey(t *testing.T) {
	g := newTestGW(t, func(s *gwSetup) {
		s.opts.Sources = []Source{
			{ID: "src", Key: testKey, RateLimit: RateLimit{EventsPerSecond: 5, BurstEvents: 10}},
			{ID: "bytes", Key: "bytes-key-0123456789", RateLimit: RateLimit{BytesPerSecond: 1000, BurstBytes: 2000}},
			{ID: "free", Key: "free-key-01234567890"},
		}
	})
	if r := g.post("/v1/events/edx", strings.NewReader(edxLines(10, "a")), ndjson()); r.status != http.StatusOK {
		t.Fatalf("within the burst: %d %s", r.status, r.raw)
	}
	r := g.post("/v1/events/edx", strings.NewReader(edxLines(5, "b")), ndjson())
	if r.status != http.StatusTooManyRequests || r.code() != ReasonRateLimited || r.retryAfter != "1" {
		t.Fatalf("over the rate: %d %q Retry-After %q %s", r.status, r.code(), r.retryAfter, r.raw)
	}
	for _, c := range r.errorCodes() {
		if c != ReasonRateLimited {
			t.Fatalf("event error %q", c)
		}
	}
	// Other keys are not affected.
	if r := g.post("/v1/events/edx", strings.NewReader(edxLines(50, "c")), map[string]string{"Content-Type": "application/x-ndjson", "Authorization": "Bearer free-key-01234567890"}); r.status != http.StatusOK {
		t.Fatalf("other key: %d", r.status)
	}
	time.Sleep(1100 * time.Millisecond)
	if r := g.post("/v1/events/edx", strings.NewReader(edxLines(5, "d")), ndjson()); r.status != http.StatusOK {
		t.Fatalf("after the delay: %d %s", r.status, r.raw)
	}
	// Bytes: charged from the Content-Length before the body is read.
	hdr := map[string]string{"Content-Type": "application/x-ndjson", "Authorization": "Bearer bytes-key-0123456789"}
	if r := g.post("/v1/events/edx", strings.NewReader(edxLines(10, "e")), hdr); r.status != http.StatusOK {
		t.Fatalf("first bytes: %d %s", r.status, r.raw)
	}
	body := &stalledBody{done: make(chan struct{})}
	defer close(body.done)
	hdr["Content-Length"] = "100000"
	r = g.post("/v1/events/edx", body, hdr)
	if r.status != http.StatusTooManyRequests || r.retryAfter == "" || body.read.Load() != 0 {
		t.Fatalf("over the byte rate: %d Retry-After %q, %d bytes read: %s", r.status, r.retryAfter, body.read.Load(), r.raw)
	}
	if got := testutil.ToFloat64(g.srv.m.refusedRequests.WithLabelValues(ReasonRateLimited)); got != 2 {
		t.Fatalf("refused_requests{rate_limited} = %v", got)
	}
	if got := testutil.ToFloat64(g.srv.m.refusedEvents.WithLabelValues("edx", ReasonRateLimited)); got != 5 {
		t.Fatalf("refused_events{edx,rate_limited} = %v", got)
	}
}

func TestKafkaUnreachableFailsFastAndRecovers(t *testing.T) {
	g := newTestGW(t, nil)
	if err := g.srv.KafkaReady(); err != nil {
		t.Fatalf("ready at start: %v", err)
	}
	release := g.holdProduce()
	inflight := make(chan gwResp, 1)
	go func() { inflight <- g.post("/v1/events/edx", strings.NewReader(edxLines(3, "held")), ndjson()) }()
	time.Sleep(200 * time.Millisecond)
	g.down.Store(true)
	release()
	// The request waiting for acks is answered 503 once the circuit opens,
	// long before the 5 s produce timeout.
	r := <-inflight
	if r.status != http.StatusServiceUnavailable || r.retryAfter == "" || r.took > 3*time.Second {
		t.Fatalf("in-flight request: %d after %s, Retry-After %q: %s", r.status, r.took, r.retryAfter, r.raw)
	}
	if err := g.srv.KafkaReady(); !errors.Is(err, ErrCircuitOpen) {
		t.Fatalf("readiness while down: %v", err)
	}
	// New requests are refused before their body is read.
	body := &stalledBody{done: make(chan struct{})}
	defer close(body.done)
	r = g.post("/v1/events/edx", body, map[string]string{"Content-Type": "application/x-ndjson", "Content-Length": "100000"})
	if r.status != http.StatusServiceUnavailable || r.code() != ReasonKafkaUnavailable || r.retryAfter != "2" || body.read.Load() != 0 {
		t.Fatalf("while down: %d %q %q (%d bytes read)", r.status, r.code(), r.retryAfter, body.read.Load())
	}
	if v := testutil.ToFloat64(g.srv.m.kafkaAvailable); v != 0 {
		t.Fatalf("kafka_available = %v", v)
	}
	// Back: the prober closes the circuit by itself.
	g.down.Store(false)
	deadline := time.Now().Add(10 * time.Second)
	for g.srv.KafkaReady() != nil && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if err := g.srv.KafkaReady(); err != nil {
		t.Fatalf("not ready after the broker came back: %v", err)
	}
	var ok gwResp
	for time.Now().Before(deadline) {
		if ok = g.post("/v1/events/edx", strings.NewReader(edxLines(3, "after")), ndjson()); ok.status == http.StatusOK {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if ok.status != http.StatusOK {
		t.Fatalf("after recovery: %d %s", ok.status, ok.raw)
	}
}

func TestDeepJSONRefusedCheaply(t *testing.T) {
	g := newTestGW(t, nil)
	deep := strings.Repeat("[", 10_000) + strings.Repeat("]", 10_000)
	for name, body := range map[string]string{
		"valid object":    `{"username":"u","event_type":"t","event":` + deep + `}`,
		"unclosed object": `{"username":"u","event_type":"t","event":` + strings.Repeat("[", 10_000),
		"ndjson line":     `{"a":1}` + "\n" + `{"event":` + strings.Repeat("{\"a\":", 10_000) + "\n",
		"array element":   `[{"a":` + strings.Repeat("[", 10_000) + `1` + strings.Repeat("]", 10_000) + `}]`,
	} {
		t.Run(name, func(t *testing.T) {
			r := g.post("/v1/events/edx", strings.NewReader(body), nil)
			if r.status != http.StatusMultiStatus && r.status != http.StatusBadRequest {
				t.Fatalf("%d %s", r.status, r.raw)
			}
			if r.status == http.StatusMultiStatus {
				codes := r.errorCodes()
				found := false
				for _, c := range codes {
					found = found || c == "too_deep"
				}
				if !found {
					t.Fatalf("codes %v: %s", codes, r.raw)
				}
			}
			if r.took > 2*time.Second {
				t.Fatalf("took %s", r.took)
			}
		})
	}
	// The scanner measures depth without recursion, malformed or not.
	for _, s := range []string{deep, strings.Repeat("[", 1_000_000), strings.Repeat(`{"a":`, 100_000)} {
		it := NewItem([]byte(s))
		if it.depth < 10_000 {
			t.Fatalf("depth %d", it.depth)
		}
	}
}

func TestBodyLimitsWhileStreaming(t *testing.T) {
	g := newTestGW(t, nil)
	// Announced over the limit: 413 before reading.
	body := &stalledBody{done: make(chan struct{})}
	defer close(body.done)
	r := g.post("/v1/events/edx", body, map[string]string{"Content-Length": fmt.Sprint(20 << 20)})
	if r.status != http.StatusRequestEntityTooLarge || body.read.Load() != 0 {
		t.Fatalf("announced 20 MB: %d, %d bytes read", r.status, body.read.Load())
	}
	// Not announced: read only up to the limit.
	var read atomic.Int64
	src := &countingReader{r: io.LimitReader(zeroJSON{}, 20<<20), n: &read}
	r = g.post("/v1/events/edx", src, nil)
	if r.status != http.StatusRequestEntityTooLarge || r.code() != "body_too_large" {
		t.Fatalf("chunked 20 MB: %d %s", r.status, r.raw)
	}
	if n := read.Load(); n > 8<<20 {
		t.Fatalf("the server took %d bytes of a body over the 1 MiB limit", n)
	}
}

type zeroJSON struct{}

func (zeroJSON) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = ' '
	}
	return len(p), nil
}

type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func TestDLQFailureIsRetryable(t *testing.T) {
	g := newTestGW(t, func(s *gwSetup) {
		s.noDLQ = true
		s.opts.ProduceTimeout = time.Second
		s.opts.ProbeInterval = 0 // no circuit: only this request's outcome counts
	})
	// Every event rejected and the dead letters not written: 503, so the
	// client sends them again, rather than 207 for rejections nobody kept.
	r := g.post("/v1/events/edx", strings.NewReader(`{"no":"event_type"}`+"\n"+`[1]`+"\n"), ndjson())
	if r.status != http.StatusServiceUnavailable || r.retryAfter == "" || r.body["dlq_failed"] != true {
		t.Fatalf("all rejected, DLQ down: %d %q %s", r.status, r.retryAfter, r.raw)
	}
	// Some accepted: 207, saying the dead letters were not written.
	r = g.post("/v1/events/edx", strings.NewReader(edxLines(2, "ok")+`[1]`+"\n"), ndjson())
	if r.status != http.StatusMultiStatus || r.body["dlq_failed"] != true || r.body["accepted"] != 2.0 {
		t.Fatalf("mixed, DLQ down: %d %s", r.status, r.raw)
	}
	if got := testutil.ToFloat64(g.srv.m.dlqFailures.WithLabelValues("edx")); got != 3 {
		t.Fatalf("dlq_write_failures{edx} = %v", got)
	}
}

func TestRecordTooLargeIsRejectedAndDeadLettered(t *testing.T) {
	const maxRecord = 64 << 10
	g := newTestGW(t, func(s *gwSetup) {
		s.kcfg.MaxMessageBytes = maxRecord
		s.opts.MaxRecordBytes = maxRecord
	})
	big := fmt.Sprintf(`{"username":"u","event_type":"t","time":"2026-01-02T03:04:05Z","event":{"a":%q}}`, strings.Repeat("x", 60<<10))
	r := g.post("/v1/events/edx", strings.NewReader(edxLines(1, "small")+big+"\n"), ndjson())
	if r.status != http.StatusMultiStatus || r.body["accepted"] != 1.0 {
		t.Fatalf("%d %s", r.status, r.raw)
	}
	if codes := r.errorCodes(); len(codes) != 1 || codes[0] != event.ReasonEventTooLarge {
		t.Fatalf("codes %v", codes)
	}
	// The dead letter holds the raw bytes, truncated to fit in a record.
	cl, err := kgo.NewClient(kgo.SeedBrokers(g.kcfg.Brokers...), kgo.ConsumeTopics(event.DLQTopic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	fs := cl.PollFetches(ctx)
	if err := fs.Err0(); err != nil {
		t.Fatal(err)
	}
	recs := fs.Records()
	if len(recs) != 1 {
		t.Fatalf("%d dead letters", len(recs))
	}
	v := recs[0].Value
	if len(v) > maxRecord || !bytes.Contains(v, []byte("raw truncated from")) || !bytes.Contains(v, []byte(`"a":"xxxx`)) {
		t.Fatalf("dead letter of %d bytes: %.200q", len(v), v)
	}
}

func TestShuttingDownRefusesNewRequests(t *testing.T) {
	g := newTestGW(t, nil)
	g.srv.SetRefusalWriter("/v1/events/hec", func(c echo.Context, he *HTTPError) error {
		return c.JSON(he.Status, map[string]any{"text": "Server is busy", "code": 9})
	})
	g.srv.draining.Store(true)
	if r := g.post("/v1/events/hec", strings.NewReader(`{"event":"x"}`), nil); r.status != http.StatusServiceUnavailable || r.body["code"] != 9.0 || r.retryAfter == "" {
		t.Fatalf("endpoint's own refusal shape: %d %s", r.status, r.raw)
	}
	defer g.srv.draining.Store(false)
	r := g.post("/v1/events/edx", strings.NewReader(edxLines(1, "late")), ndjson())
	if r.status != http.StatusServiceUnavailable || r.code() != ReasonShuttingDown || r.retryAfter != "2" {
		t.Fatalf("%d %s", r.status, r.raw)
	}
	if g.srv.Draining() == nil {
		t.Fatal("readiness does not report the drain")
	}
}

func TestBatchIDGivesRetriesTheSameEventIDs(t *testing.T) {
	for _, tc := range []struct {
		src, batch string
		i          int
	}{{"src", "k1", 0}, {"dev", "bench-1-w3-17", 49}, {"", "", 0}, {"k", strings.Repeat("x", 300), 1 << 40}} {
		want := uuid.NewSHA1(batchNS, []byte(fmt.Sprintf("%s/%s/%d", tc.src, tc.batch, tc.i))).String()
		if got := BatchEventID(tc.src, tc.batch, tc.i); got != want {
			t.Fatalf("BatchEventID(%q, %q, %d) = %s, want uuid.NewSHA1's %s", tc.src, tc.batch, tc.i, got, want)
		}
	}
	if a, b := BatchEventID("src", "k1", 0), BatchEventID("src", "k1", 0); a != b {
		t.Fatal("not deterministic")
	}
	for _, other := range []string{BatchEventID("src", "k1", 1), BatchEventID("src", "k2", 0), BatchEventID("other", "k1", 0)} {
		if other == BatchEventID("src", "k1", 0) {
			t.Fatal("collision")
		}
	}
}

// TestRetryAfterByCause: the native endpoints answer a 503 with
// Server.RetryAfter(res): the backpressure delay when the gateway was
// overloaded, the general one when Kafka took nothing or there is no
// result (an unhealthy health check).
func TestRetryAfterByCause(t *testing.T) {
	s := &Server{opts: Options{RetryAfter: 5 * time.Second, OverloadRetryAfter: time.Second}}
	for _, tc := range []struct {
		name string
		res  *Result
		want time.Duration
	}{
		{"overloaded", &Result{Unavailable: ErrOverloaded}, time.Second},
		{"overloaded, wrapped", &Result{Unavailable: fmt.Errorf("refused: %w", ErrOverloaded)}, time.Second},
		{"circuit open", &Result{Unavailable: ErrCircuitOpen}, 5 * time.Second},
		{"produce failed", &Result{Unavailable: errors.New("no leader")}, 5 * time.Second},
		{"no result", nil, 5 * time.Second},
	} {
		if got := s.RetryAfter(tc.res); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
	// Unset, the backpressure delay is the general one.
	s.opts.OverloadRetryAfter = 0
	if got := s.RetryAfter(&Result{Unavailable: ErrOverloaded}); got != 5*time.Second {
		t.Errorf("no overload delay set: %s", got)
	}
}
