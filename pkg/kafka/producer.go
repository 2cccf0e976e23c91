package kafka

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kzap"
	"go.uber.org/zap"
)

// Producer is an idempotent, acks=all producer with a bounded buffer.
type Producer struct {
	cl  *kgo.Client
	log *zap.Logger
}

// NewProducer connects a producer. extra options are appended last.
func NewProducer(cfg Config, log *zap.Logger, extra ...kgo.Opt) (*Producer, error) {
	opts, err := cfg.clientOpts()
	if err != nil {
		return nil, err
	}
	opts = append(opts,
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(cfg.Linger),
		cfg.producerCompression(),
		kgo.MaxBufferedBytes(cfg.MaxBufferedBytes),
		kgo.MaxBufferedRecords(cfg.MaxBufferedRecords),
		kgo.RecordDeliveryTimeout(cfg.DeliveryTimeout),
		kgo.ProducerBatchMaxBytes(cfg.MaxMessageBytes),
		kgo.WithLogger(kzap.New(log.Named("kgo"), kzap.Level(kgo.LogLevelWarn))),
	)
	opts = append(opts, extra...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("creating kafka producer: %w", err)
	}
	return &Producer{cl: cl, log: log}, nil
}

// Client returns the underlying franz-go client.
func (p *Producer) Client() *kgo.Client { return p.cl }

// ProduceAll produces recs and waits for every broker ack, or for ctx to
// end. errs[i] is the outcome of recs[i]; the slice is nil when every record
// was acknowledged.
//
// When ctx ends first, the records still unanswered fail with ctx's error.
// franz-go cannot fail a record of an idempotent producer once its request
// was sent and got no answer (a broker died mid-request), so without this a
// caller would wait until the broker came back. Such a record is reported
// as not stored, though it may still be written later: at least once.
// franz-go then still holds it, so the caller must not reuse its memory:
// see ProduceAllThen.
func (p *Producer) ProduceAll(ctx context.Context, recs []*kgo.Record) []error {
	return p.ProduceAllThen(ctx, recs, nil)
}

// ProduceAllThen is ProduceAll, and calls done (when not nil) once every
// record's promise has run: franz-go then holds none of recs, and the
// caller may reuse their memory. done runs exactly once. Unless ctx ended
// first, it has run by the time ProduceAllThen returns (with no records, at
// once); otherwise it runs later, on another goroutine, when franz-go has
// answered the rest.
func (p *Producer) ProduceAllThen(ctx context.Context, recs []*kgo.Record, done func()) []error {
	if len(recs) == 0 {
		if done != nil {
			done()
		}
		return nil
	}
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		errs     = make([]error, len(recs))
		answered = make([]bool, len(recs))
		failed   bool
	)
	wg.Add(len(recs))
	for i, r := range recs {
		p.cl.Produce(ctx, r, func(_ *kgo.Record, err error) {
			mu.Lock()
			errs[i], answered[i] = err, true
			failed = failed || err != nil
			mu.Unlock()
			wg.Done()
		})
	}
	all := make(chan struct{})
	go func() {
		wg.Wait()
		// franz-go reads a record no more once its promise has run.
		if done != nil {
			done()
		}
		close(all)
	}()
	select {
	case <-all:
	case <-ctx.Done():
	}
	mu.Lock()
	defer mu.Unlock()
	out := slices.Clone(errs) // late promises write to errs, not to what is returned
	for i := range out {
		if !answered[i] {
			out[i] = fmt.Errorf("no answer from kafka: %w", context.Cause(ctx))
			failed = true
		}
	}
	if !failed {
		return nil
	}
	return out
}

// Ping checks that a broker answers.
func (p *Producer) Ping(ctx context.Context) error { return p.cl.Ping(ctx) }

// Close flushes buffered records within ctx and closes the client.
func (p *Producer) Close(ctx context.Context) error {
	err := p.cl.Flush(ctx)
	p.cl.Close()
	if err != nil {
		return fmt.Errorf("flushing producer: %w", err)
	}
	return nil
}
