package main

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicehq/sluice/services/gateway"
)

// drillOverload measures the gateway's capacity (closed loop, enough
// connections to saturate it), then offers twice that rate open-loop for
// the drill's duration (default 30 s): the gateway's RSS must stay under
// 300 MB, every reply must be 2xx, or 503/429 with Retry-After (no
// timeouts, no other 5xx), and the p99 latency of the accepted requests
// must stay under 100 ms.
func drillOverload(o options) (*result, error) {
	duration := o.duration
	if duration == 0 {
		duration = 30 * time.Second
	}
	measure := min(10*time.Second, duration)
	const perBatch = 50
	// Capacity is measured with as many connections as the gateway takes
	// requests at once: more would only measure its refusals.
	measureConns := inflightLimit(o)
	res := &result{name: "overload"}
	r, err := newRig(o, "overload")
	if err != nil {
		return nil, err
	}
	defer r.close()
	if err := r.gw.startReady(60 * time.Second); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), measure+duration+2*time.Minute)
	defer cancel()
	run := fmt.Sprintf("ov-%d", time.Now().UnixNano())
	bodies := make([]*batch, 64)
	for i := range bodies {
		bodies[i] = newBatch(fmt.Sprintf("%s-%d", run, i), perBatch)
	}

	// Capacity: closed loop.
	client := newClient(measureConns, 10*time.Second)
	var capTally tally
	var wg sync.WaitGroup
	mctx, mcancel := context.WithTimeout(ctx, measure)
	t0 := time.Now()
	for w := range measureConns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; mctx.Err() == nil && i < 1_000_000; i++ {
				capTally.addReply(send(mctx, client, r.gw.url(), bodies[(w*7+i)%len(bodies)]))
			}
		}()
	}
	wg.Wait()
	mcancel()
	elapsed := time.Since(t0)
	ok := 0
	var measured []*reply
	for _, rp := range capTally.replies {
		if rp.status == http.StatusOK {
			ok++
		}
		if rp.status != 0 || mctx.Err() == nil || rp.end.Before(t0.Add(measure)) {
			measured = append(measured, rp) // not the requests cut by the end of the phase
		}
	}
	capacity := float64(ok) / elapsed.Seconds()
	if capacity < 1 {
		return nil, fmt.Errorf("capacity measurement got no 200s: %s", byStatus(measured))
	}
	o.logf("overload: capacity %.0f requests/s (%s)", capacity, byStatus(measured))
	time.Sleep(time.Second)

	// Twice the capacity, open loop: requests go out on schedule whether or
	// not earlier ones were answered (up to maxOpen at once).
	rate := 2 * capacity
	const maxOpen = 2048
	open := newClient(maxOpen, 10*time.Second)
	var (
		t       tally
		sem     = make(chan struct{}, maxOpen)
		skipped atomic.Int64
		sent    int64
	)
	watch := rssWatch(r.gw.pid(), 100*time.Millisecond)
	interval := time.Duration(float64(time.Second) / rate)
	start := time.Now()
	next := start
	maxRequests := int64(rate*duration.Seconds()) + 1
	for sent < maxRequests && time.Since(start) < duration {
		time.Sleep(time.Until(next))
		for next.Before(time.Now()) && sent < maxRequests {
			next = next.Add(interval)
			sent++
			select {
			case sem <- struct{}{}:
				b := bodies[sent%int64(len(bodies))]
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer func() { <-sem }()
					t.addReply(send(ctx, open, r.gw.url(), b))
				}()
			default:
				skipped.Add(1)
			}
		}
	}
	offeredFor := time.Since(start)
	wg.Wait()
	peak, hwm := watch()
	var accepted, refused []*reply
	bad, timeouts := 0, 0
	var firstBad string
	for _, rp := range t.replies {
		switch {
		case rp.status == 0:
			timeouts++
			if firstBad == "" {
				firstBad = rp.err.Error()
			}
		case rp.status/100 == 2:
			accepted = append(accepted, rp)
		case (rp.status == http.StatusServiceUnavailable || rp.status == http.StatusTooManyRequests) && rp.retryAfter != "":
			refused = append(refused, rp)
		default:
			bad++
			if firstBad == "" {
				firstBad = fmt.Sprintf("%d %s", rp.status, rp.code)
			}
		}
	}
	accLat := latencies(accepted, func(*reply) bool { return true })
	refLat := latencies(refused, func(*reply) bool { return true })
	capLat := latencies(measured, func(r *reply) bool { return r.status == http.StatusOK })
	res.fact("measured capacity", "%.0f requests/s = %.0f events/s (closed loop, %d connections, %d events per request, %s; p99 %.1f ms)",
		capacity, capacity*perBatch, measureConns, perBatch, measure, pct(capLat, 0.99))
	res.fact("offered", "%.0f requests/s for %s: %d requests (%d not sent: %d already open)", rate, offeredFor.Round(time.Second), sent, skipped.Load(), maxOpen)
	res.fact("replies", "%s", byStatus(t.replies))
	res.fact("accepted", "%.0f requests/s = %.0f events/s", float64(len(accepted))/offeredFor.Seconds(), float64(len(accepted)*perBatch)/offeredFor.Seconds())
	res.fact("accepted latency p50 / p99 / max", "%.1f / %.1f / %.1f ms", pct(accLat, 0.5), pct(accLat, 0.99), pct(accLat, 1))
	res.fact("refused latency p50 / p99", "%.1f / %.1f ms", pct(refLat, 0.5), pct(refLat, 0.99))
	res.fact("gateway RSS peak (sampled) / VmHWM", "%s / %s", mb(peak), mb(hwm))
	res.memCheck(o, "RSS < 300 MB", hwm > 0 && hwm < 300<<20, "VmHWM %s", mb(hwm))
	res.check("only 2xx, or 503/429 with Retry-After", bad == 0, "%d others (first: %s)", bad, firstBad)
	res.check("no timeouts or dropped connections", timeouts == 0, "%d (first: %s)", timeouts, firstBad)
	res.check("p99 of accepted requests < 100 ms", len(accepted) > 0 && pct(accLat, 0.99) < 100, "%.1f ms over %d requests", pct(accLat, 0.99), len(accepted))
	res.check("the gateway was overloaded", len(refused) > 0, "%d refused", len(refused))
	return res, nil
}

// inflightLimit is the gateway's backpressure.max_inflight_requests: the
// drill's override, else the default.
func inflightLimit(o options) int {
	for _, kv := range o.gatewayEnv {
		if v, ok := strings.CutPrefix(kv, "SLUICE_BACKPRESSURE_MAX_INFLIGHT_REQUESTS="); ok {
			if n, err := strconv.Atoi(v); err == nil && n > 0 {
				return n
			}
		}
	}
	return gateway.Defaults().Backpressure.InflightRequests()
}
