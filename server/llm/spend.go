package llm

import (
	"context"
	"math"
	"sync"
	"time"
)

// Spend is counted in whole nano-dollars (1e-9 USD): integers add exactly
// in every backend (Redis HINCRBY, SQL bigint), where float sums of
// reservations and their settlements would drift.
const nanosPerUSD = 1e9

func toNanos(usd float64) int64     { return int64(math.Ceil(usd*nanosPerUSD - 1e-6)) }
func fromNanos(n int64) float64     { return float64(n) / nanosPerUSD }
func roundNanos(usd float64) int64  { return int64(math.Round(usd * nanosPerUSD)) }
func minuteOf(t time.Time) int64    { return t.Unix() / 60 }
func hourOf(t time.Time) int64      { return t.Unix() / 3600 }
func minuteStart(m int64) time.Time { return time.Unix(m*60, 0) }
func hourStart(h int64) time.Time   { return time.Unix(h*3600, 0) }

// The windows are rolling and kept in buckets: the hour window sums the
// last HourBuckets one-minute buckets and the day window the last
// DayBuckets one-hour buckets, the current (partial) bucket included. So
// the hour window covers between 60 and 61 minutes and the day window
// between 24 and 25 hours: a budget is never enforced over less than its
// period, and spend counts at most one bucket longer than the period.
const (
	HourBuckets = 61
	DayBuckets  = 25
)

// Reservation is a worst-case charge taken before an LLM call.
type Reservation struct {
	ID     string    // unique per call: the key of the user's in-flight lease
	User   string    // "" for calls made for no user (no share, no cap)
	At     time.Time // picks the buckets; the settlement goes to the same ones
	Amount int64     // nano-dollars
}

// SpendLimits are what a reservation is checked against, in nano-dollars.
type SpendLimits struct {
	Enforce  bool  // false: every reservation is admitted (and counted)
	Hour     int64 // the whole hourly budget
	Day      int64 // the whole daily budget
	UserHour int64 // one user's share of it; 0: no share
	UserDay  int64
	// UserCalls caps one user's reservations not yet settled; 0: no cap.
	UserCalls int
	// Lease is how long an unsettled reservation counts against UserCalls
	// (a process that died mid-call never settles its reservations).
	Lease time.Duration
}

// Refusal reasons, the values of hal9_llm_budget_refusals_total{reason}.
const (
	RefusedHour     = "hourly_budget"     // the whole hourly budget: 503 budget_exceeded
	RefusedDay      = "daily_budget"      // the whole daily budget: 503 budget_exceeded
	RefusedUserHour = "user_hourly_share" // the user's share of the hour: 429
	RefusedUserDay  = "user_daily_share"  // the user's share of the day: 429
	RefusedUserCall = "user_calls"        // the user's calls in flight: 429
)

// RefusalReasons lists every reason, for metrics.
var RefusalReasons = []string{RefusedHour, RefusedDay, RefusedUserHour, RefusedUserDay, RefusedUserCall}

// SpendTotals are the whole spend (every user, every replica sharing the
// backend) in the hour and day windows, reservations in flight included.
type SpendTotals struct{ Hour, Day int64 }

// Verdict answers a reservation.
type Verdict struct {
	Refused    string        // "" admitted, else a Refused* reason
	RetryAfter time.Duration // when refused: until enough spend leaves the window (or 1 s for user_calls)
	Spent      int64         // when refused: the refused scope's spend in that window
	Limit      int64         // and its limit
	Calls      int           // when refused for user_calls: the user's calls in flight
	Totals     SpendTotals   // the whole spend, after the reservation when admitted
}

// SpendBackend keeps the spend. Reserve checks and charges in one atomic
// step, so concurrent callers (in this process or, for a shared backend,
// in every replica) can never all pass a check that only one of them fits.
type SpendBackend interface {
	Reserve(ctx context.Context, r Reservation, lim SpendLimits) (Verdict, error)
	// Settle adds delta (the real cost minus the reservation; usually
	// negative) to the buckets of r.At and ends r's in-flight lease.
	Settle(ctx context.Context, r Reservation, delta int64, now time.Time) (SpendTotals, error)
	Totals(ctx context.Context, now time.Time) (SpendTotals, error)
}

// buckets are one scope's spend: minute buckets for the hour window, hour
// buckets for the day window.
type buckets struct {
	minutes map[int64]int64
	hours   map[int64]int64
}

func newBuckets() *buckets {
	return &buckets{minutes: map[int64]int64{}, hours: map[int64]int64{}}
}

func (b *buckets) add(at time.Time, n int64) {
	b.minutes[minuteOf(at)] += n
	b.hours[hourOf(at)] += n
}

func (b *buckets) hour(now time.Time) int64 { return windowSum(b.minutes, minuteOf(now), HourBuckets) }
func (b *buckets) day(now time.Time) int64  { return windowSum(b.hours, hourOf(now), DayBuckets) }

// prune drops buckets that left their window; empty reports nothing is left.
func (b *buckets) prune(now time.Time) (empty bool) {
	m, h := minuteOf(now), hourOf(now)
	for k := range b.minutes {
		if k <= m-HourBuckets {
			delete(b.minutes, k)
		}
	}
	for k := range b.hours {
		if k <= h-DayBuckets {
			delete(b.hours, k)
		}
	}
	return len(b.minutes) == 0 && len(b.hours) == 0
}

func windowSum(bs map[int64]int64, cur int64, n int64) int64 {
	var s int64
	for k, v := range bs {
		if k > cur-n && k <= cur {
			s += v
		}
	}
	return s
}

// RetryAfterBuckets is how long until the spend in a window of n buckets of size
// (the newest one, cur, holding now) drops to limit-amount as its oldest
// buckets leave it, assuming no new spend; the whole window when even an
// empty window could not take amount.
func RetryAfterBuckets(bs map[int64]int64, cur, n int64, size time.Duration, now time.Time, spent, limit, amount int64) time.Duration {
	if amount > limit {
		return time.Duration(n) * size
	}
	for k := cur - n + 1; k <= cur; k++ {
		spent -= bs[k]
		if spent+amount <= limit {
			leaves := time.Unix(0, 0).Add(time.Duration(k+n) * size) // bucket k leaves when bucket k+n begins
			return max(leaves.Sub(now), time.Second)
		}
	}
	return time.Duration(n) * size
}

// decide checks one scope's windows against its limits; "" when amount fits.
func decide(b *buckets, now time.Time, amount, hourLimit, dayLimit int64, hourReason, dayReason string) (Verdict, bool) {
	if hourLimit > 0 {
		if h := b.hour(now); h+amount > hourLimit {
			return Verdict{Refused: hourReason, Spent: h, Limit: hourLimit,
				RetryAfter: RetryAfterBuckets(b.minutes, minuteOf(now), HourBuckets, time.Minute, now, h, hourLimit, amount)}, false
		}
	}
	if dayLimit > 0 {
		if d := b.day(now); d+amount > dayLimit {
			return Verdict{Refused: dayReason, Spent: d, Limit: dayLimit,
				RetryAfter: RetryAfterBuckets(b.hours, hourOf(now), DayBuckets, time.Hour, now, d, dayLimit, amount)}, false
		}
	}
	return Verdict{}, true
}

// MemorySpend is a SpendBackend in this process: the default without a
// shared one, and the fallback while the shared one fails.
type MemorySpend struct {
	mu        sync.Mutex
	all       *buckets
	users     map[string]*buckets
	leases    map[string]map[string]time.Time // user → reservation id → lease end
	lastPrune time.Time
}

var _ SpendBackend = (*MemorySpend)(nil)

// NewMemorySpend returns an empty MemorySpend.
func NewMemorySpend() *MemorySpend {
	return &MemorySpend{all: newBuckets(), users: map[string]*buckets{}, leases: map[string]map[string]time.Time{}}
}

// Reserve implements SpendBackend.
func (m *MemorySpend) Reserve(_ context.Context, r Reservation, lim SpendLimits) (Verdict, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := r.At
	m.pruneLocked(now)
	if lim.Enforce {
		if v, ok := decide(m.all, now, r.Amount, lim.Hour, lim.Day, RefusedHour, RefusedDay); !ok {
			v.Totals = SpendTotals{m.all.hour(now), m.all.day(now)}
			return v, nil
		}
		if r.User != "" {
			u := m.users[r.User]
			if u == nil {
				u = newBuckets()
			}
			if v, ok := decide(u, now, r.Amount, lim.UserHour, lim.UserDay, RefusedUserHour, RefusedUserDay); !ok {
				v.Totals = SpendTotals{m.all.hour(now), m.all.day(now)}
				return v, nil
			}
			m.expireLeasesLocked(r.User, now)
			if n := len(m.leases[r.User]); lim.UserCalls > 0 && n >= lim.UserCalls {
				return Verdict{Refused: RefusedUserCall, Calls: n, RetryAfter: time.Second,
					Totals: SpendTotals{m.all.hour(now), m.all.day(now)}}, nil
			}
		}
	}
	m.all.add(now, r.Amount)
	if r.User != "" {
		u := m.users[r.User]
		if u == nil {
			u = newBuckets()
			m.users[r.User] = u
		}
		u.add(now, r.Amount)
		ls := m.leases[r.User]
		if ls == nil {
			ls = map[string]time.Time{}
			m.leases[r.User] = ls
		}
		ls[r.ID] = now.Add(lim.Lease)
	}
	return Verdict{Totals: SpendTotals{m.all.hour(now), m.all.day(now)}}, nil
}

// Settle implements SpendBackend.
func (m *MemorySpend) Settle(_ context.Context, r Reservation, delta int64, now time.Time) (SpendTotals, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.all.add(r.At, delta)
	if r.User != "" {
		if u := m.users[r.User]; u != nil {
			u.add(r.At, delta)
		}
		if ls := m.leases[r.User]; ls != nil {
			delete(ls, r.ID)
			if len(ls) == 0 {
				delete(m.leases, r.User)
			}
		}
	}
	return SpendTotals{m.all.hour(now), m.all.day(now)}, nil
}

// Totals implements SpendBackend.
func (m *MemorySpend) Totals(_ context.Context, now time.Time) (SpendTotals, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return SpendTotals{m.all.hour(now), m.all.day(now)}, nil
}

// raise makes the whole spend at least t (a shared backend's last totals,
// when this process takes over from it): the difference is charged to the
// current buckets, so it leaves the windows no sooner than it would have.
func (m *MemorySpend) raise(now time.Time, t SpendTotals) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if d := t.Hour - m.all.hour(now); d > 0 {
		m.all.minutes[minuteOf(now)] += d
	}
	if d := t.Day - m.all.day(now); d > 0 {
		m.all.hours[hourOf(now)] += d
	}
}

// pruneLocked forgets, once a minute, buckets out of every window, idle
// users and expired leases (of calls whose process never settled them).
func (m *MemorySpend) pruneLocked(now time.Time) {
	if now.Sub(m.lastPrune) < time.Minute {
		return
	}
	m.lastPrune = now
	m.all.prune(now)
	for u := range m.leases {
		m.expireLeasesLocked(u, now)
	}
	for u, b := range m.users {
		if b.prune(now) && len(m.leases[u]) == 0 {
			delete(m.users, u)
		}
	}
}

func (m *MemorySpend) expireLeasesLocked(user string, now time.Time) {
	ls := m.leases[user]
	for id, end := range ls {
		if !end.After(now) {
			delete(ls, id)
		}
	}
	if ls != nil && len(ls) == 0 {
		delete(m.leases, user)
	}
}
