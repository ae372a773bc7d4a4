package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
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
			p := &asyncPool{s: &Server{d: Deps{Store: st}, log: slog.New(slog.DiscardHandler)}, ctx: context.Background(),
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

// failRecorder records FailSignals calls; frozen, each blocks until its
// context ends, as a database that stopped answering does.
type failRecorder struct {
	store.Store
	frozen bool
	mu     sync.Mutex
	calls  [][]string
}

func (f *failRecorder) FailSignals(ctx context.Context, ids []string) (int, error) {
	f.mu.Lock()
	f.calls = append(f.calls, ids)
	f.mu.Unlock()
	if f.frozen {
		<-ctx.Done()
		return 0, ctx.Err()
	}
	return len(ids), nil
}

// TestDrainFailsLeftoversInOneWrite: when the drain deadline passes with
// 1,000 jobs still queued behind a busy worker, they are failed in one
// write, their queue places are given back, and the drain returns within
// afterDrain of its deadline even when that write never answers.
func TestDrainFailsLeftoversInOneWrite(t *testing.T) {
	for _, frozen := range []bool{false, true} {
		t.Run(map[bool]string{false: "answering", true: "frozen"}[frozen], func(t *testing.T) {
			st := &failRecorder{frozen: frozen}
			p := newAsyncPool(&Server{d: Deps{Store: st}, log: slog.New(slog.DiscardHandler)}, 0, 1000, 1000)
			// A worker busy with a job until the deadline cancels it.
			p.wg.Add(1)
			go func() { defer p.wg.Done(); <-p.ctx.Done() }()
			const n = 1000
			for i := range n {
				if e := p.reserve("u"); e != nil {
					t.Fatal(e.Msg)
				}
				p.jobs <- asyncJob{sig: store.Signal{ID: fmt.Sprint("s-", i), UserID: "u", Status: store.SignalPending}}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
			defer cancel()
			start := time.Now()
			err := p.drain(ctx)
			took := time.Since(start)
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("drain = %v, want the deadline's error", err)
			}
			if len(st.calls) != 1 || len(st.calls[0]) != n {
				t.Fatalf("FailSignals calls: %d (first with %d ids), want one with all %d queued jobs", len(st.calls), len(firstOr(st.calls)), n)
			}
			if len(p.slots) != 0 || len(p.users) != 0 {
				t.Fatalf("after the drain: %d queue places and %d users' counts still held", len(p.slots), len(p.users))
			}
			// A liveness bound, not a speed one: before, each of the 1,000
			// jobs was saved on its own with retries (hours on a frozen database).
			if bound := afterDrain + 5*time.Second; took > bound {
				t.Fatalf("drain took %v past a 20 ms deadline, want under %v", took, bound)
			}
		})
	}
}

func firstOr(calls [][]string) []string {
	if len(calls) == 0 {
		return nil
	}
	return calls[0]
}
