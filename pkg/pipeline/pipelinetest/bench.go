package pipelinetest

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/pkg/avro"
	"github.com/sluicehq/sluice/pkg/avro/avrotest"
	"github.com/sluicehq/sluice/pkg/event"
	"github.com/sluicehq/sluice/pkg/kafka"
	"github.com/sluicehq/sluice/pkg/kafka/kafkatest"
)

// BenchSink measures a sink process: b.N enriched events (about 1 KiB of
// JSON each) are produced first; then the sink starts in its own process
// (so that its memory is its own, apart from the broker's), and the time
// from its joining the group to its committing the last offset gives the
// rate. It reports events/s and the sink's peak RSS (VmHWM). env is the
// sink's environment (Destination.Env); delivered, when set, is checked
// against b.N at the end.
func BenchSink(b *testing.B, env []string, delivered func() int64) {
	kcfg := kafkatest.Cluster(b)
	regURL, serde := avrotest.Registry(b)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	topics := []string{event.DLQTopic}
	for _, f := range event.Families {
		topics = append(topics, event.EnrichedTopic(f))
	}
	if err := kafka.EnsureTopics(ctx, kcfg, nil, topics...); err != nil {
		b.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(kcfg.Brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerLinger(5*time.Millisecond), kgo.MaxBufferedRecords(200_000), kgo.ProducerBatchMaxBytes(4<<20))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	group := kafkatest.UniqueName(b, "sinkbench")
	ends, err := adm.ListEndOffsets(ctx, topics...)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := adm.CommitOffsets(ctx, group, ends.Offsets()); err != nil {
		b.Fatal(err)
	}
	start := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Topic == suiteTopic {
			start[o.Partition] = o.Offset
		}
	})
	produceBench(ctx, b, cl, serde, b.N)

	b.ResetTimer()
	s := &scenario{ctx: ctx, group: group, adm: adm}
	c := startChild(ctx, b, "bench", append([]string{
		envBrokers + "=" + strings.Join(kcfg.Brokers, ","),
		envRegistry + "=" + regURL,
		envGroup + "=" + group,
	}, env...))
	if err := s.stableWith(clientID(c.name)); err != nil {
		b.Fatal(err)
	}
	t0 := time.Now()
	want := map[int32]int64{}
	for p, o := range start {
		want[p] = o + int64((b.N+2-int(p))/3)
	}
	tk := time.NewTicker(20 * time.Millisecond)
	defer tk.Stop()
	var rss int64
	for {
		if v := peakRSS(c.cmd.Process.Pid); v > rss {
			rss = v
		}
		offs, err := adm.FetchOffsetsForTopics(ctx, group, suiteTopic)
		if err != nil {
			b.Fatal(err)
		}
		done := true
		for p, end := range want {
			if o, ok := offs.Lookup(suiteTopic, p); !ok || o.At < end {
				done = false
			}
		}
		if done {
			break
		}
		select {
		case <-ctx.Done():
			b.Fatalf("the sink did not commit %d events in time", b.N)
		case <-tk.C:
		}
	}
	elapsed := time.Since(t0)
	b.StopTimer()
	if v := peakRSS(c.cmd.Process.Pid); v > rss {
		rss = v
	}
	tctx, tcancel := context.WithTimeout(ctx, 30*time.Second)
	defer tcancel()
	if err := c.term(tctx); err != nil {
		b.Error(err)
	}
	if delivered != nil {
		if n := delivered(); n < int64(b.N) {
			b.Errorf("%d of %d events delivered", n, b.N)
		}
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(rss)/(1<<20), "peak-RSS-MiB")
	b.ReportMetric(float64(elapsed.Nanoseconds())/float64(b.N), "ns/event")
}

// produceBench produces n enriched clicks spread over the suite topic's
// three partitions and a week of event times.
func produceBench(ctx context.Context, b *testing.B, cl *kgo.Client, serde *avro.Serde, n int) {
	base := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("bench-%09d", i)
		client := base.Add(time.Duration(i%(7*24*3600)) * time.Second)
		v, err := serde.Encode(avro.ValueSubject(suiteTopic), EnrichedClick(id, client.Add(time.Second), client, int64(i)))
		if err != nil {
			b.Fatal(err)
		}
		wg.Add(1)
		cl.Produce(ctx, &kgo.Record{Topic: suiteTopic, Partition: int32(i % 3), Key: []byte(id), Value: v}, func(_ *kgo.Record, err error) {
			if err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
			wg.Done()
		})
	}
	wg.Wait()
	if firstErr != nil {
		b.Fatal(firstErr)
	}
}

// stableWith waits until the group is stable with exactly the client ids.
func (s *scenario) stableWith(ids ...string) error {
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	tk := time.NewTicker(50 * time.Millisecond)
	defer tk.Stop()
	for {
		gs, err := s.adm.DescribeGroups(s.ctx, s.group)
		if g, ok := gs[s.group]; err == nil && ok && g.Err == nil && g.State == "Stable" && len(g.Members) == len(want) {
			all := true
			for _, m := range g.Members {
				all = all && want[m.ClientID]
			}
			if all {
				return nil
			}
		}
		select {
		case <-s.ctx.Done():
			return fmt.Errorf("group %s not stable with %v", s.group, ids)
		case <-tk.C:
		}
	}
}

// peakRSS reads a process's peak resident set (VmHWM) in bytes; 0 when
// unknown (not Linux).
func peakRSS(pid int) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}
