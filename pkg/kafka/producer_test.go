package kafka_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"

	"github.com/sluicehq/sluice/pkg/kafka"
	"github.com/sluicehq/sluice/pkg/kafka/kafkatest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fake starts a kfake cluster and returns it with a Config pointing at it.
func fake(t *testing.T, opts ...kfake.Opt) (*kfake.Cluster, kafka.Config) {
	t.Helper()
	c := kafkatest.Fake(t, opts...)
	cfg := kafka.Defaults()
	cfg.Brokers = c.ListenAddrs()
	cfg.Partitions = 3
	cfg.SessionTimeout = 6 * time.Second
	cfg.HeartbeatInterval = 500 * time.Millisecond
	return c, cfg
}

func newProducer(t *testing.T, cfg kafka.Config, extra ...kgo.Opt) *kafka.Producer {
	t.Helper()
	p, err := kafka.NewProducer(cfg, zaptest.NewLogger(t), extra...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close(context.Background()) })
	return p
}

func adminClient(t *testing.T, cfg kafka.Config) *kadm.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(cfg.Brokers...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}

// failProduce makes the cluster answer every produce request with code.
func failProduce(c *kfake.Cluster, code int16) {
	c.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		pr := req.(*kmsg.ProduceRequest)
		resp := pr.ResponseKind().(*kmsg.ProduceResponse)
		for _, rt := range pr.Topics {
			st := kmsg.NewProduceResponseTopic()
			st.Topic, st.TopicID = rt.Topic, rt.TopicID
			for _, rp := range rt.Partitions {
				sp := kmsg.NewProduceResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
}

func records(topic string, n int) []*kgo.Record {
	recs := make([]*kgo.Record, n)
	for i := range recs {
		recs[i] = &kgo.Record{Topic: topic, Key: []byte(fmt.Sprint("k", i%5)), Value: []byte(fmt.Sprint("v", i))}
	}
	return recs
}

func TestProduceAll(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	t.Run("all acknowledged", func(t *testing.T) {
		_, cfg := fake(t)
		if err := kafka.EnsureTopics(ctx, cfg, nil, "events"); err != nil {
			t.Fatal(err)
		}
		p := newProducer(t, cfg)
		if errs := p.ProduceAll(ctx, nil); errs != nil {
			t.Fatalf("ProduceAll(nil) = %v", errs)
		}
		recs := records("events", 20)
		if errs := p.ProduceAll(ctx, recs); errs != nil {
			t.Fatalf("ProduceAll = %v", errs)
		}
		for i, r := range recs {
			if r.Offset < 0 || r.Partition < 0 || r.Partition >= cfg.Partitions {
				t.Fatalf("record %d not acknowledged: %d@%d", i, r.Partition, r.Offset)
			}
		}
		ends, err := adminClient(t, cfg).ListEndOffsets(ctx, "events")
		if err != nil {
			t.Fatal(err)
		}
		var total int64
		ends.Each(func(o kadm.ListedOffset) { total += o.Offset })
		if total != 20 {
			t.Fatalf("%d records on the topic, want 20", total)
		}
	})

	t.Run("record for a missing topic", func(t *testing.T) {
		_, cfg := fake(t) // kfake does not create topics on demand
		if err := kafka.EnsureTopics(ctx, cfg, nil, "events"); err != nil {
			t.Fatal(err)
		}
		p := newProducer(t, cfg)
		recs := []*kgo.Record{
			{Topic: "events", Value: []byte("a")},
			{Topic: "no-such-topic", Value: []byte("b")},
			{Topic: "events", Value: []byte("c")},
		}
		errs := p.ProduceAll(ctx, recs)
		if len(errs) != len(recs) {
			t.Fatalf("errs = %v, want one per record", errs)
		}
		if errs[0] != nil || errs[2] != nil {
			t.Fatalf("records for an existing topic failed: %v", errs)
		}
		if !errors.Is(errs[1], kerr.UnknownTopicOrPartition) {
			t.Fatalf("errs[1] = %v, want UnknownTopicOrPartition", errs[1])
		}
	})

	t.Run("broker refuses", func(t *testing.T) {
		c, cfg := fake(t)
		if err := kafka.EnsureTopics(ctx, cfg, nil, "events"); err != nil {
			t.Fatal(err)
		}
		p := newProducer(t, cfg)
		failProduce(c, kerr.InvalidRecord.Code)
		recs := records("events", 4)
		errs := p.ProduceAll(ctx, recs)
		if len(errs) != len(recs) {
			t.Fatalf("errs = %v, want one per record", errs)
		}
		for i, err := range errs {
			if !errors.Is(err, kerr.InvalidRecord) {
				t.Fatalf("errs[%d] = %v", i, err)
			}
		}
	})

	t.Run("context ends", func(t *testing.T) {
		c, cfg := fake(t)
		if err := kafka.EnsureTopics(ctx, cfg, nil, "events"); err != nil {
			t.Fatal(err)
		}
		p, err := kafka.NewProducer(cfg, zaptest.NewLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		// The broker never answers produce: the records wait until the
		// caller gives up.
		c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
			c.KeepControl()
			return nil, errors.New("dropped"), true
		})
		short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		errs := p.ProduceAll(short, records("events", 2))
		if len(errs) != 2 || !errors.Is(errs[0], context.DeadlineExceeded) || !errors.Is(errs[1], context.DeadlineExceeded) {
			t.Fatalf("errs = %v, want both records failed with the context's error", errs)
		}
		// Close cannot flush what the broker never answers; it gives up
		// when its context ends.
		cctx, ccancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer ccancel()
		if err := p.Close(cctx); err == nil {
			t.Fatal("Close flushed records the broker never answered")
		}
	})
}

func TestEnsureTopics(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, cfg := fake(t)
	cfg.Partitions = 4
	adm := adminClient(t, cfg)
	retention := "3600000"

	if err := kafka.EnsureTopics(ctx, cfg, map[string]*string{"retention.ms": &retention}, "a", "b"); err != nil {
		t.Fatalf("EnsureTopics: %v", err)
	}
	details, err := adm.ListTopics(ctx, "a", "b")
	if err != nil {
		t.Fatal(err)
	}
	for _, topic := range []string{"a", "b"} {
		d, ok := details[topic]
		if !ok || d.Err != nil || len(d.Partitions) != 4 {
			t.Fatalf("topic %s: %+v", topic, d)
		}
	}
	rc, err := adm.DescribeTopicConfigs(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if v, err := rc.On("a", nil); err != nil || !hasConfig(v, "retention.ms", retention) {
		t.Fatalf("topic a configs: %+v, %v", v, err)
	}

	// Again, with one new topic and another partition count: the existing
	// ones are left as they are.
	cfg.Partitions = 2
	for range 2 {
		if err := kafka.EnsureTopics(ctx, cfg, nil, "a", "b", "c"); err != nil {
			t.Fatalf("EnsureTopics on existing topics: %v", err)
		}
	}
	details, err = adm.ListTopics(ctx, "a", "b", "c")
	if err != nil {
		t.Fatal(err)
	}
	for topic, want := range map[string]int{"a": 4, "b": 4, "c": 2} {
		if got := len(details[topic].Partitions); got != want {
			t.Errorf("topic %s has %d partitions, want %d", topic, got, want)
		}
	}

	t.Run("broker refuses", func(t *testing.T) {
		bad := cfg
		bad.ReplicationFactor = 5 // one broker
		err := kafka.EnsureTopics(ctx, bad, nil, "d")
		if err == nil {
			t.Fatal("EnsureTopics with an impossible replication factor succeeded")
		}
	})
}

func hasConfig(rc kadm.ResourceConfig, key, value string) bool {
	for _, c := range rc.Configs {
		if c.Key == key && c.Value != nil && *c.Value == value {
			return true
		}
	}
	return false
}

// unbuffered counts the records franz-go has let go of; its hook runs just
// before each record's promise.
type unbuffered struct{ n atomic.Int64 }

func (u *unbuffered) OnProduceRecordUnbuffered(*kgo.Record, error) { u.n.Add(1) }

// ProduceAllThen's done runs exactly once, after the last promise: before
// it returns when every record is answered, later when its context ends
// first and franz-go still holds records.
func TestProduceAllThen(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	t.Run("no records", func(t *testing.T) {
		_, cfg := fake(t)
		p := newProducer(t, cfg)
		var calls atomic.Int64
		if errs := p.ProduceAllThen(ctx, nil, func() { calls.Add(1) }); errs != nil || calls.Load() != 1 {
			t.Fatalf("errs %v, done ran %d times", errs, calls.Load())
		}
	})

	t.Run("all acknowledged", func(t *testing.T) {
		_, cfg := fake(t)
		if err := kafka.EnsureTopics(ctx, cfg, nil, "events"); err != nil {
			t.Fatal(err)
		}
		hook := &unbuffered{}
		p := newProducer(t, cfg, kgo.WithHooks(hook))
		var calls, seen atomic.Int64
		errs := p.ProduceAllThen(ctx, records("events", 20), func() {
			seen.Store(hook.n.Load())
			calls.Add(1)
		})
		if errs != nil {
			t.Fatalf("errs = %v", errs)
		}
		if calls.Load() != 1 || seen.Load() != 20 {
			t.Fatalf("done ran %d times before the return, after %d of 20 records", calls.Load(), seen.Load())
		}
	})

	t.Run("context ends first", func(t *testing.T) {
		c, cfg := fake(t)
		if err := kafka.EnsureTopics(ctx, cfg, nil, "events"); err != nil {
			t.Fatal(err)
		}
		// Produce requests are held, unanswered, until release is closed:
		// franz-go cannot fail records it sent.
		release := make(chan struct{})
		var held atomic.Bool
		held.Store(true)
		c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
			c.KeepControl()
			if held.Load() {
				c.SleepControl(func() { <-release })
			}
			return nil, nil, false
		})
		hook := &unbuffered{}
		p := newProducer(t, cfg, kgo.WithHooks(hook))
		var calls, seen atomic.Int64
		ran := make(chan struct{})
		short, cancelShort := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancelShort()
		errs := p.ProduceAllThen(short, records("events", 5), func() {
			seen.Store(hook.n.Load())
			if calls.Add(1) == 1 {
				close(ran)
			}
		})
		if len(errs) != 5 || !errors.Is(errs[0], context.DeadlineExceeded) {
			t.Fatalf("errs = %v, want every record failed with the context's error", errs)
		}
		if n := hook.n.Load(); n != 0 || calls.Load() != 0 {
			t.Fatalf("done ran %d times while franz-go held %d of 5 records", calls.Load(), 5-n)
		}
		held.Store(false)
		close(release)
		select {
		case <-ran:
		case <-ctx.Done():
			t.Fatal("done never ran after the broker answered")
		}
		time.Sleep(100 * time.Millisecond) // a second call would come now
		if calls.Load() != 1 || seen.Load() != 5 {
			t.Fatalf("done ran %d times, the first after %d of 5 records", calls.Load(), seen.Load())
		}
	})
}

// batchCodecs records the compression codec of every batch a consumer
// reads (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd).
type batchCodecs struct{ seen atomic.Uint32 } // bit i: codec i seen

func (b *batchCodecs) OnFetchBatchRead(_ kgo.BrokerMetadata, _ string, _ int32, m kgo.FetchBatchMetrics) {
	b.seen.Or(1 << m.CompressionType)
}

// TestProducerCompression: the producer compresses its batches with the
// configured codec (snappy when none is named), and they read back.
func TestProducerCompression(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, tc := range []struct {
		codec string
		want  uint8
	}{{"none", 0}, {"gzip", 1}, {"snappy", 2}, {"lz4", 3}, {"zstd", 4}, {"", 2}} {
		t.Run("codec "+tc.codec, func(t *testing.T) {
			_, cfg := fake(t)
			cfg.Partitions = 1
			cfg.Compression = tc.codec
			if err := kafka.EnsureTopics(ctx, cfg, nil, "c"); err != nil {
				t.Fatal(err)
			}
			// Compressible values, so that no codec is skipped as useless.
			recs := records("c", 50)
			for _, r := range recs {
				r.Value = []byte(fmt.Sprintf("%s %0200d", r.Value, 0))
			}
			if errs := newProducer(t, cfg).ProduceAll(ctx, recs); errs != nil {
				t.Fatalf("ProduceAll = %v", errs)
			}
			var codecs batchCodecs
			cl, err := kgo.NewClient(kgo.SeedBrokers(cfg.Brokers...), kgo.ConsumeTopics("c"),
				kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.WithHooks(&codecs))
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			got := 0
			for got < len(recs) && ctx.Err() == nil {
				fs := cl.PollFetches(ctx)
				if err := fs.Err0(); err != nil {
					t.Fatal(err)
				}
				got += fs.NumRecords()
			}
			if seen := codecs.seen.Load(); seen != 1<<tc.want {
				t.Fatalf("batches read with codecs %05b, want only codec %d", seen, tc.want)
			}
		})
	}
}
