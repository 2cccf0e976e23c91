package enricher

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/sluicehq/sluice/pkg/avro"
	"github.com/sluicehq/sluice/pkg/event"
	"github.com/sluicehq/sluice/pkg/pipeline"
	"github.com/sluicehq/sluice/services/enricher/internal/enrich"
	"github.com/sluicehq/sluice/services/enricher/internal/privacy"
	"github.com/sluicehq/sluice/services/enricher/internal/project"
	"github.com/sluicehq/sluice/services/enricher/internal/resolve"
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
	// tooLarge holds raw records whose enriched record the broker refused
	// as too large; their retry dead-letters them.
	tooLarge map[recordID]bool
	// policies are the families' privacy policies (nil: none, as with the
	// test seam).
	policies map[event.Family]*privacy.Policy
	// project enables the fast path's partial decoding (resolve.Reads): the
	// production chain only reads, so the rest of the record need not be
	// decoded. Off for the test seam, whose processor may change anything.
	project  bool
	programs map[int]*project.Program // by writer schema id
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
	topic := event.EnrichedTopic(fam)
	enc, err := h.serde.Subject(avro.ValueSubject(topic))
	if err != nil {
		return nil, fam, pipeline.Permanent(err)
	}
	pol := h.policies[fam]
	// The fast path copies the raw bytes and appends the enrichment: the
	// record is written with the enriched subject's schema, its enrichment
	// is null and the privacy policy changes nothing in it. Then only the
	// fields the enrichment reads need decoding (when the chain is the
	// production one, which only reads).
	keep := pol == nil || !pol.Changes()
	var rec map[string]any
	partial := false
	if keep && h.project {
		rec = h.decodeProjected(ctx, r.Value, enc.ID, fam)
		partial = rec != nil
	}
	fast := partial
	if rec == nil {
		native, codec, err := h.serde.Decode(ctx, r.Value)
		if err != nil {
			if avro.IsTransient(err) {
				return nil, fam, fmt.Errorf("decoding %s/%d@%d: %w", r.Topic, r.Partition, r.Offset, err)
			}
			return nil, fam, pipeline.Permanent(event.Reject(event.ReasonUndecodable, "", "%v", err))
		}
		var ok bool
		if rec, ok = native.(map[string]any); !ok {
			return nil, fam, pipeline.Permanent(event.Reject(event.ReasonUndecodable, "", "value is a %T, not a record", native))
		}
		fast = keep && codec.ID == enc.ID && rec["enrichment"] == nil
	}
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
	var value []byte
	if fast && !e.Modified {
		if pol != nil {
			e.Enr.Privacy = &enrich.Privacy{IP: privacy.IPKeep}
		}
		value, err = appendEnrichment(enc.ID, r.Value, e.Enr)
		if err != nil {
			return nil, fam, pipeline.Permanent(fmt.Errorf("encoding enrichment: %w", err))
		}
	} else {
		if partial {
			// Only the test seam changes records, and it never decodes
			// partially; a partial record must never be encoded.
			return nil, fam, pipeline.Permanent(errors.New("a partially decoded record was changed"))
		}
		enr := e.SetNative()
		if pol != nil {
			// Last, so nothing it removes reaches the enriched topic, and
			// over the enrichment too, whose copies it must reach.
			enr["privacy"] = pol.Apply(e.Native)
		}
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

// decodeProjected decodes the fields the enrichment reads, when the record
// can take the fast path: written with the enriched subject's schema (id)
// and with a null enrichment. It returns nil otherwise, and on any doubt
// (the full decode then decides).
func (h *handler) decodeProjected(ctx context.Context, value []byte, id int, fam event.Family) map[string]any {
	wid, body, err := avro.SplitWire(value)
	if err != nil || wid != id {
		return nil
	}
	p := h.programs[id]
	if p == nil {
		c, err := h.serde.Codec(ctx, id)
		if err != nil {
			return nil
		}
		if p, err = project.Compile(c.Schema); err != nil {
			h.log.Warn("compiling a projection; decoding whole records", zap.Int("schema_id", id), zap.Error(err))
			return nil
		}
		h.programs[id] = p
	}
	rec, err := p.DecodeLoose(body, resolve.Reads[fam])
	if err != nil || rec["enrichment"] != nil {
		return nil
	}
	return rec
}

// appendEnrichment builds the enriched value from the raw one: the raw
// record's schema is the enriched subject's and its enrichment (the last
// field) is null, a single 0x00 byte, so the enriched record is the raw
// body without that byte, the union branch 1 (0x02) and the enrichment.
func appendEnrichment(id int, raw []byte, enr *enrich.Enrichment) ([]byte, error) {
	_, body, err := avro.SplitWire(raw)
	if err != nil || len(body) == 0 || body[len(body)-1] != 0 {
		return nil, errors.New("raw record does not end with a null enrichment")
	}
	out := make([]byte, 0, len(raw)+384)
	out = append(out, 0, byte(id>>24), byte(id>>16), byte(id>>8), byte(id))
	out = append(out, body[:len(body)-1]...)
	out = append(out, 2)
	return enr.AppendBinary(out), nil
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
