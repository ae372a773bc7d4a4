package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

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
			p := newAsyncPool(&Server{d: Deps{Store: st}, log: slog.New(slog.DiscardHandler)}, 0, 0, 1000, 1000)
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

// nopStore saves every signal at once.
type nopStore struct {
	store.Store
	saves atomic.Int64
}

func (n *nopStore) SaveSignal(context.Context, store.Signal, []store.Hop, []store.Memory) error {
	n.saves.Add(1)
	return nil
}

// testPool starts a pool on a store that saves at once, after setup
// changed it (nil: as is).
func testPool(t *testing.T, minWorkers, maxWorkers, queue int, setup func(*asyncPool)) *asyncPool {
	t.Helper()
	s := &Server{d: Deps{Store: &nopStore{}}, log: slog.New(slog.DiscardHandler)}
	p := newAsyncPool(s, minWorkers, maxWorkers, queue, queue)
	if setup != nil {
		setup(p)
	}
	p.start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := p.drain(ctx); err != nil {
			t.Errorf("drain: %v", err)
		}
	})
	return p
}

func enqueueN(t *testing.T, p *asyncPool, n int, gap time.Duration) (refused int) {
	t.Helper()
	for i := range n {
		e, err := p.enqueue(context.Background(), asyncJob{sig: store.Signal{ID: fmt.Sprint("s-", i), UserID: fmt.Sprint("u-", i%50)}})
		if err != nil {
			t.Fatal(err)
		}
		if e != nil {
			if e.Code != CodeQueueFull {
				t.Fatalf("signal %d: %d %s %s, want accepted or queue_full", i, e.Status, e.Code, e.Msg)
			}
			refused++
		}
		if gap > 0 {
			time.Sleep(gap)
		}
	}
	return refused
}

// TestAsyncPoolRunsWhatWouldWait: 40 async signals whose LLM calls are in
// flight (blocked, the CPU idle) all run at once on a pool of 2..64
// workers; a fixed pool of 2 ran 2 and queued 38.
func TestAsyncPoolRunsWhatWouldWait(t *testing.T) {
	const n = 40
	release := make(chan struct{})
	var running atomic.Int64
	p := testPool(t, 2, 64, 128, func(p *asyncPool) { p.runJob = func(asyncJob) { running.Add(1); <-release } })
	enqueueN(t, p, n, 0)
	deadline := time.Now().Add(10 * time.Second)
	for running.Load() < n && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	got := running.Load()
	busy := testutil.ToFloat64(gaugeOf(t, p.workerGauge, "busy"))
	var m dto.Metric
	if err := p.wait.Write(&m); err != nil {
		t.Fatal(err)
	}
	close(release)
	if got != n {
		t.Fatalf("%d of %d blocked async signals running after 10 s; want all of them (workers %d of at most %d)", got, n, p.workers.Load(), p.maxWorkers)
	}
	if busy != n || m.GetHistogram().GetSampleCount() != n {
		t.Fatalf("hal9_async_workers{state=busy} %v, hal9_async_queue_wait_seconds count %d; want %d each", busy, m.GetHistogram().GetSampleCount(), n)
	}
	if w := p.workers.Load(); w > 64 {
		t.Fatalf("%d workers, over --async-workers-max 64", w)
	}
}

// gaugeOf is the hal9_async_workers series of state from c.
func gaugeOf(t *testing.T, c prometheus.Collector, state string) prometheus.Collector {
	t.Helper()
	ch := make(chan prometheus.Metric, 8)
	c.Collect(ch)
	close(ch)
	for m := range ch {
		var d dto.Metric
		if err := m.Write(&d); err != nil {
			t.Fatal(err)
		}
		for _, l := range d.GetLabel() {
			if l.GetName() == "state" && l.GetValue() == state {
				return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "g", Help: "g"}, func() float64 { return d.GetGauge().GetValue() })
			}
		}
	}
	t.Fatalf("no hal9_async_workers{state=%q}", state)
	return nil
}

// TestAsyncPoolBoundedByMax: past --async-workers-max jobs wait in the
// queue instead of starting workers.
func TestAsyncPoolBoundedByMax(t *testing.T) {
	release := make(chan struct{})
	var running atomic.Int64
	p := testPool(t, 1, 5, 128, func(p *asyncPool) { p.runJob = func(asyncJob) { running.Add(1); <-release } })
	enqueueN(t, p, 30, 0)
	deadline := time.Now().Add(10 * time.Second)
	for running.Load() < 5 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // room for a worker too many to show
	got, w := running.Load(), p.workers.Load()
	close(release)
	if got != 5 || w != 5 {
		t.Fatalf("%d jobs running on %d workers; want 5 on 5 (the max) and 25 queued", got, w)
	}
}

// TestAsyncBurstNotRefusedWhileIdle: 300 async signals at 500/s whose
// LLM work takes 50 ms each without CPU (Little's law: 25 in flight) fit
// a 64-place queue when the pool grows; a fixed single worker serves 20/s
// and refuses most of them with queue_full while the CPU idles.
func TestAsyncBurstNotRefusedWhileIdle(t *testing.T) {
	cases := []struct {
		name        string
		min, max    int
		wantRefused bool
	}{
		{"fixed pool of 1 (the old sizing)", 1, 1, true},
		{"grows 1..256", 1, 256, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := testPool(t, c.min, c.max, 64, func(p *asyncPool) { p.runJob = func(asyncJob) { time.Sleep(50 * time.Millisecond) } })
			refused := enqueueN(t, p, 300, 2*time.Millisecond)
			if (refused > 0) != c.wantRefused {
				t.Fatalf("%d of 300 refused with queue_full (workers at the end %d); want refusals: %v", refused, p.workers.Load(), c.wantRefused)
			}
		})
	}
}

// TestAsyncPoolShrinksToMin: workers started for a burst retire once idle.
func TestAsyncPoolShrinksToMin(t *testing.T) {
	release := make(chan struct{})
	p := testPool(t, 2, 32, 64, func(p *asyncPool) {
		p.idleTimeout = 20 * time.Millisecond
		p.runJob = func(asyncJob) { <-release }
	})
	enqueueN(t, p, 20, 0)
	for deadline := time.Now().Add(10 * time.Second); p.workers.Load() < 20 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	if w := p.workers.Load(); w < 20 {
		t.Fatalf("%d workers for 20 blocked jobs", w)
	}
	close(release)
	for deadline := time.Now().Add(10 * time.Second); p.workers.Load() > 2 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	if w := p.workers.Load(); w != 2 {
		t.Fatalf("%d workers 10 s after the burst; want the minimum, 2", w)
	}
}
