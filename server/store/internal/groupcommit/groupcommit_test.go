package groupcommit

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// recorder is an Exec that records its batches; the first call can be held
// until release is closed, so the test knows writes queued behind it.
type recorder struct {
	mu      sync.Mutex
	batches [][]int
	hold    chan struct{} // nil: do not hold
	held    chan struct{} // closed when the first call started
	fail    map[int]error
}

func (r *recorder) exec(_ context.Context, batch []int) []error {
	r.mu.Lock()
	first := len(r.batches) == 0
	r.batches = append(r.batches, slices.Clone(batch))
	r.mu.Unlock()
	if first && r.hold != nil {
		close(r.held)
		<-r.hold
	}
	errs := make([]error, len(batch))
	for i, v := range batch {
		errs[i] = r.fail[v]
	}
	return errs
}

func (r *recorder) sizes() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []int
	for _, b := range r.batches {
		out = append(out, len(b))
	}
	return out
}

// queuedBehind starts n writers (values 1..n) once the held first commit
// (value 0) runs, waits until all of them are queued, and releases it.
func queuedBehind(t *testing.T, c *Committer[int], r *recorder, n int, size int) []error {
	t.Helper()
	errs := make([]error, n+1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); errs[0] = c.Do(context.Background(), 0, size) }()
	<-r.held
	for i := 1; i <= n; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = c.Do(context.Background(), i, size) }()
	}
	for deadline := time.Now().Add(10 * time.Second); len(c.reqs) < n; {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d writers queued", len(c.reqs), n)
		}
		time.Sleep(time.Millisecond)
	}
	close(r.hold)
	wg.Wait()
	return errs
}

func TestBatchesFormBehindACommit(t *testing.T) {
	cases := []struct {
		name    string
		opts    Options
		n, size int
		want    []int // batch sizes after the held first one
	}{
		{"all join the next batch", Options{}, 10, 1, []int{10}},
		{"bounded by count", Options{MaxBatch: 4}, 10, 1, []int{4, 4, 2}},
		{"bounded by bytes", Options{MaxBytes: 300}, 6, 100, []int{3, 3}},
		{"a write over the byte bound goes alone", Options{MaxBytes: 50}, 3, 100, []int{1, 1, 1}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := &recorder{hold: make(chan struct{}), held: make(chan struct{})}
			m := NewMetrics("test")
			c.opts.Metrics = m
			cm := New(r.exec, c.opts)
			defer cm.Close()
			for i, err := range queuedBehind(t, cm, r, c.n, c.size) {
				if err != nil {
					t.Fatalf("write %d: %v", i, err)
				}
			}
			got := r.sizes()
			if got[0] != 1 || !slices.Equal(got[1:], c.want) {
				t.Fatalf("batch sizes %v, want [1 %v]", got, c.want)
			}
			if n := testutil.CollectAndCount(m.size); n != 1 {
				t.Fatalf("batch size series: %d", n)
			}
			var all []int
			for _, b := range r.batches {
				all = append(all, b...)
			}
			slices.Sort(all)
			for i, v := range all {
				if v != i {
					t.Fatalf("writes committed: %v, want each of 0..%d once", all, c.n)
				}
			}
		})
	}
}

func TestALoneWriteCommitsAtOnce(t *testing.T) {
	r := &recorder{}
	c := New(r.exec, Options{})
	defer c.Close()
	for i := range 3 {
		if err := c.Do(context.Background(), i, 1); err != nil {
			t.Fatal(err)
		}
	}
	if got := r.sizes(); !slices.Equal(got, []int{1, 1, 1}) {
		t.Fatalf("sequential writes were batched %v; each should commit alone", got)
	}
}

func TestOneBadWriteFailsAlone(t *testing.T) {
	bad := errors.New("constraint failed")
	r := &recorder{hold: make(chan struct{}), held: make(chan struct{}), fail: map[int]error{3: bad}}
	c := New(r.exec, Options{})
	defer c.Close()
	errs := queuedBehind(t, c, r, 5, 1)
	for i, err := range errs {
		if (i == 3) != errors.Is(err, bad) || (i != 3 && err != nil) {
			t.Fatalf("write %d: %v (only write 3 should fail)", i, err)
		}
	}
}

func TestCanceledWhileQueuedIsNotWritten(t *testing.T) {
	r := &recorder{hold: make(chan struct{}), held: make(chan struct{})}
	c := New(r.exec, Options{})
	defer c.Close()
	go c.Do(context.Background(), 0, 1)
	<-r.held
	ctx, cancel := context.WithCancel(context.Background())
	res := make(chan error)
	go func() { res <- c.Do(ctx, 42, 1) }()
	for len(c.reqs) < 1 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-res; !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled queued write: %v", err)
	}
	close(r.hold)
	if err := c.Do(context.Background(), 7, 1); err != nil {
		t.Fatal(err)
	}
	for _, b := range r.batches {
		if slices.Contains(b, 42) {
			t.Fatalf("the abandoned write was committed: %v", r.batches)
		}
	}
	if err := c.Do(ctx, 8, 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("write with a canceled context: %v", err)
	}
}

func TestCloseCommitsTheQueueThenRefuses(t *testing.T) {
	r := &recorder{hold: make(chan struct{}), held: make(chan struct{})}
	c := New(r.exec, Options{})
	errs := make(chan error, 6)
	go func() { errs <- c.Do(context.Background(), 0, 1) }()
	<-r.held
	for i := 1; i <= 5; i++ {
		go func() { errs <- c.Do(context.Background(), i, 1) }()
	}
	for len(c.reqs) < 5 {
		time.Sleep(time.Millisecond)
	}
	closed := make(chan struct{})
	go func() { c.Close(); close(closed) }()
	close(r.hold)
	<-closed
	for range 6 {
		if err := <-errs; err != nil {
			t.Fatalf("a write queued before Close: %v", err)
		}
	}
	if err := c.Do(context.Background(), 9, 1); !errors.Is(err, ErrClosed) {
		t.Fatalf("write after Close: %v", err)
	}
	c.Close() // idempotent
}

func ExampleCommitter() {
	c := New(func(_ context.Context, batch []string) []error {
		fmt.Println("commit", batch) // one transaction for the batch
		return make([]error, len(batch))
	}, Options{})
	defer c.Close()
	_ = c.Do(context.Background(), "a write", len("a write"))
	// Output: commit [a write]
}

// TestCommittersOverlapCommits: with k committers, k batches commit at
// once (each blocked in its Exec) and later writes queue behind them;
// released, every write is committed exactly once.
func TestCommittersOverlapCommits(t *testing.T) {
	for _, k := range []int{1, 3} {
		t.Run(fmt.Sprint(k, " committers"), func(t *testing.T) {
			release := make(chan struct{})
			var mu sync.Mutex
			var inFlight, peak int
			var committed []int
			exec := func(_ context.Context, batch []int) []error {
				mu.Lock()
				inFlight++
				peak = max(peak, inFlight)
				mu.Unlock()
				<-release
				mu.Lock()
				inFlight--
				committed = append(committed, batch...)
				mu.Unlock()
				return make([]error, len(batch))
			}
			m := NewMetrics("test")
			c := New(exec, Options{Committers: k, Metrics: m})
			defer c.Close()
			const n = 10
			errs := make(chan error, n)
			wait := func(what string, ok func(inFlight, queued int) bool) {
				t.Helper()
				for deadline := time.Now().Add(10 * time.Second); ; {
					mu.Lock()
					f := inFlight
					mu.Unlock()
					if ok(f, len(c.reqs)) {
						return
					}
					if time.Now().After(deadline) {
						t.Fatalf("%s: %d commits in flight, %d writes queued", what, f, len(c.reqs))
					}
					time.Sleep(time.Millisecond)
				}
			}
			// One write at a time while committers are free: each starts a
			// commit of its own; then the rest queue behind them.
			for i := range n {
				go func() { errs <- c.Do(context.Background(), i, 1) }()
				if i < k {
					wait(fmt.Sprint("write ", i), func(f, _ int) bool { return f == i+1 })
				}
			}
			wait("all sent", func(f, q int) bool { return f == k && q == n-k })
			if g := testutil.ToFloat64(m.inFlight); g != float64(k) {
				t.Fatalf("hal9_db_commits_in_flight = %v, want %d", g, k)
			}
			close(release)
			for range n {
				if err := <-errs; err != nil {
					t.Fatal(err)
				}
			}
			slices.Sort(committed)
			if len(committed) != n || committed[0] != 0 || committed[n-1] != n-1 || peak != k {
				t.Fatalf("committed %v with at most %d commits at once; want each of 0..%d once, %d at once", committed, peak, n-1, k)
			}
		})
	}
}
