package redisspend

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/hal9-lab/hal9-lab/lab/infra/infratest"
	"github.com/hal9-lab/hal9-lab/server/llm"
)

func TestMain(m *testing.M) { infratest.Main(m) }

// replicas returns n ledgers, each on its own client of one Redis.
func replicas(t *testing.T, n int, b llm.Budgets) ([]*llm.Ledger, *llm.Metrics) {
	t.Helper()
	opt, err := redis.ParseURL(infratest.RedisURL(t))
	if err != nil {
		t.Fatal(err)
	}
	var out []*llm.Ledger
	m := llm.NewMetrics(prometheus.NewRegistry()) // shared: counts every replica's fallbacks
	for range n {
		c := redis.NewClient(opt)
		t.Cleanup(func() { c.Close() })
		out = append(out, llm.NewLedger(llm.LedgerOptions{Budgets: b, Shared: New(c), Metrics: m}))
	}
	return out, m
}

// TestReplicasShareTheBudget: two replicas reserving at once never reserve
// more than the one budget together; settling frees what a call did not
// cost, and both see the same spend.
func TestReplicasShareTheBudget(t *testing.T) {
	ls, m := replicas(t, 2, llm.Budgets{HourlyUSD: 1, DailyUSD: 10, Enforce: true, UserShare: 1})
	ctx := context.Background()
	var admitted atomic.Int64
	var mu sync.Mutex
	var tickets []*llm.Ticket
	var wg sync.WaitGroup
	for i := range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tk, err := ls[i%2].Reserve(ctx, "", llm.DefaultModel, 0.1)
			if err == nil {
				admitted.Add(1)
				mu.Lock()
				tickets = append(tickets, tk)
				mu.Unlock()
			} else if !errors.Is(err, llm.ErrBudgetExceeded) {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n := testutil.ToFloat64(m.BudgetFallbacks); n > 0 {
		t.Fatalf("%v reservations were decided in memory: Redis did not answer within the ledger's timeout", n)
	}
	if admitted.Load() != 10 {
		t.Fatalf("%d reservations of $0.1 admitted across two replicas under a $1 budget, want 10", admitted.Load())
	}
	for _, tk := range tickets {
		tk.Settle(0.05)
	}
	time.Sleep(1100 * time.Millisecond) // a snapshot rereads totals older than a second
	for i, l := range ls {
		if s := l.Snapshot(); abs(s.HourUSD-0.5) > 1e-6 || abs(s.DayUSD-0.5) > 1e-6 {
			t.Fatalf("replica %d sees hour $%v day $%v, want 0.5 after settling", i, s.HourUSD, s.DayUSD)
		}
	}
	_, err := ls[1].Reserve(ctx, "", llm.DefaultModel, 0.6)
	var be *llm.BudgetError
	if !errors.As(err, &be) || be.Window != "hour" || be.RetryAfter < 59*time.Minute {
		t.Fatalf("0.5 + 0.6 over $1: %v, want refused for about an hour", err)
	}
}

// TestReplicasShareUserLimits: a user's share and call cap hold across
// replicas; another user still passes.
func TestReplicasShareUserLimits(t *testing.T) {
	ls, _ := replicas(t, 2, llm.Budgets{HourlyUSD: 4, DailyUSD: 100, Enforce: true, UserShare: 0.25, UserCalls: 2})
	ctx := context.Background()
	user := "user-" + time.Now().Format("150405.000000") // the Redis DB outlives one run
	a, err := ls[0].Reserve(ctx, user, llm.DefaultModel, 0.4)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ls[1].Reserve(ctx, user, llm.DefaultModel, 0.4); err != nil {
		t.Fatal(err)
	}
	var ue *llm.UserLimitError
	if _, err := ls[0].Reserve(ctx, user, llm.DefaultModel, 0.1); !errors.As(err, &ue) || ue.Reason != llm.RefusedUserCall || ue.Calls != 2 {
		t.Fatalf("third call in flight across replicas: %v", err)
	}
	a.Settle(0.4)
	if _, err := ls[1].Reserve(ctx, user, llm.DefaultModel, 0.3); !errors.As(err, &ue) || ue.Reason != llm.RefusedUserHour ||
		abs(ue.SpentUSD-0.8) > 1e-6 || abs(ue.LimitUSD-1) > 1e-6 || ue.RetryAfter < 59*time.Minute {
		t.Fatalf("past the user's share of $1 (0.8 + 0.3): %v", err)
	}
	if _, err := ls[1].Reserve(ctx, user+"-other", llm.DefaultModel, 0.3); err != nil {
		t.Fatalf("another user: %v", err)
	}
}

func abs(f float64) float64 {
	if f < 0 {
		return -f
	}
	return f
}
