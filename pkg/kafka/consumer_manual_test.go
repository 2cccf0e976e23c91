package kafka_test

import (
	"context"
	"maps"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap/zaptest"

	"github.com/sluicehq/sluice/pkg/kafka"
)

// TestConsumerManualCommitAndTick: with ManualCommit the consumer commits
// nothing by itself, CommitOffsets commits what the owner says, and Tick
// calls the handler with no records while none arrive.
func TestConsumerManualCommitAndTick(t *testing.T) {
	r := newConsumerRig(t, 3, 30)
	var mu sync.Mutex
	next := map[int32]int64{} // per partition, the offset after the last record seen
	var ticks atomic.Int64
	h := kafka.HandlerFunc(func(_ context.Context, recs []*kgo.Record) error {
		if len(recs) == 0 {
			ticks.Add(1)
			return nil
		}
		mu.Lock()
		defer mu.Unlock()
		for _, rec := range recs {
			next[rec.Partition] = rec.Offset + 1
		}
		return nil
	})
	c, err := kafka.NewConsumer(r.cfg, kafka.GroupConfig{
		Group: r.group, Topics: []string{r.topic}, ManualCommit: true, Tick: 20 * time.Millisecond,
	}, h, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer stop(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	seen := func() map[int32]int64 {
		mu.Lock()
		defer mu.Unlock()
		return maps.Clone(next)
	}
	tk := time.NewTicker(20 * time.Millisecond)
	defer tk.Stop()
	for !maps.Equal(seen(), r.ends) || ticks.Load() < 3 {
		select {
		case <-ctx.Done():
			t.Fatalf("handled %v (ends %v), %d ticks", seen(), r.ends, ticks.Load())
		case <-tk.C:
		}
	}
	if got, err := r.committed(ctx); err != nil || len(got) != 0 {
		t.Fatalf("a ManualCommit consumer committed %v (%v) by itself", got, err)
	}
	offsets := map[string]map[int32]kgo.EpochOffset{r.topic: {}}
	for p, o := range seen() {
		offsets[r.topic][p] = kgo.EpochOffset{Epoch: -1, Offset: o}
	}
	if err := c.CommitOffsets(ctx, offsets); err != nil {
		t.Fatal(err)
	}
	r.waitCommitted(t)
}
