package ingest

import (
	"math"
	rtmetrics "runtime/metrics"
	"testing"
	"time"
)

// The sampler depends on the runtime publishing this histogram; were it
// renamed, the gateway would never see saturation.
func TestSchedLatenciesMetricExists(t *testing.T) {
	for _, d := range rtmetrics.All() {
		if d.Name == schedLatencies {
			if d.Kind != rtmetrics.KindFloat64Histogram {
				t.Fatalf("%s is of kind %v", schedLatencies, d.Kind)
			}
			return
		}
	}
	t.Fatalf("the runtime has no %s", schedLatencies)
}

// hist is a histogram of latencies in the buckets [0, 1 ms), [1, 2),
// [2, 4), [4, 8), [8, 16), [16, +Inf) ms.
func hist(counts ...uint64) *rtmetrics.Float64Histogram {
	return &rtmetrics.Float64Histogram{
		Counts:  counts,
		Buckets: []float64{0, 0.001, 0.002, 0.004, 0.008, 0.016, math.Inf(1)},
	}
}

func TestWindowQuantile(t *testing.T) {
	prev := []uint64{100, 10, 0, 0, 0, 0}
	for _, tc := range []struct {
		name string
		h    *rtmetrics.Float64Histogram
		q    float64
		want float64
	}{
		{"all fast", hist(200, 10, 0, 0, 0, 0), 0.99, 0.001},
		// 100 new: 98 under 1 ms, 2 in [8, 16): the 99th is in the latter.
		{"two slow of a hundred", hist(198, 10, 0, 0, 2, 0), 0.99, 0.016},
		{"one slow of a hundred", hist(199, 10, 0, 0, 1, 0), 0.99, 0.001},
		{"the median", hist(140, 70, 0, 0, 0, 0), 0.5, 0.002}, // 40 and 60 new
		// the last bucket has no upper bound: its lower one.
		{"unbounded bucket", hist(100, 10, 0, 0, 0, 5), 0.99, 0.016},
	} {
		if got := windowQuantile(tc.h, prev, tc.q); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	if got := windowQuantile(hist(100, 10, 0, 0, 0, 0), prev, 0.99); !math.IsNaN(got) {
		t.Errorf("no new counts: %v, want NaN", got)
	}
}

func TestSaturationVerdict(t *testing.T) {
	c := newCPUSaturation(8 * time.Millisecond)
	var counts [6]uint64
	var changes []bool // the verdict after each change
	// window adds 100 scheduling latencies, all fast or all slow (8-16 ms),
	// and returns the verdict after it.
	window := func(slow bool) bool {
		if slow {
			counts[4] += 100
		} else {
			counts[0] += 100
		}
		was := c.Saturated()
		c.observe(hist(counts[:]...))
		if c.Saturated() != was {
			changes = append(changes, c.Saturated())
		}
		return c.Saturated()
	}
	c.observe(hist(counts[:]...)) // the first sample only sets the base
	steps := []struct {
		slow, want bool
	}{
		{false, false},
		{true, false}, // one slow window is not saturation
		{false, false},
		{true, false},
		{true, true}, // hotWindows in a row
		{false, true},
		{false, true},
		{true, true}, // a slow window restarts the calm count
	}
	for i := 0; i < calmWindows-1; i++ {
		steps = append(steps, struct{ slow, want bool }{false, true})
	}
	steps = append(steps, struct{ slow, want bool }{false, false}) // calmWindows in a row
	for i, st := range steps {
		if got := window(st.slow); got != st.want {
			t.Fatalf("window %d (slow %v): saturated %v, want %v", i, st.slow, got, st.want)
		}
		// The gauge shows the window's 99th percentile (its bucket's
		// upper bound).
		if p99, want := c.LastP99(), map[bool]float64{false: 0.001, true: 0.016}[st.slow]; p99 != want {
			t.Fatalf("window %d (slow %v): LastP99 %v, want %v", i, st.slow, p99, want)
		}
	}
	// A window in which nothing ran keeps the verdict and the gauge.
	c.observe(hist(counts[:]...))
	if c.Saturated() || c.LastP99() != 0.001 {
		t.Fatalf("an empty window changed the verdict or the gauge (%v)", c.LastP99())
	}
	if (*cpuSaturation)(nil).LastP99() != 0 {
		t.Fatal("a nil sampler's gauge is not 0")
	}
	if len(changes) != 2 || !changes[0] || changes[1] {
		t.Fatalf("changes %v, want [true false]", changes)
	}
	if newCPUSaturation(0) != nil || newCPUSaturation(0).Saturated() {
		t.Fatal("a zero threshold must turn the sampler off (never saturated)")
	}
}

// The sampler reads the real metric and stops when closed.
func TestSaturationSamplerRuns(t *testing.T) {
	c := newCPUSaturation(time.Second)
	c.start()
	waitFor(t, func() bool { return c.sampled.Load() >= 2 })
	done := make(chan struct{})
	go func() { c.close(); close(done) }()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		t.Fatal("close did not stop the sampler")
	}
	if c.Saturated() {
		t.Fatal("an idle test process judged saturated at a 1 s threshold")
	}
}

// A quarter of the ack slots serve always; a request takes one of the
// rest at once unless the overload cut holds, and then waits for a base
// one.
func TestAckSlotsFollowTheCut(t *testing.T) {
	for _, tc := range []struct{ slots, base, extra int }{{1, 1, 0}, {2, 1, 1}, {5, 2, 3}, {16, 4, 12}, {32, 8, 24}} {
		g := newGuard(0, tc.slots, 0, 0, nil)
		if cap(g.acks) != tc.base || cap(g.acksExtra) != tc.extra {
			t.Fatalf("%d ack slots: %d + %d, want %d + %d", tc.slots, cap(g.acks), cap(g.acksExtra), tc.base, tc.extra)
		}
	}
	g := newGuard(0, 2, 0, 0, &cpuSaturation{})
	g.cpu.saturated.Store(true) // saturated, but nobody turned away: no cut
	first := g.takeAckSlot()
	got := make(chan chan struct{}, 1)
	go func() { got <- g.takeAckSlot() }()
	var second chan struct{}
	select {
	case second = <-got:
	case <-time.After(3 * time.Second):
		t.Fatal("the second request waited, saturated but with nobody turned away")
	}
	if first != g.acks || second != g.acksExtra {
		t.Fatal("the second request did not get the extra slot")
	}
	<-second
	g.turnAway()
	go func() { got <- g.takeAckSlot() }()
	select {
	case ch := <-got:
		t.Fatalf("took a slot under the cut while the base slots are taken (extra: %v)", ch == g.acksExtra)
	case <-time.After(100 * time.Millisecond):
	}
	<-first // the base slot frees
	select {
	case ch := <-got:
		if ch != g.acks {
			t.Fatal("took an extra slot under the cut")
		}
	case <-time.After(3 * time.Second):
		t.Fatal("no slot after the base one freed")
	}
	if g := newGuard(0, 1, 0, 0, nil); cap(g.acks) != 1 || g.acksExtra != nil {
		t.Fatal("one ack slot must be a base one")
	}
}

// The cut holds only while the CPU is saturated and a request was turned
// away within refusalMemory.
func TestOverloadCut(t *testing.T) {
	for _, tc := range []struct {
		name       string
		cpu        bool // a sampler (nil: the measure is off)
		saturated  bool
		turnedAway time.Duration // how long ago; 0: never
		cut        bool
	}{
		{"the measure off", false, false, time.Millisecond, false},
		{"the CPU keeps up, a request turned away", true, false, time.Millisecond, false},
		{"saturated, nobody turned away", true, true, 0, false},
		{"saturated, a request turned away just now", true, true, time.Millisecond, true},
		{"saturated, the last turned away just within the memory", true, true, refusalMemory - 200*time.Millisecond, true},
		{"saturated, the last turned away before the memory", true, true, refusalMemory + time.Second, false},
	} {
		g := newGuard(8, 32, 0, time.Second, nil)
		if tc.cpu {
			g.cpu = &cpuSaturation{}
			g.cpu.saturated.Store(tc.saturated)
		}
		if tc.turnedAway > 0 {
			// Move the guard's start back, then record a refusal
			// tc.turnedAway after it.
			g.epoch = time.Now().Add(-refusalMemory - 10*time.Second)
			g.turnedAway.Store(int64(refusalMemory+10*time.Second-tc.turnedAway) + 1)
		}
		if got := g.cut(); got != tc.cut {
			t.Errorf("%s: cut %v, want %v", tc.name, got, tc.cut)
		}
		want := map[bool]int64{false: 24, true: 2}[tc.cut]
		if got := g.queueLimit(); got != want {
			t.Errorf("%s: queue of %d, want %d", tc.name, got, want)
		}
	}
	// Each way the processing bound refuses a request is a request turned
	// away.
	g := newGuard(1, 0, 0, 0, nil)
	a, b := &admission{g: g}, &admission{g: g}
	if !a.takeSlot() || b.takeSlot() {
		t.Fatal("a second slot with one slot and no queue")
	}
	if g.turnedAway.Load() == 0 {
		t.Fatal("a request refused for want of a slot (no queue) was not counted as turned away")
	}
	g = newGuard(1, 0, 0, 20*time.Millisecond, nil)
	a, b = &admission{g: g}, &admission{g: g}
	if !a.takeSlot() || b.takeSlot() {
		t.Fatal("a second slot with one slot, past the queue timeout")
	}
	if g.turnedAway.Load() == 0 {
		t.Fatal("a request refused at the queue timeout was not counted as turned away")
	}
	g.queueLen = 0
	g.turnedAway.Store(0)
	if c := (&admission{g: g}); c.takeSlot() || g.turnedAway.Load() == 0 {
		t.Fatal("a request past a full queue was let in or not counted as turned away")
	}
}
