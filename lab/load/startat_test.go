package load

import (
	"context"
	"strings"
	"testing"
	"time"
)

type setupOnly struct{ setups int }

var _ Workload = (*setupOnly)(nil)

func (w *setupOnly) Setup(context.Context, *Env) error { w.setups++; return nil }
func (w *setupOnly) NewVU(int) (VU, error)             { return nil, nil }

func TestStartAtWaitsAfterSetup(t *testing.T) {
	inner := &setupOnly{}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	// A start in the future and a cancelled context: setup ran, the wait ends with the cause.
	err := StartAt(inner, time.Now().Add(time.Hour)).Setup(ctx, &Env{})
	if inner.setups != 1 || err == nil || !strings.Contains(err.Error(), "waiting for --start-at") {
		t.Errorf("setups %d, err %v", inner.setups, err)
	}
	// A start already past: no wait.
	if err := StartAt(inner, time.Now().Add(-time.Second)).Setup(context.Background(), &Env{}); err != nil || inner.setups != 2 {
		t.Errorf("past start: setups %d, err %v", inner.setups, err)
	}
}

func TestCheckSegments(t *testing.T) {
	seg := func(s string) *Summary { return &Summary{Hal9Lab: &Hal9Lab{Segment: s}} }
	for _, c := range []struct {
		sums []*Summary
		n    int
		err  string
	}{
		{[]*Summary{seg("2/3"), seg("1/3"), seg("3/3")}, 3, ""},
		{[]*Summary{seg("")}, 1, ""},
		{[]*Summary{seg("1/3"), seg("2/3")}, 3, "2 summaries for 3 segments"},
		{[]*Summary{seg("1/3"), seg("1/3"), seg("3/3")}, 3, "segment 1/3 appears twice"},
		{[]*Summary{seg("1/2"), seg("2/2"), seg("3/3")}, 3, `is segment "1/2", not one of 3 segments`},
		{[]*Summary{seg(""), seg("2/2")}, 2, `is segment "", not one of 2 segments`},
		{[]*Summary{{}}, 1, "no hal9lab section"},
	} {
		err := CheckSegments(c.sums, c.n)
		switch {
		case c.err == "" && err != nil:
			t.Errorf("%d: %v", c.n, err)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%d: err = %v, want %q", c.n, err, c.err)
		}
	}
}
