package cache

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// memSink records every batch; it can fail or block on demand.
type memSink struct {
	mu      sync.Mutex
	batches [][]Record
	fail    error
	block   chan struct{} // non-nil: WriteBatch waits for it to close
	entered chan struct{} // signalled when a blocked WriteBatch starts
}

func (s *memSink) WriteBatch(ctx context.Context, recs []Record) error {
	s.mu.Lock()
	block, fail := s.block, s.fail
	s.mu.Unlock()
	if block != nil {
		select {
		case s.entered <- struct{}{}:
		default:
		}
		<-block
	}
	if fail != nil {
		return fail
	}
	s.mu.Lock()
	s.batches = append(s.batches, append([]Record(nil), recs...))
	s.mu.Unlock()
	return nil
}

func (s *memSink) keys() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, b := range s.batches {
		for _, r := range b {
			out = append(out, r.Key)
		}
	}
	return out
}

func (s *memSink) count() int { return len(s.keys()) }

func newRecords(t *testing.T, st Strategy, tier Tier, sink Sink, o WriteBehindOptions, m *Metrics) *Records {
	t.Helper()
	r, err := NewRecords(st, tier, sink, o, m)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close(context.Background()) })
	return r
}

func rec(i int) Record {
	return Record{Key: NeuronStateKey(fmt.Sprint("n", i)), Value: []byte(fmt.Sprint("state", i))}
}

func TestRecordsAside(t *testing.T) {
	ctx := context.Background()
	tier, sink := newMapTier("process"), &memSink{}
	r := newRecords(t, Aside, tier, sink, WriteBehindOptions{}, nil)
	loads := 0
	load := func(context.Context) ([]byte, error) { loads++; return []byte("from-store"), nil }
	if v, hit, err := r.Get(ctx, "hal9:k", 0, load); err != nil || hit || string(v) != "from-store" {
		t.Fatalf("first Get: %q %v %v", v, hit, err)
	}
	if _, hit, _ := r.Get(ctx, "hal9:k", 0, load); !hit || loads != 1 {
		t.Fatalf("second Get: hit %v loads %d", hit, loads)
	}
	if err := r.Put(ctx, Record{Key: "hal9:k", Value: []byte("new")}); err != nil {
		t.Fatal(err)
	}
	if sink.count() != 1 || tier.has("hal9:k") {
		t.Fatalf("aside write: sink %d records, cached %v; want 1 and invalidated", sink.count(), tier.has("hal9:k"))
	}
	sink.fail = errors.New("store down")
	if err := r.Put(ctx, Record{Key: "hal9:k"}); err == nil {
		t.Fatal("aside Put hid the sink failure")
	}
}

func TestRecordsThrough(t *testing.T) {
	ctx := context.Background()
	tier, sink := newMapTier("process"), &memSink{}
	r := newRecords(t, Through, tier, sink, WriteBehindOptions{}, nil)
	if err := r.Put(ctx, rec(1)); err != nil {
		t.Fatal(err)
	}
	if sink.count() != 1 || !tier.has(rec(1).Key) {
		t.Fatal("write-through did not reach both sink and cache")
	}
	sink.fail = errors.New("store down")
	if err := r.Put(ctx, rec(2)); err == nil || tier.has(rec(2).Key) {
		t.Fatal("write-through cached a record the sink refused")
	}
}

func TestRecordsBehindFlushes(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name  string
		opts  WriteBehindOptions
		puts  int
		close bool
	}{
		{"on size", WriteBehindOptions{MaxBatch: 10, Interval: time.Hour}, 10, false},
		{"on interval", WriteBehindOptions{MaxBatch: 1000, Interval: 20 * time.Millisecond}, 3, false},
		{"on close", WriteBehindOptions{MaxBatch: 1000, Interval: time.Hour}, 5, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := newTestMetrics()
			tier, sink := newMapTier("process"), &memSink{}
			r, err := NewRecords(Behind, tier, sink, c.opts, m)
			if err != nil {
				t.Fatal(err)
			}
			for i := range c.puts {
				if err := r.Put(ctx, rec(i)); err != nil {
					t.Fatal(err)
				}
				if !tier.has(rec(i).Key) {
					t.Fatal("write-behind did not cache at once")
				}
			}
			if c.close {
				if sink.count() != 0 {
					t.Fatal("flushed before Close")
				}
				if err := r.Close(ctx); err != nil {
					t.Fatal(err)
				}
			} else {
				eventually(t, "the flush", func() bool { return sink.count() == c.puts })
				_ = r.Close(ctx)
			}
			if sink.count() != c.puts {
				t.Fatalf("sink got %d, want %d", sink.count(), c.puts)
			}
			if got := testutil.ToFloat64(m.WBFlushed); got != float64(c.puts) {
				t.Fatalf("flushed counter %v", got)
			}
			if got := testutil.ToFloat64(m.WBQueue); got != 0 {
				t.Fatalf("queue gauge %v after flush", got)
			}
			if err := r.Put(ctx, rec(99)); err == nil {
				t.Fatal("Put after Close accepted")
			}
		})
	}
}

// A full queue drops its oldest records and counts them.
func TestRecordsBehindDropsOldest(t *testing.T) {
	ctx := context.Background()
	m := newTestMetrics()
	block := make(chan struct{})
	sink := &memSink{block: block, entered: make(chan struct{}, 1)}
	r := newRecords(t, Behind, newMapTier("process"), sink, WriteBehindOptions{MaxBatch: 10, MaxQueue: 10, Interval: time.Hour}, m)
	for i := range 10 {
		_ = r.Put(ctx, rec(i))
	}
	<-sink.entered // the flusher holds records 0..9 and is stuck in the sink
	for i := 10; i < 25; i++ {
		_ = r.Put(ctx, rec(i))
	}
	if got := testutil.ToFloat64(m.WBDropped); got != 5 {
		t.Fatalf("dropped %v, want 5 (15 puts into a queue of 10)", got)
	}
	if got := testutil.ToFloat64(m.WBQueue); got != 10 {
		t.Fatalf("queue gauge %v, want 10", got)
	}
	sink.mu.Lock()
	sink.block = nil
	sink.mu.Unlock()
	close(block)
	if err := r.Close(ctx); err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for _, i := range append([]int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24) {
		want[rec(i).Key] = true
	}
	got := sink.keys()
	if len(got) != 20 {
		t.Fatalf("sink got %d records, want 20: %v", len(got), got)
	}
	for _, k := range got {
		if !want[k] {
			t.Fatalf("sink got %s, which should have been dropped (oldest first)", k)
		}
	}
}

func TestRecordsBehindRetriesFailedBatch(t *testing.T) {
	ctx := context.Background()
	m := newTestMetrics()
	sink := &memSink{fail: errors.New("store down")}
	r := newRecords(t, Behind, newMapTier("process"), sink, WriteBehindOptions{MaxBatch: 100, Interval: time.Hour}, m)
	for i := range 3 {
		_ = r.Put(ctx, rec(i))
	}
	if err := r.Flush(ctx); err == nil {
		t.Fatal("Flush hid the sink failure")
	}
	if r.Pending() != 3 || testutil.ToFloat64(m.WBFlushErrors) != 1 {
		t.Fatalf("after a failed flush: %d pending, %v errors", r.Pending(), testutil.ToFloat64(m.WBFlushErrors))
	}
	sink.mu.Lock()
	sink.fail = nil
	sink.mu.Unlock()
	if err := r.Flush(ctx); err != nil || sink.count() != 3 || r.Pending() != 0 {
		t.Fatalf("retry: %v, sink %d, pending %d", err, sink.count(), r.Pending())
	}
}

func TestRecordsCloseReportsUnwritten(t *testing.T) {
	ctx := context.Background()
	m := newTestMetrics()
	sink := &memSink{fail: errors.New("store down")}
	r, _ := NewRecords(Behind, newMapTier("process"), sink, WriteBehindOptions{Interval: time.Hour}, m)
	_ = r.Put(ctx, rec(1))
	_ = r.Put(ctx, rec(2))
	if err := r.Close(ctx); err == nil {
		t.Fatal("Close hid 2 unwritten records")
	}
	if got := testutil.ToFloat64(m.WBDropped); got != 2 {
		t.Fatalf("dropped %v, want 2", got)
	}
}

// Signals: the server stores them itself (nil sink); behind defers only the
// cached copy.
func TestRecordsBehindWithoutSinkDefersCacheCopy(t *testing.T) {
	ctx := context.Background()
	tier := newMapTier("redis")
	r := newRecords(t, Behind, tier, nil, WriteBehindOptions{MaxBatch: 100, Interval: time.Hour}, nil)
	s := Record{Key: SignalKey("s1"), Value: []byte("{}")}
	_ = r.Put(ctx, s)
	if tier.has(s.Key) {
		t.Fatal("cached before the deferred flush")
	}
	if err := r.Flush(ctx); err != nil || !tier.has(s.Key) {
		t.Fatalf("flush: %v, cached %v", err, tier.has(s.Key))
	}
	// the other strategies with a nil sink only touch the cache.
	th := newRecords(t, Through, tier, nil, WriteBehindOptions{}, nil)
	_ = th.Put(ctx, Record{Key: SignalKey("s2"), Value: []byte("{}")})
	if !tier.has(SignalKey("s2")) {
		t.Fatal("through with nil sink did not cache")
	}
	as := newRecords(t, Aside, tier, nil, WriteBehindOptions{}, nil)
	_ = as.Put(ctx, Record{Key: SignalKey("s2")})
	if tier.has(SignalKey("s2")) {
		t.Fatal("aside with nil sink did not invalidate")
	}
}

func TestParseStrategy(t *testing.T) {
	for in, want := range map[string]Strategy{"": Aside, "aside": Aside, "through": Through, "behind": Behind} {
		if got, err := ParseStrategy(in); err != nil || got != want {
			t.Errorf("ParseStrategy(%q) = %v %v", in, got, err)
		}
	}
	if _, err := ParseStrategy("write-back"); err == nil {
		t.Error("accepted write-back")
	}
	if _, err := NewRecords(Behind, newMapTier("p"), nil, WriteBehindOptions{MaxBatch: 100, MaxQueue: 10}, nil); err == nil {
		t.Error("accepted MaxQueue < MaxBatch")
	}
}

// blockingSink blocks every WriteBatch until release is closed or, when
// honourCtx, its context ends.
type blockingSink struct {
	entered   chan int // batch sizes, as WriteBatch starts
	release   chan struct{}
	honourCtx bool
	canceled  chan struct{}
}

func (s *blockingSink) WriteBatch(ctx context.Context, recs []Record) error {
	s.entered <- len(recs)
	if s.honourCtx {
		select {
		case <-ctx.Done():
			close(s.canceled)
			return ctx.Err()
		case <-s.release:
			return nil
		}
	}
	<-s.release
	return nil
}

// TestRecordsCloseHonoursContext: with a sink stuck in WriteBatch, Close
// returns when its ctx ends, reports the unflushed records (the batch in
// flight and the queued one) and counts them dropped.
func TestRecordsCloseHonoursContext(t *testing.T) {
	for _, honour := range []bool{true, false} {
		t.Run(map[bool]string{true: "sink honours ctx", false: "sink ignores ctx"}[honour], func(t *testing.T) {
			m := newTestMetrics()
			sink := &blockingSink{entered: make(chan int, 10), release: make(chan struct{}), honourCtx: honour, canceled: make(chan struct{})}
			t.Cleanup(func() { close(sink.release) })
			r, err := NewRecords(Behind, newMapTier("process"), sink, WriteBehindOptions{MaxBatch: 2, MaxQueue: 10, Interval: time.Hour}, m)
			if err != nil {
				t.Fatal(err)
			}
			for i := range 3 {
				_ = r.Put(context.Background(), rec(i))
			}
			if n := <-sink.entered; n != 2 { // the kicked flush of a full batch is stuck now
				t.Fatalf("first batch %d records, want 2", n)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancel()
			err = r.Close(ctx)
			if err == nil || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "3 records not written") {
				t.Fatalf("Close = %v, want 3 records not written: context deadline exceeded", err)
			}
			if got := testutil.ToFloat64(m.WBDropped); got != 3 {
				t.Fatalf("dropped %v, want 3", got)
			}
			if honour {
				<-sink.canceled // the flusher's context was canceled by Close
			}
		})
	}
}
