package llm

import (
	"bytes"
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
