package ingest

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// brokerHealth is the gateway's view of whether Kafka can take records: a
// circuit that opens after `threshold` consecutive failures (failed probes,
// or requests none of whose records Kafka took for lack of availability)
// and closes on the first success (a probe, or a request whose records were
// acknowledged). A background prober pings the brokers every interval, so
// the circuit also closes by itself once Kafka is back.
//
// While it is open, requests are refused with 503 before their body is read,
// requests waiting for acks stop waiting and answer 503 (their records may
// still be written later: at least once), and /readyz reports not ready so
// that a load balancer drains the instance. Reading the state is one atomic
// load: /readyz and every request read it, and nothing pings per call.
type brokerHealth struct {
	ping      func(context.Context) error
	interval  time.Duration
	timeout   time.Duration
	threshold int
	log       *zap.Logger
	m         *metrics

	open     atomic.Bool
	mu       sync.Mutex
	failures int
	lastErr  error
	since    time.Time
	tripped  chan struct{} // closed when the circuit opens; renewed when it closes

	loop everyLoop
}

func newBrokerHealth(ping func(context.Context) error, interval, timeout time.Duration, threshold int, log *zap.Logger, m *metrics) *brokerHealth {
	h := &brokerHealth{ping: ping, interval: interval, timeout: timeout, threshold: max(threshold, 1),
		log: log, m: m, tripped: make(chan struct{}), since: time.Now()}
	m.kafkaAvailable.Set(1)
	return h
}

// err is nil while the circuit is closed, else why it is open.
func (h *brokerHealth) err() error {
	if h == nil || !h.open.Load() {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.open.Load() {
		return nil
	}
	return fmt.Errorf("%w since %s: %v", ErrCircuitOpen, h.since.UTC().Format(time.RFC3339), h.lastErr)
}

// trippedCh is closed when the circuit next opens (already closed if it is
// open).
func (h *brokerHealth) trippedCh() <-chan struct{} {
	if h == nil {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.tripped
}

// success records that Kafka answered.
func (h *brokerHealth) success() {
	if h == nil {
		return
	}
	if !h.open.Load() {
		h.mu.Lock()
		h.failures = 0
		h.mu.Unlock()
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.failures = 0
	if !h.open.Load() {
		return
	}
	down := time.Since(h.since)
	h.m.kafkaAvailable.Set(1) // before the circuit closes, so readers never see it closed with the gauge at 0
	h.open.Store(false)
	h.since = time.Now()
	h.tripped = make(chan struct{})
	h.log.Info("kafka is reachable again; taking requests", zap.Duration("was_down", down.Round(time.Millisecond)))
}

// failure records that Kafka did not answer.
func (h *brokerHealth) failure(err error) {
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.failures++
	h.lastErr = err
	if h.open.Load() || h.failures < h.threshold {
		return
	}
	h.m.kafkaAvailable.Set(0) // before the circuit opens, so readers never see it open with the gauge at 1
	h.m.circuitOpens.Inc()
	h.open.Store(true)
	h.since = time.Now()
	close(h.tripped)
	h.log.Error("kafka is unreachable; refusing requests with 503 until it answers again",
		zap.Int("consecutive_failures", h.failures), zap.Error(err))
}

// probe pings the brokers once.
func (h *brokerHealth) probe() {
	ctx, cancel := context.WithTimeout(context.Background(), h.timeout)
	defer cancel()
	if err := h.ping(ctx); err != nil {
		h.failure(fmt.Errorf("probe: %w", err))
		return
	}
	h.success()
}

// start runs the prober until stopped.
func (h *brokerHealth) start() {
	if h != nil {
		h.loop.start(h.interval, h.probe)
	}
}

func (h *brokerHealth) close() {
	if h != nil {
		h.loop.close()
	}
}

// everyLoop runs a function every interval in a goroutine of its own,
// from start until close (the broker prober, the CPU sampler).
type everyLoop struct {
	stop chan struct{}
	done chan struct{}
}

// start runs fn every interval, unless the loop is running already.
func (l *everyLoop) start(interval time.Duration, fn func()) {
	if l.stop != nil {
		return
	}
	l.stop, l.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(l.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-l.stop:
				return
			case <-t.C:
				fn()
			}
		}
	}()
}

// close stops the loop and waits for a call of fn under way to end.
func (l *everyLoop) close() {
	if l.stop == nil {
		return
	}
	close(l.stop)
	<-l.done
	l.stop = nil
}
