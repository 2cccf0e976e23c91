package ingest

import (
	"math"
	rtmetrics "runtime/metrics"
	"sync/atomic"
	"time"
)

// CPU saturation (Options.SaturationLatency): how long the process's
// goroutines wait, runnable, for a CPU (the Go runtime's
// /sched/latencies:seconds) shows whether the CPU keeps up. Once the 99th
// percentile of that wait over a sampling window reaches the threshold,
// the CPU counts as saturated: that is one of the two conditions of the
// overload cut (guard.cut), which shortens the processing queue and
// leaves most ack slots unused, since every place in either is then
// latency for what is accepted. The other is requests turned away.
//
// The wait for a processing slot cannot tell a saturated CPU from one
// that keeps up: under overload the CPU itself is the queue (requests
// admitted, bodies read, goroutines runnable but not running) while slots
// stand free. Nor can the scheduling latency alone tell overload from a
// busy gateway whose clients all get in: with 32 closed-loop clients, the
// CPU fully used and 32 ack slots, the 99th percentile of quarter-second
// windows reached 4.6-21 ms on 2 vCPUs with the load generator on the
// same cores; at twice the capacity, open loop, 10-84 ms
// (docs/benchmarks.md).

// saturationWindow is how often the scheduling latencies are sampled; each
// sample judges the window since the previous one.
const saturationWindow = 250 * time.Millisecond

// hotWindows is how many windows in a row at or above the threshold begin
// a saturation (half a second), calmWindows how many below it end one
// (2 s).
const (
	hotWindows  = 2
	calmWindows = 8
)

// schedLatencies is the runtime metric sampled.
const schedLatencies = "/sched/latencies:seconds"

// cpuSaturation samples the scheduling latencies and keeps the verdict.
type cpuSaturation struct {
	threshold time.Duration
	saturated atomic.Bool
	calm      int           // the last windows in a row below the threshold
	hot       int           // the last windows in a row at or above it
	sampled   atomic.Int64  // samples taken
	lastP99   atomic.Uint64 // the last judged window's 99th percentile (float64 bits, seconds)
	sample    []rtmetrics.Sample
	prev      []uint64
	loop      everyLoop
}

// newCPUSaturation returns a sampler; nil when threshold is 0 (no cut: the
// CPU counts as keeping up).
func newCPUSaturation(threshold time.Duration) *cpuSaturation {
	if threshold <= 0 {
		return nil
	}
	return &cpuSaturation{threshold: threshold,
		sample: []rtmetrics.Sample{{Name: schedLatencies}}}
}

// LastP99 is the 99th percentile of the last window in which goroutines
// ran, in seconds; 0 for a nil sampler or before the first.
func (c *cpuSaturation) LastP99() float64 {
	if c == nil {
		return 0
	}
	return math.Float64frombits(c.lastP99.Load())
}

// Saturated reports the last window's verdict; false for a nil sampler.
func (c *cpuSaturation) Saturated() bool {
	return c != nil && c.saturated.Load()
}

// observe judges one window from the histogram's cumulative counts.
func (c *cpuSaturation) observe(h *rtmetrics.Float64Histogram) {
	c.sampled.Add(1)
	if c.prev == nil {
		c.prev = make([]uint64, len(h.Counts))
		copy(c.prev, h.Counts)
		return
	}
	p99 := windowQuantile(h, c.prev, 0.99)
	copy(c.prev, h.Counts)
	if math.IsNaN(p99) {
		return // nothing ran in the window: keep the verdict
	}
	c.lastP99.Store(math.Float64bits(p99))
	// One slow window is a hiccup (a collection, another process):
	// saturation begins after hotWindows in a row. Cutting the queue lowers
	// the latency measured: it ends only after calmWindows in a row below
	// the threshold, or the verdict would flip every window.
	if p99 >= c.threshold.Seconds() {
		c.hot, c.calm = c.hot+1, 0
	} else {
		c.hot, c.calm = 0, c.calm+1
	}
	switch was := c.saturated.Load(); {
	case !was && c.hot >= hotWindows:
		c.saturated.Store(true)
	case was && c.calm >= calmWindows:
		c.saturated.Store(false)
	}
}

// windowQuantile is the q-quantile of the latencies counted since prev
// (cumulative counts of the same buckets), as the upper bound of the
// bucket it falls in (the lower bound for the last, unbounded one); NaN
// when none were counted.
func windowQuantile(h *rtmetrics.Float64Histogram, prev []uint64, q float64) float64 {
	var total uint64
	for i, n := range h.Counts {
		total += n - prev[i]
	}
	if total == 0 {
		return math.NaN()
	}
	rank := uint64(math.Ceil(q * float64(total)))
	var acc uint64
	for i, n := range h.Counts {
		acc += n - prev[i]
		if acc >= rank {
			if hi := h.Buckets[i+1]; !math.IsInf(hi, 1) {
				return hi
			}
			return h.Buckets[i]
		}
	}
	return h.Buckets[len(h.Buckets)-1]
}

// start samples now and then every saturationWindow until close.
func (c *cpuSaturation) start() {
	if c == nil || c.loop.stop != nil {
		return
	}
	c.read()
	c.loop.start(saturationWindow, c.read)
}

// read takes one sample and judges the window it ends.
func (c *cpuSaturation) read() {
	rtmetrics.Read(c.sample)
	if c.sample[0].Value.Kind() == rtmetrics.KindFloat64Histogram {
		c.observe(c.sample[0].Value.Float64Histogram())
	}
}

func (c *cpuSaturation) close() {
	if c != nil {
		c.loop.close()
	}
}
