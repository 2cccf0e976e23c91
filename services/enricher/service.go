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
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/sluicehq/sluice/pkg/app"
	"github.com/sluicehq/sluice/pkg/avro"
	"github.com/sluicehq/sluice/pkg/event"
	"github.com/sluicehq/sluice/pkg/kafka"
	"github.com/sluicehq/sluice/pkg/pipeline"
	"github.com/sluicehq/sluice/pkg/telemetry"
	"github.com/sluicehq/sluice/services/enricher/internal/enrich"
	"github.com/sluicehq/sluice/services/enricher/internal/geo"
	"github.com/sluicehq/sluice/services/enricher/internal/privacy"
	"github.com/sluicehq/sluice/services/enricher/internal/project"
	"github.com/sluicehq/sluice/services/enricher/internal/state"
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

// Service is the enricher: a consumer group over every raw topic that
// enriches each poll's records and produces them to the enriched topics in
// one Kafka transaction with its dead letters, its state changes and its
// consumed offsets (exactly once from raw to enriched; see transact.go).
type Service struct {
	cfg      Config
	log      *zap.Logger
	handler  *handler
	store    *state.Store
	geo      *geo.DB
	instance string

	loop     *loop
	cancel   context.CancelFunc // stops polling
	stopWork context.CancelFunc // aborts the batch in hand (stop deadline passed)
	done     chan struct{}
	failed   chan error
	running  atomic.Bool
	stopOnce sync.Once
	stopErr  error
}

var (
	_ app.Component = (*Service)(nil)
	_ app.Failer    = (*Service)(nil)
)

// New builds the enricher: it opens the geo databases and checks the
// privacy policies against the schemas. It connects nothing until Start.
func New(cfg Config, deps Deps) (*Service, error) {
	return newService(cfg, deps, nil)
}

// newService builds the enricher; a non-nil proc replaces the enrichment
// chain (the test seam).
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
	db, err := geo.Open(cfg.GeoIP.City, cfg.GeoIP.ASN, log)
	if err != nil {
		return nil, fmt.Errorf("enricher: %w", err)
	}
	store := state.New(cfg.State.MaxKeys, cfg.State.MaxAge)
	var policies map[event.Family]*privacy.Policy
	if proc == nil {
		policies, err = compilePolicies(cfg.Privacy)
		if err != nil {
			_ = db.Close()
			return nil, err
		}
		proc = newChain(cfg, db, store)
	}
	dlq, err := pipeline.NewDLQ(deps.Serde, nil, Version, reg) // builds records; the loop produces them
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("building dead-letter writer: %w", err)
	}
	s := &Service{
		cfg:      cfg,
		log:      log,
		store:    store,
		geo:      db,
		instance: instance,
		failed:   make(chan error, 1),
		handler: &handler{
			serde:          deps.Serde,
			proc:           proc,
			dlq:            dlq,
			version:        Version,
			instance:       instance,
			metrics:        m,
			log:            log,
			maxRecordBytes: int(cfg.Kafka.MaxMessageBytes) - 512, // room for the batch and record overhead
			tooLarge:       map[recordID]bool{},
			policies:       policies,
			project:        policies != nil, // the production chain only reads
			programs:       map[int]*project.Program{},
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

// Topics returns the topics the enricher reads and writes, and its
// changelog topics (compacted).
func (c Config) Topics() (plain, changelogs []string) {
	plain = []string{event.DLQTopic}
	for _, f := range event.Families {
		plain = append(plain, event.RawTopic(f), event.EnrichedTopic(f))
		if stateful(f) {
			changelogs = append(changelogs, c.changelogTopic(f))
		}
	}
	return plain, changelogs
}

// Start creates the topics it reads and writes (when kafka.create_topics is
// set), joins the consumer group and begins enriching in the background.
func (s *Service) Start(ctx context.Context) error {
	plain, changelogs := s.cfg.Topics()
	if s.cfg.Kafka.CreateTopics {
		tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := kafka.EnsureTopics(tctx, s.cfg.Kafka, nil, plain...)
		if err == nil {
			compact := "compact"
			err = kafka.EnsureTopics(tctx, s.cfg.Kafka, map[string]*string{"cleanup.policy": &compact}, changelogs...)
		}
		cancel()
		if err != nil {
			return err
		}
	}
	raw := make([]string, len(event.Families))
	for i, f := range event.Families {
		raw[i] = event.RawTopic(f)
	}
	l := &loop{
		cfg:      s.cfg,
		h:        s.handler,
		store:    s.store,
		log:      s.log,
		owned:    map[state.TP]bool{},
		dropped:  map[state.TP]bool{},
		restored: map[state.TP]bool{},
	}
	// Created here rather than in New: a franz-go group client joins its
	// group as soon as it exists.
	sess, err := kafka.NewTransactSession(s.cfg.Kafka, kafka.GroupConfig{Group: s.cfg.Group, Topics: raw},
		s.cfg.TransactionalID+"-"+s.instance, s.cfg.TransactionTimeout, s.log,
		kgo.RecordPartitioner(partitioner()),
		kgo.OnPartitionsAssigned(l.onAssigned),
		kgo.OnPartitionsRevoked(l.onRevoked),
		kgo.OnPartitionsLost(l.onRevoked),
	)
	if err != nil {
		return err
	}
	l.sess = sess
	s.loop = l
	pollCtx, cancel := context.WithCancel(context.Background())
	work, stopWork := context.WithCancel(context.Background())
	s.cancel, s.stopWork = cancel, stopWork
	s.done = make(chan struct{})
	go s.geo.Watch(pollCtx, s.cfg.GeoIP.ReloadInterval)
	go func() {
		defer close(s.done)
		if err := l.run(pollCtx, work); err != nil {
			s.log.Error("enricher stopped", zap.Error(err))
			s.failed <- err
		}
	}()
	s.running.Store(true)
	s.log.Info("enriching", zap.String("group", s.cfg.Group), zap.String("instance", s.instance),
		zap.Bool("geo", s.geo.Enabled()), zap.Bool("asn", s.geo.HasASN()))
	return nil
}

// Failed implements app.Failer.
func (s *Service) Failed() <-chan error { return s.failed }

// Stop stops polling, lets the transaction in hand finish, leaves the group
// and closes the geo databases, all by ctx's deadline. It is safe to call
// more than once and without Start.
func (s *Service) Stop(ctx context.Context) error {
	s.stopOnce.Do(func() {
		s.running.Store(false)
		var errs []error
		if s.cancel != nil {
			s.cancel()
			select {
			case <-s.done:
			case <-ctx.Done():
				s.stopWork()
				<-s.done
				errs = append(errs, fmt.Errorf("enricher did not stop in time: %w", ctx.Err()))
			}
			s.stopWork()
			s.loop.sess.Close()
		}
		errs = append(errs, s.geo.Close())
		s.stopErr = errors.Join(errs...)
	})
	return s.stopErr
}
