package llm

import (
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Budgets are the cost limits of a Ledger.
type Budgets struct {
	HourlyUSD float64 // default 10 (seed 004); the rolling last 60 minutes
	DailyUSD  float64 // default 100; the rolling last 24 hours
	WarnRatio float64 // default 0.8: warn when spend crosses this share of a budget
	// Enforce makes Guard calls fail with ErrBudgetExceeded while a window's
	// spend is at or over its budget. Off by default: lab runs spend far past
	// $10/h in simulated dollars and must not stop.
	Enforce bool
}

// CostSnapshot is the ledger's state for /api/v1/metrics.
type CostSnapshot struct {
	HourUSD         float64            `json:"hour_usd"`
	DayUSD          float64            `json:"day_usd"`
	TotalUSD        float64            `json:"total_usd"`
	ByModel         map[string]float64 `json:"by_model_usd"`
	Calls           int64              `json:"calls"`
	HourlyBudgetUSD float64            `json:"hourly_budget_usd"`
	DailyBudgetUSD  float64            `json:"daily_budget_usd"`
	Enforced        bool               `json:"enforced"`
}

const dayMinutes = 24 * 60

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

// Ledger keeps running cost totals per model and in rolling hour and day
// windows (one bucket per minute), and logs budget warnings. Safe for
// concurrent use.
type Ledger struct {
	budgets Budgets
	m       *Metrics
	log     *slog.Logger
	now     func() time.Time // tests replace it

	mu      sync.Mutex
	total   float64
	calls   int64
	byModel map[string]float64
	minute  [dayMinutes]float64 // spend per minute, ring indexed by unix minute
	stamp   [dayMinutes]int64   // unix minute each slot holds
	hour    window
	day     window
}

// NewLedger returns a ledger; m and log may be nil.
func NewLedger(b Budgets, m *Metrics, log *slog.Logger) *Ledger {
	if b.HourlyUSD <= 0 {
		b.HourlyUSD = 10
	}
	if b.DailyUSD <= 0 {
		b.DailyUSD = 100
	}
	if b.WarnRatio <= 0 || b.WarnRatio > 1 {
		b.WarnRatio = 0.8
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	l := &Ledger{
		budgets: b, m: m, log: log, now: time.Now,
		byModel: map[string]float64{},
		hour:    window{name: "hour", budget: b.HourlyUSD, period: time.Hour},
		day:     window{name: "day", budget: b.DailyUSD, period: 24 * time.Hour},
	}
	if m != nil {
		m.Budget.WithLabelValues("hour").Set(b.HourlyUSD)
		m.Budget.WithLabelValues("day").Set(b.DailyUSD)
		m.Spend.WithLabelValues("hour").Set(0)
		m.Spend.WithLabelValues("day").Set(0)
		m.BudgetWarnings.WithLabelValues("hour")
		m.BudgetWarnings.WithLabelValues("day")
	}
	return l
}

// Add records the cost of one call.
func (l *Ledger) Add(model string, usd float64) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls++
	l.total += usd
	l.byModel[model] += usd
	min := now.Unix() / 60
	i := min % dayMinutes
	if l.stamp[i] != min {
		l.stamp[i], l.minute[i] = min, 0
	}
	l.minute[i] += usd
	hour, day := l.sumLocked(now)
	l.checkLocked(&l.hour, hour, now)
	l.checkLocked(&l.day, day, now)
	l.publishLocked(hour, day)
}

// BudgetError is ErrBudgetExceeded with the window, the spend and when
// enough of it will have left the rolling window to allow calls again.
type BudgetError struct {
	Window     string // "hour" or "day"
	SpentUSD   float64
	BudgetUSD  float64
	RetryAfter time.Duration
}

func (e *BudgetError) Error() string {
	return fmt.Sprintf("%v: $%.4g spent in the last %s, budget $%.4g; calls resume in %s",
		ErrBudgetExceeded, e.SpentUSD, e.Window, e.BudgetUSD, e.RetryAfter.Round(time.Second))
}

// Unwrap makes errors.Is(err, ErrBudgetExceeded) true.
func (e *BudgetError) Unwrap() error { return ErrBudgetExceeded }

// Check returns a *BudgetError (an ErrBudgetExceeded) when Enforce is on
// and a window is spent.
func (l *Ledger) Check() error {
	if !l.budgets.Enforce {
		return nil
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	hour, day := l.sumLocked(now)
	var worst *BudgetError
	for _, w := range []struct {
		name    string
		spent   float64
		budget  float64
		minutes int64
	}{{"hour", hour, l.budgets.HourlyUSD, 60}, {"day", day, l.budgets.DailyUSD, dayMinutes}} {
		if w.spent < w.budget {
			continue
		}
		e := &BudgetError{Window: w.name, SpentUSD: w.spent, BudgetUSD: w.budget, RetryAfter: l.untilUnderLocked(now, w.spent, w.budget, w.minutes)}
		if worst == nil || e.RetryAfter > worst.RetryAfter {
			worst = e
		}
	}
	if worst == nil {
		return nil
	}
	return worst
}

// untilUnderLocked is how long until the spend of the rolling window of
// the given minutes drops under budget, as its oldest minutes leave it
// (assuming no new spend).
func (l *Ledger) untilUnderLocked(now time.Time, spent, budget float64, minutes int64) time.Duration {
	cur := now.Unix() / 60
	for age := minutes - 1; age >= 0; age-- {
		m := cur - age
		i := m % dayMinutes
		if l.stamp[i] != m {
			continue
		}
		spent -= l.minute[i]
		if spent < budget {
			return time.Unix((m+minutes)*60, 0).Sub(now)
		}
	}
	return time.Duration(minutes) * time.Minute
}

// Snapshot returns the current totals (and refreshes the spend gauges, which
// otherwise only move when a call is recorded).
func (l *Ledger) Snapshot() CostSnapshot {
	l.mu.Lock()
	defer l.mu.Unlock()
	hour, day := l.sumLocked(l.now())
	l.publishLocked(hour, day)
	by := make(map[string]float64, len(l.byModel))
	for k, v := range l.byModel {
		by[k] = v
	}
	return CostSnapshot{
		HourUSD: hour, DayUSD: day, TotalUSD: l.total, ByModel: by, Calls: l.calls,
		HourlyBudgetUSD: l.budgets.HourlyUSD, DailyBudgetUSD: l.budgets.DailyUSD,
		Enforced: l.budgets.Enforce,
	}
}

// sumLocked adds the minute buckets of the last 60 and 1440 minutes.
func (l *Ledger) sumLocked(now time.Time) (hour, day float64) {
	cur := now.Unix() / 60
	for i := range dayMinutes {
		age := cur - l.stamp[i]
		if age < 0 || age >= dayMinutes || l.minute[i] == 0 {
			continue
		}
		day += l.minute[i]
		if age < 60 {
			hour += l.minute[i]
		}
	}
	return hour, day
}

func (l *Ledger) checkLocked(w *window, spend float64, now time.Time) {
	start := now.UTC().Truncate(w.period)
	if !start.Equal(w.start) {
		w.start, w.warned, w.exceeded = start, false, false
	}
	if !w.warned && spend >= w.budget*l.budgets.WarnRatio {
		w.warned = true
		l.warn(w, spend, fmt.Sprintf("LLM spend crossed %.0f%% of the %s budget", l.budgets.WarnRatio*100, w.name))
	}
	if !w.exceeded && spend >= w.budget {
		w.exceeded = true
		l.warn(w, spend, fmt.Sprintf("LLM spend crossed the %s budget", w.name))
	}
}

func (l *Ledger) warn(w *window, spend float64, msg string) {
	l.log.Warn(msg, "window", w.name, "spend_usd", spend, "budget_usd", w.budget, "enforced", l.budgets.Enforce)
	if l.m != nil {
		l.m.BudgetWarnings.WithLabelValues(w.name).Inc()
	}
}

func (l *Ledger) publishLocked(hour, day float64) {
	if l.m != nil {
		l.m.Spend.WithLabelValues("hour").Set(hour)
		l.m.Spend.WithLabelValues("day").Set(day)
	}
}
