package store

import (
	"context"
	"errors"
	"testing"
	"time"
)

// hung is a store whose calls wait for their context (a frozen database).
type hung struct{ Store }

func (hung) GetSignal(ctx context.Context, _ string) (Signal, []Hop, error) {
	<-ctx.Done()
	return Signal{}, nil, ctx.Err()
}

func TestWithTimeout(t *testing.T) {
	s := WithTimeout(hung{}, 20*time.Millisecond)
	start := time.Now()
	_, _, err := s.GetSignal(context.Background(), "x")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want context.DeadlineExceeded", err)
	}
	// A caller's own earlier deadline wins.
	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	if _, _, err := WithTimeout(hung{}, time.Hour).GetSignal(ctx, "x"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("caller deadline: %v", err)
	}
	if time.Since(start) > 10*time.Second {
		t.Fatal("the bounded call did not return")
	}
	if WithTimeout(hung{}, 0) != (hung{}) {
		t.Error("a zero timeout must return the store itself")
	}
}
