package enricher

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"
	"go.uber.org/zap"

	"github.com/sluicehq/sluice/pkg/avro"
	"github.com/sluicehq/sluice/pkg/event"
	"github.com/sluicehq/sluice/pkg/kafka"
	"github.com/sluicehq/sluice/pkg/pipeline"
	"github.com/sluicehq/sluice/services/enricher/internal/enrich"
)

// handler enriches the records of one poll. It implements kafka.Handler:
// it returns nil only when every record is either produced to its enriched
// topic and acknowledged, or acknowledged on the dead-letter topic.
type handler struct {
	serde    *avro.Serde
	proc     enrich.Processor
	producer *kafka.Producer
	dlq      *pipeline.DLQ
	version  string
	instance string
	now      func() time.Time
	metrics  *metrics
	log      *zap.Logger
}

var _ kafka.Handler = (*handler)(nil)

// Handle implements kafka.Handler.
func (h *handler) Handle(ctx context.Context, recs []*kgo.Record) error {
	t0 := time.Now()
	defer func() { h.metrics.handleSeconds.Observe(time.Since(t0).Seconds()) }()

	out := make([]*kgo.Record, 0, len(recs))
	src := make([]*kgo.Record, 0, len(recs)) // src[i] is the raw record of out[i]
	var dead []*pipeline.DeadLetter
	for _, r := range recs {
		o, err := h.enrich(ctx, r)
		switch {
		case err == nil:
			out = append(out, o)
			src = append(src, r)
		case pipeline.IsPermanent(err):
			dead = append(dead, deadLetter(r, event.ReasonEnrichFailed, err))
		default:
			return err
		}
	}

	errs := h.producer.ProduceAll(ctx, out)
	var retry []error
	for i, o := range out {
		switch err := errAt(errs, i); {
		case err == nil:
			fam, _ := event.FamilyOfTopic(o.Topic)
			h.metrics.enriched.WithLabelValues(string(fam)).Inc()
		case errors.Is(err, kerr.MessageTooLarge):
			// The enrichment made the record too large to produce; no
			// retry can fix that.
			dead = append(dead, deadLetter(src[i], event.ReasonEventTooLarge, err))
		default:
			retry = append(retry, err)
		}
	}
	if len(retry) > 0 {
		return fmt.Errorf("producing %d of %d enriched records: %w", len(retry), len(out), retry[0])
	}
	if err := h.dlq.Send(ctx, dead); err != nil {
		return fmt.Errorf("sending dead letters: %w", err)
	}
	if len(dead) > 0 {
		d := dead[0]
		h.log.Warn("events dead-lettered", zap.Int("count", len(dead)), zap.String("first_topic", d.Topic),
			zap.Int32("first_partition", d.Partition), zap.Int64("first_offset", d.Offset),
			zap.String("first_reason", d.Reason), zap.String("first_message", d.Message))
	}
	return nil
}

// enrich turns one raw record into its enriched record. A Permanent error
// means the record goes to the dead-letter topic; any other error is
// transient.
func (h *handler) enrich(ctx context.Context, r *kgo.Record) (*kgo.Record, error) {
	fam, ok := event.FamilyOfTopic(r.Topic)
	if !ok {
		return nil, pipeline.Permanent(event.Reject(event.ReasonEnrichFailed, "", "topic %s is not a family's raw topic", r.Topic))
	}
	native, _, err := h.serde.Decode(ctx, r.Value)
	if err != nil {
		if transientDecodeError(err) {
			return nil, fmt.Errorf("decoding %s/%d@%d: %w", r.Topic, r.Partition, r.Offset, err)
		}
		return nil, pipeline.Permanent(event.Reject(event.ReasonUndecodable, "", "%v", err))
	}
	rec, ok := native.(map[string]any)
	if !ok {
		return nil, pipeline.Permanent(event.Reject(event.ReasonUndecodable, "", "value is a %T, not a record", native))
	}
	enrich.Stamp(rec, enrich.Provenance{
		EnrichedAt: h.now(),
		Version:    h.version,
		Instance:   h.instance,
		Topic:      r.Topic,
		Partition:  r.Partition,
		Offset:     r.Offset,
	})
	rec, err = h.proc.Process(ctx, fam, rec)
	if err != nil {
		return nil, fmt.Errorf("enriching: %w", err)
	}
	topic := event.EnrichedTopic(fam)
	value, err := h.serde.Encode(avro.ValueSubject(topic), rec)
	if err != nil {
		// The subjects were checked in New, so this is the record.
		return nil, pipeline.Permanent(fmt.Errorf("encoding enriched record: %w", err))
	}
	return &kgo.Record{Topic: topic, Key: r.Key, Value: value, Headers: r.Headers}, nil
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

func errAt(errs []error, i int) error {
	if errs == nil {
		return nil
	}
	return errs[i]
}

// transientDecodeError reports whether a Serde.Decode error may pass on a
// retry: the registry could not be reached or answered with a server error
// while the schema of an unseen id was fetched. Everything else (not the
// wire format, unknown id, bytes that do not match the schema) is the
// record's fault.
func transientDecodeError(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return true
	}
	var re *sr.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode >= 500 || re.StatusCode == 429
	}
	return false
}

// metrics are the enricher's own; dead letters are counted by
// pipeline.DLQ in sluice_dlq_records_total{stage="enricher",family,reason}.
type metrics struct {
	enriched      *prometheus.CounterVec
	handleSeconds prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		enriched: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_enricher_events_total",
			Help: "Events enriched and acknowledged on their enriched topic, by family.",
		}, []string{"family"}),
		handleSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sluice_enricher_handle_seconds",
			Help:    "Time to handle one polled batch: decode, enrich, produce and wait for the acks.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 8), // 1ms .. 16s
		}),
	}
	for _, f := range event.Families {
		m.enriched.WithLabelValues(string(f)) // export zeros, not gaps
	}
	for _, c := range []prometheus.Collector{m.enriched, m.handleSeconds} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("registering enricher metrics: %w", err)
		}
	}
	return m, nil
}
