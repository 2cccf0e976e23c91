package enricher

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/sluicehq/sluice/pkg/app"
	"github.com/sluicehq/sluice/pkg/avro"
	"github.com/sluicehq/sluice/pkg/event"
	"github.com/sluicehq/sluice/pkg/kafka"
	"github.com/sluicehq/sluice/pkg/pipeline"
	"github.com/sluicehq/sluice/pkg/telemetry"
	"github.com/sluicehq/sluice/services/enricher/internal/enrich"
)

// Version is stamped on every enriched event (enricher_version) and on its
// dead letters. Release builds set it with
// -ldflags "-X github.com/sluicehq/sluice/services/enricher.Version=v1.2.3".
var Version = "dev"

// Stage names the enricher in dead letters.
const Stage = "enricher"

// Deps are what the enricher is given rather than builds.
type Deps struct {
	Log     *zap.Logger           // nil: no logs
	Metrics prometheus.Registerer // nil: metrics are kept but not exported
	Ready   *telemetry.Readiness  // nil: no readiness check ("enricher": consuming)
	Serde   *avro.Serde           // required, with every Sluice schema registered
}

// Service is the enricher: a group consumer over every raw topic whose
// handler decodes, enriches, produces to the enriched topic and waits for the
// acks, so that offsets are committed only for events that are enriched or
// dead-lettered.
//
// Delivery is at least once: a crash or a retried batch produces some events
// again. Exactly-once (consume-transform-produce in Kafka transactions) is a
// later step.
type Service struct {
	cfg      Config
	log      *zap.Logger
	producer *kafka.Producer
	handler  *handler

	consumer *kafka.Consumer // set by Start
	running  atomic.Bool
	stopOnce sync.Once
	stopErr  error
}

var (
	_ app.Component = (*Service)(nil)
	_ app.Failer    = (*Service)(nil)
)

// New builds the enricher. It connects nothing until Start.
func New(cfg Config, deps Deps) (*Service, error) {
	return newService(cfg, deps, enrich.Chain{})
}

// newService builds the enricher around proc, the test seam.
func newService(cfg Config, deps Deps, proc enrich.Processor) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Serde == nil {
		return nil, errors.New("enricher: a Serde is required")
	}
	for _, f := range event.Families {
		if _, err := deps.Serde.Subject(avro.ValueSubject(event.EnrichedTopic(f))); err != nil {
			return nil, fmt.Errorf("enricher: %w", err)
		}
	}
	log := deps.Log
	if log == nil {
		log = zap.NewNop()
	}
	log = log.With(zap.String("component", Stage))
	reg := deps.Metrics
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	instance := cfg.Instance
	if instance == "" {
		host, err := os.Hostname()
		if err != nil {
			host = "unknown"
		}
		instance = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	producer, err := kafka.NewProducer(cfg.Kafka, log)
	if err != nil {
		return nil, err
	}
	dlq, err := pipeline.NewDLQ(deps.Serde, producer, Version, reg)
	if err != nil {
		_ = producer.Close(context.Background())
		return nil, fmt.Errorf("building dead-letter writer: %w", err)
	}
	s := &Service{
		cfg:      cfg,
		log:      log,
		producer: producer,
		handler: &handler{
			serde:    deps.Serde,
			proc:     proc,
			producer: producer,
			dlq:      dlq,
			version:  Version,
			instance: instance,
			now:      time.Now,
			metrics:  m,
			log:      log,
		},
	}
	if deps.Ready != nil {
		deps.Ready.Add(Stage, func() error {
			if !s.running.Load() {
				return errors.New("not consuming")
			}
			return nil
		})
	}
	return s, nil
}

// Name implements app.Component.
func (s *Service) Name() string { return Stage }

// Start creates the topics it reads and writes (when kafka.create_topics is
// set), joins the consumer group and begins enriching in the background.
func (s *Service) Start(ctx context.Context) error {
	raw := make([]string, len(event.Families))
	all := []string{event.DLQTopic}
	for i, f := range event.Families {
		raw[i] = event.RawTopic(f)
		all = append(all, event.RawTopic(f), event.EnrichedTopic(f))
	}
	if s.cfg.Kafka.CreateTopics {
		tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := kafka.EnsureTopics(tctx, s.cfg.Kafka, nil, all...)
		cancel()
		if err != nil {
			return err
		}
	}
	// Created here rather than in New: a franz-go group client joins its
	// group as soon as it exists.
	c, err := kafka.NewConsumer(s.cfg.Kafka, kafka.GroupConfig{
		Group:          s.cfg.Group,
		Topics:         raw,
		MaxPollRecords: s.cfg.MaxPollRecords,
	}, s.handler, s.log)
	if err != nil {
		return err
	}
	s.consumer = c
	if err := c.Start(ctx); err != nil {
		return err
	}
	s.running.Store(true)
	s.log.Info("enriching", zap.String("group", s.cfg.Group), zap.String("instance", s.handler.instance))
	return nil
}

// Failed implements app.Failer; it is valid after Start.
func (s *Service) Failed() <-chan error {
	if s.consumer == nil {
		return nil
	}
	return s.consumer.Failed()
}

// Stop stops polling, lets the batch in hand finish and commit, leaves the
// group and flushes the producer, all by ctx's deadline. It is safe to call
// more than once and without Start.
func (s *Service) Stop(ctx context.Context) error {
	s.stopOnce.Do(func() {
		s.running.Store(false)
		var errs []error
		if s.consumer != nil {
			errs = append(errs, s.consumer.Stop(ctx))
		}
		errs = append(errs, s.producer.Close(ctx))
		s.stopErr = errors.Join(errs...)
	})
	return s.stopErr
}
