// Package limits keeps keyed rate limits (a rate per period with a burst,
// by GCRA, the generic cell rate algorithm) for the credential routes: per
// client address, per username. The counts live in memory (Memory) or in
// a shared backend such as Redis (package redislimits), so that replicas
// behind one load balancer count together; a Limiter falls back to memory
// while the shared backend fails.
package limits

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hal9-lab/hal9-lab/internal/failfast"
)

// Limit is Rate events per Period with bursts of up to Burst.
type Limit struct {
	Rate   int
	Period time.Duration
	Burst  int
}

// Off reports whether the limit is disabled (a zero rate).
func (l Limit) Off() bool { return l.Rate <= 0 || l.Period <= 0 }

func (l Limit) String() string {
	return fmt.Sprintf("%d per %s (burst %d)", l.Rate, l.Period, l.Burst)
}

func (l Limit) interval() time.Duration { return l.Period / time.Duration(l.Rate) }

// Result is one decision.
type Result struct {
	Allowed    bool
	Remaining  int           // events that would still pass now
	RetryAfter time.Duration // when not allowed: until one event would pass
}

// Backend applies n events to key (n 0 only reads: Remaining tells how
// many would pass now; a negative n gives events back and always passes).
type Backend interface {
	AllowN(ctx context.Context, key string, l Limit, n int) (Result, error)
}

// Memory is a Backend in this process. Keys whose bucket is full again are
// dropped, so memory stays bounded by the keys active within a burst's
// refill time.
type Memory struct {
	now func() time.Time

	mu        sync.Mutex
	tat       map[string]time.Time // theoretical arrival time of the next event
	lastSweep time.Time
}

// NewMemory returns an empty Memory backend.
func NewMemory() *Memory { return &Memory{now: time.Now, tat: map[string]time.Time{}} }

// maxKeys bounds the map between sweeps.
const maxKeys = 200_000

// AllowN implements Backend with GCRA, as redis_rate does.
func (m *Memory) AllowN(_ context.Context, key string, l Limit, n int) (Result, error) {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.tat) >= maxKeys || now.Sub(m.lastSweep) > time.Minute {
		m.sweepLocked(now)
	}
	tat, ok := m.tat[key]
	if !ok || tat.Before(now) {
		tat = now
	}
	if n < 0 { // a refund: the bucket empties by n events
		if next := tat.Add(l.interval() * time.Duration(n)); next.After(now) {
			m.tat[key] = next
		} else {
			delete(m.tat, key)
		}
		return Result{Allowed: true}, nil
	}
	res, next := gcra(now, tat, l, n)
	if res.Allowed && n > 0 {
		m.tat[key] = next
	}
	return res, nil
}

// gcra decides n events at now for a key whose theoretical arrival time is
// tat (≥ now), and returns the new tat when allowed.
func gcra(now, tat time.Time, l Limit, n int) (Result, time.Time) {
	ei := l.interval()
	next := tat.Add(ei * time.Duration(n))
	allowAt := next.Add(-ei * time.Duration(l.Burst))
	diff := now.Sub(allowAt)
	if diff < 0 {
		return Result{RetryAfter: -diff}, tat
	}
	return Result{Allowed: true, Remaining: int(diff / ei)}, next
}

// sweepLocked drops keys whose bucket is full again (tat in the past): a
// new entry for them starts the same way.
func (m *Memory) sweepLocked(now time.Time) {
	m.lastSweep = now
	for k, t := range m.tat {
		if t.Before(now) {
			delete(m.tat, k)
		}
	}
	if len(m.tat) >= maxKeys { // every key busy: forget them all rather than grow
		clear(m.tat)
	}
}

// Limiter answers Take, Give and Check from a backend, and from memory
// while that backend errs (logged through onError, counted in
// hal9_auth_limiter_fallbacks_total). A short breaker stands in front of
// the backend: after a few failures in a row it is skipped for a few
// seconds, so a hanging Redis costs its timeout a few times, not on every
// request.
type Limiter struct {
	shared    Backend // nil: memory only
	breaker   *failfast.Breaker
	local     *Memory
	fallbacks prometheus.Counter
	onError   func(error)
}

// New returns a Limiter on shared (nil: memory only). reg may be nil.
func New(shared Backend, reg prometheus.Registerer, onError func(error)) *Limiter {
	l := &Limiter{shared: shared, breaker: failfast.New("redis_limits", nil), local: NewMemory(), onError: onError,
		fallbacks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hal9_auth_limiter_fallbacks_total",
			Help: "Credential-route limit decisions taken in memory because the shared backend (Redis) failed.",
		})}
	if reg != nil {
		reg.MustRegister(l.fallbacks)
	}
	return l
}

func (l *Limiter) allowN(ctx context.Context, key string, lim Limit, n int) Result {
	if l.shared != nil {
		var r Result
		err := l.breaker.Do(ctx, func(ctx context.Context) error {
			var err error
			r, err = l.shared.AllowN(ctx, key, lim, n)
			return err
		})
		if err == nil {
			return r
		}
		l.fallbacks.Inc()
		if l.onError != nil {
			l.onError(err)
		}
	}
	r, _ := l.local.AllowN(ctx, key, lim, n)
	return r
}

// Take records one event for key; false and the wait when it is over the
// limit (the event is then not recorded). An Off limit always allows.
func (l *Limiter) Take(ctx context.Context, key string, lim Limit) (bool, time.Duration) {
	if lim.Off() {
		return true, 0
	}
	r := l.allowN(ctx, key, lim, 1)
	return r.Allowed, r.RetryAfter
}

// Give gives back one event taken for key (a login that turned out right
// returns the slot it took before its password was checked).
func (l *Limiter) Give(ctx context.Context, key string, lim Limit) {
	if !lim.Off() {
		l.allowN(ctx, key, lim, -1)
	}
}

// Check reports, recording nothing, whether one more event for key would
// be within the limit, and when not, how long until it would.
func (l *Limiter) Check(ctx context.Context, key string, lim Limit) (bool, time.Duration) {
	if lim.Off() {
		return true, 0
	}
	r := l.allowN(ctx, key, lim, 0)
	if r.Allowed && r.Remaining >= 1 {
		return true, 0
	}
	// Remaining 0: the next event passes one interval after the bucket
	// drops below full.
	wait := r.RetryAfter
	if wait <= 0 {
		wait = lim.interval()
	}
	return false, time.Duration(math.Max(float64(wait), float64(time.Second)))
}
