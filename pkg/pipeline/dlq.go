package pipeline

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/pkg/avro"
	"github.com/sluicehq/sluice/pkg/event"
	"github.com/sluicehq/sluice/pkg/kafka"
)

// DeadLetter is one rejected input with the reason.
type DeadLetter struct {
	Stage     string // gateway, enricher, sink-file, sink-hec
	Family    event.Family
	Endpoint  string
	SourceKey string
	IP        string
	Index     int // position in its request; -1 when not from a request
	Reason    string
	Field     string
	Message   string
	Topic     string // source topic, for rejections after Kafka
	Partition int32
	Offset    int64 // -1 when not from Kafka
	Raw       []byte
	Time      time.Time
	Key       []byte
}

// DLQ writes dead letters to sluice.dlq, Avro-encoded, and counts them.
type DLQ struct {
	codec    *avro.Codec
	producer *kafka.Producer
	version  string
	total    *prometheus.CounterVec
}

// NewDLQ builds a writer. The serde must have the DLQ subject registered.
func NewDLQ(serde *avro.Serde, producer *kafka.Producer, version string, reg prometheus.Registerer) (*DLQ, error) {
	c, err := serde.Subject(avro.ValueSubject(event.DLQTopic))
	if err != nil {
		return nil, err
	}
	total := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_dlq_records_total",
		Help: "Inputs written to the dead-letter topic, by stage, family and reason.",
	}, []string{"stage", "family", "reason"})
	if err := reg.Register(total); err != nil {
		var are prometheus.AlreadyRegisteredError
		if !errors.As(err, &are) {
			return nil, err
		}
		total = are.ExistingCollector.(*prometheus.CounterVec)
	}
	return &DLQ{codec: c, producer: producer, version: version, total: total}, nil
}

// Record builds the Kafka record for d.
func (q *DLQ) Record(d *DeadLetter) (*kgo.Record, error) {
	if d.Time.IsZero() {
		d.Time = time.Now()
	}
	var index, partition, offset any
	if d.Index >= 0 {
		index = avro.Int(int32(d.Index))
	}
	if d.Offset >= 0 && d.Topic != "" {
		partition = avro.Int(d.Partition)
		offset = avro.Long(d.Offset)
	}
	raw := d.Raw
	if raw == nil {
		raw = []byte{}
	}
	native := map[string]any{
		"id":                uuid.Must(uuid.NewV7()).String(),
		"time":              d.Time,
		"stage":             d.Stage,
		"component_version": q.version,
		"family":            avro.OptString(string(d.Family)),
		"endpoint":          avro.OptString(d.Endpoint),
		"source_key":        avro.OptString(d.SourceKey),
		"ip":                avro.OptString(d.IP),
		"index":             index,
		"reason":            d.Reason,
		"field":             avro.OptString(d.Field),
		"message":           d.Message,
		"topic":             avro.OptString(d.Topic),
		"partition":         partition,
		"offset":            offset,
		"raw":               raw,
	}
	v, err := q.codec.Encode(nil, native)
	if err != nil {
		return nil, fmt.Errorf("encoding dead letter: %w", err)
	}
	return &kgo.Record{
		Topic: event.DLQTopic,
		Key:   d.Key,
		Value: v,
		Headers: []kgo.RecordHeader{
			{Key: event.HeaderFamily, Value: []byte(d.Family)},
			{Key: "sluice-reason", Value: []byte(d.Reason)},
		},
	}, nil
}

// Send writes the dead letters and waits for the broker's ack. It counts
// each in sluice_dlq_records_total once it is acknowledged.
func (q *DLQ) Send(ctx context.Context, dls []*DeadLetter) error {
	if len(dls) == 0 {
		return nil
	}
	recs := make([]*kgo.Record, len(dls))
	for i, d := range dls {
		r, err := q.Record(d)
		if err != nil {
			return err
		}
		recs[i] = r
	}
	errs := q.producer.ProduceAll(ctx, recs)
	var failed []error
	for i, d := range dls {
		if errs != nil && errs[i] != nil {
			failed = append(failed, errs[i])
			continue
		}
		q.total.WithLabelValues(d.Stage, string(d.Family), d.Reason).Inc()
	}
	if len(failed) > 0 {
		return fmt.Errorf("writing %d of %d dead letters: %w", len(failed), len(dls), failed[0])
	}
	return nil
}
