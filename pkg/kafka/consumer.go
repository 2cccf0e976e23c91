package kafka

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/plugin/kzap"
	"go.uber.org/zap"
)

// Handler handles the records of one poll, grouped by partition in offset
// order. It returns nil only when every record is handled (delivered,
// produced onward, or sent to the DLQ); any error makes the consumer retry
// the same records after a backoff, so a handler must be safe to call again
// with records it has seen.
type Handler interface {
	Handle(ctx context.Context, recs []*kgo.Record) error
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, recs []*kgo.Record) error

// Handle implements Handler.
func (f HandlerFunc) Handle(ctx context.Context, recs []*kgo.Record) error { return f(ctx, recs) }

// GroupConfig names a consumer group and its topics.
type GroupConfig struct {
	Group  string
	Topics []string
	// MaxPollRecords bounds one batch handed to the handler.
	MaxPollRecords int
	// ReadCommitted makes the consumer skip aborted transactional records.
	ReadCommitted bool
	// ManualCommit leaves committing to the handler's owner, through
	// CommitOffsets: the consumer never commits by itself. It is for sinks
	// whose records become durable after Handle returns (a file renamed at
	// rotation, a HEC batch acknowledged by the indexers).
	ManualCommit bool
	// Tick, when positive, also calls the handler with no records whenever
	// a poll finds none for this long, so time-based work (rotating files
	// by age, probing a full disk) runs in the handler's goroutine,
	// serialised with batches and with the partition callbacks.
	Tick time.Duration
}

// Consumer runs a group consumer that commits offsets only after its
// handler has handled the records, and never while a rebalance could move
// the partitions away (BlockRebalanceOnPoll).
type Consumer struct {
	cl      *kgo.Client
	h       Handler
	log     *zap.Logger
	maxPoll int
	manual  bool          // GroupConfig.ManualCommit
	tick    time.Duration // GroupConfig.Tick

	cancel     context.CancelFunc // stops polling and retrying
	cancelWork context.CancelFunc // aborts the batch in hand (stop deadline passed)
	done       chan struct{}
	failed     chan error
	once       sync.Once
}

// NewConsumer builds a group consumer; Start begins polling.
func NewConsumer(cfg Config, gc GroupConfig, h Handler, log *zap.Logger, extra ...kgo.Opt) (*Consumer, error) {
	opts, err := cfg.clientOpts()
	if err != nil {
		return nil, err
	}
	if gc.MaxPollRecords <= 0 {
		gc.MaxPollRecords = 1000
	}
	opts = append(opts,
		kgo.ConsumerGroup(gc.Group),
		kgo.ConsumeTopics(gc.Topics...),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.SessionTimeout(cfg.SessionTimeout),
		kgo.HeartbeatInterval(cfg.HeartbeatInterval),
		kgo.RebalanceTimeout(cfg.RebalanceTimeout),
		kgo.FetchMaxWait(250*time.Millisecond),
		kgo.WithLogger(kzap.New(log.Named("kgo"), kzap.Level(kgo.LogLevelWarn))),
	)
	if gc.ReadCommitted {
		opts = append(opts, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	}
	opts = append(opts, extra...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("creating kafka consumer: %w", err)
	}
	return &Consumer{cl: cl, h: h, log: log, maxPoll: gc.MaxPollRecords, manual: gc.ManualCommit, tick: gc.Tick,
		failed: make(chan error, 1)}, nil
}

// Client returns the underlying franz-go client.
func (c *Consumer) Client() *kgo.Client { return c.cl }

// Name implements app.Component.
func (c *Consumer) Name() string { return "consumer" }

// Failed implements app.Failer. It reports, once, an error that no retry
// can fix, and the consumer stops polling:
//   - the group, a topic or the cluster refuses us, or the group id is
//     invalid (see isFatalConsumeError): franz-go retries these forever
//     while nothing is consumed;
//   - the client was closed by something other than Stop.
//
// Everything else (brokers away, rebalances, failed commits, a failing
// handler) is retried, never reported: records are not skipped, so waiting
// is safe. A consumer that can never consume, though, should not look alive:
// failing stops the service, so that it exits, is restarted and alerts.
func (c *Consumer) Failed() <-chan error { return c.failed }

// fail reports err on Failed unless an error is already waiting there.
func (c *Consumer) fail(err error) {
	c.log.Error("consumer failed", zap.Error(err))
	select {
	case c.failed <- err:
	default:
	}
}

// isFatalConsumeError reports whether a poll error is one that waiting
// cannot fix: it needs an operator (credentials, ACLs, configuration).
func isFatalConsumeError(err error) bool {
	for _, fatal := range []error{
		kerr.GroupAuthorizationFailed,
		kerr.TopicAuthorizationFailed,
		kerr.ClusterAuthorizationFailed,
		kerr.SaslAuthenticationFailed,
		kerr.InvalidGroupID,
	} {
		if errors.Is(err, fatal) {
			return true
		}
	}
	return false
}

// Start begins polling in the background.
func (c *Consumer) Start(context.Context) error {
	ctx, cancel := context.WithCancel(context.Background())
	work, cancelWork := context.WithCancel(context.Background())
	c.cancel, c.cancelWork = cancel, cancelWork
	c.done = make(chan struct{})
	go c.run(ctx, work)
	return nil
}

// run polls with ctx and hands batches to the handler with work, which
// outlives ctx so that a batch in hand at shutdown can finish and commit.
func (c *Consumer) run(ctx, work context.Context) {
	defer close(c.done)
	for {
		pctx, cancel := ctx, context.CancelFunc(func() {})
		if c.tick > 0 {
			pctx, cancel = context.WithTimeout(ctx, c.tick)
		}
		fs := c.cl.PollRecords(pctx, c.maxPoll)
		cancel()
		if ctx.Err() != nil {
			c.cl.AllowRebalance()
			return
		}
		if fs.IsClientClosed() { // closed by someone else: Stop cancels ctx first
			c.cl.AllowRebalance()
			c.fail(fmt.Errorf("consuming: %w", kgo.ErrClientClosed))
			return
		}
		var fatal error
		fs.EachError(func(t string, p int32, err error) {
			if c.tick > 0 && errors.Is(err, context.DeadlineExceeded) {
				return // the tick's own poll deadline
			}
			if fatal == nil && isFatalConsumeError(err) {
				fatal = fmt.Errorf("consuming %s/%d: %w", t, p, err)
				if t == "" {
					fatal = fmt.Errorf("consumer group: %w", err)
				}
			}
			c.log.Warn("fetch error", zap.String("topic", t), zap.Int32("partition", p), zap.Error(err))
		})
		if fatal != nil {
			c.cl.AllowRebalance()
			c.fail(fatal)
			return
		}
		recs := fs.Records()
		if len(recs) > 0 || c.tick > 0 {
			if err := c.handle(ctx, work, recs); err != nil {
				c.cl.AllowRebalance()
				return // ctx cancelled mid-retry: nothing committed past what was handled
			}
		}
		c.cl.AllowRebalance()
	}
}

// handle retries the handler until it succeeds or ctx ends, then commits.
func (c *Consumer) handle(ctx, work context.Context, recs []*kgo.Record) error {
	backoff := 100 * time.Millisecond
	for {
		err := c.h.Handle(work, recs)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		c.log.Warn("handling records, will retry", zap.Int("records", len(recs)), zap.Duration("backoff", backoff), zap.Error(err))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
	if c.manual {
		return nil
	}
	// Commit with a context that survives shutdown's cancel, so what was
	// handled is committed even while stopping.
	cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for attempt := 0; ; attempt++ {
		err := c.cl.CommitRecords(cctx, recs...)
		if err == nil {
			return nil
		}
		if attempt >= 3 || errors.Is(err, context.DeadlineExceeded) {
			// Not fatal for correctness: the records are re-delivered and
			// handled again (at least once), never skipped.
			c.log.Error("committing offsets; records will be redelivered", zap.Error(err))
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// CommitOffsets synchronously commits offsets (per topic and partition, the
// next offset to consume), as a ManualCommit consumer's owner does. It
// returns the request's error or the first partition's error. It is safe to
// call from a partition callback and concurrently with polling.
func (c *Consumer) CommitOffsets(ctx context.Context, offsets map[string]map[int32]kgo.EpochOffset) error {
	if len(offsets) == 0 {
		return nil
	}
	var rerr error
	c.cl.CommitOffsetsSync(ctx, offsets, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err != nil {
			rerr = err
			return
		}
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if err := kerr.ErrorForCode(p.ErrorCode); err != nil && rerr == nil {
					rerr = fmt.Errorf("committing %s/%d: %w", t.Topic, p.Partition, err)
				}
			}
		}
	})
	return rerr
}

// Stop stops polling, lets the batch in hand finish and commit, and leaves
// the group.
func (c *Consumer) Stop(ctx context.Context) error {
	var err error
	c.once.Do(func() {
		if c.cancel == nil {
			c.cl.Close()
			return
		}
		c.cancel()
		select {
		case <-c.done:
		case <-ctx.Done():
			c.cancelWork()
			<-c.done
			err = fmt.Errorf("consumer did not stop in time: %w", ctx.Err())
		}
		c.cancelWork()
		c.cl.Close()
	})
	return err
}
