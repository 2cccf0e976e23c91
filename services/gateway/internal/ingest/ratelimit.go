package ingest

import (
	"time"

	"golang.org/x/time/rate"
)

// RateLimit bounds what one source key may send: token buckets of events
// and of body bytes (as sent). Zero rates are unlimited. A request over
// either bucket is refused whole with 429 and a Retry-After of when it
// would fit; its tokens are given back. A request larger than a burst is
// admitted when the bucket is full, and empties it.
type RateLimit struct {
	EventsPerSecond float64 `yaml:"events_per_second"`
	// BurstEvents is the bucket size; 0 means one second's worth.
	BurstEvents    int     `yaml:"burst_events"`
	BytesPerSecond float64 `yaml:"bytes_per_second"`
	// BurstBytes is the bucket size; 0 means one second's worth.
	BurstBytes int `yaml:"burst_bytes"`
}

// Enabled reports whether any rate is set.
func (r RateLimit) Enabled() bool { return r.EventsPerSecond > 0 || r.BytesPerSecond > 0 }

// sourceLimiter is one source key's buckets.
type sourceLimiter struct {
	events *rate.Limiter // nil: unlimited
	bytes  *rate.Limiter
}

func newSourceLimiter(rl RateLimit) *sourceLimiter {
	if !rl.Enabled() {
		return nil
	}
	bucket := func(perSec float64, burst int) *rate.Limiter {
		if perSec <= 0 {
			return nil
		}
		if burst <= 0 {
			burst = max(int(perSec), 1)
		}
		return rate.NewLimiter(rate.Limit(perSec), burst)
	}
	return &sourceLimiter{events: bucket(rl.EventsPerSecond, rl.BurstEvents), bytes: bucket(rl.BytesPerSecond, rl.BurstBytes)}
}

// rateAdmission is a request's rate-limit state: its source's buckets and
// the tokens already taken for it.
type rateAdmission struct {
	lim          *sourceLimiter
	bytesCharged bool
	passed       bool // some of the request's events were admitted
	taken        []*rate.Reservation
}

// take takes n tokens from lim, or none; when refused it returns how long
// until they would be there.
func take(lim *rate.Limiter, now time.Time, n int) (*rate.Reservation, time.Duration) {
	if lim == nil || n <= 0 {
		return nil, 0
	}
	n = min(n, lim.Burst())
	r := lim.ReserveN(now, n)
	if !r.OK() {
		return nil, time.Second
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return nil, d
	}
	return r, 0
}

// chargeBytes takes n bytes (a known Content-Length, before the body is
// read). It returns the wait when refused.
func (ra *rateAdmission) chargeBytes(now time.Time, n int64) time.Duration {
	if ra == nil || ra.lim == nil || ra.lim.bytes == nil || ra.bytesCharged {
		return 0
	}
	r, wait := take(ra.lim.bytes, now, int(min(n, 1<<30)))
	if wait > 0 {
		return wait
	}
	ra.bytesCharged = true
	if r != nil {
		ra.taken = append(ra.taken, r)
	}
	return 0
}

// chargeEvents takes n events, and the body's bytes when they were not
// charged from the Content-Length. When refused it gives back the tokens
// taken for the refused part (for the whole request, while none of it has
// passed) and returns the wait.
func (ra *rateAdmission) chargeEvents(now time.Time, events int, bodyBytes int64) time.Duration {
	if ra == nil || ra.lim == nil {
		return 0
	}
	mark := len(ra.taken)
	if ra.passed {
		bodyBytes = 0 // a later part of a request that already passed
	}
	wait := ra.chargeBytes(now, bodyBytes)
	if wait == 0 {
		var r *rate.Reservation
		if r, wait = take(ra.lim.events, now, events); r != nil {
			ra.taken = append(ra.taken, r)
		}
	}
	if wait > 0 {
		if !ra.passed {
			mark = 0
			ra.bytesCharged = false
		}
		for _, r := range ra.taken[mark:] {
			r.CancelAt(now)
		}
		ra.taken = ra.taken[:mark]
		return wait
	}
	ra.passed = true
	return 0
}
