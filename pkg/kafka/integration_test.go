package kafka_test

// The integration suite for the Kafka client layer. Every test runs against
// the broker kafkatest.Cluster names: a real Apache Kafka when KAFKA_BROKERS
// is set (make test-integration, .ci/run), else kfake (make test), with the
// same assertions. Tests share one real broker for the whole run, so each
// uses its own topics and groups (kafkatest.UniqueName).

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap/zaptest"

	"github.com/sluicehq/sluice/pkg/config"
	"github.com/sluicehq/sluice/pkg/kafka"
	"github.com/sluicehq/sluice/pkg/kafka/kafkatest"
)

// itAdmin is an admin client on cfg's brokers (with its SASL and TLS).
func itAdmin(t *testing.T, cfg kafka.Config) *kadm.Client {
	t.Helper()
	p, err := kafka.NewProducer(cfg, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close(context.Background()) })
	return kadm.NewClient(p.Client())
}

// itProduce writes n records with keys spread over the partitions and
// returns them with their offsets.
func itProduce(ctx context.Context, t *testing.T, p *kafka.Producer, topic, tag string, n int) []*kgo.Record {
	t.Helper()
	recs := make([]*kgo.Record, n)
	for i := range recs {
		recs[i] = &kgo.Record{Topic: topic, Key: fmt.Appendf(nil, "key-%d", i%7), Value: fmt.Appendf(nil, "%s-%d", tag, i)}
	}
	if errs := p.ProduceAll(ctx, recs); errs != nil {
		t.Fatalf("producing: %v", errors.Join(errs...))
	}
	return recs
}

type tp struct {
	topic     string
	partition int32
}

// committed returns the group's committed offsets on topic (absent
// partitions have none).
func committed(ctx context.Context, adm *kadm.Client, group, topic string) (map[int32]int64, error) {
	resp, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		return nil, err
	}
	if err := resp.Error(); err != nil {
		return nil, err
	}
	out := map[int32]int64{}
	for p, o := range resp[topic] {
		if o.Err != nil {
			return nil, o.Err
		}
		if o.At >= 0 {
			out[p] = o.At
		}
	}
	return out, nil
}

// waitCommittedTo polls until the group's committed offsets reach want on
// every partition, or fails at the deadline.
func waitCommittedTo(ctx context.Context, t *testing.T, adm *kadm.Client, group, topic string, want map[int32]int64) {
	t.Helper()
	var got map[int32]int64
	var err error
	for ctx.Err() == nil {
		got, err = committed(ctx, adm, group, topic)
		ok := err == nil
		for p, o := range want {
			if got[p] != o {
				ok = false
			}
		}
		if ok {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("group %s on %s: committed %v (%v), want %v", group, topic, got, err, want)
}

// TestIntegrationEnsureTopics creates topics with a partition count and a
// topic config, finds them as asked, and creates them again as a no-op.
func TestIntegrationEnsureTopics(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := kafkatest.Cluster(t)
	cfg.Partitions = 5
	adm := itAdmin(t, cfg)
	a, b := kafkatest.UniqueName(t, "it.a"), kafkatest.UniqueName(t, "it.b")
	retention := "7200000"
	if err := kafka.EnsureTopics(ctx, cfg, map[string]*string{"retention.ms": &retention}, a, b); err != nil {
		t.Fatalf("EnsureTopics: %v", err)
	}
	check := func(want int) {
		t.Helper()
		details, err := adm.ListTopics(ctx, a, b)
		if err != nil {
			t.Fatal(err)
		}
		for _, topic := range []string{a, b} {
			d := details[topic]
			if d.Err != nil || len(d.Partitions) != want {
				t.Fatalf("topic %s: %d partitions (%v), want %d", topic, len(d.Partitions), d.Err, want)
			}
			for _, p := range d.Partitions {
				if p.Leader < 0 || len(p.Replicas) < 1 {
					t.Errorf("%s/%d: leader %d replicas %v", topic, p.Partition, p.Leader, p.Replicas)
				}
			}
		}
	}
	check(5)
	rc, err := adm.DescribeTopicConfigs(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	cfgA, err := rc.On(a, nil)
	if err != nil {
		t.Fatal(err)
	}
	var gotRetention string
	for _, c := range cfgA.Configs {
		if c.Key == "retention.ms" && c.Value != nil {
			gotRetention = *c.Value
		}
	}
	if gotRetention != retention {
		t.Errorf("%s retention.ms = %q, want %q", a, gotRetention, retention)
	}

	// Again, with another partition count: existing topics stay as they are.
	cfg.Partitions = 2
	if err := kafka.EnsureTopics(ctx, cfg, nil, a, b); err != nil {
		t.Fatalf("EnsureTopics on existing topics: %v", err)
	}
	check(5)

	// The topics take records on every partition.
	p, err := kafka.NewProducer(cfg, zaptest.NewLogger(t), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = p.Close(context.Background()) }()
	var recs []*kgo.Record
	for part := range int32(5) {
		recs = append(recs, &kgo.Record{Topic: a, Partition: part, Value: []byte("x")})
	}
	if errs := p.ProduceAll(ctx, recs); errs != nil {
		t.Fatalf("producing to every partition: %v", errors.Join(errs...))
	}
}

// inHand is what the commit-rule test's handler saw.
type inHand struct {
	mu       sync.Mutex
	handled  map[tp]map[int64]int // offset → times handled successfully
	calls    int
	failed   []kgo.Record // the first record of each batch failed on purpose
	retried  int          // failed batches that came back starting with the same record
	problems []string
}

func (h *inHand) problem(format string, args ...any) {
	h.problems = append(h.problems, fmt.Sprintf(format, args...))
}

// isHandled reports whether every offset in [from, to) of k was handled.
func (h *inHand) isHandled(k tp, from, to int64) (int64, bool) {
	for o := from; o < to; o++ {
		if h.handled[k][o] == 0 {
			return o, false
		}
	}
	return 0, true
}

// TestIntegrationCommitAfterHandle checks the consumer's commit rule on a
// real group: offsets are committed only after the handler returned nil for
// the records below them, a failed batch is handed over again (not
// skipped), and after a stop the group resumes where the commits say, with
// nothing lost.
//
// The handler itself reads the group's committed offsets each time it is
// called: the consumer handles and commits in one goroutine, so at that
// moment every committed offset must lie at or below the first record in
// hand, and everything below it must have been handled.
func TestIntegrationCommitAfterHandle(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cfg := kafkatest.Cluster(t)
	cfg.Partitions = 3
	topic := kafkatest.UniqueName(t, "it.commit")
	group := kafkatest.UniqueName(t, "it.group")
	if err := kafka.EnsureTopics(ctx, cfg, nil, topic); err != nil {
		t.Fatal(err)
	}
	adm := itAdmin(t, cfg)
	prod, err := kafka.NewProducer(cfg, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = prod.Close(context.Background()) }()
	const first, second = 600, 300
	recs := itProduce(ctx, t, prod, topic, "first", first)

	h := &inHand{handled: map[tp]map[int64]int{}}
	// stopAt, when set, blocks the handler on its next batch until release
	// is closed, so that the test can stop the consumer mid-batch.
	var (
		stopAt   = make(chan struct{}) // closed by the handler when it blocks
		release  = make(chan struct{})
		blockNow bool
	)
	handler := kafka.HandlerFunc(func(hctx context.Context, batch []*kgo.Record) error {
		c, err := committed(hctx, adm, group, topic)
		h.mu.Lock()
		defer h.mu.Unlock()
		h.calls++
		if err != nil {
			return fmt.Errorf("reading committed offsets: %w", err) // retried like any failure
		}
		lowest := map[int32]int64{}
		for _, r := range batch {
			if o, ok := lowest[r.Partition]; !ok || r.Offset < o {
				lowest[r.Partition] = r.Offset
			}
		}
		for p, at := range c {
			k := tp{topic, p}
			if low, ok := lowest[p]; ok && at > low {
				h.problem("partition %d: committed %d while record %d is in hand, unhandled", p, at, low)
			}
			if o, ok := h.isHandled(k, 0, at); !ok {
				h.problem("partition %d: committed %d but offset %d was never handled", p, at, o)
			}
		}
		if len(h.failed) > 0 && len(batch) > 0 {
			last := h.failed[len(h.failed)-1]
			if batch[0].Partition == last.Partition && batch[0].Offset == last.Offset && string(batch[0].Value) == string(last.Value) {
				h.retried++
			}
		}
		if h.calls%3 == 0 && len(batch) > 0 {
			h.failed = append(h.failed, *batch[0])
			return errors.New("handler fails every third call on purpose")
		}
		if blockNow {
			blockNow = false
			close(stopAt)
			h.mu.Unlock()
			<-release
			h.mu.Lock()
		}
		for _, r := range batch {
			k := tp{r.Topic, r.Partition}
			if h.handled[k] == nil {
				h.handled[k] = map[int64]int{}
			}
			h.handled[k][r.Offset]++
		}
		return nil
	})
	newConsumer := func() *kafka.Consumer {
		c, err := kafka.NewConsumer(cfg, kafka.GroupConfig{Group: group, Topics: []string{topic}, MaxPollRecords: 50}, handler, zaptest.NewLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Start(ctx); err != nil {
			t.Fatal(err)
		}
		return c
	}

	// Part 1: everything produced is handled and committed.
	c1 := newConsumer()
	stopped := false
	defer func() {
		if !stopped {
			_ = c1.Stop(context.Background())
		}
	}()
	end := map[int32]int64{}
	for _, r := range recs {
		end[r.Partition] = max(end[r.Partition], r.Offset+1)
	}
	waitCommittedTo(ctx, t, adm, group, topic, end)

	// Part 2: more records; stop the consumer while a batch is in hand.
	h.mu.Lock()
	blockNow = true
	h.mu.Unlock()
	more := itProduce(ctx, t, prod, topic, "second", second)
	select {
	case <-stopAt:
	case <-ctx.Done():
		t.Fatal("the handler never got the second records")
	}
	stopDone := make(chan error, 1)
	go func() {
		sctx, scancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer scancel()
		stopDone <- c1.Stop(sctx)
	}()
	time.Sleep(200 * time.Millisecond) // Stop is now waiting for the batch in hand
	close(release)
	if err := <-stopDone; err != nil {
		t.Errorf("stop: %v", err)
	}
	stopped = true
	afterStop, err := committed(ctx, adm, group, topic)
	if err != nil {
		t.Fatal(err)
	}
	h.mu.Lock()
	for p, at := range afterStop {
		if o, ok := h.isHandled(tp{topic, p}, 0, at); !ok {
			h.problem("after stop, partition %d: committed %d but offset %d was never handled", p, at, o)
		}
	}
	h.mu.Unlock()

	// Part 3: a new member of the group resumes from the commits: every
	// record is handled, none is skipped.
	c2 := newConsumer()
	defer func() { _ = c2.Stop(context.Background()) }()
	for _, r := range more {
		end[r.Partition] = max(end[r.Partition], r.Offset+1)
	}
	waitCommittedTo(ctx, t, adm, group, topic, end)
	if err := c2.Stop(ctx); err != nil {
		t.Errorf("stop: %v", err)
	}

	h.mu.Lock()
	defer h.mu.Unlock()
	twice := 0
	for _, r := range slices.Concat(recs, more) {
		switch n := h.handled[tp{topic, r.Partition}][r.Offset]; {
		case n == 0:
			h.problem("record %s/%d@%d (%s) was never handled", topic, r.Partition, r.Offset, r.Value)
		case n > 1:
			twice++
		}
	}
	if len(h.failed) == 0 || h.retried != len(h.failed) {
		h.problem("%d batches failed on purpose, %d came back starting with the same record", len(h.failed), h.retried)
	}
	for _, p := range h.problems {
		t.Error(p)
	}
	// At least once: a record may be handled twice (a commit that failed),
	// never zero times. A clean stop commits its batch, so twice is 0 on a
	// healthy broker.
	t.Logf("%d records in %d handler calls (%d failed on purpose and retried); %d handled twice",
		first+second, h.calls, len(h.failed), twice)
}

// TestIntegrationSASLSCRAMTLS produces and consumes through pkg/kafka's
// Config with SASL/SCRAM-SHA-512 over TLS, against the real broker's
// SASL_SSL listener when .ci/kafka.sh up --sasl-tls started one
// (KAFKA_SASL_TLS_BROKERS), else against kfake configured the same way; and
// checks that a wrong password, an untrusted certificate and plaintext are
// refused.
func TestIntegrationSASLSCRAMTLS(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cfg := kafkatest.SASLTLS(t)
	t.Logf("SASL %s over TLS to %v (real broker: %v)", cfg.SASL.Mechanism, cfg.Brokers, kafkatest.RealSASLTLS())
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	topic := kafkatest.UniqueName(t, "it.sasl")
	if err := kafka.EnsureTopics(ctx, cfg, nil, topic); err != nil {
		t.Fatalf("creating a topic over SASL_SSL: %v", err)
	}
	prod, err := kafka.NewProducer(cfg, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = prod.Close(context.Background()) }()
	const n = 100
	recs := itProduce(ctx, t, prod, topic, "sasl", n)

	var (
		mu   sync.Mutex
		seen = map[string]bool{}
		all  = make(chan struct{})
	)
	group := kafkatest.UniqueName(t, "it.sasl.group")
	c, err := kafka.NewConsumer(cfg, kafka.GroupConfig{Group: group, Topics: []string{topic}},
		kafka.HandlerFunc(func(_ context.Context, batch []*kgo.Record) error {
			mu.Lock()
			defer mu.Unlock()
			for _, r := range batch {
				seen[string(r.Value)] = true
			}
			if len(seen) == n {
				select {
				case <-all:
				default:
					close(all)
				}
			}
			return nil
		}), zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-all:
	case <-ctx.Done():
		mu.Lock()
		t.Fatalf("consumed %d of %d records over SASL_SSL", len(seen), n)
	}
	end := map[int32]int64{}
	for _, r := range recs {
		end[r.Partition] = max(end[r.Partition], r.Offset+1)
	}
	waitCommittedTo(ctx, t, itAdmin(t, cfg), group, topic, end)
	if err := c.Stop(ctx); err != nil {
		t.Errorf("stop: %v", err)
	}

	refused := func(name string, bad kafka.Config) {
		t.Run(name, func(t *testing.T) {
			p, err := kafka.NewProducer(bad, zaptest.NewLogger(t))
			if err != nil {
				return // refused at build time is refused too
			}
			defer func() { _ = p.Close(context.Background()) }()
			pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
			defer pcancel()
			if err := p.Ping(pctx); err == nil {
				t.Fatalf("%s: the broker took the connection", name)
			}
		})
	}
	wrong := cfg
	wrong.SASL.Password = config.Secret("not-the-password")
	refused("wrong password", wrong)
	untrusted := cfg
	untrusted.TLS.CAFile = ""
	refused("untrusted certificate", untrusted)
	plain := cfg
	plain.TLS = kafka.TLSConfig{}
	refused("plaintext", plain)
	noSASL := cfg
	noSASL.SASL = kafka.SASLConfig{}
	refused("no SASL", noSASL)
}
