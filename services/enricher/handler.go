package enricher

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/linkedin/goavro/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/sluicehq/sluice/pkg/avro"
	"github.com/sluicehq/sluice/pkg/event"
	"github.com/sluicehq/sluice/pkg/pipeline"
	"github.com/sluicehq/sluice/schemas"
	"github.com/sluicehq/sluice/services/enricher/internal/enrich"
)

// handler turns the raw records of one poll into enriched records and dead
// letters. It produces nothing itself: the transaction loop produces its
// output, with the state changes, in one transaction.
type handler struct {
	serde    *avro.Serde
	proc     enrich.Processor
	dlq      *pipeline.DLQ // builds dead-letter records; produced by the loop
	version  string
	instance string
	metrics  *metrics
	log      *zap.Logger
	// maxRecordBytes is the largest enriched record produced; larger ones
	// are dead-lettered (event_too_large) before they could fail, and so
	// abort, a whole transaction.
	maxRecordBytes int
	// enrichment encodes a sluice.Enrichment record alone: an unmodified
	// raw record whose schema is the enriched subject's is copied and the
	// enrichment appended, instead of re-encoding the whole record.
	enrichment *goavro.Codec
	// tooLarge holds raw records whose enriched record the broker refused
	// as too large; their retry dead-letters them.
	tooLarge map[recordID]bool
}

type recordID struct {
	topic     string
	partition int32
	offset    int64
}

// output is what one poll's records became.
type output struct {
	records  []*kgo.Record // enriched, in raw order; Partition is the raw partition
	families []event.Family
	sources  []*kgo.Record // sources[i] is the raw record of records[i]
	dead     []*pipeline.DeadLetter
}

func newEnrichmentCodec() (*goavro.Codec, error) {
	text, err := schemas.Latest("enrichment")
	if err != nil {
		return nil, err
	}
	c, err := goavro.NewCodec(text)
	if err != nil {
		return nil, fmt.Errorf("compiling the enrichment schema: %w", err)
	}
	return c, nil
}

// transform enriches recs. A transient error means the whole batch must be
// retried; a record that can never be enriched becomes a dead letter.
func (h *handler) transform(ctx context.Context, recs []*kgo.Record, now time.Time) (*output, error) {
	out := &output{
		records:  make([]*kgo.Record, 0, len(recs)),
		families: make([]event.Family, 0, len(recs)),
		sources:  make([]*kgo.Record, 0, len(recs)),
	}
	for _, r := range recs {
		o, fam, err := h.enrich(ctx, r, now)
		switch {
		case err == nil:
			out.records = append(out.records, o)
			out.families = append(out.families, fam)
			out.sources = append(out.sources, r)
		case pipeline.IsPermanent(err):
			out.dead = append(out.dead, deadLetter(r, event.ReasonEnrichFailed, err))
		default:
			return nil, err
		}
	}
	return out, nil
}

// enrich turns one raw record into its enriched record. A Permanent error
// means the record goes to the dead-letter topic; any other error is
// transient.
func (h *handler) enrich(ctx context.Context, r *kgo.Record, now time.Time) (*kgo.Record, event.Family, error) {
	fam, ok := event.FamilyOfTopic(r.Topic)
	if !ok {
		return nil, "", pipeline.Permanent(event.Reject(event.ReasonEnrichFailed, "", "topic %s is not a family's raw topic", r.Topic))
	}
	if h.tooLarge[recordID{r.Topic, r.Partition, r.Offset}] {
		return nil, fam, pipeline.Permanent(event.Reject(event.ReasonEventTooLarge, "", "the broker refused the enriched record as too large"))
	}
	native, codec, err := h.serde.Decode(ctx, r.Value)
	if err != nil {
		if avro.IsTransient(err) {
			return nil, fam, fmt.Errorf("decoding %s/%d@%d: %w", r.Topic, r.Partition, r.Offset, err)
		}
		return nil, fam, pipeline.Permanent(event.Reject(event.ReasonUndecodable, "", "%v", err))
	}
	rec, ok := native.(map[string]any)
	if !ok {
		return nil, fam, pipeline.Permanent(event.Reject(event.ReasonUndecodable, "", "value is a %T, not a record", native))
	}
	rawEnrichmentNull := rec["enrichment"] == nil
	e := &enrich.Event{Family: fam, Key: string(r.Key), Partition: r.Partition, Offset: r.Offset, Now: now, Native: rec}
	enrich.Stamp(e, enrich.Provenance{
		EnrichedAt: now,
		Version:    h.version,
		Instance:   h.instance,
		Topic:      r.Topic,
		Partition:  r.Partition,
		Offset:     r.Offset,
	})
	if err := h.proc.Process(ctx, e); err != nil {
		return nil, fam, fmt.Errorf("enriching: %w", err)
	}
	topic := event.EnrichedTopic(fam)
	enc, err := h.serde.Subject(avro.ValueSubject(topic))
	if err != nil {
		return nil, fam, pipeline.Permanent(err)
	}
	var value []byte
	if !e.Modified && rawEnrichmentNull && codec.ID == enc.ID && h.enrichment != nil {
		value, err = h.appendEnrichment(enc.ID, r.Value, e.Out)
		if err != nil {
			return nil, fam, pipeline.Permanent(fmt.Errorf("encoding enrichment: %w", err))
		}
	} else {
		value, err = enc.Encode(nil, e.Native)
		if err != nil {
			return nil, fam, pipeline.Permanent(fmt.Errorf("encoding enriched record: %w", err))
		}
	}
	size := len(value) + len(r.Key)
	for _, hd := range r.Headers {
		size += len(hd.Key) + len(hd.Value)
	}
	if h.maxRecordBytes > 0 && size > h.maxRecordBytes {
		return nil, fam, pipeline.Permanent(event.Reject(event.ReasonEventTooLarge, "",
			"enriched record of %d bytes exceeds the %d-byte limit", size, h.maxRecordBytes))
	}
	return &kgo.Record{Topic: topic, Key: r.Key, Value: value, Headers: r.Headers, Partition: r.Partition}, fam, nil
}

// appendEnrichment builds the enriched value from the raw one: the raw
// record's schema is the enriched subject's and its enrichment (the last
// field) is null, a single 0x00 byte, so the enriched record is the raw
// body without that byte, the union branch 1 (0x02) and the enrichment.
func (h *handler) appendEnrichment(id int, raw []byte, enr map[string]any) ([]byte, error) {
	_, body, err := avro.SplitWire(raw)
	if err != nil || len(body) == 0 || body[len(body)-1] != 0 {
		return nil, errors.New("raw record does not end with a null enrichment")
	}
	out := make([]byte, 0, len(raw)+512)
	out = append(out, 0, byte(id>>24), byte(id>>16), byte(id>>8), byte(id))
	out = append(out, body[:len(body)-1]...)
	out = append(out, 2)
	return h.enrichment.BinaryFromNative(out, enr)
}

// deadLetter describes r for the dead-letter topic. The reason is the code
// of an *event.Rejection in err, else fallback.
func deadLetter(r *kgo.Record, fallback string, err error) *pipeline.DeadLetter {
	d := &pipeline.DeadLetter{
		Stage:     Stage,
		Index:     -1,
		Reason:    fallback,
		Message:   err.Error(),
		Topic:     r.Topic,
		Partition: r.Partition,
		Offset:    r.Offset,
		Raw:       r.Value,
		Key:       r.Key,
	}
	d.Family, _ = event.FamilyOfTopic(r.Topic)
	var rej *event.Rejection
	if errors.As(err, &rej) {
		d.Reason, d.Field, d.Message = rej.Code, rej.Field, rej.Message
	}
	return d
}

// metrics are the enricher's own; dead letters are counted in the shared
// sluice_dlq_records_total{stage="enricher",family,reason} once their
// transaction commits.
type metrics struct {
	enriched      *prometheus.CounterVec
	handleSeconds prometheus.Histogram
	transactions  *prometheus.CounterVec
	restoreSecs   prometheus.Histogram
	stateKeys     prometheus.Gauge
	stateEvicted  *prometheus.CounterVec
	dlq           *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		enriched: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_enricher_events_total",
			Help: "Events enriched and committed to their enriched topic, by family.",
		}, []string{"family"}),
		handleSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sluice_enricher_handle_seconds",
			Help:    "Time to handle one polled batch: restore, decode, enrich, encode, produce and end the transaction.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 8), // 1ms .. 16s
		}),
		transactions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_enricher_transactions_total",
			Help: "Transactions ended, by outcome (committed, aborted).",
		}, []string{"outcome"}),
		restoreSecs: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sluice_enricher_state_restore_seconds",
			Help:    "Time to restore the state of newly assigned partitions from the changelog.",
			Buckets: prometheus.ExponentialBuckets(0.01, 4, 7), // 10ms .. 41s
		}),
		stateKeys: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sluice_enricher_state_keys",
			Help: "Entries of keyed state held by this instance.",
		}),
		stateEvicted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_enricher_state_evicted_total",
			Help: "State entries evicted, by bound (age, count).",
		}, []string{"bound"}),
	}
	for _, f := range event.Families {
		m.enriched.WithLabelValues(string(f)) // export zeros, not gaps
	}
	for _, o := range []string{"committed", "aborted"} {
		m.transactions.WithLabelValues(o)
	}
	for _, c := range []prometheus.Collector{m.enriched, m.handleSeconds, m.transactions, m.restoreSecs, m.stateKeys, m.stateEvicted} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("registering enricher metrics: %w", err)
		}
	}
	// The dead-letter counter is shared with pipeline.DLQ, which registers
	// it; this is the same collector.
	dlq := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_dlq_records_total",
		Help: "Inputs written to the dead-letter topic, by stage, family and reason.",
	}, []string{"stage", "family", "reason"})
	if err := reg.Register(dlq); err != nil {
		var are prometheus.AlreadyRegisteredError
		if !errors.As(err, &are) {
			return nil, err
		}
		dlq = are.ExistingCollector.(*prometheus.CounterVec)
	}
	m.dlq = dlq
	return m, nil
}
