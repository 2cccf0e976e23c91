package sinkhec

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/sluicehq/sluice/pkg/avro"
	"github.com/sluicehq/sluice/pkg/event"
	"github.com/sluicehq/sluice/pkg/kafka"
	"github.com/sluicehq/sluice/pkg/pipeline"
)

// handler renders each poll's records as HEC events, tracks them and hands
// them to the batcher. It returns once they are queued: offsets are
// committed by the engine as events are acknowledged.
type handler struct {
	transcoders sync.Map     // schemaKey → *avro.Transcoder, nil when the schema needs the native path
	avgSize     atomic.Int64 // rendered bytes per record (event and key), to size the arenas

	cfg   Config
	serde *avro.Serde
	fmt   *formatter
	dlq   *pipeline.DLQ
	e     *engine
	log   *zap.Logger
	m     *metrics
}

var _ kafka.Handler = (*handler)(nil)

// rendered is one record's fate.
type rendered struct {
	ev   *ev                  // nil when dead
	dead *pipeline.DeadLetter // nil when rendered
}

// Handle implements kafka.Handler. An error (registry unreachable, DLQ
// write failed) comes before anything is tracked, so the retried poll is
// tracked once.
func (h *handler) Handle(ctx context.Context, recs []*kgo.Record) error {
	if len(recs) == 0 {
		return nil
	}
	out, err := h.render(ctx, recs)
	if err != nil {
		return err
	}
	var dead []*pipeline.DeadLetter
	for _, r := range out {
		if r.dead != nil {
			dead = append(dead, r.dead)
		}
	}
	if err := h.dlq.Send(ctx, dead); err != nil {
		return fmt.Errorf("sending dead letters: %w", err)
	}
	if len(dead) > 0 {
		d := dead[0]
		h.log.Warn("events dead-lettered", zap.Int("count", len(dead)), zap.String("reason", d.Reason),
			zap.String("first_topic", d.Topic), zap.Int32("first_partition", d.Partition), zap.Int64("first_offset", d.Offset),
			zap.String("first_message", d.Message))
		h.m.events.WithLabelValues("dead_lettered").Add(float64(len(dead)))
	}
	evs := make([]*ev, 0, len(out))
	tr := h.e.tr
	tr.mu.Lock()
	for i, r := range recs {
		size := 0
		if out[i].ev != nil {
			size = len(out[i].ev.data) + 1
		}
		pt, seq := tr.add(TP{r.Topic, r.Partition}, r.Offset, size)
		if out[i].ev == nil {
			tr.done(pt, seq) // dead-lettered already
			continue
		}
		out[i].ev.pt, out[i].ev.seq = pt, seq
		evs = append(evs, out[i].ev)
	}
	h.e.updateFetchLocked()
	tr.mu.Unlock()
	h.e.bat.add(evs)
	return nil
}

// minShare is the fewest records worth a goroutine of their own.
const minShare = 128

// render decodes and renders recs in parallel, keeping their order.
func (h *handler) render(ctx context.Context, recs []*kgo.Record) ([]rendered, error) {
	out := make([]rendered, len(recs))
	n := min(runtime.GOMAXPROCS(0), max(1, len(recs)/minShare))
	share := (len(recs) + n - 1) / n
	errs := make([]error, n)
	var wg sync.WaitGroup
	for w := 0; w < n; w++ {
		lo, hi := w*share, min((w+1)*share, len(recs))
		run := func() {
			// One arena per share, sized from the records seen so far: the
			// events of a poll share one array, which lives until the last
			// of them is delivered, so it should not need to grow.
			avg := max(h.avgSize.Load(), 256)
			buf := make([]byte, 0, int(avg+avg/8)*(hi-lo))
			var scratch []byte
			var vals []any
			for i := lo; i < hi; i++ {
				var err error
				if buf, out[i], err = h.render1(ctx, recs[i], buf, &scratch, &vals); err != nil {
					errs[w] = err
					return
				}
			}
			if hi > lo {
				per := int64(len(buf) / (hi - lo))
				h.avgSize.Store((h.avgSize.Load()*7 + per) / 8)
			}
		}
		if n == 1 {
			run()
			continue
		}
		wg.Add(1)
		go func() { defer wg.Done(); run() }()
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

type schemaKey struct {
	id  int
	fam event.Family
}

// transcoder returns the transcoder of a family's schema id, nil when the
// schema needs the native path.
func (h *handler) transcoder(ctx context.Context, id int, m *mapping) (*avro.Transcoder, error) {
	key := schemaKey{id, m.family}
	if t, ok := h.transcoders.Load(key); ok {
		return t.(*avro.Transcoder), nil
	}
	c, err := h.serde.Codec(ctx, id)
	if err != nil {
		return nil, err
	}
	t, err := c.NewTranscoder(m.paths...)
	if err != nil {
		h.log.Info("rendering this schema through native values", zap.Int("schema_id", id), zap.Error(err))
		t = nil
	}
	h.transcoders.Store(key, t)
	return t, nil
}

// render1 renders one record into buf (the event body goes through
// scratch first, the captured values through vals). It returns an error
// only for a transient failure; a record that cannot be rendered is dead.
func (h *handler) render1(ctx context.Context, r *kgo.Record, buf []byte, scratch *[]byte, vals *[]any) ([]byte, rendered, error) {
	dead := func(reason string, err error) rendered {
		d := &pipeline.DeadLetter{Stage: Stage, Index: -1, Reason: reason, Message: err.Error(),
			Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Raw: r.Value, Key: r.Key}
		d.Family, _ = event.FamilyOfTopic(r.Topic)
		return rendered{dead: d}
	}
	fam, ok := event.FamilyOfTopic(r.Topic)
	if !ok {
		return buf, dead(event.ReasonUndecodable, fmt.Errorf("topic %s is not a family's enriched topic", r.Topic)), nil
	}
	m := h.fmt.families[fam]
	id, wire, err := avro.SplitWire(r.Value)
	if err != nil {
		return buf, dead(event.ReasonUndecodable, err), nil
	}
	tr, err := h.transcoder(ctx, id, m)
	if err != nil {
		if avro.IsTransient(err) {
			return buf, rendered{}, fmt.Errorf("decoding %s/%d@%d: %w", r.Topic, r.Partition, r.Offset, err)
		}
		return buf, dead(event.ReasonUndecodable, err), nil
	}
	if len(*vals) < len(m.paths) {
		*vals = make([]any, len(m.paths))
	}
	v := (*vals)[:len(m.paths)]
	var body []byte
	if tr != nil {
		if body, err = tr.AppendJSON((*scratch)[:0], wire, v); err != nil {
			return buf, dead(event.ReasonUndecodable, fmt.Errorf("decoding with schema id %d: %w", id, err)), nil
		}
	} else {
		native, codec, err := h.serde.Decode(ctx, r.Value)
		if err != nil {
			return buf, dead(event.ReasonUndecodable, err), nil
		}
		if body, err = codec.AppendJSON((*scratch)[:0], native); err != nil {
			return buf, dead(event.ReasonUndecodable, fmt.Errorf("rendering JSON: %w", err)), nil
		}
		m.values(native, v)
	}
	*scratch = body
	start := len(buf)
	buf = m.appendEvent(buf, r.Topic, r.Partition, r.Offset, v, body, r.Timestamp)
	data := buf[start:len(buf):len(buf)]
	if len(data) > h.cfg.MaxEventBytes {
		return buf[:start], dead(event.ReasonEventTooLarge,
			fmt.Errorf("the HEC event is %d bytes, above max_event_bytes %d", len(data), h.cfg.MaxEventBytes)), nil
	}
	// The key goes to the arena too: r.Key shares the fetched batch's
	// buffer, which must not live as long as the event waits for its ack.
	buf = append(buf, r.Key...)
	key := buf[len(buf)-len(r.Key) : len(buf) : len(buf)]
	return buf, rendered{ev: &ev{tp: TP{r.Topic, r.Partition}, offset: r.Offset, family: fam, key: key, data: data}}, nil
}

// metrics are the HEC sink's own; dead letters are also counted by
// pipeline.DLQ in sluice_dlq_records_total{stage="sink-hec",family,reason}.
type metrics struct {
	events         *prometheus.CounterVec
	requests       *prometheus.CounterVec
	requestSeconds prometheus.Histogram
	ackSeconds     prometheus.Histogram
	urlUp          *prometheus.GaugeVec
	halted         prometheus.Gauge
	fetchPaused    prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer, e *engine) (*metrics, error) {
	m := &metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_sink_hec_events_total",
			Help: "HEC sink events by outcome: delivered (acknowledged, or 2xx without ack), dead_lettered, resent (after an ack timeout).",
		}, []string{"outcome"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_sink_hec_requests_total",
			Help: "HEC event requests by URL and result (ok, retry, partial, bisect, too_large, fatal).",
		}, []string{"url", "result"}),
		requestSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sluice_sink_hec_request_seconds",
			Help:    "HEC event request latency.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 9),
		}),
		ackSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sluice_sink_hec_ack_seconds",
			Help:    "Time from a request's answer to its indexer acknowledgement.",
			Buckets: prometheus.ExponentialBuckets(0.01, 3, 10),
		}),
		urlUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sluice_sink_hec_url_up",
			Help: "1 when a HEC URL takes batches, 0 while it backs off after failures.",
		}, []string{"url"}),
		halted: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sluice_sink_hec_halted",
			Help: "1 while delivery is halted by a configuration error HEC reported (token, index, ack).",
		}),
		fetchPaused: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sluice_sink_hec_fetch_paused",
			Help: "1 while fetching is paused: halted, or max_pending_events/bytes reached.",
		}),
	}
	pending := func(f func(t *tracker) int) func() float64 {
		return func() float64 {
			e.tr.mu.Lock()
			defer e.tr.mu.Unlock()
			return float64(f(e.tr))
		}
	}
	cs := []prometheus.Collector{m.events, m.requests, m.requestSeconds, m.ackSeconds, m.urlUp, m.halted, m.fetchPaused,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sluice_sink_hec_pending_events",
			Help: "Events consumed and not yet delivered.",
		}, pending(func(t *tracker) int { return t.events })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sluice_sink_hec_pending_bytes",
			Help: "Rendered bytes of the events consumed and not yet delivered.",
		}, pending(func(t *tracker) int { return t.bytes })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sluice_sink_hec_acks_pending",
			Help: "Requests awaiting their indexer acknowledgement.",
		}, func() float64 {
			n := 0
			for _, ch := range e.chans {
				n += ch.ackCount()
			}
			return float64(n)
		}),
	}
	for _, o := range []string{"delivered", "dead_lettered", "resent"} {
		m.events.WithLabelValues(o)
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("registering sink-hec metrics: %w", err)
		}
	}
	return m, nil
}
