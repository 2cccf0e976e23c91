package sinkfile

import (
	"context"
	"errors"
	"fmt"
	"net/url"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"
	"go.uber.org/zap"

	"github.com/sluicehq/sluice/pkg/avro"
	"github.com/sluicehq/sluice/pkg/event"
	"github.com/sluicehq/sluice/pkg/kafka"
	"github.com/sluicehq/sluice/pkg/pipeline"
	"github.com/sluicehq/sluice/services/sink-file/internal/filewriter"
)

// handler writes the records of one poll. It implements kafka.Handler: it
// returns nil only when every record is either durable in its file or
// acknowledged on the dead-letter topic.
type handler struct {
	serde   *avro.Serde
	writer  filewriter.Writer
	dlq     *pipeline.DLQ
	metrics *metrics
	log     *zap.Logger
}

var _ kafka.Handler = (*handler)(nil)

// Handle implements kafka.Handler.
func (h *handler) Handle(ctx context.Context, recs []*kgo.Record) error {
	lines := make([]filewriter.Line, 0, len(recs))
	var dead []*pipeline.DeadLetter
	for _, r := range recs {
		l, err := h.line(ctx, r)
		switch {
		case err == nil:
			lines = append(lines, l)
		case pipeline.IsPermanent(err):
			dead = append(dead, deadLetter(r, err))
		default:
			return err
		}
	}
	// Dead letters go first: if they fail, nothing has been written and
	// the retried batch is written once.
	if err := h.dlq.Send(ctx, dead); err != nil {
		return fmt.Errorf("sending dead letters: %w", err)
	}
	if len(dead) > 0 {
		d := dead[0]
		h.log.Warn("events dead-lettered", zap.Int("count", len(dead)), zap.String("first_topic", d.Topic),
			zap.Int32("first_partition", d.Partition), zap.Int64("first_offset", d.Offset),
			zap.String("first_message", d.Message))
	}
	if err := h.writer.Append(lines); err != nil {
		return err
	}
	if err := h.writer.Sync(); err != nil {
		return err
	}
	for _, l := range lines {
		h.metrics.events.WithLabelValues(string(l.Family)).Inc()
		h.metrics.bytes.WithLabelValues(string(l.Family)).Add(float64(len(l.Data) + 1))
	}
	return nil
}

// line renders r as a JSON line. A Permanent error means the record goes
// to the dead-letter topic; any other error is transient.
func (h *handler) line(ctx context.Context, r *kgo.Record) (filewriter.Line, error) {
	l := filewriter.Line{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Day: r.Timestamp}
	var ok bool
	if l.Family, ok = event.FamilyOfTopic(r.Topic); !ok {
		return l, pipeline.Permanent(fmt.Errorf("topic %s is not a family's enriched topic", r.Topic))
	}
	native, codec, err := h.serde.Decode(ctx, r.Value)
	if err != nil {
		if transientDecodeError(err) {
			return l, fmt.Errorf("decoding %s/%d@%d: %w", r.Topic, r.Partition, r.Offset, err)
		}
		return l, pipeline.Permanent(err)
	}
	if l.Data, err = codec.AppendJSON(nil, native); err != nil {
		return l, pipeline.Permanent(fmt.Errorf("rendering JSON: %w", err))
	}
	// The day is when the gateway received the event; the record's
	// timestamp stands in for a value that has no envelope.
	if rec, ok := native.(map[string]any); ok {
		if env, ok := rec["envelope"].(map[string]any); ok {
			if t := avro.EnvelopeFromNative(env).ReceivedAt; !t.IsZero() {
				l.Day = t
			}
		}
	}
	return l, nil
}

func deadLetter(r *kgo.Record, err error) *pipeline.DeadLetter {
	d := &pipeline.DeadLetter{
		Stage:     Stage,
		Index:     -1,
		Reason:    event.ReasonUndecodable,
		Message:   err.Error(),
		Topic:     r.Topic,
		Partition: r.Partition,
		Offset:    r.Offset,
		Raw:       r.Value,
		Key:       r.Key,
	}
	d.Family, _ = event.FamilyOfTopic(r.Topic)
	return d
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

// metrics are the sink's own; dead letters are counted by pipeline.DLQ in
// sluice_dlq_records_total{stage="sink-file",family,reason}.
type metrics struct {
	events       *prometheus.CounterVec
	bytes        *prometheus.CounterVec
	fsyncSeconds prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_sink_file_events_total",
			Help: "Events written and fsynced, by family.",
		}, []string{"family"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_sink_file_bytes_total",
			Help: "Bytes written and fsynced, newlines included, by family.",
		}, []string{"family"}),
		fsyncSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sluice_sink_file_fsync_seconds",
			Help:    "Time to fsync one file.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 9), // 0.1ms .. 6.5s
		}),
	}
	for _, f := range event.Families {
		m.events.WithLabelValues(string(f)) // export zeros, not gaps
		m.bytes.WithLabelValues(string(f))
	}
	for _, c := range []prometheus.Collector{m.events, m.bytes, m.fsyncSeconds} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("registering sink-file metrics: %w", err)
		}
	}
	return m, nil
}
