package server

import (
	"math"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
)

// rateLimiter gives each client identity a token bucket of perSecond
// tokens per second with a burst of perSecond (at least 1). Buckets live in
// a bounded map; idle ones are evicted, so memory stays bounded however many
// clients come and go.
type rateLimiter struct {
	limit    rate.Limit
	burst    int
	maxKeys  int
	idle     time.Duration
	rejected prometheus.Counter
	now      func() time.Time

	mu        sync.Mutex
	buckets   map[string]*bucket
	lastSweep time.Time
}

type bucket struct {
	lim  *rate.Limiter
	seen time.Time
}

// newRateLimiter returns nil when perSecond is 0 (limiting off).
func newRateLimiter(perSecond float64, rejected prometheus.Counter) *rateLimiter {
	if perSecond <= 0 {
		return nil
	}
	burst := int(math.Ceil(perSecond))
	return &rateLimiter{
		limit: rate.Limit(perSecond), burst: max(burst, 1),
		maxKeys: 100_000, idle: 3 * time.Minute,
		rejected: rejected, now: time.Now,
		buckets: map[string]*bucket{},
	}
}

// allow takes a token for key; when none is left it returns false and how
// long until one is.
func (rl *rateLimiter) allow(key string) (bool, time.Duration) {
	now := rl.now()
	rl.mu.Lock()
	b, ok := rl.buckets[key]
	if !ok {
		if len(rl.buckets) >= rl.maxKeys || now.Sub(rl.lastSweep) > rl.idle {
			rl.sweepLocked(now)
		}
		b = &bucket{lim: rate.NewLimiter(rl.limit, rl.burst)}
		rl.buckets[key] = b
	}
	b.seen = now
	rl.mu.Unlock()

	if b.lim.AllowN(now, 1) {
		return true, 0
	}
	r := b.lim.ReserveN(now, 1)
	wait := r.DelayFrom(now)
	r.CancelAt(now)
	if rl.rejected != nil {
		rl.rejected.Inc()
	}
	return false, max(wait, time.Second)
}

// sweepLocked drops idle buckets; if the map is still full, it drops the
// least recently seen half (a client coming back starts with a full bucket,
// which errs on the side of letting it through).
func (rl *rateLimiter) sweepLocked(now time.Time) {
	rl.lastSweep = now
	for k, b := range rl.buckets {
		if now.Sub(b.seen) > rl.idle {
			delete(rl.buckets, k)
		}
	}
	if len(rl.buckets) < rl.maxKeys {
		return
	}
	cut := now.Add(-rl.idle / 2)
	for len(rl.buckets) >= rl.maxKeys {
		for k, b := range rl.buckets {
			if b.seen.Before(cut) {
				delete(rl.buckets, k)
			}
		}
		cut = cut.Add((now.Sub(cut) + 1) / 2)
		if !cut.Before(now) {
			clear(rl.buckets)
		}
	}
}

func (rl *rateLimiter) size() int {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	return len(rl.buckets)
}
