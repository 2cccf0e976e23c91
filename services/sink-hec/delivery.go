package sinkhec

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/sluicehq/sluice/pkg/event"
	"github.com/sluicehq/sluice/pkg/kafka"
	"github.com/sluicehq/sluice/pkg/pipeline"
)

// ev is one rendered HEC event on its way.
type ev struct {
	pt     *partTrack
	seq    uint64
	tp     TP
	offset int64
	family event.Family
	key    []byte
	data   []byte // the HEC event object
}

// batch is one request's worth of events.
type batch struct {
	events []*ev
	bytes  int
	sends  int       // requests that carried it
	resent bool      // sent again after its outcome was unknown (ack timeout)
	sentAt time.Time // of the last request, for the ack timeout
}

func newBatch(evs []*ev) *batch {
	b := &batch{events: evs}
	for _, e := range evs {
		b.bytes += len(e.data) + 1
	}
	return b
}

// queue holds batches waiting for a channel; retried batches go to the
// front. It never blocks a producer: fetching pauses instead once the
// tracker holds too much.
type queue struct {
	mu    sync.Mutex
	items []*batch
	wake  chan struct{}
	kickc chan struct{} // closed by kick: every waiting pop returns
}

func newQueue() *queue { return &queue{wake: make(chan struct{}, 1), kickc: make(chan struct{})} }

// kick makes every waiting pop return nil, so that its sender looks at
// the sink's state again (a halt).
func (q *queue) kick() {
	q.mu.Lock()
	close(q.kickc)
	q.kickc = make(chan struct{})
	q.mu.Unlock()
}

func (q *queue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *queue) push(b *batch) {
	q.mu.Lock()
	q.items = append(q.items, b)
	q.mu.Unlock()
	q.signal()
}

func (q *queue) pushFront(bs ...*batch) {
	q.mu.Lock()
	q.items = append(append(make([]*batch, 0, len(bs)+len(q.items)), bs...), q.items...)
	q.mu.Unlock()
	q.signal()
}

// pop waits for a batch; nil when ctx ends or on a kick.
func (q *queue) pop(ctx context.Context) *batch {
	for {
		q.mu.Lock()
		kicked := q.kickc
		if len(q.items) > 0 {
			b := q.items[0]
			q.items[0] = nil
			q.items = q.items[1:]
			more := len(q.items) > 0
			q.mu.Unlock()
			if more {
				q.signal() // another sender may be waiting
			}
			return b
		}
		q.mu.Unlock()
		select {
		case <-q.wake:
		case <-kicked:
			return nil
		case <-ctx.Done():
			return nil
		}
	}
}

// tryPop takes a batch if one waits.
func (q *queue) tryPop() *batch {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.items) == 0 {
		return nil
	}
	b := q.items[0]
	q.items[0] = nil
	q.items = q.items[1:]
	return b
}

func (q *queue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items)
}

// batcher fills batches up to the count and byte limits, and sends a
// partly filled one when it is BatchTimeout old.
type batcher struct {
	maxEvents, maxBytes int
	timeout             time.Duration
	q                   *queue

	mu  sync.Mutex
	cur *batch
	gen uint64
}

func (b *batcher) add(evs []*ev) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, e := range evs {
		if b.cur != nil && len(b.cur.events) > 0 && b.cur.bytes+len(e.data)+1 > b.maxBytes {
			b.emit()
		}
		if b.cur == nil {
			b.cur = &batch{}
			b.gen++
			gen := b.gen
			time.AfterFunc(b.timeout, func() { b.flushGen(gen) })
		}
		b.cur.events = append(b.cur.events, e)
		b.cur.bytes += len(e.data) + 1
		if len(b.cur.events) >= b.maxEvents {
			b.emit()
		}
	}
}

func (b *batcher) emit() {
	b.q.push(b.cur)
	b.cur = nil
}

func (b *batcher) flushGen(gen uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cur != nil && b.gen == gen {
		b.emit()
	}
}

func (b *batcher) flush() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cur != nil {
		b.emit()
	}
}

// halt is the state of a sink stopped by a configuration error.
type halt struct {
	err     error
	cleared chan struct{}
}

// engine delivers batches: one sender and one ack poller per channel, a
// committer, and the tracker that says what may be committed.
type engine struct {
	cfg    Config
	log    *zap.Logger
	m      *metrics
	hooks  hooks
	dlq    *pipeline.DLQ
	tr     *tracker
	q      *queue
	bat    *batcher
	eps    []*endpoint
	chans  []*channel
	topics []string

	consumer *kafka.Consumer // set by Service.Start

	commitMu    sync.Mutex
	halted      atomic.Pointer[halt]
	haltMu      sync.Mutex
	nextProbe   atomic.Int64 // unix nanoseconds
	probing     atomic.Bool
	fetchPaused bool                      // under tr.mu
	stopBy      atomic.Pointer[time.Time] // Stop's deadline, for draining revoked partitions

	bufs sync.Pool
	gzs  sync.Pool

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// start runs the senders, ack pollers and committer until stop.
func (e *engine) start() {
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	for _, ch := range e.chans {
		e.wg.Add(1)
		go func() { defer e.wg.Done(); e.sendLoop(ctx, ch) }()
		if e.cfg.Ack {
			e.wg.Add(1)
			go func() { defer e.wg.Done(); e.ackLoop(ctx, ch) }()
		}
	}
	e.wg.Add(2)
	go func() { defer e.wg.Done(); e.commitLoop(ctx) }()
	go func() { defer e.wg.Done(); e.checkEndpoints(ctx) }()
}

// stop ends the loops and waits for them, by ctx's deadline.
func (e *engine) stop(ctx context.Context) error {
	if e.cancel == nil {
		return nil
	}
	e.cancel()
	done := make(chan struct{})
	go func() { e.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("HEC senders did not stop in time: %w", ctx.Err())
	}
	for _, ch := range e.chans {
		ch.close()
	}
	return nil
}

// err is the halt error, for /readyz.
func (e *engine) err() error {
	if h := e.halted.Load(); h != nil {
		return h.err
	}
	return nil
}

func (e *engine) halt(err error) {
	e.haltMu.Lock()
	defer e.haltMu.Unlock()
	e.nextProbe.Store(time.Now().Add(e.cfg.HaltRetry).UnixNano())
	if h := e.halted.Load(); h != nil {
		if h.err.Error() != err.Error() {
			e.halted.Store(&halt{err: err, cleared: h.cleared})
		}
		return
	}
	// The gauge first: whoever sees the readiness error sees the gauge at 1.
	e.m.halted.Set(1)
	e.halted.Store(&halt{err: err, cleared: make(chan struct{})})
	e.q.kick()
	e.log.Error("HEC refuses this configuration; delivery is halted and no event is dropped: fix the configuration (the sink retries every halt_retry)",
		zap.Duration("halt_retry", e.cfg.HaltRetry), zap.Error(err))
	e.tr.mu.Lock()
	e.updateFetchLocked()
	e.tr.mu.Unlock()
}

func (e *engine) unhalt() {
	e.haltMu.Lock()
	defer e.haltMu.Unlock()
	if e.halted.Load() == nil {
		return
	}
	// The gauge first: whoever sees the sink ready again sees the gauge at 0.
	e.m.halted.Set(0)
	h := e.halted.Swap(nil)
	close(h.cleared)
	e.log.Info("HEC accepts events again; delivery resumes")
	e.tr.mu.Lock()
	e.updateFetchLocked()
	e.tr.mu.Unlock()
}

// updateFetchLocked pauses fetching while halted or while too much is
// pending, and resumes once under half the limits. It needs tr.mu.
func (e *engine) updateFetchLocked() {
	if e.consumer == nil {
		return
	}
	over := e.tr.events >= e.cfg.MaxPendingEvents || e.tr.bytes >= e.cfg.MaxPendingBytes
	under := e.tr.events < e.cfg.MaxPendingEvents/2 && e.tr.bytes < e.cfg.MaxPendingBytes/2
	halted := e.halted.Load() != nil
	switch {
	case !e.fetchPaused && (over || halted):
		e.consumer.Client().PauseFetchTopics(e.topics...)
		e.fetchPaused = true
		e.m.fetchPaused.Set(1)
	case e.fetchPaused && under && !halted:
		e.consumer.Client().ResumeFetchTopics(e.topics...)
		e.fetchPaused = false
		e.m.fetchPaused.Set(0)
	}
}

// delivered marks events delivered.
func (e *engine) delivered(evs []*ev) {
	e.tr.mu.Lock()
	for _, x := range evs {
		e.tr.done(x.pt, x.seq)
	}
	e.updateFetchLocked()
	e.tr.mu.Unlock()
	e.m.events.WithLabelValues("delivered").Add(float64(len(evs)))
}

// live drops from b the events of partitions no longer owned (their new
// owner sends them); it reports whether any are left.
func (e *engine) live(b *batch) bool {
	e.tr.mu.Lock()
	defer e.tr.mu.Unlock()
	kept := b.events[:0]
	for _, x := range b.events {
		if !x.pt.dropped {
			kept = append(kept, x)
		}
	}
	if len(kept) < len(b.events) {
		nb := newBatch(kept)
		nb.sends, nb.resent = b.sends, b.resent
		*b = *nb
	}
	return len(kept) > 0
}

// sendLoop is one channel's sender: it takes a batch when its URL is
// healthy (and, while halted, only as the periodic probe) and sends it.
func (e *engine) sendLoop(ctx context.Context, ch *channel) {
	for {
		probe, ok := e.waitTurn(ctx, ch)
		if !ok {
			return
		}
		if probe {
			// While halted, one sender at a time retries: with a batch when
			// one waits, else with the start-up check.
			b := e.q.tryPop()
			if b == nil {
				switch ok, err := e.checkEndpoint(ctx, ch); {
				case err != nil:
					e.halt(err)
				case ok:
					e.unhalt()
				}
			} else if e.live(b) {
				e.send(ctx, ch, b)
			}
			if e.halted.Load() != nil {
				e.nextProbe.Store(time.Now().Add(e.cfg.HaltRetry).UnixNano())
			}
			e.probing.Store(false)
			continue
		}
		b := e.q.pop(ctx)
		if b == nil {
			if ctx.Err() != nil {
				return
			}
			continue // kicked: halted
		}
		if e.halted.Load() != nil || !ch.ep.ready() {
			// Halted, or the URL backed off while this sender waited:
			// another channel (or this one later) takes the batch.
			e.q.pushFront(b)
			continue
		}
		if e.live(b) {
			e.send(ctx, ch, b)
		}
	}
}

// waitTurn waits until ch may send: its URL out of backoff, and the sink
// not halted unless this sender makes the probe. It reports whether this
// is the probe, and false when ctx ends.
func (e *engine) waitTurn(ctx context.Context, ch *channel) (probe, ok bool) {
	for {
		h := e.halted.Load()
		if h == nil {
			if err := ch.ep.wait(ctx); err != nil {
				return false, false
			}
			if e.halted.Load() == nil {
				return false, true
			}
			continue
		}
		next := time.Unix(0, e.nextProbe.Load())
		if !time.Now().Before(next) && e.probing.CompareAndSwap(false, true) {
			return true, true
		}
		d := time.Until(next)
		if d <= 0 {
			d = e.cfg.HaltRetry // another sender is probing
		}
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-h.cleared:
			t.Stop()
		case <-ctx.Done():
			t.Stop()
			return false, false
		}
	}
}

// body renders b as a request body, gzipped when configured. The caller
// returns buf to the pool.
func (e *engine) body(b *batch) (body []byte, buf *bytes.Buffer) {
	buf, _ = e.bufs.Get().(*bytes.Buffer)
	if buf == nil {
		buf = new(bytes.Buffer)
	}
	buf.Reset()
	if !e.cfg.Gzip {
		for _, x := range b.events {
			buf.Write(x.data)
			buf.WriteByte('\n')
		}
		return buf.Bytes(), buf
	}
	zw, _ := e.gzs.Get().(*gzip.Writer)
	if zw == nil {
		zw, _ = gzip.NewWriterLevel(buf, gzip.BestSpeed) // a valid level never fails
	} else {
		zw.Reset(buf)
	}
	for _, x := range b.events {
		_, _ = zw.Write(x.data) // writes to a bytes.Buffer do not fail
		_, _ = zw.Write(newline)
	}
	_ = zw.Close()
	e.gzs.Put(zw)
	return buf.Bytes(), buf
}

var newline = []byte{'\n'}

// send makes one request with b and acts on the answer.
func (e *engine) send(ctx context.Context, ch *channel, b *batch) {
	body, buf := e.body(b)
	rctx, cancel := context.WithTimeout(ctx, e.cfg.RequestTimeout)
	t0 := time.Now()
	status, hdr, resp, err := ch.post(rctx, ch.ep.eventURL, body, e.cfg.Gzip)
	cancel()
	e.bufs.Put(buf)
	if ctx.Err() != nil {
		e.q.pushFront(b) // stopping: the batch is not committed, it comes back after a restart
		return
	}
	b.sends++
	b.sentAt = time.Now()
	e.m.requestSeconds.Observe(time.Since(t0).Seconds())
	r := classify(ch.ep.base, status, hdr, resp, err, e.cfg.Ack)
	e.m.requests.WithLabelValues(ch.ep.base, r.outcome.String()).Inc()
	if r.outcome != outFatal && r.outcome != outRetry {
		e.unhalt()
	}
	switch r.outcome {
	case outOK:
		ch.ep.ok()
		if !e.cfg.Ack {
			e.hook(e.hooks.afterDeliver)
			e.delivered(b.events)
			return
		}
		if err := ch.addAck(r.ackID, b); err != nil {
			e.log.Warn("sending the batch again", zap.Error(err))
			e.q.pushFront(b)
			return
		}
		e.hook(e.hooks.afterSend)
	case outRetry:
		d := ch.ep.fail(r.retryAfter)
		e.log.Warn("HEC busy or unreachable; backing off this URL and sending the batch again",
			zap.String("url", ch.ep.base), zap.Duration("backoff", d), zap.Int("events", len(b.events)), zap.Error(r.err))
		e.q.pushFront(b)
	case outPartial:
		ch.ep.ok()
		n := r.eventNumber
		if n >= len(b.events) {
			e.bisect(ctx, b, r)
			return
		}
		// splunkd indexed the events before n; n is bad; the rest are
		// sent again.
		if n > 0 {
			e.delivered(b.events[:n])
		}
		e.deadLetter(ctx, b.events[n:n+1], reasonFor(r), r.err.Error())
		if rest := b.events[n+1:]; len(rest) > 0 {
			e.q.pushFront(newBatch(rest))
		}
	case outBisect, outTooLarge:
		ch.ep.ok()
		e.bisect(ctx, b, r)
	case outFatal:
		e.halt(r.err)
		e.q.pushFront(b)
	}
}

// bisect splits a batch refused for an unknown event (or for its size)
// until the refused event is alone, then dead-letters it.
func (e *engine) bisect(ctx context.Context, b *batch, r result) {
	if len(b.events) == 1 {
		e.deadLetter(ctx, b.events, reasonFor(r), r.err.Error())
		return
	}
	half := len(b.events) / 2
	e.q.pushFront(newBatch(b.events[:half:half]), newBatch(b.events[half:]))
}

// Dead-letter reasons of HEC refusals.
const (
	ReasonHECInvalidData = "hec_invalid_data"
	ReasonHECNoEvent     = "hec_event_required"
	ReasonHECBlankEvent  = "hec_event_blank"
	ReasonHECFields      = "hec_indexed_fields"
	ReasonHECTooLarge    = "hec_too_large"
)

func reasonFor(r result) string {
	switch {
	case r.outcome == outTooLarge:
		return ReasonHECTooLarge
	case r.code == 12:
		return ReasonHECNoEvent
	case r.code == 13:
		return ReasonHECBlankEvent
	case r.code == 15:
		return ReasonHECFields
	}
	return ReasonHECInvalidData
}

// deadLetter writes events to the dead-letter topic, retrying until it
// succeeds or ctx ends, then counts them delivered.
func (e *engine) deadLetter(ctx context.Context, evs []*ev, reason, msg string) {
	dls := make([]*pipeline.DeadLetter, len(evs))
	for i, x := range evs {
		dls[i] = &pipeline.DeadLetter{
			Stage: Stage, Family: x.family, Index: -1, Reason: reason, Message: msg,
			Topic: x.tp.Topic, Partition: x.tp.Partition, Offset: x.offset, Raw: x.data, Key: x.key,
		}
	}
	backoff := 100 * time.Millisecond
	for {
		err := e.dlq.Send(ctx, dls)
		if err == nil {
			break
		}
		e.log.Warn("sending dead letters, will retry", zap.Error(err))
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return // not delivered, not committed: consumed again after a restart
		case <-t.C:
		}
		backoff = min(backoff*2, 5*time.Second)
	}
	e.log.Warn("HEC refused events; dead-lettered them", zap.Int("count", len(evs)), zap.String("reason", reason),
		zap.Stringer("first", evs[0].tp), zap.Int64("first_offset", evs[0].offset), zap.String("message", msg))
	e.tr.mu.Lock()
	for _, x := range evs {
		e.tr.done(x.pt, x.seq)
	}
	e.updateFetchLocked()
	e.tr.mu.Unlock()
	e.m.events.WithLabelValues("dead_lettered").Add(float64(len(evs)))
}

func (e *engine) hook(f func()) {
	if f != nil {
		f()
	}
}

// ackLoop polls ch's pending ackIds every AckPollInterval, delivers the
// acknowledged batches and sends again those past AckTimeout.
func (e *engine) ackLoop(ctx context.Context, ch *channel) {
	t := time.NewTicker(e.cfg.AckPollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if ids := ch.pendingAcks(); len(ids) > 0 {
			e.pollAcks(ctx, ch, ids)
		}
		for _, b := range ch.expired(e.cfg.AckTimeout) {
			b.resent = true
			e.m.events.WithLabelValues("resent").Add(float64(len(b.events)))
			e.log.Warn("no indexer acknowledgement within ack_timeout; sending the batch again (its events may be indexed twice)",
				zap.String("url", ch.ep.base), zap.String("channel", ch.id), zap.Int("events", len(b.events)),
				zap.Duration("ack_timeout", e.cfg.AckTimeout))
			e.q.pushFront(b)
		}
	}
}

const maxAckQuery = 10_000

func (e *engine) pollAcks(ctx context.Context, ch *channel, ids []int64) {
	for len(ids) > 0 {
		n := min(len(ids), maxAckQuery)
		part := ids[:n]
		ids = ids[n:]
		body, _ := json.Marshal(map[string][]int64{"acks": part}) // cannot fail
		rctx, cancel := context.WithTimeout(ctx, e.cfg.RequestTimeout)
		status, hdr, resp, err := ch.post(rctx, ch.ep.ackURL, body, false)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err != nil || status >= 500 || status == http429 {
			e.log.Debug("polling acks; will poll again", zap.String("url", ch.ep.base), zap.Int("status", status), zap.Error(err))
			return // the ack timeout still applies
		}
		if status != 200 {
			r := classify(ch.ep.base, status, hdr, resp, nil, false)
			if r.outcome == outFatal {
				e.halt(fmt.Errorf("polling acks: %w", r.err))
			}
			return
		}
		var rep struct {
			Acks map[string]bool `json:"acks"`
		}
		if err := json.Unmarshal(resp, &rep); err != nil {
			e.log.Warn("unreadable ack reply; will poll again", zap.String("url", ch.ep.base), zap.Error(err))
			return
		}
		for k, ok := range rep.Acks {
			if !ok {
				continue
			}
			id, err := strconv.ParseInt(k, 10, 64)
			if err != nil {
				continue
			}
			if b := ch.takeAck(id); b != nil {
				e.m.ackSeconds.Observe(time.Since(b.sentAt).Seconds())
				e.hook(e.hooks.afterDeliver) // acknowledged, not yet counted or committed
				e.delivered(b.events)
			}
		}
	}
}

const http429 = 429

// commitLoop commits the delivered watermarks every CommitInterval.
func (e *engine) commitLoop(ctx context.Context) {
	t := time.NewTicker(e.cfg.CommitInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			e.commit(ctx, nil)
		}
	}
}

// commit commits the watermark of each partition (of only, when not nil)
// that moved. commitMu orders commits, so that a revoke's final commit is
// never followed by an older one.
func (e *engine) commit(ctx context.Context, only map[string][]int32) {
	if e.consumer == nil {
		return
	}
	e.commitMu.Lock()
	defer e.commitMu.Unlock()
	e.tr.mu.Lock()
	wm := e.tr.watermarks(only)
	e.tr.mu.Unlock()
	if len(wm) == 0 {
		return
	}
	offsets := map[string]map[int32]kgo.EpochOffset{}
	for tp, o := range wm {
		if offsets[tp.Topic] == nil {
			offsets[tp.Topic] = map[int32]kgo.EpochOffset{}
		}
		offsets[tp.Topic][tp.Partition] = kgo.EpochOffset{Epoch: -1, Offset: o}
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := e.consumer.CommitOffsets(cctx, offsets); err != nil {
		e.log.Warn("committing offsets; will retry", zap.Error(err))
		return
	}
	e.tr.mu.Lock()
	e.tr.committed(wm)
	e.tr.mu.Unlock()
}

// drain waits until the partitions in m have nothing pending, the sink is
// halted, or the drain deadline passes.
func (e *engine) drain(m map[string][]int32) {
	e.bat.flush()
	deadline := time.Now().Add(e.cfg.DrainTimeout)
	if by := e.stopBy.Load(); by != nil && by.Before(deadline) {
		deadline = *by
	}
	for {
		e.tr.mu.Lock()
		n := 0
		for topic, ps := range m {
			for _, p := range ps {
				n += e.tr.pending(TP{topic, p})
			}
		}
		e.tr.mu.Unlock()
		if n == 0 || e.halted.Load() != nil || !time.Now().Before(deadline) {
			if n > 0 {
				e.log.Warn("handing over partitions with undelivered events; their next owner sends them again",
					zap.Int("events", n), zap.Bool("halted", e.halted.Load() != nil))
			}
			return
		}
		t := time.NewTimer(10 * time.Millisecond)
		<-t.C
	}
}

// checkEndpoints checks each URL at start, so that a wrong token or a
// token without indexer acknowledgement shows on /readyz at once rather
// than at the first event (#24411 of the OTel exporter).
func (e *engine) checkEndpoints(ctx context.Context) {
	for _, ch := range uniqueByEndpoint(e.chans) {
		if _, err := e.checkEndpoint(ctx, ch); err != nil {
			e.halt(err)
			return
		}
	}
}

// checkEndpoint makes a data request without data: HEC's health endpoint
// ignores the token, but a valid token gets 400 code 5 ("No data") here.
// With ack on, an empty ack query tells whether the token has it. It
// reports whether the configuration was verified, and a configuration
// error; an unreachable or busy URL backs off and verifies nothing.
func (e *engine) checkEndpoint(ctx context.Context, ch *channel) (bool, error) {
	rctx, cancel := context.WithTimeout(ctx, e.cfg.RequestTimeout)
	status, hdr, resp, err := ch.post(rctx, ch.ep.eventURL, nil, false)
	cancel()
	if ctx.Err() != nil {
		return false, nil
	}
	r := classify(ch.ep.base, status, hdr, resp, err, false)
	switch r.outcome {
	case outFatal:
		return false, fmt.Errorf("checking the token: %w", r.err)
	case outRetry:
		d := ch.ep.fail(r.retryAfter)
		e.log.Warn("HEC URL unreachable or busy", zap.String("url", ch.ep.base), zap.Duration("backoff", d), zap.Error(r.err))
		return false, nil
	}
	if !e.cfg.Ack {
		return true, nil
	}
	rctx, cancel = context.WithTimeout(ctx, e.cfg.RequestTimeout)
	status, hdr, resp, err = ch.post(rctx, ch.ep.ackURL, []byte(`{"acks":[]}`), false)
	cancel()
	if err != nil || status >= 500 || status == http429 {
		return false, nil
	}
	if status != 200 {
		if r := classify(ch.ep.base, status, hdr, resp, nil, false); r.outcome == outFatal {
			return false, fmt.Errorf("checking indexer acknowledgement: %w", r.err)
		}
	}
	return true, nil
}

func uniqueByEndpoint(chans []*channel) []*channel {
	seen := map[*endpoint]bool{}
	var out []*channel
	for _, ch := range chans {
		if !seen[ch.ep] {
			seen[ch.ep] = true
			out = append(out, ch)
		}
	}
	return out
}
