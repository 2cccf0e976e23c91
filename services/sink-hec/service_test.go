package sinkhec

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
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
	"github.com/sluicehq/sluice/pkg/config"
	"github.com/sluicehq/sluice/pkg/event"
	"github.com/sluicehq/sluice/pkg/kafka"
	"github.com/sluicehq/sluice/pkg/kafka/kafkatest"
	"github.com/sluicehq/sluice/pkg/pipeline/pipelinetest"
	"github.com/sluicehq/sluice/pkg/telemetry"
	"github.com/sluicehq/sluice/services/sink-hec/hectest"
)

var clicks = event.EnrichedTopic(event.Clicks)

// env is a broker, a registry and a produce client for one test.
type env struct {
	t     *testing.T
	ctx   context.Context
	kcfg  kafka.Config
	serde *avro.Serde
	cl    *kgo.Client
	adm   *kadm.Client
	// offsets of the produced events, by id
	produced map[string][2]int64
}

func newEnv(t *testing.T, timeout time.Duration) *env {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	kcfg := kafkatest.Cluster(t)
	_, serde := avrotest.Registry(t)
	if err := kafka.EnsureTopics(ctx, kcfg, nil, append(enrichedTopics(), event.DLQTopic)...); err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(kcfg.Brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return &env{t: t, ctx: ctx, kcfg: kcfg, serde: serde, cl: cl, adm: kadm.NewClient(cl), produced: map[string][2]int64{}}
}

// produce produces enriched clicks with the given ids over the three
// partitions; mutate, when set, edits each native value.
func (e *env) produce(ids []string, mutate func(id string, native map[string]any)) {
	e.t.Helper()
	t0 := time.Date(2025, 6, 1, 8, 0, 0, 0, time.UTC)
	recs := make([]*kgo.Record, len(ids))
	for i, id := range ids {
		n := pipelinetest.EnrichedClick(id, t0.Add(time.Minute), t0.Add(time.Duration(i)*time.Millisecond), int64(i))
		if mutate != nil {
			mutate(id, n)
		}
		v, err := e.serde.Encode(avro.ValueSubject(clicks), n)
		if err != nil {
			e.t.Fatal(err)
		}
		recs[i] = &kgo.Record{Topic: clicks, Partition: int32(i % 3), Key: []byte(id), Value: v}
	}
	res := e.cl.ProduceSync(e.ctx, recs...)
	if err := res.FirstErr(); err != nil {
		e.t.Fatal(err)
	}
	for _, r := range res {
		e.produced[string(r.Record.Key)] = [2]int64{int64(r.Record.Partition), r.Record.Offset}
	}
}

func ids(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%04d", prefix, i)
	}
	return out
}

// testConfig is a sink configuration with short timings.
func testConfig(t *testing.T, kcfg kafka.Config, urls ...string) Config {
	cfg := Defaults()
	cfg.Kafka = kcfg
	cfg.Group = kafkatest.UniqueName(t, "sink-hec")
	cfg.URLs = urls
	cfg.Token = config.Secret(hectest.DefaultToken)
	cfg.BatchEvents = 50
	cfg.BatchTimeout = 20 * time.Millisecond
	cfg.AckPollInterval = 50 * time.Millisecond
	cfg.AckTimeout = time.Second
	cfg.RetryInitial = 10 * time.Millisecond
	cfg.RetryMax = 100 * time.Millisecond
	cfg.HaltRetry = 100 * time.Millisecond
	cfg.CommitInterval = 50 * time.Millisecond
	return cfg
}

type started struct {
	svc   *Service
	reg   *prometheus.Registry
	ready *telemetry.Readiness
}

func start(t *testing.T, e *env, cfg Config) *started {
	t.Helper()
	s := &started{reg: prometheus.NewRegistry(), ready: &telemetry.Readiness{}}
	svc, err := New(cfg, Deps{Log: zaptest.NewLogger(t), Metrics: s.reg, Ready: s.ready, Serde: e.serde})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(e.ctx); err != nil {
		t.Fatal(err)
	}
	s.svc = svc
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := svc.Stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	return s
}

// waitFor polls cond every 20 ms until it holds or the test's context ends.
func (e *env) waitFor(what string, cond func() bool) {
	e.t.Helper()
	tk := time.NewTicker(20 * time.Millisecond)
	defer tk.Stop()
	for !cond() {
		select {
		case <-e.ctx.Done():
			e.t.Fatalf("timed out waiting for %s", what)
		case <-tk.C:
		}
	}
}

func (e *env) committed(group string) map[int32]int64 {
	e.t.Helper()
	offs, err := e.adm.FetchOffsetsForTopics(e.ctx, group, clicks)
	if err != nil {
		e.t.Fatal(err)
	}
	out := map[int32]int64{}
	offs.Each(func(o kadm.OffsetResponse) {
		if o.Topic == clicks && o.Err == nil && o.At >= 0 {
			out[o.Partition] = o.At
		}
	})
	return out
}

// committedToEnd reports whether every produced event is below its
// partition's committed offset.
func (e *env) committedToEnd(group string) bool {
	c := e.committed(group)
	for _, p := range e.produced {
		if p[1] >= c[int32(p[0])] {
			return false
		}
	}
	return true
}

// eventID reads the envelope's event_id out of an indexed event.
func eventID(raw []byte) string {
	var v struct {
		Envelope struct {
			EventID string `json:"event_id"`
		} `json:"envelope"`
	}
	_ = json.Unmarshal(raw, &v)
	return v.Envelope.EventID
}

// copies groups the server's events by event id.
func copies(s *hectest.Server) map[string][]hectest.Event {
	out := map[string][]hectest.Event{}
	for _, ev := range s.Events() {
		id := eventID(ev.Event)
		out[id] = append(out[id], ev)
	}
	return out
}

// checkCommits fails when a committed offset passes an event no copy of
// which was confirmed (acknowledged) to the sink.
func (e *env) checkCommits(group string, s *hectest.Server) {
	e.t.Helper()
	committed := e.committed(group)
	confirmed := map[string]bool{}
	for id, cs := range copies(s) {
		for _, c := range cs {
			if c.Confirmed {
				confirmed[id] = true
			}
		}
	}
	for id, p := range e.produced {
		if c, ok := committed[int32(p[0])]; ok && p[1] < c && !confirmed[id] {
			e.t.Fatalf("offset %d of partition %d is committed (%d) but event %s is not acknowledged", p[1], p[0], c, id)
		}
	}
}

// TestDeliver sends events without indexer acknowledgement, gzipped, and
// checks the HEC envelope and the commits.
func TestDeliver(t *testing.T) {
	e := newEnv(t, 60*time.Second)
	srv := hectest.New(hectest.Config{})
	defer srv.Close()
	cfg := testConfig(t, e.kcfg, srv.URL)
	cfg.Families = []Mapping{{Family: "clicks", Sourcetype: "sluice:clicks:test", Index: "web", HostField: "envelope.ip"}}
	s := start(t, e, cfg)
	e.produce(ids("d", 300), nil)
	e.waitFor("300 events at HEC", func() bool { return srv.Count() >= 300 })
	e.waitFor("commits to the end", func() bool { return e.committedToEnd(cfg.Group) })
	cs := copies(srv)
	if len(cs) != 300 {
		t.Errorf("%d distinct events, want 300", len(cs))
	}
	for id, c := range cs {
		ev := c[0]
		if len(c) != 1 {
			t.Errorf("%s indexed %d times without any failure", id, len(c))
		}
		p := e.produced[id]
		if ev.Sourcetype != "sluice:clicks:test" || ev.Index != "web" || ev.Host != "203.0.113.7" || ev.Source != clicks ||
			ev.Fields[FieldTopic] != clicks || ev.Fields[FieldPartition] != fmt.Sprint(p[0]) || ev.Fields[FieldOffset] != fmt.Sprint(p[1]) {
			t.Fatalf("event %s: %+v", id, ev)
		}
		if ev.Time < 1748764800 || ev.Time > 1748764800+3600 {
			t.Errorf("time %f is not the event's client time", ev.Time)
		}
	}
	if n := testutil.ToFloat64(s.svc.engine.m.events.WithLabelValues("delivered")); n != 300 {
		t.Errorf("delivered counter %v", n)
	}
	if len(s.ready.Check()) != 0 {
		t.Errorf("not ready: %v", s.ready.Check())
	}
}

// TestAckUnderFailures is the acceptance test: the server answers 503
// half the time, loses 10% of the acks and acknowledges out of order.
// Every event arrives, the committed offsets never pass an unacknowledged
// event, and an event is duplicated only when an earlier copy's ack never
// came (a resend).
func TestAckUnderFailures(t *testing.T) {
	e := newEnv(t, 90*time.Second)
	srv := hectest.New(hectest.Config{Ack: true, BusyRate: 0.5, LostAckRate: 0.1, AckJitter: 100 * time.Millisecond, Seed: 42})
	defer srv.Close()
	cfg := testConfig(t, e.kcfg, srv.URL)
	cfg.Ack = true
	cfg.MaxPendingEvents = 1000 // pauses and resumes fetching on the way
	cfg.BatchEvents = 40
	s := start(t, e, cfg)
	e.produce(ids("a", 3000), nil)
	e.waitFor("every event acknowledged and committed", func() bool {
		e.checkCommits(cfg.Group, srv)
		return len(copies(srv)) >= 3000 && e.committedToEnd(cfg.Group)
	})
	e.checkCommits(cfg.Group, srv)
	dups := 0
	for id, cs := range copies(srv) {
		if _, ok := e.produced[id]; !ok {
			t.Errorf("unknown event %q", id)
		}
		for _, c := range cs[:len(cs)-1] {
			if c.Confirmed {
				t.Errorf("event %s sent again although ackId %d on %s was acknowledged", id, c.AckID, c.Channel)
			}
		}
		dups += len(cs) - 1
	}
	st := srv.Stats()
	resent := testutil.ToFloat64(s.svc.engine.m.events.WithLabelValues("resent"))
	t.Logf("3000 events: %d requests, %d busy, %d acks lost, %.0f events resent, %d duplicates at HEC", st.Requests, st.Busy, st.AcksLost, resent, dups)
	if st.Busy == 0 || st.AcksLost == 0 || resent == 0 {
		t.Errorf("the failures did not happen: %+v, resent %v", st, resent)
	}
	if float64(dups) > resent {
		t.Errorf("%d duplicates but only %v events resent", dups, resent)
	}
	if testutil.ToFloat64(s.svc.engine.m.fetchPaused) != 0 {
		t.Error("fetching still paused after everything was delivered")
	}
}

// TestRefusedEvents checks the per-event refusals: the events before a
// refused one are delivered, it goes to the dead-letter topic, the rest
// are sent again; without an event number the batch is split until the
// refused event is alone; an event over max_event_bytes never leaves.
func TestRefusedEvents(t *testing.T) {
	for _, unnumbered := range []bool{false, true} {
		t.Run(fmt.Sprintf("unnumbered=%v", unnumbered), func(t *testing.T) {
			e := newEnv(t, 60*time.Second)
			srv := hectest.New(hectest.Config{
				Reject:           func(ev []byte) bool { return bytes.Contains(ev, []byte("poison")) },
				RejectUnnumbered: unnumbered,
			})
			defer srv.Close()
			cfg := testConfig(t, e.kcfg, srv.URL)
			cfg.MaxEventBytes = 4000
			start(t, e, cfg)
			all := ids("r", 200)
			all[17], all[100], all[101] = "poison-1", "poison-2", "poison-3"
			all[150] = "huge"
			e.produce(all, func(id string, n map[string]any) {
				if id == "huge" {
					n["page"] = avro.String("https://example.org/" + strings.Repeat("x", 5000))
				}
			})
			e.waitFor("commits to the end", func() bool { return e.committedToEnd(cfg.Group) })
			cs := copies(srv)
			for _, id := range all {
				want := 1
				if strings.HasPrefix(id, "poison") || id == "huge" {
					want = 0
				}
				if len(cs[id]) != want {
					t.Errorf("%s indexed %d times, want %d", id, len(cs[id]), want)
				}
			}
			dead := consumeDLQ(t, e, 4)
			for id, reason := range map[string]string{"poison-1": ReasonHECInvalidData, "poison-2": ReasonHECInvalidData,
				"poison-3": ReasonHECInvalidData, "huge": event.ReasonEventTooLarge} {
				if dead[id] != reason {
					t.Errorf("dead letter of %s: reason %q, want %q", id, dead[id], reason)
				}
			}
		})
	}
}

// consumeDLQ reads n dead letters of the sink and returns their reasons by
// event key.
func consumeDLQ(t *testing.T, e *env, n int) map[string]string {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.kcfg.Brokers...), kgo.ConsumeTopics(event.DLQTopic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	out := map[string]string{}
	for len(out) < n {
		fs := cl.PollFetches(e.ctx)
		if e.ctx.Err() != nil {
			t.Fatalf("%d of %d dead letters before the deadline: %v", len(out), n, out)
		}
		fs.EachRecord(func(r *kgo.Record) {
			native, _, err := e.serde.Decode(e.ctx, r.Value)
			if err != nil {
				t.Fatal(err)
			}
			d := native.(map[string]any)
			if d["stage"] == Stage {
				out[string(r.Key)] = d["reason"].(string)
			}
		})
	}
	return out
}

// TestHaltsOnConfigErrors: a wrong token or a refused index halts delivery
// (unready, metric, nothing committed, nothing dropped) until HEC accepts
// the configuration again.
func TestHaltsOnConfigErrors(t *testing.T) {
	for _, c := range []struct {
		name   string
		break_ func(*hectest.Config)
		fix    func(*hectest.Config)
		index  string
		want   string
	}{
		{"wrong token", func(c *hectest.Config) { c.Token = "00000000-0000-0000-0000-0000000000ff" },
			func(c *hectest.Config) { c.Token = hectest.DefaultToken }, "", "code 4"},
		{"token disabled", func(c *hectest.Config) { c.Disabled = true }, func(c *hectest.Config) { c.Disabled = false }, "", "code 1"},
		{"index not allowed", func(c *hectest.Config) { c.Indexes = []string{"main"} },
			func(c *hectest.Config) { c.Indexes = []string{"main", "secret"} }, "secret", "code 7"},
		{"ack off on the token", func(c *hectest.Config) { c.Ack = false }, func(c *hectest.Config) { c.Ack = true }, "", "code 14"},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, 60*time.Second)
			hc := hectest.Config{Ack: true}
			c.break_(&hc)
			srv := hectest.New(hc)
			defer srv.Close()
			cfg := testConfig(t, e.kcfg, srv.URL)
			cfg.Ack = true
			cfg.Index = c.index
			s := start(t, e, cfg)
			e.produce(ids("h", 100), nil)
			e.waitFor("unready", func() bool { return s.ready.Check()[Stage] != nil })
			if err := s.ready.Check()[Stage]; !strings.Contains(err.Error(), c.want) {
				t.Errorf("readiness error %q does not say %q", err, c.want)
			}
			if testutil.ToFloat64(s.svc.engine.m.halted) != 1 {
				t.Error("halted gauge not set")
			}
			// Halted: probes fail, nothing is committed or dead-lettered.
			n := srv.Stats().Requests
			e.waitFor("two probes", func() bool { return srv.Stats().Requests >= n+2 })
			if got := e.committed(cfg.Group); len(got) > 0 {
				for _, o := range got {
					if o > 0 {
						t.Fatalf("committed %v while halted", got)
					}
				}
			}
			if d := testutil.ToFloat64(s.svc.engine.m.events.WithLabelValues("dead_lettered")); d != 0 {
				t.Errorf("%v events dead-lettered by a configuration error", d)
			}
			srv.Update(c.fix)
			e.waitFor("every event once HEC accepts", func() bool { return len(copies(srv)) == 100 && e.committedToEnd(cfg.Group) })
			e.waitFor("ready again", func() bool { return len(s.ready.Check()) == 0 })
		})
	}
}

// TestLoadBalancing spreads batches over two URLs, and keeps delivering
// through the healthy one when a third refuses connections.
func TestLoadBalancing(t *testing.T) {
	e := newEnv(t, 60*time.Second)
	a, b := hectest.New(hectest.Config{Ack: true}), hectest.New(hectest.Config{Ack: true})
	defer a.Close()
	defer b.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()
	cfg := testConfig(t, e.kcfg, a.URL, b.URL, dead)
	cfg.Ack = true
	cfg.BatchEvents = 20
	s := start(t, e, cfg)
	e.produce(ids("lb", 1000), nil)
	e.waitFor("commits to the end", func() bool { return e.committedToEnd(cfg.Group) })
	na, nb := a.Count(), b.Count()
	if na+nb < 1000 || na < 200 || nb < 200 {
		t.Errorf("events per URL: %d and %d, want both well used", na, nb)
	}
	if up := testutil.ToFloat64(s.svc.engine.m.urlUp.WithLabelValues(dead)); up != 0 {
		t.Errorf("url_up of the dead URL = %v", up)
	}
}

// TestRetryAfter: after a 503 with Retry-After: 1 the URL gets no request
// for a second. The gap is measured by the server, between the arrivals of
// the refused request and of the next one, so a test slow to notice the
// refusal does not shorten it.
func TestRetryAfter(t *testing.T) {
	e := newEnv(t, 60*time.Second)
	srv := hectest.New(hectest.Config{BusyRate: 1, RetryAfter: 1})
	defer srv.Close()
	cfg := testConfig(t, e.kcfg, srv.URL)
	cfg.ChannelsPerURL = 1
	start(t, e, cfg)
	e.produce(ids("ra", 10), nil)
	e.waitFor("a busy reply", func() bool { return srv.Stats().Busy >= 1 })
	srv.Update(func(c *hectest.Config) { c.BusyRate = 0 })
	e.waitFor("delivery", func() bool { return srv.Count() >= 10 })
	refused, next := srv.Stats().LastRefused, srv.Events()[0].Arrived
	if d := next.Sub(refused); d < 800*time.Millisecond {
		t.Errorf("sent again %s after a Retry-After of 1s", d)
	}
	if st := srv.Stats(); st.Busy > 2 {
		t.Errorf("%d busy replies: the URL was not left alone", st.Busy)
	}
}

func TestConfigValidate(t *testing.T) {
	if err := Defaults().Validate(); err == nil || !strings.Contains(err.Error(), "urls:") || !strings.Contains(err.Error(), "token: required") {
		t.Errorf("defaults need a URL and a token: %v", err)
	}
	cfg := Defaults()
	cfg.URLs = []string{"https://hec:8088"}
	cfg.Token = "t"
	if err := cfg.Validate(); err != nil {
		t.Errorf("valid: %v", err)
	}
	cfg.URLs = []string{"hec:8088", "https://hec:8088/services/collector"}
	cfg.Token = "Splunk t"
	cfg.BatchEvents = 0
	cfg.Families = []Mapping{{Family: "nope"}, {Family: "edx", HostField: "a..b"}}
	cfg.Ack = true
	cfg.AckTimeout = time.Second
	cfg.AckPollInterval = 2 * time.Second
	err := cfg.Validate()
	for _, want := range []string{`"hec:8088" is not`, "has a path", "white space", "batch_events", "families[0].family", "families[1]", "ack_timeout"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q: %v", want, err)
		}
	}
}
