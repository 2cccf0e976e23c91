package main

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sluicehq/sluice/pkg/event"
)

// drillBrokerDown: under steady load, the broker is stopped for downFor and
// started again. While it is down every reply must be 503 with
// Retry-After (no 2xx: nothing can be in Kafka), /readyz must be unready,
// and afterwards the gateway must take requests again by itself; every
// event that got a 2xx must be in Kafka.
func drillBrokerDown(o options) (*result, error) {
	before, after := 8*time.Second, 12*time.Second
	if o.duration > 0 {
		before, after = o.duration/3, o.duration/2
	}
	downFor := o.downFor
	const workers, perBatch = 8, 10
	res := &result{name: "broker-down"}
	r, err := newRig(o, "broker-down")
	if err != nil {
		return nil, err
	}
	defer r.close()
	if err := r.gw.startReady(60 * time.Second); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), before+downFor+after+3*time.Minute)
	defer cancel()
	topic := event.RawTopic(event.EdX)
	from, err := endOffsets(ctx, r.broker.brokers(), topic)
	if err != nil {
		return nil, err
	}
	run := fmt.Sprintf("bd-%d", time.Now().UnixNano())
	client := newClient(workers, 30*time.Second)
	// Retry quickly (not after the whole Retry-After) to sample the
	// gateway's answers often while the broker is down.
	policy := retryPolicy{maxWait: 250 * time.Millisecond, giveUp: 3 * time.Minute}
	var (
		t       tally
		wg      sync.WaitGroup
		stop    atomic.Bool
		batches atomic.Int64
	)
	rz := watchReadyz(r.gw, 100*time.Millisecond)
	t0 := time.Now()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := 0; !stop.Load() && batches.Add(1) <= 100_000; seq++ {
				b := newBatch(fmt.Sprintf("%s-w%d-b%d", run, w, seq), perBatch)
				t.add(sendUntilStored(ctx, client, r.gw.url(), b, policy))
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}
	time.Sleep(before)
	o.logf("broker-down: stopping the broker")
	stopAt := time.Now()
	if err := r.broker.stop(); err != nil {
		return nil, err
	}
	stopped := time.Now()
	time.Sleep(downFor)
	o.logf("broker-down: starting the broker")
	startAt := time.Now()
	if err := r.broker.start(); err != nil {
		return nil, err
	}
	started := time.Now()
	time.Sleep(after)
	stop.Store(true)
	wg.Wait()
	changes := rz.stop()
	loadTime := time.Since(t0)

	// Replies to requests sent while the broker was down (after it had
	// fully stopped, before it was started).
	var down, downBad []*reply
	var first2xxAfter time.Time
	for _, rp := range t.replies {
		if rp.start.After(stopped) && rp.end.Before(startAt) {
			down = append(down, rp)
			if rp.status != http.StatusServiceUnavailable || rp.retryAfter == "" {
				downBad = append(downBad, rp)
			}
		}
		if rp.status/100 == 2 && rp.start.After(startAt) && (first2xxAfter.IsZero() || rp.end.Before(first2xxAfter)) {
			first2xxAfter = rp.end
		}
	}
	twoXXWhileDown := 0
	for _, rp := range t.replies {
		if rp.status/100 == 2 && rp.end.After(stopped) && rp.end.Before(startAt) {
			twoXXWhileDown++
		}
	}
	unreadyAt, unready := firstStatus(changes, stopAt, func(s int) bool { return s != http.StatusOK })
	readyAt, ready := firstStatus(changes, started, func(s int) bool { return s == http.StatusOK })
	// Replies while down that came after /readyz turned unready: the
	// gateway knew, so they must be fast.
	var downFast []time.Duration
	for _, rp := range down {
		if unready && rp.start.After(unreadyAt) {
			downFast = append(downFast, rp.latency())
		}
	}
	r.gw.signal(syscall.SIGTERM)
	r.gw.wait(30 * time.Second)
	acked := map[string]bool{}
	unfinished := 0
	for _, oc := range t.outcomes {
		for id := range oc.acked {
			acked[id] = true
		}
		if !oc.finished {
			unfinished++
		}
	}
	inKafka, err := eventIDs(ctx, r.broker.brokers(), topic, from, run)
	if err != nil {
		return nil, err
	}
	lost := 0
	for id := range acked {
		if inKafka[id] == 0 {
			lost++
		}
	}
	res.fact("load", "%d workers, %d events per batch, %s in all; broker down %s (stop took %s)",
		workers, perBatch, loadTime.Round(time.Second), started.Sub(stopAt).Round(100*time.Millisecond), stopped.Sub(stopAt).Round(100*time.Millisecond))
	res.fact("replies while the broker was down", "%s", byStatus(down))
	if unready {
		res.fact("/readyz unready after the stop", "%s", unreadyAt.Sub(stopAt).Round(10*time.Millisecond))
	}
	if ready {
		res.fact("/readyz ready after the start", "%s", readyAt.Sub(started).Round(10*time.Millisecond))
	}
	if !first2xxAfter.IsZero() {
		res.fact("first 2xx after the start", "%s", first2xxAfter.Sub(started).Round(10*time.Millisecond))
	}
	res.fact("503 latency once unready (p50 / p99 / max)", "%.1f / %.1f / %.1f ms", pct(downFast, 0.5), pct(downFast, 0.99), pct(downFast, 1))
	res.fact("all replies", "%s", byStatus(t.replies))
	res.fact("events acknowledged / in Kafka", "%d / %d", len(acked), len(acked)-lost)
	res.check("only 503 with Retry-After while down", len(down) > 0 && len(downBad) == 0, "%d of %d replies were not", len(downBad), len(down))
	res.check("no 2xx while down", twoXXWhileDown == 0, "%d", twoXXWhileDown)
	res.check("/readyz unready while down", unready && unreadyAt.Before(startAt), "changes %v", renderChanges(changes, t0))
	res.check("recovers by itself", ready && !first2xxAfter.IsZero(), "ready %v, first 2xx %v", ready, !first2xxAfter.IsZero())
	res.check("fails fast while down (p99 < 1 s)", len(downFast) > 0 && pct(downFast, 0.99) < 1000, "p99 %.1f ms", pct(downFast, 0.99))
	res.check("every acknowledged event is in Kafka", lost == 0, "%d lost", lost)
	res.check("every batch stored after recovery", unfinished == 0, "%d batches never acknowledged", unfinished)
	return res, nil
}

func renderChanges(cs []statusAt, t0 time.Time) string {
	s := ""
	for _, c := range cs {
		s += fmt.Sprintf("%+.1fs:%d ", c.at.Sub(t0).Seconds(), c.status)
	}
	return s
}
