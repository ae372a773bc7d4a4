package failfast

import (
	"context"
	"errors"
	"testing"
)

// TestBreaker: Trip failures in a row open it (the backend is then not
// called); failures after the caller's own context ended do not count.
func TestBreaker(t *testing.T) {
	down := errors.New("down")
	for _, c := range []struct {
		name       string
		callerGone bool
		wantCalls  int
		wantErr    error
	}{
		{"backend failing", false, Trip, ErrOpen},
		{"callers leaving", true, 10, context.Canceled},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := New("test", nil)
			ctx := context.Background()
			if c.callerGone {
				var cancel context.CancelFunc
				ctx, cancel = context.WithCancel(ctx)
				cancel()
			}
			calls := 0
			var err error
			for range 10 {
				err = b.Do(ctx, func(ctx context.Context) error {
					calls++
					if ctx.Err() != nil {
						return ctx.Err()
					}
					return down
				})
			}
			if calls != c.wantCalls || !errors.Is(err, c.wantErr) {
				t.Fatalf("%d calls, last error %v; want %d calls and %v", calls, err, c.wantCalls, c.wantErr)
			}
			if b.Open() != !c.callerGone {
				t.Fatalf("open = %v", b.Open())
			}
		})
	}
}
