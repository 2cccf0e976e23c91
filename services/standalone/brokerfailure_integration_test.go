package standalone

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/pkg/event"
	"github.com/sluicehq/sluice/services/gateway"
)

// Broker failure test: make test-broker-failure (.ci/broker-failure.sh)
// starts a 3-node Apache Kafka cluster (replication factor 3,
// min.insync.replicas 2) and runs TestBrokerFailure with these set.
const (
	envBrokerFailure = "SLUICE_BROKER_FAILURE_TEST" // "1" to run
	envKafkaCtl      = "SLUICE_KAFKA_CTL"           // .ci/kafka.sh, to stop and start nodes
)

// outcome is one request of the load.
type outcome struct {
	start, end time.Time
	status     int
	retryAfter string
	acked      []string
	err        error
}

// load posts batches of edX events through the gateway from a few workers,
// each batch with one username (so one partition), until stopped.
type load struct {
	url, id string
	mu      sync.Mutex
	results []outcome
	seq     int
	stop    chan struct{}
	wg      sync.WaitGroup
}

func (l *load) run(ctx context.Context, workers int, pause time.Duration) {
	l.stop = make(chan struct{})
	for w := range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for {
				select {
				case <-l.stop:
					return
				case <-ctx.Done():
					return
				case <-time.After(pause):
				}
				l.mu.Lock()
				b := l.seq
				l.seq++
				l.mu.Unlock()
				var lines, ids []string
				user := fmt.Sprintf("%s-user-%d", l.id, b%24)
				for i := range 10 {
					id := fmt.Sprintf("%s-w%d-b%d-%d", l.id, w, b, i)
					lines = append(lines, edxEvent(id, user))
					ids = append(ids, id)
				}
				o := outcome{start: time.Now()}
				r, err := postNDJSON(ctx, l.url, event.EdX, lines)
				o.end, o.err = time.Now(), err
				if r != nil {
					o.status, o.retryAfter = r.status, r.retryAfter
					o.acked = acked(r, ids)
				}
				l.mu.Lock()
				l.results = append(l.results, o)
				l.mu.Unlock()
			}
		}()
	}
}

func (l *load) halt() {
	close(l.stop)
	l.wg.Wait()
}

// since returns the outcomes of requests that started after t.
func (l *load) since(t time.Time) []outcome {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []outcome
	for _, o := range l.results {
		if o.start.After(t) {
			out = append(out, o)
		}
	}
	return out
}

func countStatus(os []outcome) map[int]int {
	m := map[int]int{}
	for _, o := range os {
		m[o.status]++
	}
	return m
}

// TestBrokerFailure runs a steady load through the gateway on a 3-node
// cluster and
//
//  1. kills (SIGKILL) the leader of raw.edx/0: a new leader is elected, no
//     acknowledged event is lost, and the gateway answers 503 (always with
//     Retry-After) only to requests that were in flight while a partition
//     had no live leader;
//  2. restarts it and, once every replica is back in sync, kills two of
//     the three nodes: no partition can take writes (min.insync.replicas 2,
//     no controller quorum), so the gateway answers 503 with Retry-After and
//     acknowledges nothing;
//  3. restarts both: the gateway recovers on its own (200s again, same
//     process, nothing restarted).
//
// Finally every event the gateway acknowledged is read back from the topic.
func TestBrokerFailure(t *testing.T) {
	if os.Getenv(envBrokerFailure) != "1" {
		t.Skip("needs a 3-node cluster: make test-broker-failure")
	}
	ctl := os.Getenv(envKafkaCtl)
	if ctl == "" {
		t.Fatalf("%s must name .ci/kafka.sh", envKafkaCtl)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	c := newITCluster(t)
	if len(c.kcfg.Brokers) != 3 {
		t.Fatalf("KAFKA_BROKERS names %d brokers, want 3", len(c.kcfg.Brokers))
	}
	raw := event.RawTopic(event.EdX)
	node := func(args ...string) {
		t.Helper()
		cctx, ccancel := context.WithTimeout(ctx, 3*time.Minute)
		defer ccancel()
		out, err := exec.CommandContext(cctx, ctl, args...).CombinedOutput()
		t.Logf("%s %s: %s", ctl, strings.Join(args, " "), strings.TrimSpace(string(out)))
		if err != nil {
			t.Fatalf("%s %v: %v", ctl, args, err)
		}
	}
	// leaders returns partition → leader and partition → ISR of raw.
	leaders := func() (map[int32]int32, map[int32][]int32, error) {
		mctx, mcancel := context.WithTimeout(ctx, 3*time.Second)
		defer mcancel()
		td, err := c.adm.ListTopics(mctx, raw)
		if err != nil {
			return nil, nil, err
		}
		d := td[raw]
		if d.Err != nil {
			return nil, nil, d.Err
		}
		l, isr := map[int32]int32{}, map[int32][]int32{}
		for p, pd := range d.Partitions {
			l[p], isr[p] = pd.Leader, pd.ISR
		}
		return l, isr, nil
	}
	var l map[int32]int32
	var isr map[int32][]int32
	waitFor(t, time.Minute, raw+" to have 3 in-sync replicas on every partition", func() bool {
		var err error
		if l, isr, err = leaders(); err != nil || len(l) == 0 {
			return false
		}
		for p := range l {
			if len(isr[p]) != 3 || l[p] < 0 {
				return false
			}
		}
		return true
	})
	t.Logf("%s leaders %v", raw, l)

	url, _ := c.startGateway(t, func(cfg *gateway.Config) {
		cfg.ProduceTimeout = 8 * time.Second
		cfg.Kafka.DeliveryTimeout = 8 * time.Second
		cfg.RetryAfter = 2 * time.Second
	})
	produceTimeout := 8 * time.Second
	from := c.endOffsets(ctx, t, raw)
	ld := &load{url: url, id: c.id}
	ld.run(ctx, 4, 100*time.Millisecond)
	halted := false
	defer func() {
		if !halted {
			ld.halt()
		}
	}()

	// Phase 0: steady.
	time.Sleep(5 * time.Second)
	steady := ld.since(time.Time{})
	if st := countStatus(steady); st[http.StatusOK] == 0 || st[http.StatusOK] != len(steady) {
		t.Fatalf("before any failure: statuses %v, want only 200", st)
	}

	// Phase 1: kill the leader of partition 0.
	victim := l[0]
	killedAt := time.Now()
	node("stop-node", fmt.Sprint(victim), "--kill")
	// The leaderless window: until metadata shows every partition led by
	// a live node.
	var leadersBack time.Time
	for leadersBack.IsZero() {
		if time.Since(killedAt) > time.Minute {
			t.Fatalf("no new leader within a minute of killing node %d", victim)
		}
		time.Sleep(100 * time.Millisecond)
		l, _, err := leaders()
		if err != nil {
			continue
		}
		ok := true
		for _, ld := range l {
			if ld < 0 || ld == victim {
				ok = false
			}
		}
		if ok {
			leadersBack = time.Now()
			t.Logf("phase 1: node %d killed; every partition has a live leader after %s: %v",
				victim, leadersBack.Sub(killedAt).Round(time.Millisecond), l)
		}
	}
	time.Sleep(produceTimeout + 5*time.Second)
	phase1 := ld.since(killedAt.Add(-produceTimeout))
	st1 := countStatus(phase1)
	t.Logf("phase 1 statuses: %v", st1)
	for _, o := range phase1 {
		switch o.status {
		case http.StatusOK:
		case http.StatusServiceUnavailable:
			if o.retryAfter == "" {
				t.Errorf("phase 1: a 503 without Retry-After")
			}
			// In flight while some partition had no live leader.
			if o.end.Before(killedAt) || o.start.After(leadersBack.Add(2*time.Second)) {
				t.Errorf("phase 1: a 503 for a request from %s to %s, outside the leaderless window %s..%s",
					o.start.Format("15:04:05.000"), o.end.Format("15:04:05.000"),
					killedAt.Format("15:04:05.000"), leadersBack.Format("15:04:05.000"))
			}
		default:
			t.Errorf("phase 1: status %d (%v)", o.status, o.err)
		}
	}
	settled := ld.since(leadersBack.Add(produceTimeout + time.Second))
	if st := countStatus(settled); len(settled) == 0 || st[http.StatusOK] != len(settled) {
		t.Errorf("phase 1: after the new leaders settled, statuses %v, want only 200", st)
	}

	// Back to three in-sync replicas.
	node("start-node", fmt.Sprint(victim))
	waitFor(t, 2*time.Minute, "every partition to have 3 in-sync replicas", func() bool {
		_, isr, err := leaders()
		if err != nil {
			return false
		}
		for _, r := range isr {
			if len(r) != 3 {
				return false
			}
		}
		return true
	})
	l, _, err := leaders()
	if err != nil {
		t.Fatal(err)
	}

	// Phase 2: two of three nodes down.
	first := l[0]
	second := int32(1)
	for second == first {
		second++
	}
	down2At := time.Now()
	node("stop-node", fmt.Sprint(first), "--kill")
	node("stop-node", fmt.Sprint(second), "--kill")
	t.Logf("phase 2: nodes %d and %d killed", first, second)
	var saw503 time.Time
	waitFor(t, 2*produceTimeout+20*time.Second, "a 503 while two of three nodes are down", func() bool {
		for _, o := range ld.since(down2At) {
			if o.status == http.StatusServiceUnavailable {
				saw503 = o.end
				return true
			}
		}
		return false
	})
	time.Sleep(produceTimeout + 2*time.Second)
	phase2 := ld.since(down2At.Add(time.Second))
	st2 := countStatus(phase2)
	t.Logf("phase 2 statuses: %v (first 503 after %s)", st2, saw503.Sub(down2At).Round(time.Millisecond))
	for _, o := range phase2 {
		if o.status == http.StatusServiceUnavailable {
			if o.retryAfter == "" {
				t.Errorf("phase 2: a 503 without Retry-After")
			}
			continue
		}
		if len(o.acked) > 0 {
			t.Errorf("phase 2: status %d acknowledged %d events with one node of three up (min.insync.replicas 2)", o.status, len(o.acked))
		}
	}

	// Phase 3: both back; the gateway recovers by itself.
	upAt := time.Now()
	node("start-node", fmt.Sprint(first))
	node("start-node", fmt.Sprint(second))
	var recovered time.Time
	waitFor(t, 2*time.Minute, "the gateway to answer 200 again", func() bool {
		for _, o := range ld.since(upAt) {
			if o.status == http.StatusOK {
				recovered = o.end
				return true
			}
		}
		return false
	})
	t.Logf("phase 3: both nodes restarted; first 200 after %s", recovered.Sub(upAt).Round(time.Millisecond))
	time.Sleep(produceTimeout + 5*time.Second)
	tail := ld.since(recovered.Add(produceTimeout + time.Second))
	if st := countStatus(tail); len(tail) == 0 || st[http.StatusOK] != len(tail) {
		t.Errorf("phase 3: after recovery, statuses %v, want only 200", st)
	}
	ld.halt()
	halted = true

	// No acknowledged event is lost.
	all := ld.since(time.Time{})
	got := newDelivery()
	for _, o := range all {
		got.expect(o.acked...)
	}
	t.Logf("%d requests in all: %v", len(all), countStatus(all))
	c.readFrom(ctx, t, offsets{raw: from[raw]}, 2*time.Minute, func(rec *kgo.Record) {
		if id := header(rec, event.HeaderEventID); strings.HasPrefix(id, c.id) {
			got.saw(id)
		}
	}, func() bool { return got.missing() == 0 }, func() string {
		lost, _, sample := got.report()
		return fmt.Sprintf("%d acknowledged events are not on %s, e.g. %v", lost, raw, sample)
	})
	got.check(t, "gateway across broker failures", AtLeastOnce)
	if slices.ContainsFunc(all, func(o outcome) bool { return o.err != nil && o.status == 0 }) {
		t.Errorf("some requests got no HTTP answer at all")
	}
}
