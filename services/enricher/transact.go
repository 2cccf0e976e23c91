package enricher

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"sort"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/sluicehq/sluice/pkg/event"
	"github.com/sluicehq/sluice/pkg/kafka"
	"github.com/sluicehq/sluice/services/enricher/internal/resolve"
	"github.com/sluicehq/sluice/services/enricher/internal/state"
)

// loop is the exactly-once consume-transform-produce loop. Each poll is one
// Kafka transaction holding the enriched records, the dead letters, the
// state changes (changelog records) and the consumed offsets, so either all
// of a batch's effects are visible to read_committed consumers or none.
//
// State follows the transactions: a batch's changes are undone when its
// transaction aborts (a rebalance during the batch, a produce error, a
// transient failure), and the state of a partition this instance was just
// given is restored from its changelog, read committed, before the
// partition's first records are enriched. Only this goroutine touches the
// store; the group's callbacks only record which partitions were taken
// away.
type loop struct {
	cfg   Config
	sess  *kgo.GroupTransactSession
	h     *handler
	store *state.Store
	log   *zap.Logger

	mu      sync.Mutex
	owned   map[state.TP]bool // per the group's callbacks
	dropped map[state.TP]bool // revoked or lost since the loop last looked

	restored    map[state.TP]bool // state loaded from the changelog (loop only)
	lastEvicted struct{ age, count uint64 }
}

// stateful reports whether family f keeps state (and so has a changelog).
func stateful(f event.Family) bool {
	for _, s := range resolve.Stateful {
		if s == f {
			return true
		}
	}
	return false
}

// changelogTopic names family f's changelog.
func (c Config) changelogTopic(f event.Family) string { return c.State.TopicPrefix + string(f) }

// onAssigned, onRevoked and onLost are the group callbacks.
func (l *loop) onAssigned(_ context.Context, _ *kgo.Client, m map[string][]int32) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for topic, ps := range m {
		f, _ := event.FamilyOfTopic(topic)
		for _, p := range ps {
			l.owned[state.TP{Family: string(f), Partition: p}] = true
		}
	}
}

func (l *loop) onRevoked(_ context.Context, _ *kgo.Client, m map[string][]int32) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for topic, ps := range m {
		f, _ := event.FamilyOfTopic(topic)
		for _, p := range ps {
			tp := state.TP{Family: string(f), Partition: p}
			delete(l.owned, tp)
			l.dropped[tp] = true
		}
	}
}

// applyDrops forgets the state of partitions taken away. It runs between
// transactions only.
func (l *loop) applyDrops() {
	l.mu.Lock()
	drops := l.dropped
	l.dropped = map[state.TP]bool{}
	l.mu.Unlock()
	for tp := range drops {
		delete(l.restored, tp)
		if err := l.store.Drop(tp); err != nil {
			l.log.Error("dropping state", zap.Error(err)) // cannot happen between batches
		}
	}
	l.h.metrics.stateKeys.Set(float64(l.store.Len()))
}

func (l *loop) isOwned(tp state.TP) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.owned[tp]
}

// run polls and handles batches until ctx ends (a clean stop) or the
// session fails beyond repair (returned).
func (l *loop) run(ctx, work context.Context) error {
	backoff := 100 * time.Millisecond
	for {
		fs := l.sess.PollRecords(ctx, l.cfg.MaxPollRecords)
		if ctx.Err() != nil || fs.IsClientClosed() {
			return nil
		}
		fs.EachError(func(t string, p int32, err error) {
			l.log.Warn("fetch error", zap.String("topic", t), zap.Int32("partition", p), zap.Error(err))
		})
		l.applyDrops()
		recs := fs.Records()
		if len(recs) == 0 {
			continue
		}
		committed, err := l.batch(work, recs)
		if err != nil {
			var fatal fatalError
			if errors.As(err, &fatal) {
				return err
			}
			l.log.Warn("batch aborted, will retry from the committed offsets", zap.Int("records", len(recs)),
				zap.Duration("backoff", backoff), zap.Error(err))
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 5*time.Second)
			continue
		}
		if committed {
			backoff = 100 * time.Millisecond
		}
	}
}

// beforeEnd, when set (by tests only), runs in every transaction after its
// records are produced and before it ends: the scale-out test slows its
// instances down so that a kill lands inside an open transaction.
var beforeEnd func()

// fatalError ends the loop: the transactional producer is in a state no
// retry leaves (franz-go: no error End returns is retryable).
type fatalError struct{ err error }

func (f fatalError) Error() string { return f.err.Error() }
func (f fatalError) Unwrap() error { return f.err }

// batch runs one transaction. It returns whether it committed; an error
// means it aborted (a fatalError: the session cannot go on).
func (l *loop) batch(ctx context.Context, recs []*kgo.Record) (committed bool, err error) {
	t0 := time.Now()
	defer func() { l.h.metrics.handleSeconds.Observe(time.Since(t0).Seconds()) }()

	if err := l.restore(ctx, recs); err != nil {
		// Nothing was begun; the records are polled again after a rewind.
		return false, l.abortEmpty(ctx, fmt.Errorf("restoring state: %w", err))
	}

	if err := l.sess.Begin(); err != nil {
		return false, fatalError{fmt.Errorf("beginning transaction: %w", err)}
	}
	l.store.Begin()
	now := time.Now()

	var (
		pmu      sync.Mutex
		firstErr error
		tooLarge []*kgo.Record
	)
	var wg sync.WaitGroup
	promise := func(r *kgo.Record, err error) {
		defer wg.Done()
		if err == nil {
			return
		}
		pmu.Lock()
		defer pmu.Unlock()
		if firstErr == nil {
			firstErr = err
		}
		if errors.Is(err, kerr.MessageTooLarge) || errors.Is(err, kerr.RecordListTooLarge) {
			tooLarge = append(tooLarge, r)
		}
	}
	produce := func(r *kgo.Record) {
		wg.Add(1)
		l.sess.Produce(ctx, r, promise)
	}

	out, terr := l.h.transform(ctx, recs, now)
	if terr == nil {
		l.store.Evict(now)
		var changes []state.Change
		changes, terr = l.store.Changes()
		if terr == nil {
			for _, r := range out.records {
				produce(r)
			}
			for _, d := range out.dead {
				r, err := l.h.dlq.Record(d)
				if err != nil {
					terr = err
					break
				}
				r.Partition = -1 // spread by key
				produce(r)
			}
			for _, c := range changes {
				produce(&kgo.Record{Topic: l.cfg.changelogTopicOfKey(c.Key), Key: []byte(c.Key), Value: c.Value, Partition: c.Partition})
			}
		}
	}
	wg.Wait() // every promise has run: firstErr is final
	if beforeEnd != nil {
		beforeEnd()
	}
	commit := terr == nil && firstErr == nil
	ok, endErr := l.sess.End(ctx, kgo.TransactionEndTry(commit))
	if endErr != nil {
		l.store.Rollback()
		l.h.metrics.transactions.WithLabelValues("aborted").Inc()
		return false, fatalError{fmt.Errorf("ending transaction: %w", endErr)}
	}
	if !ok {
		l.store.Rollback()
		l.h.metrics.transactions.WithLabelValues("aborted").Inc()
		l.applyDrops()
		switch {
		case terr != nil:
			return false, terr
		case firstErr != nil:
			l.noteTooLarge(out, tooLarge)
			return false, fmt.Errorf("producing: %w", firstErr)
		}
		// A rebalance during the batch: not an error, the records are
		// polled again (by this instance or the new owner).
		l.log.Info("transaction aborted by a rebalance; records will be polled again", zap.Int("records", len(recs)))
		return false, nil
	}
	st := l.store.Stats()
	l.store.Commit()
	l.h.metrics.transactions.WithLabelValues("committed").Inc()
	for _, f := range out.families {
		l.h.metrics.enriched.WithLabelValues(string(f)).Inc()
	}
	for _, d := range out.dead {
		l.h.metrics.dlq.WithLabelValues(d.Stage, string(d.Family), d.Reason).Inc()
	}
	if len(out.dead) > 0 {
		d := out.dead[0]
		l.log.Warn("events dead-lettered", zap.Int("count", len(out.dead)), zap.String("first_topic", d.Topic),
			zap.Int32("first_partition", d.Partition), zap.Int64("first_offset", d.Offset),
			zap.String("first_reason", d.Reason), zap.String("first_message", d.Message))
	}
	l.h.metrics.stateKeys.Set(float64(st.Keys))
	l.h.metrics.stateEvicted.WithLabelValues("age").Add(float64(st.EvictedAge - l.lastEvicted.age))
	l.h.metrics.stateEvicted.WithLabelValues("count").Add(float64(st.EvictedCount - l.lastEvicted.count))
	l.lastEvicted.age, l.lastEvicted.count = st.EvictedAge, st.EvictedCount
	return true, nil
}

// noteTooLarge remembers the raw records whose enriched record the broker
// refused as too large, so their retry dead-letters them instead of
// aborting every transaction again.
func (l *loop) noteTooLarge(out *output, refused []*kgo.Record) {
	if out == nil || len(refused) == 0 {
		return
	}
	for i, r := range out.records {
		for _, x := range refused {
			if r == x {
				s := out.sources[i]
				l.h.tooLarge[recordID{s.Topic, s.Partition, s.Offset}] = true
			}
		}
	}
}

// abortEmpty rewinds the session to its committed offsets after a failure
// before any transaction began, so the records are polled again.
func (l *loop) abortEmpty(ctx context.Context, cause error) error {
	if err := l.sess.Begin(); err != nil {
		return fatalError{fmt.Errorf("beginning transaction: %w", err)}
	}
	if _, err := l.sess.End(ctx, kgo.TryAbort); err != nil {
		return fatalError{fmt.Errorf("ending transaction: %w", err)}
	}
	l.h.metrics.transactions.WithLabelValues("aborted").Inc()
	return cause
}

// changelogTopicOfKey names the changelog of a state key's family.
func (c Config) changelogTopicOfKey(key string) string {
	return c.State.TopicPrefix + state.FamilyOf(key)
}

// errNotOwned fails a batch holding records of a partition the group has
// not (or no longer) assigned to this instance.
var errNotOwned = errors.New("records of a partition this instance does not own")

// restore loads, before the batch, the state of every stateful partition
// the batch has records of and whose state is not loaded yet.
func (l *loop) restore(ctx context.Context, recs []*kgo.Record) error {
	need := map[string][]int32{} // changelog topic → partitions
	var tps []state.TP
	for _, r := range recs {
		f, ok := event.FamilyOfTopic(r.Topic)
		if !ok || !stateful(f) {
			continue
		}
		tp := state.TP{Family: string(f), Partition: r.Partition}
		if l.restored[tp] {
			continue
		}
		if !l.isOwned(tp) {
			// Taken away since the poll (or not announced yet): never
			// enrich it without its state. The batch is retried from the
			// committed offsets.
			for _, tp := range tps {
				delete(l.restored, tp)
			}
			return fmt.Errorf("%w: %s/%d", errNotOwned, tp.Family, tp.Partition)
		}
		l.restored[tp] = true // set now; undone below on failure
		tps = append(tps, tp)
		topic := l.cfg.changelogTopic(f)
		need[topic] = append(need[topic], r.Partition)
	}
	if len(tps) == 0 {
		return nil
	}
	t0 := time.Now()
	rctx, cancel := context.WithTimeout(ctx, l.cfg.State.RestoreTimeout)
	defer cancel()
	n, err := restoreChangelogs(rctx, l.cfg.Kafka, need, l.store, l.log)
	if err != nil {
		for _, tp := range tps {
			delete(l.restored, tp)
			_ = l.store.Drop(tp)
		}
		return err
	}
	l.h.metrics.restoreSecs.Observe(time.Since(t0).Seconds())
	l.h.metrics.stateKeys.Set(float64(l.store.Len()))
	l.log.Info("state restored", zap.Int("partitions", len(tps)), zap.Int("records", n), zap.Duration("took", time.Since(t0)))
	return nil
}

// restoreChangelogs reads the given changelog partitions from their start to
// their end, committed records only, into store. A partition is read once
// no transaction is open on it (last stable offset = high watermark): its
// only writer is the owner of the raw partition, and the previous owner's
// last transaction may still be completing (its markers are written after
// its offsets became visible to this instance). It returns the number of
// records applied.
func restoreChangelogs(ctx context.Context, kcfg kafka.Config, parts map[string][]int32, store *state.Store, log *zap.Logger) (int, error) {
	opts, err := kcfg.ClientOpts()
	if err != nil {
		return 0, err
	}
	admCl, err := kgo.NewClient(opts...)
	if err != nil {
		return 0, fmt.Errorf("creating restore client: %w", err)
	}
	defer admCl.Close()
	adm := kadm.NewClient(admCl)
	topics := make([]string, 0, len(parts))
	for t := range parts {
		topics = append(topics, t)
	}
	sort.Strings(topics)

	// Wait until no transaction is open on the partitions.
	ends := map[string]map[int32]int64{}
	for wait := 50 * time.Millisecond; ; wait = min(wait*2, time.Second) {
		hwm, err := adm.ListEndOffsets(ctx, topics...)
		if err == nil {
			err = hwm.Error()
		}
		if err != nil {
			return 0, fmt.Errorf("listing changelog end offsets: %w", err)
		}
		lso, err := adm.ListCommittedOffsets(ctx, topics...)
		if err == nil {
			err = lso.Error()
		}
		if err != nil {
			return 0, fmt.Errorf("listing changelog stable offsets: %w", err)
		}
		stable := true
		for _, t := range topics {
			ends[t] = map[int32]int64{}
			for _, p := range parts[t] {
				h, ok1 := hwm.Lookup(t, p)
				s, ok2 := lso.Lookup(t, p)
				if !ok1 || !ok2 {
					return 0, fmt.Errorf("changelog %s has no partition %d (it needs as many partitions as the raw topic)", t, p)
				}
				if s.Offset != h.Offset {
					stable = false
				}
				ends[t][p] = h.Offset
			}
		}
		if stable {
			break
		}
		log.Debug("waiting for an open transaction on the changelog to end")
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("changelog still has an open transaction: %w", ctx.Err())
		case <-time.After(wait):
		}
	}

	consume := map[string]map[int32]kgo.Offset{}
	pending := map[string]map[int32]int64{} // partitions still to read → end offset
	for t, ps := range ends {
		for p, end := range ps {
			if end <= 0 {
				continue
			}
			if consume[t] == nil {
				consume[t] = map[int32]kgo.Offset{}
				pending[t] = map[int32]int64{}
			}
			consume[t][p] = kgo.NewOffset().AtStart()
			pending[t][p] = end
		}
	}
	if len(consume) == 0 {
		return 0, nil
	}
	cl, err := kgo.NewClient(append(opts,
		kgo.ConsumePartitions(consume),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// The last offset before the end is a transaction marker (the
		// changelog is written in transactions only): keeping markers is
		// how the reader knows it reached the end.
		kgo.KeepControlRecords(),
		kgo.FetchMaxWait(100*time.Millisecond),
	)...)
	if err != nil {
		return 0, fmt.Errorf("creating restore consumer: %w", err)
	}
	defer cl.Close()
	n := 0
	now := time.Now()
	left := 0
	for _, ps := range pending {
		left += len(ps)
	}
	for left > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return n, fmt.Errorf("reading the changelog: %w", ctx.Err())
		}
		var ferr error
		fs.EachError(func(t string, p int32, err error) {
			if ferr == nil {
				ferr = fmt.Errorf("reading changelog %s/%d: %w", t, p, err)
			}
		})
		if ferr != nil {
			return n, ferr
		}
		fs.EachRecord(func(r *kgo.Record) {
			end, ok := pending[r.Topic][r.Partition]
			if !ok {
				return
			}
			if !r.Attrs.IsControl() {
				tp := state.TP{Family: state.FamilyOf(string(r.Key)), Partition: r.Partition}
				if err := store.Restore(tp, string(r.Key), r.Value, resolve.Decode, now); err != nil {
					log.Warn("skipping a changelog record", zap.String("topic", r.Topic), zap.Int32("partition", r.Partition),
						zap.Int64("offset", r.Offset), zap.Error(err))
				}
				n++
			}
			if r.Offset >= end-1 {
				delete(pending[r.Topic], r.Partition)
				left--
			}
		})
	}
	return n, nil
}

// partitioner puts a record on the partition it names when the topic has
// it: enriched records on their raw partition, changelog records on the
// partition of the state they hold. Other records (dead letters, Partition
// -1) are spread by key.
func partitioner() kgo.Partitioner {
	return kgo.BasicConsistentPartitioner(func(string) func(*kgo.Record, int) int {
		return func(r *kgo.Record, n int) int {
			if r.Partition >= 0 && int(r.Partition) < n {
				return int(r.Partition)
			}
			h := fnv.New32a()
			_, _ = h.Write(r.Key)
			return int(h.Sum32() % uint32(n))
		}
	})
}
