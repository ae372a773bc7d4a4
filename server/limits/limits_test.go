package limits

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestMemoryGCRA(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	m := NewMemory()
	m.now = func() time.Time { return now }
	ctx := context.Background()
	l := Limit{Rate: 2, Period: time.Second, Burst: 3} // one per 500ms, bursts of 3

	for i := range 3 {
		if r, _ := m.AllowN(ctx, "k", l, 1); !r.Allowed || r.Remaining != 2-i {
			t.Fatalf("burst event %d: %+v", i, r)
		}
	}
	r, _ := m.AllowN(ctx, "k", l, 1)
	if r.Allowed || r.RetryAfter != 500*time.Millisecond {
		t.Fatalf("over the burst: %+v, want refused with RetryAfter 500ms", r)
	}
	if r, _ := m.AllowN(ctx, "other", l, 1); !r.Allowed {
		t.Fatal("another key shares the bucket")
	}
	if r, _ := m.AllowN(ctx, "k", l, 0); !r.Allowed || r.Remaining != 0 {
		t.Fatalf("peek when exhausted: %+v, want allowed with 0 remaining", r)
	}
	now = now.Add(500 * time.Millisecond)
	if r, _ := m.AllowN(ctx, "k", l, 1); !r.Allowed {
		t.Fatalf("after one interval: %+v", r)
	}
	now = now.Add(time.Hour)
	m.AllowN(ctx, "fresh", l, 1) // sweeps: "k" and "other" are full again
	if len(m.tat) != 1 {
		t.Fatalf("%d keys kept after they refilled, want 1", len(m.tat))
	}
}

type failing struct{}

func (failing) AllowN(context.Context, string, Limit, int) (Result, error) {
	return Result{}, errors.New("redis down")
}

func TestLimiterTakeCheckAndFallback(t *testing.T) {
	ctx := context.Background()
	var logged int
	lim := New(failing{}, nil, func(error) { logged++ })
	l := Limit{Rate: 1, Period: time.Hour, Burst: 2}
	for i := range 2 {
		if ok, _ := lim.Check(ctx, "u", l); !ok {
			t.Fatalf("check %d before any event refused", i)
		}
		if ok, _ := lim.Take(ctx, "u", l); !ok {
			t.Fatalf("take %d within the burst refused", i)
		}
	}
	ok, wait := lim.Check(ctx, "u", l)
	if ok || wait < time.Second {
		t.Fatalf("check when exhausted: %v %v", ok, wait)
	}
	if ok, wait := lim.Take(ctx, "u", l); ok || wait <= 0 {
		t.Fatalf("take over the limit: %v %v", ok, wait)
	}
	if logged == 0 || testutil.ToFloat64(lim.fallbacks) != float64(logged) {
		t.Fatalf("fallbacks %v, logged %d: every failed shared call must fall back and be counted", testutil.ToFloat64(lim.fallbacks), logged)
	}
	if ok, _ := lim.Take(ctx, "u", Limit{}); !ok {
		t.Fatal("an Off limit refused")
	}
}

// TestGiveBack: a slot given back is free again at once, and giving back
// more than was taken leaves an empty bucket, not credit.
func TestGiveBack(t *testing.T) {
	ctx := context.Background()
	lim := New(nil, nil, nil)
	l := Limit{Rate: 1, Period: time.Hour, Burst: 2}
	for range 2 {
		if ok, _ := lim.Take(ctx, "u", l); !ok {
			t.Fatal("take within the burst refused")
		}
	}
	if ok, _ := lim.Take(ctx, "u", l); ok {
		t.Fatal("take past the burst allowed")
	}
	lim.Give(ctx, "u", l)
	if ok, _ := lim.Take(ctx, "u", l); !ok {
		t.Fatal("the slot given back is still taken")
	}
	for range 5 {
		lim.Give(ctx, "u", l)
	}
	for i := range 3 {
		ok, _ := lim.Take(ctx, "u", l)
		if want := i < 2; ok != want {
			t.Fatalf("take %d after giving back more than was taken: %v, want %v (the burst, no credit)", i, ok, want)
		}
	}
}

// hanging fails every call after a short wait, counting them.
type hanging struct{ calls int }

func (h *hanging) AllowN(ctx context.Context, _ string, _ Limit, _ int) (Result, error) {
	h.calls++
	return Result{}, context.DeadlineExceeded
}

// TestBreakerSkipsAFailingBackend: after a few failures in a row the
// shared backend is no longer asked (each ask of a hanging Redis costs its
// timeout): decisions go to memory at once, and are counted as fallbacks.
func TestBreakerSkipsAFailingBackend(t *testing.T) {
	h := &hanging{}
	lim := New(h, nil, nil)
	l := Limit{Rate: 1, Period: time.Second, Burst: 1000}
	for range 50 {
		lim.Take(context.Background(), "ip", l)
	}
	if h.calls > 3 {
		t.Fatalf("the failing backend was asked %d times for 50 decisions; want at most 3 before the breaker opens", h.calls)
	}
	if got := testutil.ToFloat64(lim.fallbacks); got != 50 {
		t.Fatalf("fallbacks %v, want every decision", got)
	}
}
