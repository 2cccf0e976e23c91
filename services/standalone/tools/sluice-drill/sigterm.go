package main

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sluicehq/sluice/pkg/event"
)

// drillSIGTERM checks graceful shutdown in three runs of the gateway.
//
//  1. SIGTERM under load: workers send batches (one attempt each, no
//     retry) until the gateway is gone. Every request must either complete
//     with its true status (a 2xx: all its acknowledged events are in Kafka;
//     a 503: none was stored unless it says so) or get no answer and have
//     none of its events in Kafka (refused before it was read). The gateway
//     must exit 0 within its shutdown timeout.
//  2. A second signal exits at once: a client sending its body slowly keeps
//     the drain waiting; a second SIGTERM ends the process immediately.
//  3. The timeout expires: with a short shutdown timeout, the same slow
//     client is cut off, the gateway exits on time and logs it.
func drillSIGTERM(o options) (*result, error) {
	loadFor := o.duration
	if loadFor == 0 {
		loadFor = 5 * time.Second
	}
	const workers, perBatch = 16, 20
	const shutdownTimeout = 20 * time.Second
	res := &result{name: "sigterm"}
	r, err := newRig(o, "sigterm", fmt.Sprintf("SLUICE_SHUTDOWN_TIMEOUT=%s", shutdownTimeout))
	if err != nil {
		return nil, err
	}
	defer r.close()
	if err := r.gw.startReady(60 * time.Second); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), loadFor+3*time.Minute)
	defer cancel()
	topic := event.RawTopic(event.EdX)
	from, err := endOffsets(ctx, r.broker.brokers(), topic)
	if err != nil {
		return nil, err
	}
	run := fmt.Sprintf("st-%d", time.Now().UnixNano())

	// 1. SIGTERM under load.
	client := newClient(workers, 30*time.Second)
	type sent struct {
		b *batch
		r *reply
	}
	var (
		mu      sync.Mutex
		all     []sent
		wg      sync.WaitGroup
		gone    atomic.Bool
		batches atomic.Int64
	)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := 0; !gone.Load() && batches.Add(1) <= 200_000; seq++ {
				b := newBatch(fmt.Sprintf("%s-w%d-b%d", run, w, seq), perBatch)
				rp := send(ctx, client, r.gw.url(), b)
				mu.Lock()
				all = append(all, sent{b, rp})
				mu.Unlock()
				if rp.status == 0 {
					time.Sleep(20 * time.Millisecond) // refused connections: do not spin
				}
			}
		}()
	}
	time.Sleep(loadFor)
	o.logf("sigterm: SIGTERM to pid %d", r.gw.pid())
	termAt := time.Now()
	r.gw.signal(syscall.SIGTERM)
	state, exited := r.gw.wait(shutdownTimeout + 10*time.Second)
	exitTook := time.Since(termAt)
	time.Sleep(300 * time.Millisecond) // requests after the exit: refused connections
	gone.Store(true)
	wg.Wait()
	inKafka, err := eventIDs(ctx, r.broker.brokers(), topic, from, run)
	if err != nil {
		return nil, err
	}
	var (
		completed, refusedUnread, noReplyStored, lostAcked, falseRefusal int
		afterTerm                                                        []*reply
	)
	for _, s := range all {
		if s.r.start.After(termAt) || s.r.end.After(termAt) {
			afterTerm = append(afterTerm, s.r)
		}
		stored := 0
		for _, id := range s.b.ids {
			if inKafka[id] > 0 {
				stored++
			}
		}
		switch {
		case s.r.status/100 == 2:
			completed++
			for _, id := range s.r.accepted {
				if inKafka[id] == 0 {
					lostAcked++
				}
			}
		case s.r.status != 0:
			completed++
			if stored > 0 && s.r.code == "shutting_down" {
				falseRefusal++ // refused unread, yet stored
			}
		default:
			if stored > 0 {
				noReplyStored++
			} else {
				refusedUnread++
			}
		}
	}
	exitCode := -1
	if state != nil {
		exitCode = state.ExitCode()
	}
	res.fact("run 1: load", "%d workers, %d events per batch, one attempt each; SIGTERM after %s", workers, perBatch, loadFor)
	res.fact("run 1: requests", "%d: %d answered, %d refused unread (no answer, nothing stored)", len(all), completed, refusedUnread)
	res.fact("run 1: replies around the SIGTERM", "%s", byStatus(afterTerm))
	res.fact("run 1: exit", "code %d, %s after SIGTERM (shutdown_timeout %s)", exitCode, exitTook.Round(time.Millisecond), shutdownTimeout)
	res.check("every 2xx'd event is in Kafka", lostAcked == 0, "%d missing", lostAcked)
	res.check("no request cut off after its events were stored", noReplyStored == 0, "%d requests got no answer but have events in Kafka", noReplyStored)
	res.check("no 503 shutting_down for stored events", falseRefusal == 0, "%d", falseRefusal)
	res.check("drained and exited 0 within the timeout", exited && exitCode == 0 && exitTook < shutdownTimeout, "exited %v, code %d, after %s", exited, exitCode, exitTook.Round(time.Millisecond))
	res.check("drain logged", r.gw.logContains("drained the requests in flight") && r.gw.logContains("shutdown complete"), "see gateway.log")

	// 2. A second signal exits at once.
	if err := r.gw.startReady(60 * time.Second); err != nil {
		return nil, err
	}
	stopSlow, err := slowRequest(r.gw.addr())
	if err != nil {
		return nil, err
	}
	r.gw.signal(syscall.SIGTERM)
	_, exitedEarly := r.gw.wait(1500 * time.Millisecond)
	secondAt := time.Now()
	r.gw.signal(syscall.SIGTERM)
	state, exited = r.gw.wait(5 * time.Second)
	secondTook := time.Since(secondAt)
	stopSlow()
	code2 := -1
	if state != nil {
		code2 = state.ExitCode()
	}
	res.fact("run 2: second SIGTERM during the drain", "exit code %d %s after it", code2, secondTook.Round(time.Millisecond))
	res.check("the drain waits for a request in flight", !exitedEarly, "exited before the second signal: %v", exitedEarly)
	res.check("a second signal exits at once", exited && secondTook < time.Second && r.gw.logContains("second signal, exiting now"), "exited %v after %s, code %d", exited, secondTook.Round(time.Millisecond), code2)

	// 3. The shutdown timeout expires.
	r.gw.env = append(r.gw.env, "SLUICE_SHUTDOWN_TIMEOUT=2s")
	if err := r.gw.startReady(60 * time.Second); err != nil {
		return nil, err
	}
	stopSlow, err = slowRequest(r.gw.addr())
	if err != nil {
		return nil, err
	}
	timeoutAt := time.Now()
	r.gw.signal(syscall.SIGTERM)
	state, exited = r.gw.wait(10 * time.Second)
	took3 := time.Since(timeoutAt)
	stopSlow()
	code3 := -1
	if state != nil {
		code3 = state.ExitCode()
	}
	res.fact("run 3: shutdown_timeout 2s, a request still reading its body", "exit code %d after %s", code3, took3.Round(time.Millisecond))
	res.check("exits when the timeout expires, and logs the cut-off", exited && took3 < 4*time.Second && r.gw.logContains("shutdown timeout expired with requests in flight"),
		"exited %v after %s", exited, took3.Round(time.Millisecond))
	return res, nil
}

// slowRequest opens a request that sends its body a byte every 200 ms, so
// that it stays in flight; stop closes it.
func slowRequest(addr string) (stop func(), err error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	body := strings.Repeat(" ", 10_000)
	if _, err := fmt.Fprintf(c, "POST /v1/events/edx HTTP/1.1\r\nHost: drill\r\nAuthorization: Bearer dev\r\nContent-Length: %d\r\n\r\n", len(body)); err != nil {
		c.Close()
		return nil, err
	}
	quit := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < len(body); i++ {
			select {
			case <-quit:
				return
			case <-time.After(200 * time.Millisecond):
			}
			if _, err := c.Write([]byte{body[i]}); err != nil {
				return
			}
		}
	}()
	// Wait until the gateway is reading it (the handler has started).
	time.Sleep(500 * time.Millisecond)
	var once sync.Once
	return func() {
		once.Do(func() {
			close(quit)
			<-done
			c.Close()
		})
	}, nil
}
