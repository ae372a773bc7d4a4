package server

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/hal9-lab/hal9-lab/server/store"
)

// flakyStore fails the first `failures` SaveSignal calls.
type flakyStore struct {
	store.Store
	failures int
	calls    int
	saved    store.Signal
}

func (f *flakyStore) SaveSignal(_ context.Context, s store.Signal, _ []store.Hop, _ []store.Memory) error {
	f.calls++
	if f.calls <= f.failures {
		return store.ErrUnavailable
	}
	f.saved = s
	return nil
}

func TestAsyncFinalSaveRetried(t *testing.T) {
	cases := []struct {
		name      string
		failures  int
		wantErr   bool
		wantCalls int
	}{
		{"first try", 0, false, 1},
		{"transient", 2, false, 3},
		{"persistent", 10, true, 3}, // 1 + len(retryDelays)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st := &flakyStore{failures: c.failures}
			p := &asyncPool{s: &Server{d: Deps{Store: st}, log: slog.New(slog.DiscardHandler)},
				retryDelays: []time.Duration{time.Millisecond, time.Millisecond}}
			sig := store.Signal{ID: "s", Status: store.SignalProcessed}
			err := p.saveFinal(context.Background(), sig, nil, nil)
			if (err != nil) != c.wantErr || !(err == nil || errors.Is(err, store.ErrUnavailable)) {
				t.Fatalf("saveFinal = %v, want error %v", err, c.wantErr)
			}
			if st.calls != c.wantCalls {
				t.Fatalf("SaveSignal called %d times, want %d", st.calls, c.wantCalls)
			}
			if !c.wantErr && st.saved.Status != store.SignalProcessed {
				t.Fatalf("saved %+v", st.saved)
			}
		})
	}
}
