package sinkfile

import (
	"context"
	"errors"
	"fmt"
	"os"
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
	"github.com/sluicehq/sluice/services/sink-file/internal/filewriter"
)

// Version is the component version on the sink's dead letters. Release
// builds set it with
// -ldflags "-X github.com/sluicehq/sluice/services/sink-file.Version=v1.2.3".
var Version = "dev"

// Stage names the file sink in dead letters.
const Stage = "sink-file"

// Deps are what the file sink is given rather than builds.
type Deps struct {
	Log     *zap.Logger           // nil: no logs
	Metrics prometheus.Registerer // nil: metrics are kept but not exported
	Ready   *telemetry.Readiness  // nil: no readiness check ("sink-file": dir writable)
	Serde   *avro.Serde           // required, with the dead-letter schema registered
}

// Service is the file sink: a group consumer over every enriched topic
// (read_committed) that writes each partition's events to temporary files
// and publishes them — fsync, rename to a name carrying the offsets, fsync
// the folder — before it commits those offsets.
//
// Output holds every event exactly once, whatever the crash: on start and
// after every rebalance a partition resumes after the highest last offset
// in its file names when that is past the committed offset, and leftover
// temporary files are removed (see package filewriter). A full or
// unwritable disk pauses consuming until a probe write succeeds.
type Service struct {
	cfg      Config
	log      *zap.Logger
	producer *kafka.Producer // dead letters only
	writer   *filewriter.Writer
	handler  *handler

	consumer *kafka.Consumer // set by Start
	stopOnce sync.Once
	stopErr  error
}

var (
	_ app.Component = (*Service)(nil)
	_ app.Failer    = (*Service)(nil)
)

// New builds the file sink and creates its folder. It connects nothing
// until Start.
func New(cfg Config, deps Deps) (*Service, error) {
	return newService(cfg, deps, hooks{}, nil)
}

// newService is New with the test seams: crash hooks and a storage fault
// injector (filewriter.Options.Fault).
func newService(cfg Config, deps Deps, hk hooks, fault func(op, path string) error) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Serde == nil {
		return nil, errors.New("sink-file: a Serde is required")
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
	w, err := filewriter.New(cfg.Dir, filewriter.Options{
		Gzip:      cfg.Gzip,
		MaxBytes:  cfg.RotateBytes,
		MaxEvents: cfg.RotateEvents,
		MaxAge:    cfg.RotateAge,
		MaxFiles:  cfg.MaxOpenDates,
		OnFsync:   func(d time.Duration) { m.fsyncSeconds.Observe(d.Seconds()) },
		Fault:     fault,
	})
	if err != nil {
		return nil, err
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
	h := &handler{
		cfg: cfg, serde: deps.Serde, w: w, dlq: dlq, metrics: m, log: log, hooks: hk,
		topics: enrichedTopics(), parts: map[filewriter.TP]*partState{},
	}
	if deps.Ready != nil {
		deps.Ready.Add(Stage, func() error {
			if err := h.ready(); err != nil {
				return err
			}
			return writable(cfg.Dir)
		})
	}
	return &Service{cfg: cfg, log: log, producer: producer, writer: w, handler: h}, nil
}

func enrichedTopics() []string {
	topics := make([]string, len(event.Families))
	for i, f := range event.Families {
		topics[i] = event.EnrichedTopic(f)
	}
	return topics
}

// writable checks that a file can be created in dir.
func writable(dir string) error {
	f, err := os.CreateTemp(dir, ".ready-*")
	if err != nil {
		return fmt.Errorf("sink folder is not writable: %w", err)
	}
	_ = f.Close()
	return os.Remove(f.Name())
}

// Name implements app.Component.
func (s *Service) Name() string { return Stage }

// Start creates the topics it reads and writes (when kafka.create_topics is
// set), joins the consumer group and begins writing in the background.
func (s *Service) Start(ctx context.Context) error {
	enriched := enrichedTopics()
	if s.cfg.Kafka.CreateTopics {
		tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := kafka.EnsureTopics(tctx, s.cfg.Kafka, nil, append(enriched, event.DLQTopic)...)
		cancel()
		if err != nil {
			return err
		}
	}
	// Created here rather than in New: a franz-go group client joins its
	// group as soon as it exists.
	// Commits are the handler's (ManualCommit): offsets move only when files
	// are published. The enricher produces in transactions: read_committed
	// keeps aborted records out of the files.
	h := s.handler
	c, err := kafka.NewConsumer(s.cfg.Kafka, kafka.GroupConfig{
		Group:          s.cfg.Group,
		Topics:         enriched,
		MaxPollRecords: s.cfg.MaxPollRecords,
		ReadCommitted:  true,
		ManualCommit:   true,
		Tick:           s.cfg.tick(),
	}, h, s.log,
		kgo.AdjustFetchOffsetsFn(h.adjustOffsets),
		kgo.OnPartitionsRevoked(h.revoked),
		kgo.OnPartitionsLost(h.lost),
	)
	if err != nil {
		return err
	}
	s.consumer = c
	h.consumer = c
	if err := c.Start(ctx); err != nil {
		return err
	}
	s.log.Info("writing files", zap.String("group", s.cfg.Group), zap.String("dir", s.cfg.Dir))
	return nil
}

// Failed implements app.Failer; it is valid after Start.
func (s *Service) Failed() <-chan error {
	if s.consumer == nil {
		return nil
	}
	return s.consumer.Failed()
}

// Stop stops polling, lets the batch in hand finish, publishes and commits
// every open group as the group is left, and flushes the dead-letter
// producer, all by ctx's deadline. It is safe to call more than once and
// without Start.
func (s *Service) Stop(ctx context.Context) error {
	s.stopOnce.Do(func() {
		var errs []error
		if s.consumer != nil {
			errs = append(errs, s.consumer.Stop(ctx))
		}
		s.handler.mu.Lock()
		errs = append(errs, s.writer.Close()) // what is still open was not committed
		s.handler.mu.Unlock()
		errs = append(errs, s.producer.Close(ctx))
		s.stopErr = errors.Join(errs...)
	})
	return s.stopErr
}
