// Package pipelinetest holds the sink conformance suite: one set of
// scenarios that every Sluice sink service must pass, run against real
// sink processes that are killed with SIGKILL, not simulated failures.
//
// A sink's tests call RunSinkSuite with a Harness that says how to read
// its destination, and route the test binary to RunChild when IsChild (the
// suite re-executes the test binary as the sink process):
//
//	func TestMain(m *testing.M) {
//		if pipelinetest.IsChild() {
//			os.Exit(pipelinetest.RunChild(buildChild))
//		}
//		goleak.VerifyTestMain(m)
//	}
//
// Every scenario checks, while it runs and after every kill, that no
// committed offset passes an event that is not durably delivered, and at
// the end that every event was delivered: exactly once for an ExactlyOnce
// sink, at least once for an AtLeastOnce sink, whose duplicates must each
// follow a resend (an earlier copy the sink was never told was delivered)
// or a crash before the commit.
package pipelinetest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
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

// Guarantee is what a sink promises about copies of an event.
type Guarantee int

const (
	// ExactlyOnce: every event exactly once at the destination.
	ExactlyOnce Guarantee = iota
	// AtLeastOnce: every event at least once; a duplicate only after a
	// resend or a crash before the commit.
	AtLeastOnce
)

// Copy is one copy of an event found at a sink's destination.
type Copy struct {
	ID string // the event's envelope event_id
	// Confirmed says the sink knows this copy is durable: a published file,
	// an acknowledged HEC request. The first copies of an AtLeastOnce sink
	// that are not confirmed are the ones a resend may duplicate.
	Confirmed bool
}

// Destination is one scenario's fresh output.
type Destination struct {
	// Env is added to the sink process's environment (ChildConfig.Getenv).
	Env []string
	// Copies reads back every copy at the destination, in the order they
	// arrived.
	Copies func() ([]Copy, error)
}

// CrashPoint is a place in the sink where a scenario kills it.
type CrashPoint struct {
	// Scenario names the subtest: crash-<Scenario>. The suite requires
	// "before-commit" (events written somewhere, not durable or not
	// acknowledged) and "after-write-before-commit" (durable, offsets not
	// committed).
	Scenario string
	// Point is the name the sink passes to ChildConfig.Point; the process
	// is killed at its At-th occurrence.
	Point string
	At    int
	// Spread spreads the events' times over several days.
	Spread bool
}

// Harness describes a sink to the suite.
type Harness struct {
	Guarantee Guarantee
	// NewDestination prepares a fresh destination for a scenario.
	NewDestination func(t *testing.T, scenario string) Destination
	// CrashPoints are the sink's crash scenarios.
	CrashPoints []CrashPoint
	// Events per scenario (default 3000).
	Events int
}

// The suite's events are enriched clicks on one topic.
var suiteTopic = event.EnrichedTopic(event.Clicks)

const scenarioTimeout = 90 * time.Second

// RunSinkSuite runs every scenario as a subtest.
func RunSinkSuite(t *testing.T, h Harness) {
	if h.Events == 0 {
		h.Events = 3000
	}
	kcfg := kafkatest.Cluster(t)
	regURL, serde := avrotest.Registry(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	topics := []string{event.DLQTopic}
	for _, f := range event.Families {
		topics = append(topics, event.EnrichedTopic(f))
	}
	err := kafka.EnsureTopics(ctx, kcfg, nil, topics...)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	env := &suiteEnv{h: h, kcfg: kcfg, regURL: regURL, serde: serde}
	names := map[string]bool{}
	for _, cp := range h.CrashPoints {
		names[cp.Scenario] = true
	}
	for _, need := range []string{"before-commit", "after-write-before-commit"} {
		if !names[need] {
			t.Errorf("the harness has no crash point for scenario %q", need)
		}
	}
	t.Run("ordered", func(t *testing.T) { env.scenario(t, "ordered").ordered(false) })
	t.Run("unordered", func(t *testing.T) { env.scenario(t, "unordered").ordered(true) })
	for _, cp := range h.CrashPoints {
		t.Run("crash-"+cp.Scenario, func(t *testing.T) { env.scenario(t, "crash-"+cp.Scenario).crash(cp) })
	}
	t.Run("rebalance-mid-batch", func(t *testing.T) { env.scenario(t, "rebalance-mid-batch").rebalance() })
	t.Run("kill-loop", func(t *testing.T) { env.scenario(t, "kill-loop").killLoop() })
}

type suiteEnv struct {
	h      Harness
	kcfg   kafka.Config
	regURL string
	serde  *avro.Serde
}

type killWindow struct{ committed, ends map[int32]int64 }

// pos is where an event was produced.
type pos struct {
	partition int32
	offset    int64
}

type scenario struct {
	*suiteEnv
	t        *testing.T
	ctx      context.Context
	name     string
	group    string
	dest     Destination
	cl       *kgo.Client
	adm      *kadm.Client
	produced map[string]pos
	seq      int
	// kills record, for each SIGKILL, the committed offsets right after it
	// and the produced ends before it: an AtLeastOnce sink may duplicate
	// what lies between.
	kills []killWindow
	rng   *rand.Rand
}

func (e *suiteEnv) scenario(t *testing.T, name string) *scenario {
	ctx, cancel := context.WithTimeout(context.Background(), scenarioTimeout)
	t.Cleanup(cancel)
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.kcfg.Brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	s := &scenario{
		suiteEnv: e, t: t, ctx: ctx, name: name, group: kafkatest.UniqueName(t, "sinktest"),
		dest: e.h.NewDestination(t, name), cl: cl, adm: kadm.NewClient(cl), produced: map[string]pos{},
		rng: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7)),
	}
	// Start the group at the end of every topic, so that a shared broker's
	// older events stay out of the scenario.
	ends, err := s.adm.ListEndOffsets(ctx, e.topics()...)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.adm.CommitOffsets(ctx, s.group, ends.Offsets()); err != nil {
		t.Fatal(err)
	}
	return s
}

func (e *suiteEnv) topics() []string {
	var ts []string
	for _, f := range event.Families {
		ts = append(ts, event.EnrichedTopic(f))
	}
	return ts
}

func (s *scenario) env(crash string) []string {
	env := append([]string{
		envBrokers + "=" + strings.Join(s.kcfg.Brokers, ","),
		envRegistry + "=" + s.regURL,
		envGroup + "=" + s.group,
	}, s.dest.Env...)
	if crash != "" {
		env = append(env, envCrash+"="+crash)
	}
	return env
}

func (s *scenario) start(name, crash string) *child {
	return startChild(s.ctx, s.t, s.name+"/"+name, s.env(crash))
}

// produce produces n events, spread over days when spread is set, and over
// the three partitions.
func (s *scenario) produce(n int, spread bool) {
	s.t.Helper()
	base := time.Date(2025, 6, 1, 8, 0, 0, 0, time.UTC)
	recs := make([]*kgo.Record, n)
	for i := range recs {
		s.seq++
		id := fmt.Sprintf("%s-%06d", strings.ReplaceAll(s.name, "/", "-"), s.seq)
		client := base.Add(time.Duration(s.seq) * time.Second)
		p := int32(s.seq % 3)
		if spread {
			client = base.Add(time.Duration(s.rng.IntN(5*24)) * time.Hour)
			p = int32(s.rng.IntN(3))
		}
		v, err := s.serde.Encode(avro.ValueSubject(suiteTopic), EnrichedClick(id, client.Add(time.Minute), client, int64(s.seq)))
		if err != nil {
			s.t.Fatal(err)
		}
		recs[i] = &kgo.Record{Topic: suiteTopic, Partition: p, Key: []byte(id), Value: v}
	}
	res := s.cl.ProduceSync(s.ctx, recs...)
	if err := res.FirstErr(); err != nil {
		s.t.Fatal(err)
	}
	for _, r := range res {
		s.produced[string(r.Record.Key)] = pos{r.Record.Partition, r.Record.Offset}
	}
}

// committed returns the group's committed offsets on the suite topic.
func (s *scenario) committed() map[int32]int64 {
	s.t.Helper()
	offs, err := s.adm.FetchOffsetsForTopics(s.ctx, s.group, suiteTopic)
	if err != nil {
		s.t.Fatal(err)
	}
	out := map[int32]int64{}
	offs.Each(func(o kadm.OffsetResponse) {
		if o.Topic == suiteTopic && o.Err == nil && o.At >= 0 {
			out[o.Partition] = o.At
		}
	})
	return out
}

func (s *scenario) copies() []Copy {
	s.t.Helper()
	cs, err := s.dest.Copies()
	if err != nil {
		s.t.Fatal(err)
	}
	return cs
}

// checkCommits fails the test when a committed offset passes an event of
// the scenario that has no confirmed copy.
func (s *scenario) checkCommits(when string) {
	s.t.Helper()
	committed := s.committed()
	confirmed := map[string]bool{}
	for _, c := range s.copies() {
		if c.Confirmed {
			confirmed[c.ID] = true
		}
	}
	var bad []string
	for id, p := range s.produced {
		if c, ok := committed[p.partition]; ok && p.offset < c && !confirmed[id] {
			bad = append(bad, fmt.Sprintf("%s (partition %d offset %d < committed %d)", id, p.partition, p.offset, c))
		}
	}
	if len(bad) > 0 {
		slices.Sort(bad)
		s.t.Fatalf("%s: %d committed events are not durably delivered, e.g. %s", when, len(bad), bad[0])
	}
}

// waitAll waits until every produced event has a copy and the committed
// offsets reach the end, checking the commits on the way.
func (s *scenario) waitAll() {
	s.t.Helper()
	var ends map[int32]int64
	for _, p := range s.produced {
		if ends == nil {
			ends = map[int32]int64{}
		}
		if p.offset+1 > ends[p.partition] {
			ends[p.partition] = p.offset + 1
		}
	}
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		s.checkCommits("while delivering")
		have := map[string]bool{}
		for _, c := range s.copies() {
			have[c.ID] = true
		}
		missing := 0
		for id := range s.produced {
			if !have[id] {
				missing++
			}
		}
		committed := s.committed()
		behind := 0
		for p, end := range ends {
			if committed[p] < end {
				behind++
			}
		}
		if missing == 0 && behind == 0 {
			return
		}
		select {
		case <-s.ctx.Done():
			s.t.Fatalf("after %s: %d of %d events missing, %d partitions not committed to the end (committed %v, ends %v)",
				scenarioTimeout, missing, len(s.produced), behind, committed, ends)
		case <-t.C:
		}
	}
}

// kill9 kills c with SIGKILL and records the committed offsets.
func (s *scenario) kill9(c *child) {
	s.t.Helper()
	c.kill()
	ends := map[int32]int64{}
	for _, p := range s.produced {
		ends[p.partition] = max(ends[p.partition], p.offset+1)
	}
	s.kills = append(s.kills, killWindow{committed: s.committed(), ends: ends})
	s.checkCommits("right after SIGKILL of " + c.name)
}

// verify checks the copies against the guarantee.
func (s *scenario) verify() {
	s.t.Helper()
	byID := map[string][]Copy{}
	for _, c := range s.copies() {
		if _, ours := s.produced[c.ID]; ours {
			byID[c.ID] = append(byID[c.ID], c)
		}
	}
	var missing, dups, badDups []string
	for id, p := range s.produced {
		cs := byID[id]
		switch {
		case len(cs) == 0:
			missing = append(missing, id)
		case len(cs) > 1:
			dups = append(dups, id)
			if s.h.Guarantee == AtLeastOnce && !s.justified(cs, p) {
				badDups = append(badDups, id)
			}
		}
	}
	slices.Sort(missing)
	slices.Sort(badDups)
	if len(missing) > 0 {
		s.t.Errorf("%d of %d events never delivered, e.g. %s", len(missing), len(s.produced), missing[0])
	}
	switch s.h.Guarantee {
	case ExactlyOnce:
		if len(dups) > 0 {
			slices.Sort(dups)
			s.t.Errorf("%d events delivered more than once, e.g. %s ×%d", len(dups), dups[0], len(byID[dups[0]]))
		}
	case AtLeastOnce:
		if len(badDups) > 0 {
			s.t.Errorf("%d events duplicated without a resend or a crash before their commit, e.g. %s", len(badDups), badDups[0])
		}
	}
	s.t.Logf("%s: %d events, %d duplicated, %d kills", s.name, len(s.produced), len(dups), len(s.kills))
}

// justified says whether an AtLeastOnce duplicate is allowed: every copy
// before the last was never confirmed to the sink (so it resent), or a
// crash came before the event's offset was committed.
func (s *scenario) justified(cs []Copy, p pos) bool {
	for _, k := range s.kills {
		if c, ok := k.committed[p.partition]; (!ok || p.offset >= c) && p.offset < k.ends[p.partition] {
			return true
		}
	}
	for _, c := range cs[:len(cs)-1] {
		if c.Confirmed {
			return false
		}
	}
	return true
}

// ordered: events in time order (or spread over days and partitions, in
// no order), one sink, a clean stop.
func (s *scenario) ordered(spread bool) {
	c := s.start("sink", "")
	s.produce(s.h.Events, spread)
	s.waitAll()
	if err := c.term(s.ctx); err != nil {
		s.t.Error(err)
	}
	s.checkCommits("after a clean stop")
	s.verify()
}

// crash: SIGKILL at a crash point, then a restart delivers the rest.
func (s *scenario) crash(cp CrashPoint) {
	s.produce(s.h.Events, cp.Spread)
	c := s.start("crashing", fmt.Sprintf("%s:%d", cp.Point, cp.At))
	if _, err := c.waitLine(s.ctx, lineCrash); err != nil {
		s.t.Fatal(err)
	}
	s.kill9(c)
	c2 := s.start("restarted", "")
	s.waitAll()
	if err := c2.term(s.ctx); err != nil {
		s.t.Error(err)
	}
	s.verify()
}

// rebalance: a second instance joins while the first has a batch in hand,
// then the first is killed while the second runs.
func (s *scenario) rebalance() {
	a := s.start("a", "")
	s.produce(s.h.Events/2, true)
	// Mid-batch: some events delivered, not all.
	deadline := time.NewTicker(20 * time.Millisecond)
	defer deadline.Stop()
	for len(s.copies()) == 0 {
		select {
		case <-s.ctx.Done():
			s.t.Fatal("nothing delivered before the rebalance")
		case <-deadline.C:
		}
	}
	b := s.start("b", "")
	s.produce(s.h.Events/2, true)
	s.waitAll()
	// Kill a with both running and settled: its partitions move to b.
	s.waitStable(a, b)
	s.kill9(a)
	s.produce(s.h.Events/4, true)
	s.waitAll()
	if err := b.term(s.ctx); err != nil {
		s.t.Error(err)
	}
	s.verify()
}

// waitStable waits until the group is stable with exactly the live
// children as members: those killed before have left (session timeout),
// the live ones have their assignment, and none is in the middle of a
// join (a member killed there is never expired by kfake: its join reply
// fails and no session timer is armed).
func (s *scenario) waitStable(live ...*child) {
	s.t.Helper()
	var ids []string
	for _, c := range live {
		ids = append(ids, clientID(c.name))
	}
	if err := s.stableWith(ids...); err != nil {
		s.t.Fatal(err)
	}
}

// killLoop: SIGKILL at random moments while events keep coming. Each
// process is killed once it is the group's only member, so that every
// kill hits a sink that owns partitions.
func (s *scenario) killLoop() {
	c := s.start("run-0", "")
	per := s.h.Events / 4
	for i := 1; i <= 3; i++ {
		s.waitStable(c)
		s.produce(per, i%2 == 0)
		wait := time.NewTimer(time.Duration(150+s.rng.IntN(600)) * time.Millisecond)
		select {
		case <-s.ctx.Done():
			s.t.Fatal("deadline")
		case <-wait.C:
		}
		s.kill9(c)
		c = s.start(fmt.Sprintf("run-%d", i), "")
	}
	s.produce(per, false)
	s.waitAll()
	if err := c.term(s.ctx); err != nil {
		s.t.Error(err)
	}
	s.verify()
}
