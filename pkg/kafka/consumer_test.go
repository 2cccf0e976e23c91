package kafka_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/zap/zaptest"

	"github.com/sluicehq/sluice/pkg/kafka"
)

// consumerRig is a kfake cluster with one topic of records and an admin
// client to read the group's commits.
type consumerRig struct {
	cluster *kfake.Cluster
	cfg     kafka.Config
	adm     *kadm.Client
	topic   string
	group   string
	ends    map[int32]int64
}

func newConsumerRig(t *testing.T, partitions int32, n int) *consumerRig {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, cfg := fake(t)
	cfg.Partitions = partitions
	r := &consumerRig{cluster: c, cfg: cfg, adm: adminClient(t, cfg), topic: "in", group: "g"}
	if err := kafka.EnsureTopics(ctx, cfg, nil, r.topic); err != nil {
		t.Fatal(err)
	}
	p := newProducer(t, cfg)
	if errs := p.ProduceAll(ctx, records(r.topic, n)); errs != nil {
		t.Fatalf("producing: %v", errs)
	}
	ends, err := r.adm.ListEndOffsets(ctx, r.topic)
	if err != nil {
		t.Fatal(err)
	}
	r.ends = map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			r.ends[o.Partition] = o.Offset
		}
	})
	return r
}

// committed returns the group's committed offsets on the rig's topic.
func (r *consumerRig) committed(ctx context.Context) (map[int32]int64, error) {
	resps, err := r.adm.FetchOffsets(ctx, r.group)
	if err != nil {
		return nil, err
	}
	out := map[int32]int64{}
	resps.Each(func(o kadm.OffsetResponse) {
		if o.Topic == r.topic && o.Err == nil && o.At >= 0 {
			out[o.Partition] = o.At
		}
	})
	return out, nil
}

func (r *consumerRig) consumer(t *testing.T, maxPoll int, h kafka.Handler) *kafka.Consumer {
	t.Helper()
	c, err := kafka.NewConsumer(r.cfg, kafka.GroupConfig{Group: r.group, Topics: []string{r.topic}, MaxPollRecords: maxPoll}, h, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// waitCommitted polls until the group has committed the end of every
// partition.
func (r *consumerRig) waitCommitted(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		got, err := r.committed(ctx)
		cancel()
		if err == nil && maps.Equal(got, r.ends) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("committed %v (%v), want the end offsets %v", got, err, r.ends)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func stop(t *testing.T, c *kafka.Consumer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := c.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
}

// key names one record.
func key(r *kgo.Record) string { return fmt.Sprintf("%s/%d@%d", r.Topic, r.Partition, r.Offset) }

func keys(recs []*kgo.Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = key(r)
	}
	return out
}

// TestConsumerRetriesThenCommits fails the handler three times: it gets the
// same records each time, nothing is committed meanwhile, and once it
// succeeds the commit reaches the end of the topic.
func TestConsumerRetriesThenCommits(t *testing.T) {
	r := newConsumerRig(t, 1, 10)
	var (
		mu       sync.Mutex
		calls    [][]string
		problems []string
	)
	h := kafka.HandlerFunc(func(ctx context.Context, recs []*kgo.Record) error {
		got, err := r.committed(ctx)
		mu.Lock()
		defer mu.Unlock()
		calls = append(calls, keys(recs))
		if err != nil {
			problems = append(problems, err.Error())
		} else if len(got) != 0 && len(calls) <= 4 {
			problems = append(problems, fmt.Sprintf("call %d: committed %v before the handler succeeded", len(calls), got))
		}
		if len(calls) <= 3 {
			return fmt.Errorf("failure %d", len(calls))
		}
		return nil
	})
	c := r.consumer(t, 1000, h)
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	r.waitCommitted(t)
	stop(t, c)

	mu.Lock()
	defer mu.Unlock()
	if len(problems) > 0 {
		t.Fatal(strings.Join(problems, "\n"))
	}
	if len(calls) < 4 {
		t.Fatalf("%d handler calls, want at least 4", len(calls))
	}
	for i := 1; i < 4; i++ {
		if !slices.Equal(calls[i], calls[0]) {
			t.Fatalf("retry %d got %v, first call %v", i, calls[i], calls[0])
		}
	}
	var handled []string
	for _, call := range calls[3:] {
		handled = append(handled, call...)
	}
	if len(handled) != 10 || handled[0] != "in/0@0" || handled[9] != "in/0@9" {
		t.Fatalf("handled %v, want offsets 0..9", handled)
	}
	select {
	case err := <-c.Failed():
		t.Fatalf("Failed() = %v after a clean stop", err)
	default:
	}
}

// TestConsumerStopFinishesBatch stops the consumer while the handler holds
// a batch: the handler's context stays alive, it finishes, and its records
// are committed before Stop returns.
func TestConsumerStopFinishesBatch(t *testing.T) {
	r := newConsumerRig(t, 3, 30)
	inHand := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	var handled sync.Map
	h := kafka.HandlerFunc(func(ctx context.Context, recs []*kgo.Record) error {
		first := false
		once.Do(func() { first = true })
		if first {
			close(inHand)
			<-release
			if ctx.Err() != nil {
				return fmt.Errorf("batch in hand was cancelled: %w", ctx.Err())
			}
		}
		for _, rec := range recs {
			handled.Store(key(rec), true)
		}
		return nil
	})
	c := r.consumer(t, 1000, h)
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	<-inHand
	stopped := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		stopped <- c.Stop(ctx)
	}()
	close(release)
	if err := <-stopped; err != nil {
		t.Fatalf("Stop: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	got, err := r.committed(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Whatever was handled is committed, and nothing else.
	for p, at := range got {
		for o := range at {
			if _, ok := handled.Load(fmt.Sprintf("in/%d@%d", p, o)); !ok {
				t.Fatalf("partition %d committed to %d, but %d was never handled", p, at, o)
			}
		}
	}
	if len(got) == 0 {
		t.Fatal("the batch in hand at Stop was not committed")
	}
}

// TestConsumerStopDeadline aborts a batch that outlives Stop's deadline:
// nothing of it is committed, and the next consumer of the group gets it.
func TestConsumerStopDeadline(t *testing.T) {
	r := newConsumerRig(t, 1, 5)
	inHand := make(chan struct{})
	var once sync.Once
	stuck := kafka.HandlerFunc(func(ctx context.Context, _ []*kgo.Record) error {
		once.Do(func() { close(inHand) })
		<-ctx.Done()
		return ctx.Err()
	})
	c := r.consumer(t, 1000, stuck)
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	<-inHand
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := c.Stop(ctx); err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Stop past its deadline = %v", err)
	}
	cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer ccancel()
	if got, err := r.committed(cctx); err != nil || len(got) != 0 {
		t.Fatalf("committed %v, %v after an aborted batch", got, err)
	}

	var mu sync.Mutex
	var again []string
	next := r.consumer(t, 1000, kafka.HandlerFunc(func(_ context.Context, recs []*kgo.Record) error {
		mu.Lock()
		defer mu.Unlock()
		again = append(again, keys(recs)...)
		return nil
	}))
	if err := next.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	r.waitCommitted(t)
	stop(t, next)
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"in/0@0", "in/0@1", "in/0@2", "in/0@3", "in/0@4"}; !slices.Equal(again, want) {
		t.Fatalf("next consumer got %v, want %v", again, want)
	}
}

// TestConsumerNeverSkips runs small batches over three partitions with a
// handler that fails every third call, and checks that every record was
// handled, in order per partition, before the end was committed.
func TestConsumerNeverSkips(t *testing.T) {
	r := newConsumerRig(t, 3, 90)
	var (
		mu       sync.Mutex
		calls    int
		next     = map[int32]int64{} // per partition, the next offset to handle
		problems []string
	)
	h := kafka.HandlerFunc(func(_ context.Context, recs []*kgo.Record) error {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls%3 == 0 {
			return errors.New("flaky")
		}
		for _, rec := range recs {
			if rec.Offset != next[rec.Partition] {
				problems = append(problems, fmt.Sprintf("partition %d: got offset %d, want %d", rec.Partition, rec.Offset, next[rec.Partition]))
			}
			next[rec.Partition] = rec.Offset + 1
		}
		return nil
	})
	c := r.consumer(t, 7, h)
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	r.waitCommitted(t)
	stop(t, c)
	mu.Lock()
	defer mu.Unlock()
	if len(problems) > 0 {
		t.Fatal(strings.Join(problems, "\n"))
	}
	if !maps.Equal(next, r.ends) {
		t.Fatalf("handled up to %v, want %v", next, r.ends)
	}
}

// TestConsumerFailed checks what makes a consumer report on Failed(): only
// errors that no retry can fix.
func TestConsumerFailed(t *testing.T) {
	ok := kafka.HandlerFunc(func(context.Context, []*kgo.Record) error { return nil })
	waitFailed := func(t *testing.T, c *kafka.Consumer) error {
		t.Helper()
		select {
		case err := <-c.Failed():
			return err
		case <-time.After(20 * time.Second):
			t.Fatal("Failed() did not report")
			return nil
		}
	}

	t.Run("client closed under it", func(t *testing.T) {
		r := newConsumerRig(t, 1, 1)
		c := r.consumer(t, 1000, ok)
		if err := c.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		r.waitCommitted(t)
		c.Client().Close()
		if err := waitFailed(t, c); !errors.Is(err, kgo.ErrClientClosed) {
			t.Fatalf("Failed() = %v, want ErrClientClosed", err)
		}
		stop(t, c)
	})

	for _, tc := range []struct {
		name string
		code *kerr.Error
	}{
		{"group not authorized", kerr.GroupAuthorizationFailed},
		{"invalid group id", kerr.InvalidGroupID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newConsumerRig(t, 1, 1)
			r.cluster.ControlKey(int16(kmsg.JoinGroup), func(req kmsg.Request) (kmsg.Response, error, bool) {
				r.cluster.KeepControl()
				resp := req.ResponseKind().(*kmsg.JoinGroupResponse)
				resp.ErrorCode = tc.code.Code
				return resp, nil, true
			})
			c := r.consumer(t, 1000, ok)
			if err := c.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			if err := waitFailed(t, c); !errors.Is(err, tc.code) {
				t.Fatalf("Failed() = %v, want %v", err, tc.code)
			}
			stop(t, c)
		})
	}

	t.Run("transient group error is retried", func(t *testing.T) {
		r := newConsumerRig(t, 1, 3)
		var refused sync.Once
		r.cluster.ControlKey(int16(kmsg.JoinGroup), func(req kmsg.Request) (kmsg.Response, error, bool) {
			handled := false
			refused.Do(func() { handled = true })
			if !handled {
				return nil, nil, false
			}
			resp := req.ResponseKind().(*kmsg.JoinGroupResponse)
			resp.ErrorCode = kerr.CoordinatorLoadInProgress.Code
			return resp, nil, true
		})
		c := r.consumer(t, 1000, ok)
		if err := c.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		r.waitCommitted(t)
		stop(t, c)
		select {
		case err := <-c.Failed():
			t.Fatalf("Failed() = %v for a transient error", err)
		default:
		}
	})
}

func TestConsumerStopWithoutStart(t *testing.T) {
	_, cfg := fake(t)
	c, err := kafka.NewConsumer(cfg, kafka.GroupConfig{Group: "g", Topics: []string{"t"}}, kafka.HandlerFunc(func(context.Context, []*kgo.Record) error { return nil }), zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if c.Name() != "consumer" {
		t.Errorf("Name() = %q", c.Name())
	}
	for i := range 2 {
		if err := c.Stop(context.Background()); err != nil {
			t.Fatalf("Stop %d: %v", i, err)
		}
	}
}
