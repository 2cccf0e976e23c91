package sinkhec

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/sluicehq/sluice/pkg/app"
	"github.com/sluicehq/sluice/pkg/avro"
	"github.com/sluicehq/sluice/pkg/event"
	"github.com/sluicehq/sluice/pkg/kafka"
	"github.com/sluicehq/sluice/pkg/pipeline"
	"github.com/sluicehq/sluice/pkg/telemetry"
)

// Version is the component version on the sink's dead letters. Release
// builds set it with
// -ldflags "-X github.com/sluicehq/sluice/services/sink-hec.Version=v1.2.3".
var Version = "dev"

// Stage names the HEC sink in dead letters.
const Stage = "sink-hec"

// Deps are what the HEC sink is given rather than builds.
type Deps struct {
	Log     *zap.Logger           // nil: no logs
	Metrics prometheus.Registerer // nil: metrics are kept but not exported
	Ready   *telemetry.Readiness  // nil: no readiness check ("sink-hec": not halted)
	Serde   *avro.Serde           // required, with the dead-letter schema registered
}

// hooks are test seams where a crash matters; the conformance tests kill
// the process there. Nil hooks do nothing.
type hooks struct {
	afterSend    func() // a batch has its ackId; not acknowledged, not committed
	afterDeliver func() // a batch is delivered (acknowledged); its offsets are not yet committed
}

// Service is the HEC sink: a group consumer over every enriched topic
// (read_committed) that sends events in batches to Splunk HEC and commits
// an offset only once every event below it is delivered — acknowledged by
// the indexers when ack is on, answered 2xx otherwise, or dead-lettered.
//
// Delivery is at least once. An event is sent again only when its outcome
// is unknown: no acknowledgement within ack_timeout, a request that failed
// in flight, or a restart before its offset was committed; the indexed
// fields kafka.topic, kafka.partition and kafka.offset let searches remove
// such duplicates.
type Service struct {
	cfg      Config
	log      *zap.Logger
	producer *kafka.Producer // dead letters only
	engine   *engine
	handler  *handler

	consumer *kafka.Consumer // set by Start
	stopOnce sync.Once
	stopErr  error
}

var (
	_ app.Component = (*Service)(nil)
	_ app.Failer    = (*Service)(nil)
)

// New builds the HEC sink. It connects nothing until Start.
func New(cfg Config, deps Deps) (*Service, error) {
	return newService(cfg, deps, hooks{})
}

func newService(cfg Config, deps Deps, hk hooks) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Serde == nil {
		return nil, errors.New("sink-hec: a Serde is required")
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
	tlsCfg, err := tlsConfig(cfg)
	if err != nil {
		return nil, err
	}
	e := &engine{cfg: cfg, log: log, hooks: hk, tr: newTracker(), q: newQueue(), topics: enrichedTopics()}
	e.bat = &batcher{maxEvents: cfg.BatchEvents, maxBytes: cfg.BatchBytes, timeout: cfg.BatchTimeout, q: e.q}
	m, err := newMetrics(reg, e)
	if err != nil {
		return nil, err
	}
	e.m = m
	for _, u := range cfg.URLs {
		ep := newEndpoint(u, cfg.RetryInitial, cfg.RetryMax, nil)
		up := m.urlUp.WithLabelValues(ep.base)
		up.Set(1)
		ep.onHealth = func(ok bool) {
			if ok {
				up.Set(1)
			} else {
				up.Set(0)
			}
		}
		e.eps = append(e.eps, ep)
		for i := 0; i < cfg.ChannelsPerURL; i++ {
			e.chans = append(e.chans, newChannel(ep, cfg.Token.Value(), cfg.Gzip, tlsCfg))
		}
	}
	// Interleave channels across URLs so that senders start balanced.
	e.chans = interleave(e.chans, len(cfg.URLs))
	producer, err := kafka.NewProducer(cfg.Kafka, log)
	if err != nil {
		return nil, err
	}
	dlq, err := pipeline.NewDLQ(deps.Serde, producer, Version, reg)
	if err != nil {
		_ = producer.Close(context.Background())
		return nil, fmt.Errorf("building dead-letter writer: %w", err)
	}
	e.dlq = dlq
	h := &handler{cfg: cfg, serde: deps.Serde, fmt: newFormatter(cfg), dlq: dlq, e: e, log: log, m: m}
	if deps.Ready != nil {
		deps.Ready.Add(Stage, e.err)
	}
	return &Service{cfg: cfg, log: log, producer: producer, engine: e, handler: h}, nil
}

func interleave(chans []*channel, urls int) []*channel {
	per := len(chans) / urls
	out := make([]*channel, 0, len(chans))
	for i := 0; i < per; i++ {
		for u := 0; u < urls; u++ {
			out = append(out, chans[u*per+i])
		}
	}
	return out
}

func enrichedTopics() []string {
	topics := make([]string, len(event.Families))
	for i, f := range event.Families {
		topics[i] = event.EnrichedTopic(f)
	}
	return topics
}

// Name implements app.Component.
func (s *Service) Name() string { return Stage }

// Start creates the topics it reads and writes (when kafka.create_topics is
// set), starts the senders, checks the token, and joins the consumer group.
func (s *Service) Start(ctx context.Context) error {
	topics := enrichedTopics()
	if s.cfg.Kafka.CreateTopics {
		tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := kafka.EnsureTopics(tctx, s.cfg.Kafka, nil, append(topics, event.DLQTopic)...)
		cancel()
		if err != nil {
			return err
		}
	}
	e := s.engine
	c, err := kafka.NewConsumer(s.cfg.Kafka, kafka.GroupConfig{
		Group:          s.cfg.Group,
		Topics:         topics,
		MaxPollRecords: s.cfg.MaxPollRecords,
		ReadCommitted:  true,
		ManualCommit:   true,
	}, s.handler, s.log,
		kgo.OnPartitionsAssigned(e.assigned),
		kgo.OnPartitionsRevoked(e.revoked),
		kgo.OnPartitionsLost(e.lost),
	)
	if err != nil {
		return err
	}
	s.consumer = c
	e.consumer = c
	e.start()
	if err := c.Start(ctx); err != nil {
		return err
	}
	s.log.Info("sending to HEC", zap.String("group", s.cfg.Group), zap.Strings("urls", s.cfg.URLs),
		zap.Bool("ack", s.cfg.Ack), zap.Int("channels", len(e.chans)))
	return nil
}

func (e *engine) assigned(_ context.Context, _ *kgo.Client, m map[string][]int32) {
	if len(m) > 0 {
		e.log.Info("partitions assigned", zap.Any("partitions", m))
	}
}

// revoked delivers what it can of the partitions taken away (up to
// drain_timeout), commits them and forgets them.
func (e *engine) revoked(ctx context.Context, _ *kgo.Client, m map[string][]int32) {
	if len(m) == 0 {
		return
	}
	e.log.Info("partitions revoked; draining them", zap.Any("partitions", m))
	e.drain(m)
	e.commit(ctx, m)
	e.tr.mu.Lock()
	e.tr.drop(m)
	e.updateFetchLocked()
	e.tr.mu.Unlock()
}

// lost forgets partitions lost without a clean revoke.
func (e *engine) lost(_ context.Context, _ *kgo.Client, m map[string][]int32) {
	e.log.Warn("partitions lost; their next owner sends their undelivered events", zap.Any("partitions", m))
	e.tr.mu.Lock()
	e.tr.drop(m)
	e.updateFetchLocked()
	e.tr.mu.Unlock()
}

// Failed implements app.Failer; it is valid after Start.
func (s *Service) Failed() <-chan error {
	if s.consumer == nil {
		return nil
	}
	return s.consumer.Failed()
}

// Stop stops polling, waits (by ctx's deadline) for the events in flight
// to be delivered, commits them as the group is left, and stops the
// senders and the dead-letter producer. It is safe to call more than once
// and without Start.
func (s *Service) Stop(ctx context.Context) error {
	s.stopOnce.Do(func() {
		var errs []error
		if dl, ok := ctx.Deadline(); ok {
			by := dl.Add(-time.Until(dl) / 4) // leave a quarter to stop the rest
			s.engine.stopBy.Store(&by)
		}
		if s.consumer != nil {
			errs = append(errs, s.consumer.Stop(ctx))
		}
		errs = append(errs, s.engine.stop(ctx), s.producer.Close(ctx))
		s.stopErr = errors.Join(errs...)
	})
	return s.stopErr
}
