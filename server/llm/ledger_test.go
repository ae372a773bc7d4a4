package llm

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// spend reserves worst for user and settles at actual.
func spend(t *testing.T, l *Ledger, user, model string, worst, actual float64) {
	t.Helper()
	tk, err := l.Reserve(context.Background(), user, model, worst)
	if err != nil {
		t.Fatalf("reserve $%v for %q: %v", worst, user, err)
	}
	tk.Settle(actual)
}

func near(a, b float64) bool { return abs(a-b) < 1e-6 }

func TestLedgerWindowsAndWarnings(t *testing.T) {
	var logs bytes.Buffer
	m := NewMetrics(prometheus.NewRegistry())
	l := NewLedger(LedgerOptions{Budgets: Budgets{HourlyUSD: 10, DailyUSD: 100}, Metrics: m, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	l.now = func() time.Time { return now }
	warnings := func(w string) float64 { return testutil.ToFloat64(m.BudgetWarnings.WithLabelValues(w)) }

	spend(t, l, "", "claude-sonnet-4-5", 7.9, 7.9)
	if warnings("hour") != 0 {
		t.Fatal("warned below 80 %")
	}
	now = now.Add(10 * time.Minute)
	spend(t, l, "", "claude-sonnet-4-5", 0.3, 0.2) // 8.1: crosses 80 %
	spend(t, l, "", "claude-haiku-4-5", 0.5, 0.5)  // still over 80 %: no second warning
	if warnings("hour") != 1 {
		t.Fatalf("hour warnings %v, want 1 (once per window)", warnings("hour"))
	}
	spend(t, l, "", "claude-haiku-4-5", 2, 2) // 10.6: crosses 100 % (not enforced)
	if warnings("hour") != 2 {
		t.Fatalf("hour warnings %v, want 2 after crossing 100 %%", warnings("hour"))
	}
	if !strings.Contains(logs.String(), "crossed 80% of the hour budget") || !strings.Contains(logs.String(), "crossed the hour budget") {
		t.Fatalf("log lacks the warnings:\n%s", logs.String())
	}

	s := l.Snapshot()
	if !near(s.HourUSD, 10.6) || !near(s.DayUSD, 10.6) || !near(s.TotalUSD, 10.6) || s.Calls != 4 || s.InFlightUSD != 0 {
		t.Fatalf("snapshot %+v", s)
	}
	if !near(s.ByModel["claude-haiku-4-5"], 2.5) {
		t.Fatalf("by model %v", s.ByModel)
	}

	// The first call's minute leaves the hour window (61 minute buckets)
	// 61 minutes after it began; the day keeps it.
	now = now.Add(51*time.Minute + time.Second)
	s = l.Snapshot()
	if got, want := s.HourUSD, 10.6-7.9; !near(got, want) || !near(s.DayUSD, 10.6) {
		t.Fatalf("after an hour: hour %v (want %v) day %v", got, want, s.DayUSD)
	}
	if got := testutil.ToFloat64(m.Spend.WithLabelValues("hour")); !near(got, 10.6-7.9) {
		t.Fatalf("hour spend gauge %v", got)
	}
	if got := testutil.ToFloat64(m.Budget.WithLabelValues("day")); got != 100 {
		t.Fatalf("day budget gauge %v", got)
	}
	// After a day (25 hour buckets) everything left the windows; the total stays.
	now = now.Add(25 * time.Hour)
	if s := l.Snapshot(); s.HourUSD != 0 || s.DayUSD != 0 || !near(s.TotalUSD, 10.6) {
		t.Fatalf("after a day: %+v", s)
	}
}

// TestLedgerReserveSettle: a reservation counts at once, in full, against
// the budget; settling replaces it by the real cost; a call whose cost is
// unknown settles at its reservation; the metrics follow.
func TestLedgerReserveSettle(t *testing.T) {
	m := NewMetrics(prometheus.NewRegistry())
	l := NewLedger(LedgerOptions{Budgets: Budgets{HourlyUSD: 1, DailyUSD: 10, Enforce: true, UserShare: 1}, Metrics: m})
	ctx := context.Background()
	a, err := l.Reserve(ctx, "", DefaultModel, 0.6)
	if err != nil {
		t.Fatal(err)
	}
	if s := l.Snapshot(); !near(s.HourUSD, 0.6) || !near(s.InFlightUSD, 0.6) {
		t.Fatalf("a reservation in flight: %+v", s)
	}
	// 0.6 + 0.5 > 1: refused while a is in flight, though a may cost less.
	_, err = l.Reserve(ctx, "", DefaultModel, 0.5)
	var be *BudgetError
	if !errors.As(err, &be) || be.Window != "hour" || !near(be.SpentUSD, 0.6) || !near(be.NeededUSD, 0.5) {
		t.Fatalf("a reservation past what is left: %v", err)
	}
	a.Settle(0.1)
	a.Settle(0.9) // a second Settle changes nothing
	b, err := l.Reserve(ctx, "", DefaultModel, 0.5)
	if err != nil {
		t.Fatalf("after the first settled at $0.1: %v", err)
	}
	b.Settle(b.ReservedUSD()) // cost unknown: charged in full
	s := l.Snapshot()
	if !near(s.HourUSD, 0.6) || !near(s.TotalUSD, 0.6) || s.InFlightUSD != 0 {
		t.Fatalf("after both settled: %+v", s)
	}
	if got := testutil.ToFloat64(m.BudgetReserved); !near(got, 1.1) {
		t.Fatalf("reserved %v, want 1.1", got)
	}
	if got := testutil.ToFloat64(m.BudgetSettled); !near(got, 0.6) {
		t.Fatalf("settled %v, want 0.6", got)
	}
	if got := testutil.ToFloat64(m.BudgetRefusals.WithLabelValues(RefusedHour)); got != 1 {
		t.Fatalf("hourly refusals %v, want 1", got)
	}
	if got := testutil.ToFloat64(m.BudgetInFlight); !near(got, 0) {
		t.Fatalf("in flight %v, want 0", got)
	}
}

// TestLedgerConcurrentReservations: however many callers reserve at once,
// no more than the budget is ever reserved.
func TestLedgerConcurrentReservations(t *testing.T) {
	l := NewLedger(LedgerOptions{Budgets: Budgets{HourlyUSD: 1, DailyUSD: 10, Enforce: true, UserShare: 1}})
	var admitted atomic.Int64
	var wg sync.WaitGroup
	for range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := l.Reserve(context.Background(), "", DefaultModel, 0.1); err == nil {
				admitted.Add(1)
			}
		}()
	}
	wg.Wait()
	if admitted.Load() != 10 {
		t.Fatalf("%d reservations of $0.1 admitted under a $1 budget, want 10", admitted.Load())
	}
}

// TestLedgerRetryAfter: a refusal says when enough spend will have left
// the rolling window for the call to fit.
func TestLedgerRetryAfter(t *testing.T) {
	l := NewLedger(LedgerOptions{Budgets: Budgets{HourlyUSD: 10, DailyUSD: 100, Enforce: true, UserShare: 1}})
	now := time.Date(2026, 3, 2, 9, 0, 30, 0, time.UTC)
	l.now = func() time.Time { return now }
	spend(t, l, "", "m", 6, 6) // at 09:00
	now = now.Add(20 * time.Minute)
	spend(t, l, "", "m", 4, 4) // at 09:20: 10 in the hour
	_, err := l.Reserve(context.Background(), "", "m", 0.5)
	var be *BudgetError
	if !errors.As(err, &be) || !errors.Is(err, ErrBudgetExceeded) || be.Window != "hour" {
		t.Fatalf("over the hourly budget: %v", err)
	}
	// The 09:00 minute leaves the 61-minute window at 10:01; now is 09:20:30.
	if want := 40*time.Minute + 30*time.Second; be.RetryAfter != want {
		t.Fatalf("RetryAfter %v, want %v", be.RetryAfter, want)
	}
	if d, ok := RetryAfter(err); !ok || d != be.RetryAfter {
		t.Fatalf("llm.RetryAfter(%v) = %v %v", err, d, ok)
	}
	now = now.Add(be.RetryAfter)
	spend(t, l, "", "m", 0.5, 0.5)
	// The day: 8 × 10 more over the next hours, then 9.6 goes past 100.
	for range 9 {
		now = now.Add(time.Hour + 2*time.Minute)
		if l.Snapshot().DayUSD+10 <= 100 {
			spend(t, l, "", "m", 10, 10)
		}
	}
	if _, err := l.Reserve(context.Background(), "", "m", 9.6); !errors.As(err, &be) || be.Window != "day" || be.RetryAfter <= time.Hour {
		t.Fatalf("over the daily budget: %v", err)
	}
	// A call that could not fit even an empty window waits the whole window.
	if _, err := l.Reserve(context.Background(), "", "m", 11); !errors.As(err, &be) || be.RetryAfter != HourBuckets*time.Minute {
		t.Fatalf("a call over the whole budget: %v", err)
	}
}

// TestLedgerUserShare: one user cannot spend more than its share of a
// budget (429-type ErrUserLimit) while another still can; past the whole
// budget the refusal is the budget's (503-type ErrBudgetExceeded).
func TestLedgerUserShare(t *testing.T) {
	m := NewMetrics(prometheus.NewRegistry())
	l := NewLedger(LedgerOptions{Budgets: Budgets{HourlyUSD: 4, DailyUSD: 100, Enforce: true, UserShare: 0.25}, Metrics: m})
	ctx := context.Background()
	spend(t, l, "alice", "m", 0.6, 0.6)
	_, err := l.Reserve(ctx, "alice", "m", 0.5) // 1.1 > 1 (a quarter of 4)
	var ue *UserLimitError
	if !errors.As(err, &ue) || !errors.Is(err, ErrUserLimit) || errors.Is(err, ErrBudgetExceeded) || ue.Reason != RefusedUserHour ||
		!near(ue.SpentUSD, 0.6) || !near(ue.LimitUSD, 1) || ue.RetryAfter <= 0 {
		t.Fatalf("alice past her share: %v", err)
	}
	if !strings.Contains(err.Error(), "--llm-budget-per-user") {
		t.Fatalf("message %q does not name the flag", err)
	}
	for _, u := range []string{"bob", "carol", "dave"} {
		spend(t, l, u, "m", 1, 1)
	}
	// 3.6 spent: the whole budget refuses before bob's share would.
	_, err = l.Reserve(ctx, "erin", "m", 0.5)
	var be *BudgetError
	if !errors.As(err, &be) {
		t.Fatalf("past the whole budget: %v", err)
	}
	if testutil.ToFloat64(m.BudgetRefusals.WithLabelValues(RefusedUserHour)) != 1 || testutil.ToFloat64(m.BudgetRefusals.WithLabelValues(RefusedHour)) != 1 {
		t.Fatal("refusals not counted by reason")
	}
	// Not enforced: nothing is refused, everything is counted.
	w := NewLedger(LedgerOptions{Budgets: Budgets{HourlyUSD: 1, UserShare: 0.25, UserCalls: 1}})
	for range 3 {
		if _, err := w.Reserve(ctx, "alice", "m", 1); err != nil {
			t.Fatalf("watch-only ledger refused: %v", err)
		}
	}
	if s := w.Snapshot(); !near(s.HourUSD, 3) {
		t.Fatalf("watch-only spend %v, want 3", s.HourUSD)
	}
}

// TestLedgerUserCalls: a user with its cap of calls in flight is refused
// until one settles; other users pass.
func TestLedgerUserCalls(t *testing.T) {
	l := NewLedger(LedgerOptions{Budgets: Budgets{HourlyUSD: 100, DailyUSD: 1000, Enforce: true, UserCalls: 2}})
	ctx := context.Background()
	a, _ := l.Reserve(ctx, "alice", "m", 0.01)
	if _, err := l.Reserve(ctx, "alice", "m", 0.01); err != nil {
		t.Fatal(err)
	}
	_, err := l.Reserve(ctx, "alice", "m", 0.01)
	var ue *UserLimitError
	if !errors.As(err, &ue) || ue.Reason != RefusedUserCall || ue.Calls != 2 || ue.MaxCalls != 2 || ue.RetryAfter != time.Second {
		t.Fatalf("alice's third call in flight: %v", err)
	}
	if _, err := l.Reserve(ctx, "bob", "m", 0.01); err != nil {
		t.Fatalf("bob while alice is at her cap: %v", err)
	}
	a.Settle(0.005)
	if _, err := l.Reserve(ctx, "alice", "m", 0.01); err != nil {
		t.Fatalf("alice after one of hers settled: %v", err)
	}
}

// failingSpend is a shared backend that fails every call, counting them.
type failingSpend struct{ calls atomic.Int64 }

func (f *failingSpend) Reserve(context.Context, Reservation, SpendLimits) (Verdict, error) {
	f.calls.Add(1)
	return Verdict{}, errors.New("redis down")
}
func (f *failingSpend) Settle(context.Context, Reservation, int64, time.Time) (SpendTotals, error) {
	f.calls.Add(1)
	return SpendTotals{}, errors.New("redis down")
}
func (f *failingSpend) Totals(context.Context, time.Time) (SpendTotals, error) {
	f.calls.Add(1)
	return SpendTotals{}, errors.New("redis down")
}

// TestLedgerFallsBackToMemory: while the shared ledger fails, reservations
// are decided in memory, starting from the spend it last reported, and
// after a few failures in a row the breaker stops asking it.
func TestLedgerFallsBackToMemory(t *testing.T) {
	m := NewMetrics(prometheus.NewRegistry())
	shared := &failingSpend{}
	l := NewLedger(LedgerOptions{Budgets: Budgets{HourlyUSD: 1, DailyUSD: 10, Enforce: true, UserShare: 1}, Metrics: m, Shared: shared})
	l.observe(l.now(), SpendTotals{Hour: toNanos(0.7), Day: toNanos(0.7)}) // what the shared ledger said last
	ctx := context.Background()
	spend(t, l, "", "m", 0.2, 0.2)
	if _, err := l.Reserve(ctx, "", "m", 0.2); !errors.Is(err, ErrBudgetExceeded) {
		t.Fatalf("0.7 known + 0.2 in memory + 0.2: %v, want refused", err)
	}
	for range 10 {
		l.Reserve(ctx, "", "m", 0.01)
	}
	if n := shared.calls.Load(); n > 4 {
		t.Fatalf("the failing shared ledger was asked %d times; the breaker should open after 3", n)
	}
	if testutil.ToFloat64(m.BudgetFallbacks) < 10 {
		t.Fatalf("fallbacks %v", testutil.ToFloat64(m.BudgetFallbacks))
	}
}

// memStore is a SpendStore in memory (the database's contract is in
// server/store/storetest).
type memStore struct {
	mu     sync.Mutex
	rows   map[[3]string]SpendRow
	writes int
	fail   bool
}

func (s *memStore) AddLLMSpend(_ context.Context, rows []SpendRow) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail {
		return errors.New("database down")
	}
	s.writes++
	for _, r := range rows {
		k := [3]string{r.Scope, r.Kind, r.Start.String()}
		old := s.rows[k]
		r.NanoUSD += old.NanoUSD
		s.rows[k] = r
	}
	return nil
}

func (s *memStore) LLMSpend(_ context.Context, now time.Time, users bool) ([]SpendRow, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []SpendRow
	for _, r := range s.rows {
		if r.Expires.After(now) && (users || r.Scope == "") {
			out = append(out, r)
		}
	}
	return out, nil
}

func (s *memStore) DeleteLLMSpend(context.Context, time.Time) (int, error) { return 0, nil }

// TestStoredSpend: spend is written in aggregate (one write per Sync, not
// per call), a restart starts from it, two servers on one store see each
// other's spend after a Sync, and a failed write is retried.
func TestStoredSpend(t *testing.T) {
	ctx := context.Background()
	st := &memStore{rows: map[[3]string]SpendRow{}}
	now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	open := func() (*StoredSpend, *Ledger) {
		s, err := NewStoredSpend(ctx, st, nil, now)
		if err != nil {
			t.Fatal(err)
		}
		l := NewLedger(LedgerOptions{Budgets: Budgets{HourlyUSD: 1, DailyUSD: 10, Enforce: true, UserShare: 0.5}, Local: s})
		l.now = func() time.Time { return now }
		return s, l
	}
	s1, l1 := open()
	for range 20 {
		spend(t, l1, "alice", "m", 0.05, 0.02) // 0.4 in all
	}
	if st.writes != 0 {
		t.Fatalf("%d database writes before any Sync", st.writes)
	}
	if err := s1.Sync(ctx, now); err != nil {
		t.Fatal(err)
	}
	if st.writes != 1 {
		t.Fatalf("%d writes for one Sync of 40 reservations and settlements", st.writes)
	}
	// A restart: the kept spend, user share included.
	_, restarted := open()
	if s := restarted.Snapshot(); !near(s.HourUSD, 0.4) {
		t.Fatalf("after a restart the hour spend is %v, want 0.4", s.HourUSD)
	}
	if _, err := restarted.Reserve(ctx, "alice", "m", 0.2); !errors.Is(err, ErrUserLimit) {
		t.Fatalf("alice's share after a restart: %v, want refused (0.4 + 0.2 > 0.5)", err)
	}
	// Another server: sees server 1's spend, and server 1 sees its after syncs.
	s2, l2 := open()
	spend(t, l2, "bob", "m", 0.3, 0.3)
	if err := s2.Sync(ctx, now); err != nil {
		t.Fatal(err)
	}
	if err := s1.Sync(ctx, now); err != nil {
		t.Fatal(err)
	}
	now = now.Add(2 * time.Second) // the snapshot rereads totals older than a second
	if s := l1.Snapshot(); !near(s.HourUSD, 0.7) {
		t.Fatalf("server 1 after both synced: %v, want 0.7", s.HourUSD)
	}
	// A failed write keeps the counts for the next Sync.
	st.fail = true
	spend(t, l1, "carol", "m", 0.1, 0.1)
	if err := s1.Sync(ctx, now); err == nil {
		t.Fatal("Sync with the database down succeeded")
	}
	if s := l1.Snapshot(); !near(s.HourUSD, 0.8) {
		t.Fatalf("while the database is down: %v, want 0.8 counted in memory", s.HourUSD)
	}
	st.fail = false
	if err := s1.Sync(ctx, now); err != nil {
		t.Fatal(err)
	}
	if _, l3 := open(); !near(l3.Snapshot().HourUSD, 0.8) {
		t.Fatalf("kept after the retried write: %v, want 0.8", l3.Snapshot().HourUSD)
	}
}
