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
