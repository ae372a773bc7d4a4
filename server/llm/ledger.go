package llm

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hal9-lab/hal9-lab/internal/failfast"
)

// Budgets are the cost limits of a Ledger.
type Budgets struct {
	HourlyUSD float64 // default 10 (seed 004); the rolling hour
	DailyUSD  float64 // default 100; the rolling day
	WarnRatio float64 // default 0.8: warn when spend crosses this share of a budget
	// Enforce refuses calls that do not fit: past the whole budget with
	// ErrBudgetExceeded, past a user's share or call cap with ErrUserLimit.
	// Off by default: lab runs spend far past $10/h in simulated dollars
	// and must not stop.
	Enforce bool
	// UserShare is the part of each budget one user may spend (0..1];
	// 0 takes DefaultUserShare, 1 gives no user a limit of its own.
	UserShare float64
	// UserCalls caps one user's LLM calls in flight; 0: no cap.
	UserCalls int
}

// DefaultUserShare: one user (one runaway script, one stolen token) can
// spend at most a quarter of each budget, so three quarters stay for
// everyone else, and spending the whole budget takes at least four users.
const DefaultUserShare = 0.25

// LedgerOptions configure a Ledger.
type LedgerOptions struct {
	Budgets
	Metrics *Metrics     // nil: no metrics
	Logger  *slog.Logger // nil: discard
	// Shared keeps the spend every replica sees (Redis). Its calls go
	// through a short breaker; while it fails, reservations are decided in
	// this process's memory, which starts from the last totals Shared gave.
	// nil: Local alone.
	Shared SpendBackend
	// Local is used without Shared: nil is a MemorySpend (this process
	// only); a *StoredSpend keeps the spend in the database.
	Local SpendBackend
	// Lease is how long an unsettled reservation counts against its
	// user's call cap (a server that died mid-call never settles): the
	// guard's timeout plus a margin. Default 2 min.
	Lease time.Duration
}

// CostSnapshot is the ledger's state for /api/v1/metrics.
type CostSnapshot struct {
	HourUSD         float64            `json:"hour_usd"`      // the whole rolling hour, every replica sharing the ledger, calls in flight at their reservation
	DayUSD          float64            `json:"day_usd"`       // the same for the rolling day
	TotalUSD        float64            `json:"total_usd"`     // settled by this process since it started
	InFlightUSD     float64            `json:"in_flight_usd"` // reserved by this process's calls still running
	ByModel         map[string]float64 `json:"by_model_usd"`
	Calls           int64              `json:"calls"`
	HourlyBudgetUSD float64            `json:"hourly_budget_usd"`
	DailyBudgetUSD  float64            `json:"daily_budget_usd"`
	UserShare       float64            `json:"user_share"`
	Enforced        bool               `json:"enforced"`
}

// window is the warning state of one budget window. Warnings are issued at
// most once per level per calendar window (clock hour, UTC day), even though
// spend is measured over the rolling window.
type window struct {
	name     string
	budget   float64
	period   time.Duration
	start    time.Time // calendar window the flags below belong to
	warned   bool      // WarnRatio crossing logged
	exceeded bool      // 100 % crossing logged
}

// sharedTimeout bounds one call to the shared backend: past it (and the
// breaker after a few) the call is decided in memory. Generous next to a
// Redis round trip, small next to the LLM call it guards: deciding in
// memory lets each replica spend what it has not seen the others spend.
const sharedTimeout = time.Second

// Ledger reserves a worst-case cost before each LLM call, in one atomic
// step with the check against the budgets, and settles it to the real cost
// when the call ends; it keeps running totals, logs budget warnings and
// exports the metrics. Safe for concurrent use.
type Ledger struct {
	b        Budgets
	lim      SpendLimits
	m        *Metrics
	log      *slog.Logger
	now      func() time.Time // tests replace it
	shared   SpendBackend
	local    SpendBackend
	fallback *MemorySpend // local, when there is a shared backend
	breaker  *failfast.Breaker
	idPrefix string
	seq      atomic.Uint64

	mu       sync.Mutex
	total    float64
	inFlight float64
	calls    int64
	byModel  map[string]float64
	last     SpendTotals
	lastAt   time.Time
	hour     window
	day      window
}

// NewLedger returns a ledger.
func NewLedger(o LedgerOptions) *Ledger {
	b := o.Budgets
	if b.HourlyUSD <= 0 {
		b.HourlyUSD = 10
	}
	if b.DailyUSD <= 0 {
		b.DailyUSD = 100
	}
	if b.WarnRatio <= 0 || b.WarnRatio > 1 {
		b.WarnRatio = 0.8
	}
	if b.UserShare <= 0 || b.UserShare > 1 {
		b.UserShare = DefaultUserShare
	}
	if o.Lease <= 0 {
		o.Lease = 2 * time.Minute
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	lim := SpendLimits{Enforce: b.Enforce, Hour: roundNanos(b.HourlyUSD), Day: roundNanos(b.DailyUSD),
		UserCalls: max(b.UserCalls, 0), Lease: o.Lease}
	if b.UserShare < 1 {
		lim.UserHour, lim.UserDay = roundNanos(b.HourlyUSD*b.UserShare), roundNanos(b.DailyUSD*b.UserShare)
	}
	var prefix [6]byte
	rand.Read(prefix[:])
	l := &Ledger{
		b: b, lim: lim, m: o.Metrics, log: log, now: time.Now, shared: o.Shared, local: o.Local,
		idPrefix: hex.EncodeToString(prefix[:]) + "-",
		byModel:  map[string]float64{},
		hour:     window{name: "hour", budget: b.HourlyUSD, period: time.Hour},
		day:      window{name: "day", budget: b.DailyUSD, period: 24 * time.Hour},
	}
	if l.shared != nil {
		l.fallback = NewMemorySpend()
		l.local = l.fallback
		l.breaker = failfast.New("llm_spend", nil)
	} else if l.local == nil {
		l.local = NewMemorySpend()
	}
	if m := o.Metrics; m != nil {
		m.Budget.WithLabelValues("hour").Set(b.HourlyUSD)
		m.Budget.WithLabelValues("day").Set(b.DailyUSD)
		m.Spend.WithLabelValues("hour").Set(0)
		m.Spend.WithLabelValues("day").Set(0)
		m.BudgetWarnings.WithLabelValues("hour")
		m.BudgetWarnings.WithLabelValues("day")
		for _, r := range RefusalReasons {
			m.BudgetRefusals.WithLabelValues(r)
		}
	}
	return l
}

// BudgetError is ErrBudgetExceeded with the window, the spend and when
// enough of it will have left the rolling window to allow the call.
type BudgetError struct {
	Window     string // "hour" or "day"
	SpentUSD   float64
	BudgetUSD  float64
	NeededUSD  float64 // the call's reservation
	RetryAfter time.Duration
}

func (e *BudgetError) Error() string {
	return fmt.Sprintf("%v: $%.4g spent or reserved in the last %s, budget $%.4g, this call needs up to $%.4g; calls resume in %s",
		ErrBudgetExceeded, e.SpentUSD, e.Window, e.BudgetUSD, e.NeededUSD, e.RetryAfter.Round(time.Second))
}

// Unwrap makes errors.Is(err, ErrBudgetExceeded) true.
func (e *BudgetError) Unwrap() error { return ErrBudgetExceeded }

// UserLimitError is ErrUserLimit: the user's share of a budget is spent
// (Reason RefusedUserHour or RefusedUserDay), or the user has its cap of
// calls in flight (RefusedUserCall). Other users' calls still pass.
type UserLimitError struct {
	Reason     string
	SpentUSD   float64 // the user's spend in the window (share reasons)
	LimitUSD   float64 // the user's share
	Calls      int     // the user's calls in flight (RefusedUserCall)
	MaxCalls   int
	RetryAfter time.Duration
}

func (e *UserLimitError) Error() string {
	switch e.Reason {
	case RefusedUserCall:
		return fmt.Sprintf("%v: %d of this user's LLM calls are already running, the most one user may have (--llm-calls-per-user %d); retry in %s",
			ErrUserLimit, e.Calls, e.MaxCalls, e.RetryAfter.Round(time.Second))
	default:
		w := "hour"
		if e.Reason == RefusedUserDay {
			w = "day"
		}
		return fmt.Sprintf("%v: this user has spent or reserved $%.4g in the last %s, its share of the budget is $%.4g (--llm-budget-per-user); calls resume in %s",
			ErrUserLimit, e.SpentUSD, w, e.LimitUSD, e.RetryAfter.Round(time.Second))
	}
}

// Unwrap makes errors.Is(err, ErrUserLimit) true.
func (e *UserLimitError) Unwrap() error { return ErrUserLimit }

// Ticket is one admitted reservation; Settle it exactly once.
type Ticket struct {
	l       *Ledger
	r       Reservation
	on      SpendBackend // where it was reserved
	model   string
	usd     float64
	settled atomic.Bool
}

// ReservedUSD is the worst-case cost the ticket holds.
func (t *Ticket) ReservedUSD() float64 { return t.usd }

// Reserve admits a call that may cost up to worstUSD, for user ("" when
// the call is made for no user), or refuses it with a *BudgetError or a
// *UserLimitError when Enforce is on and it does not fit. The check and
// the charge are one atomic step in the backend, so concurrent calls can
// never together reserve more than the budget.
func (l *Ledger) Reserve(ctx context.Context, user, model string, worstUSD float64) (*Ticket, error) {
	now := l.now()
	if !l.b.Enforce {
		user = "" // watched only: no share or cap to keep, so no per-user buckets to pay for
	}
	r := Reservation{ID: l.idPrefix + strconv.FormatUint(l.seq.Add(1), 36), User: user, At: now, Amount: toNanos(worstUSD)}
	v, on := l.reserve(ctx, r)
	if v.Refused != "" {
		if l.m != nil {
			l.m.BudgetRefusals.WithLabelValues(v.Refused).Inc()
		}
		l.observe(now, v.Totals)
		return nil, l.refusal(v, worstUSD)
	}
	l.mu.Lock()
	l.inFlight += worstUSD
	l.mu.Unlock()
	if l.m != nil {
		l.m.BudgetReserved.Add(worstUSD)
		l.m.BudgetInFlight.Add(worstUSD)
	}
	l.observe(now, v.Totals)
	return &Ticket{l: l, r: r, on: on, model: model, usd: worstUSD}, nil
}

func (l *Ledger) reserve(ctx context.Context, r Reservation) (Verdict, SpendBackend) {
	if l.shared != nil {
		var v Verdict
		err := l.viaShared(ctx, func(ctx context.Context) (err error) {
			v, err = l.shared.Reserve(ctx, r, l.lim)
			return err
		})
		if err == nil {
			return v, l.shared
		}
		l.fellBack("reserve", err)
		l.mu.Lock()
		last := l.last
		l.mu.Unlock()
		l.fallback.raise(r.At, last)
	}
	v, _ := l.local.Reserve(ctx, r, l.lim) // memory: no error
	return v, l.local
}

// viaShared calls fn on the shared backend through the breaker, bounded by
// sharedTimeout.
func (l *Ledger) viaShared(ctx context.Context, fn func(context.Context) error) error {
	return l.breaker.Do(ctx, func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, sharedTimeout)
		defer cancel()
		return fn(ctx)
	})
}

func (l *Ledger) fellBack(what string, err error) {
	if l.m != nil {
		l.m.BudgetFallbacks.Inc()
	}
	l.log.Debug("LLM spend: the shared ledger failed, deciding in this process", "op", what, "error", err)
}

func (l *Ledger) refusal(v Verdict, worstUSD float64) error {
	switch v.Refused {
	case RefusedHour, RefusedDay:
		w := "hour"
		if v.Refused == RefusedDay {
			w = "day"
		}
		return &BudgetError{Window: w, SpentUSD: fromNanos(v.Spent), BudgetUSD: fromNanos(v.Limit), NeededUSD: worstUSD, RetryAfter: v.RetryAfter}
	default:
		return &UserLimitError{Reason: v.Refused, SpentUSD: fromNanos(v.Spent), LimitUSD: fromNanos(v.Limit),
			Calls: v.Calls, MaxCalls: l.lim.UserCalls, RetryAfter: v.RetryAfter}
	}
}

// Settle charges the call's real cost in place of its reservation (a call
// whose cost is unknown, cut by a timeout or left by its caller, settles
// at ReservedUSD: the provider may have billed it). Only the first call
// counts.
func (t *Ticket) Settle(costUSD float64) {
	if t == nil || !t.settled.CompareAndSwap(false, true) {
		return
	}
	l := t.l
	delta := roundNanos(costUSD) - t.r.Amount
	now := l.now()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	var totals SpendTotals
	var err error
	if t.on == l.shared {
		err = l.viaShared(ctx, func(ctx context.Context) (err error) {
			totals, err = l.shared.Settle(ctx, t.r, delta, now)
			return err
		})
		if err != nil {
			// The reservation stays charged in the shared ledger (the
			// safe side) until its windows pass.
			l.fellBack("settle", err)
		}
	} else {
		totals, err = t.on.Settle(ctx, t.r, delta, now)
	}
	l.mu.Lock()
	l.inFlight -= t.usd
	l.total += costUSD
	if costUSD > 0 {
		l.calls++
		l.byModel[t.model] += costUSD
	}
	l.mu.Unlock()
	if l.m != nil {
		l.m.BudgetSettled.Add(costUSD)
		l.m.BudgetInFlight.Sub(t.usd)
	}
	if err == nil {
		l.observe(now, totals)
	}
}

// observe takes the whole spend a backend answered: gauges and warnings.
func (l *Ledger) observe(now time.Time, t SpendTotals) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.last, l.lastAt = t, now
	hour, day := fromNanos(t.Hour), fromNanos(t.Day)
	l.checkLocked(&l.hour, hour, now)
	l.checkLocked(&l.day, day, now)
	if l.m != nil {
		l.m.Spend.WithLabelValues("hour").Set(hour)
		l.m.Spend.WithLabelValues("day").Set(day)
	}
}

// Snapshot returns the totals, reading the backend when the last answer is
// more than a second old (the spend gauges follow).
func (l *Ledger) Snapshot() CostSnapshot {
	now := l.now()
	l.mu.Lock()
	stale := now.Sub(l.lastAt) > time.Second
	l.mu.Unlock()
	if stale {
		var t SpendTotals
		var err error
		if l.shared != nil {
			err = l.viaShared(context.Background(), func(ctx context.Context) (err error) {
				t, err = l.shared.Totals(ctx, now)
				return err
			})
		} else {
			t, err = l.local.Totals(context.Background(), now)
		}
		if err == nil {
			l.observe(now, t)
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	by := make(map[string]float64, len(l.byModel))
	for k, v := range l.byModel {
		by[k] = v
	}
	return CostSnapshot{
		HourUSD: fromNanos(l.last.Hour), DayUSD: fromNanos(l.last.Day), TotalUSD: l.total, InFlightUSD: max(l.inFlight, 0),
		ByModel: by, Calls: l.calls, HourlyBudgetUSD: l.b.HourlyUSD, DailyBudgetUSD: l.b.DailyUSD,
		UserShare: l.b.UserShare, Enforced: l.b.Enforce,
	}
}

func (l *Ledger) checkLocked(w *window, spend float64, now time.Time) {
	start := now.UTC().Truncate(w.period)
	if !start.Equal(w.start) {
		w.start, w.warned, w.exceeded = start, false, false
	}
	if !w.warned && spend >= w.budget*l.b.WarnRatio {
		w.warned = true
		l.warn(w, spend, fmt.Sprintf("LLM spend crossed %.0f%% of the %s budget", l.b.WarnRatio*100, w.name))
	}
	if !w.exceeded && spend >= w.budget {
		w.exceeded = true
		l.warn(w, spend, fmt.Sprintf("LLM spend crossed the %s budget", w.name))
	}
}

func (l *Ledger) warn(w *window, spend float64, msg string) {
	l.log.Warn(msg, "window", w.name, "spend_usd", spend, "budget_usd", w.budget, "enforced", l.b.Enforce)
	if l.m != nil {
		l.m.BudgetWarnings.WithLabelValues(w.name).Inc()
	}
}
