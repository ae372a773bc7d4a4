package llm

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestLedgerWindowsAndWarnings(t *testing.T) {
	var logs bytes.Buffer
	m := NewMetrics(prometheus.NewRegistry())
	l := NewLedger(Budgets{HourlyUSD: 10, DailyUSD: 100}, m, slog.New(slog.NewTextHandler(&logs, nil)))
	now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	l.now = func() time.Time { return now }
	warnings := func(w string) float64 { return testutil.ToFloat64(m.BudgetWarnings.WithLabelValues(w)) }

	l.Add("claude-sonnet-4-5", 7.9)
	if warnings("hour") != 0 {
		t.Fatal("warned below 80 %")
	}
	now = now.Add(10 * time.Minute)
	l.Add("claude-sonnet-4-5", 0.2) // 8.1: crosses 80 %
	l.Add("claude-haiku-4-5", 0.5)  // still over 80 %: no second warning
	if warnings("hour") != 1 {
		t.Fatalf("hour warnings %v, want 1 (once per window)", warnings("hour"))
	}
	l.Add("claude-haiku-4-5", 2) // 10.6: crosses 100 %
	if warnings("hour") != 2 {
		t.Fatalf("hour warnings %v, want 2 after crossing 100 %%", warnings("hour"))
	}
	if !strings.Contains(logs.String(), "crossed 80% of the hour budget") || !strings.Contains(logs.String(), "crossed the hour budget") {
		t.Fatalf("log lacks the warnings:\n%s", logs.String())
	}

	s := l.Snapshot()
	if abs(s.HourUSD-10.6) > 1e-9 || abs(s.DayUSD-10.6) > 1e-9 || abs(s.TotalUSD-10.6) > 1e-9 || s.Calls != 4 {
		t.Fatalf("snapshot %+v", s)
	}
	if abs(s.ByModel["claude-haiku-4-5"]-2.5) > 1e-9 {
		t.Fatalf("by model %v", s.ByModel)
	}
	if l.Check() != nil {
		t.Fatal("not enforced, Check must pass")
	}

	// 61 minutes after the first call it leaves the hour window, not the day.
	now = now.Add(51*time.Minute + time.Second)
	s = l.Snapshot()
	if got, want := s.HourUSD, 10.6-7.9; abs(got-want) > 1e-9 || abs(s.DayUSD-10.6) > 1e-9 {
		t.Fatalf("after an hour: hour %v (want %v) day %v", got, want, s.DayUSD)
	}
	if got := testutil.ToFloat64(m.Spend.WithLabelValues("hour")); abs(got-(10.6-7.9)) > 1e-9 {
		t.Fatalf("hour spend gauge %v", got)
	}
	if got := testutil.ToFloat64(m.Budget.WithLabelValues("day")); got != 100 {
		t.Fatalf("day budget gauge %v", got)
	}
	// after a day everything left the windows, the total stays.
	now = now.Add(25 * time.Hour)
	if s := l.Snapshot(); s.HourUSD != 0 || s.DayUSD != 0 || abs(s.TotalUSD-10.6) > 1e-9 {
		t.Fatalf("after a day: %+v", s)
	}
}

// TestLedgerEnforceRetryAfter: past a budget, Check refuses with the window,
// the spend and when the rolling window will have let go of enough of it.
func TestLedgerEnforceRetryAfter(t *testing.T) {
	l := NewLedger(Budgets{HourlyUSD: 10, DailyUSD: 100, Enforce: true}, nil, nil)
	now := time.Date(2026, 3, 2, 9, 0, 30, 0, time.UTC)
	l.now = func() time.Time { return now }
	l.Add("m", 6) // at 09:00
	now = now.Add(20 * time.Minute)
	l.Add("m", 5) // at 09:20: 11 in the hour
	err := l.Check()
	var be *BudgetError
	if !errors.As(err, &be) || !errors.Is(err, ErrBudgetExceeded) || be.Window != "hour" {
		t.Fatalf("Check over the hourly budget: %v", err)
	}
	// The 09:00 minute leaves the window at 10:00; now is 09:20:30.
	if want := 39*time.Minute + 30*time.Second; be.RetryAfter != want {
		t.Fatalf("RetryAfter %v, want %v", be.RetryAfter, want)
	}
	if d, ok := RetryAfter(err); !ok || d != be.RetryAfter {
		t.Fatalf("llm.RetryAfter(%v) = %v %v", err, d, ok)
	}
	now = now.Add(be.RetryAfter)
	if err := l.Check(); err != nil {
		t.Fatalf("Check once the old spend left the window: %v", err)
	}
	// The day: 9 × 11 more over the next hours goes past 100.
	for range 9 {
		now = now.Add(time.Hour)
		l.Add("m", 11)
	}
	if err := l.Check(); !errors.As(err, &be) || be.Window != "day" || be.RetryAfter <= time.Hour {
		t.Fatalf("Check over the daily budget: %v", err)
	}
}
