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

// drillKill9: workers post batches of events with ids (and an
// Idempotency-Key) through the gateway and retry each batch until it is
// acknowledged; the gateway is SIGKILLed several times mid-load and
// restarted. Afterwards every event id that got a 2xx must be in Kafka, and
// every batch that got no reply must have been retried to an answer.
func drillKill9(o options) (*result, error) {
	duration := o.duration
	if duration == 0 {
		duration = 40 * time.Second
	}
	kills := max(o.kills, 1)
	const workers, perBatch = 8, 20
	res := &result{name: "kill9"}
	r, err := newRig(o, "kill9")
	if err != nil {
		return nil, err
	}
	defer r.close()
	if err := r.gw.startReady(60 * time.Second); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), duration+3*time.Minute)
	defer cancel()
	topic := event.RawTopic(event.EdX)
	from, err := endOffsets(ctx, r.broker.brokers(), topic)
	if err != nil {
		return nil, err
	}
	run := fmt.Sprintf("k9-%d", time.Now().UnixNano())
	client := newClient(workers, 15*time.Second)
	policy := retryPolicy{maxWait: 500 * time.Millisecond, giveUp: 2 * time.Minute}
	var (
		t       tally
		wg      sync.WaitGroup
		stop    atomic.Bool
		batches atomic.Int64
	)
	const maxBatches = 200_000 // bound on the load, whatever the duration
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := 0; !stop.Load() && batches.Add(1) <= maxBatches; seq++ {
				b := newBatch(fmt.Sprintf("%s-w%d-b%d", run, w, seq), perBatch)
				t.add(sendUntilStored(ctx, client, r.gw.url(), b, policy))
			}
		}()
	}
	// The killer: SIGKILL at evenly spread moments, restart at once.
	var downtime []time.Duration
	gap := duration / time.Duration(kills+1)
	t0 := time.Now()
	for k := 1; k <= kills; k++ {
		time.Sleep(time.Until(t0.Add(time.Duration(k) * gap)))
		o.logf("kill9: SIGKILL %d of %d (pid %d)", k, kills, r.gw.pid())
		killedAt := time.Now()
		r.gw.kill9()
		if err := r.gw.startReady(60 * time.Second); err != nil {
			stop.Store(true)
			wg.Wait()
			return nil, fmt.Errorf("restart %d: %w", k, err)
		}
		downtime = append(downtime, time.Since(killedAt))
	}
	time.Sleep(time.Until(t0.Add(duration)))
	stop.Store(true)
	wg.Wait() // each worker finishes (retries) its batch in hand
	loadTime := time.Since(t0)
	acked := map[string]bool{}
	retriedNoReply, unfinished, requests := 0, 0, 0
	for _, oc := range t.outcomes {
		for id := range oc.acked {
			acked[id] = true
		}
		if oc.noReply > 0 && oc.finished {
			retriedNoReply++
		}
		if !oc.finished {
			unfinished++
		}
		requests += len(oc.replies)
	}
	r.gw.signal(syscall.SIGTERM)
	r.gw.wait(30 * time.Second)
	inKafka, err := eventIDs(ctx, r.broker.brokers(), topic, from, run)
	if err != nil {
		return nil, err
	}
	lost, dups := 0, 0
	var sample []string
	for id := range acked {
		if inKafka[id] == 0 {
			lost++
			if len(sample) < 5 {
				sample = append(sample, id)
			}
		}
	}
	for _, n := range inKafka {
		dups += n - 1
	}
	noReply := 0
	for _, rp := range t.replies {
		if rp.status == 0 {
			noReply++
		}
	}
	var maxDown time.Duration
	for _, d := range downtime {
		maxDown = max(maxDown, d)
	}
	res.fact("load", "%d workers, %d events per batch, %s, %d SIGKILLs (restart to ready: max %s)",
		workers, perBatch, loadTime.Round(time.Second), kills, maxDown.Round(time.Millisecond))
	res.fact("batches", "%d (%d requests with retries)", len(t.outcomes), requests)
	res.fact("replies", "%s", byStatus(t.replies))
	res.fact("requests without a reply", "%d", noReply)
	res.fact("batches retried after getting no reply", "%d, all then acknowledged", retriedNoReply)
	res.fact("events acknowledged (2xx)", "%d", len(acked))
	res.fact("distinct acknowledged ids in Kafka", "%d of %d", len(acked)-lost, len(acked))
	res.fact("duplicate records in Kafka (same event id)", "%d (retries of batches whose first answer was lost)", dups)
	res.check("0 acknowledged events lost", lost == 0, "%d lost %v", lost, sample)
	res.check("every batch retried to an answer", unfinished == 0, "%d batches never acknowledged", unfinished)
	res.check("the gateway was killed mid-load", noReply > 0 || kills == 0, "%d requests got no reply", noReply)
	res.check("clients got only 2xx, 503 or no reply", onlyStatuses(t.replies, http.StatusOK, http.StatusServiceUnavailable), "%s", byStatus(t.replies))
	return res, nil
}

// onlyStatuses reports whether every reply has one of the statuses (or
// none).
func onlyStatuses(rs []*reply, ok ...int) bool {
	for _, r := range rs {
		if r.status == 0 {
			continue
		}
		found := false
		for _, s := range ok {
			found = found || r.status == s
		}
		if !found {
			return false
		}
	}
	return true
}
