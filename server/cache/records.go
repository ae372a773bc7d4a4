package cache

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Strategy is how record writes reach the cache and the store
// (--cache-strategy).
type Strategy string

const (
	// Aside (cache-aside, the default): reads try the cache, then the
	// loader, and populate the cache; writes go to the sink, then
	// invalidate the key.
	Aside Strategy = "aside"
	// Through (write-through): writes go to the sink, then to the cache,
	// synchronously.
	Through Strategy = "through"
	// Behind (write-behind): writes go to the cache at once and to the sink
	// later, in batches.
	Behind Strategy = "behind"
)

// ParseStrategy validates a --cache-strategy value.
func ParseStrategy(s string) (Strategy, error) {
	switch st := Strategy(s); st {
	case Aside, Through, Behind:
		return st, nil
	case "":
		return Aside, nil
	}
	return "", fmt.Errorf("unknown cache strategy %q: use aside, through or behind", s)
}

// Record is one keyed record: Value is the cached encoding, Data whatever
// the Sink needs to store it (e.g. a store.Neuron).
type Record struct {
	Key   string
	Value []byte
	TTL   time.Duration // cache TTL; 0: RecordTTL
	Data  any
}

// Sink persists records; the caller implements it over its store.
type Sink interface {
	WriteBatch(ctx context.Context, recs []Record) error
}

// SinkFunc adapts a function to Sink.
type SinkFunc func(ctx context.Context, recs []Record) error

// WriteBatch calls f.
func (f SinkFunc) WriteBatch(ctx context.Context, recs []Record) error { return f(ctx, recs) }

// WriteBehindOptions bound the write-behind queue.
type WriteBehindOptions struct {
	MaxBatch int           // records per WriteBatch, and the queue length that triggers a flush (100)
	Interval time.Duration // flush at least this often (1 s)
	MaxQueue int           // queued records; when full the OLDEST is dropped and counted (10,000)
}

// Records applies a Strategy to record reads and writes.
//
// How the server uses it (design note):
//
//   - Signals are acknowledged user writes. The server always writes them to
//     the store synchronously before it answers, whatever the strategy, and
//     passes a nil Sink. With a nil Sink, Aside invalidates the cached copy,
//     Through sets it synchronously, and Behind only defers the cached
//     (Redis) copy: it is queued and written to the tier by the flusher. No
//     acknowledged signal can be lost by the cache.
//   - Neuron-state records are the server's own, frequent, re-derivable
//     writes. With Behind they are cached at once and reach the store
//     through the write-behind queue. Loss window on a crash (kill -9, OOM,
//     power): the records Put since the last successful WriteBatch, which
//     is at most Interval of writes (plus the duration of one WriteBatch in
//     flight), and fewer than MaxBatch records while the sink keeps up
//     (a flush starts as soon as MaxBatch are queued); never more than
//     MaxQueue records. With the defaults: at most 1 s of neuron-state
//     writes, at most 100 records while the store keeps up, 10,000 when it
//     stalls. A graceful shutdown (Close) flushes everything: no loss.
//   - The queue is bounded: when MaxQueue records are waiting (the store is
//     slow or down), Put drops the OLDEST queued record, so the newest state
//     wins and Put never blocks a request; drops are counted in
//     hal9_cache_writebehind_dropped_total. A failed WriteBatch is retried
//     on the next flush (hal9_cache_writebehind_flush_errors_total).
type Records struct {
	strategy Strategy
	tier     Tier
	sink     Sink
	deferred bool // Behind with a nil sink: the queue feeds the tier
	opts     WriteBehindOptions
	m        *Metrics

	mu      sync.Mutex
	queue   []Record // pending records are queue[head:]
	head    int      // dropping or flushing the oldest advances head: O(1)
	kick    chan struct{}
	closing chan struct{}
	done    chan struct{}
	closed  bool
	flushMu sync.Mutex // one WriteBatch at a time, in queue order

	inflight int // records in the WriteBatch running now (under mu)
	// fctx is the flusher's context; Close cancels it when its own ctx
	// ends, so a sink that honours its context stops.
	fctx    context.Context
	fcancel context.CancelFunc
}

// NewRecords returns records over tier (usually a *Layered) and sink (nil:
// the caller writes the store itself; see the type's note). Behind starts a
// flusher goroutine; call Close.
func NewRecords(strategy Strategy, tier Tier, sink Sink, opts WriteBehindOptions, m *Metrics) (*Records, error) {
	if _, err := ParseStrategy(string(strategy)); err != nil {
		return nil, err
	}
	if strategy == "" {
		strategy = Aside
	}
	if tier == nil {
		return nil, errors.New("records: a cache tier is required")
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 100
	}
	if opts.Interval <= 0 {
		opts.Interval = time.Second
	}
	if opts.MaxQueue <= 0 {
		opts.MaxQueue = 10_000
	}
	if opts.MaxQueue < opts.MaxBatch {
		return nil, fmt.Errorf("records: MaxQueue %d is below MaxBatch %d; raise MaxQueue", opts.MaxQueue, opts.MaxBatch)
	}
	r := &Records{strategy: strategy, tier: tier, sink: sink, opts: opts, m: m,
		kick: make(chan struct{}, 1), closing: make(chan struct{}), done: make(chan struct{})}
	r.fctx, r.fcancel = context.WithCancel(context.Background())
	if strategy == Behind {
		if sink == nil {
			r.deferred = true
			r.sink = SinkFunc(r.writeTier)
		}
		go r.flusher()
	} else {
		close(r.done)
	}
	return r, nil
}

// Strategy returns the strategy in use.
func (r *Records) Strategy() Strategy { return r.strategy }

// Get reads a record: the cache first, then load (the store), populating the
// cache on a load. hit reports a cache hit. ErrMiss from load passes through.
func (r *Records) Get(ctx context.Context, key string, ttl time.Duration, load func(ctx context.Context) ([]byte, error)) (val []byte, hit bool, err error) {
	if ttl <= 0 {
		ttl = RecordTTL
	}
	if l, ok := r.tier.(*Layered); ok {
		v, res, err := l.GetOrLoad(ctx, "record", key, ttl, load)
		return v, res.Hit, err
	}
	if v, err := r.tier.Get(ctx, key); err == nil {
		return v, true, nil
	}
	v, err := load(ctx)
	if err != nil {
		return nil, false, err
	}
	if err := r.tier.Set(ctx, key, v, ttl); err != nil {
		r.m.writeError(r.tier.Name())
	}
	return v, false, nil
}

// Put writes a record by the strategy. It fails only when the sink fails
// (Aside, Through) or after Close; cache failures are counted, not returned.
func (r *Records) Put(ctx context.Context, rec Record) error {
	if rec.TTL <= 0 {
		rec.TTL = RecordTTL
	}
	switch r.strategy {
	case Through:
		if r.sink != nil {
			if err := r.sink.WriteBatch(ctx, []Record{rec}); err != nil {
				return fmt.Errorf("write-through %s: %w", rec.Key, err)
			}
		}
		r.cacheSet(ctx, rec)
	case Behind:
		if !r.deferred {
			r.cacheSet(ctx, rec)
		}
		return r.enqueue(rec)
	default: // Aside
		if r.sink != nil {
			if err := r.sink.WriteBatch(ctx, []Record{rec}); err != nil {
				return fmt.Errorf("write %s: %w", rec.Key, err)
			}
		}
		if err := r.tier.Delete(ctx, rec.Key); err != nil {
			r.m.writeError(r.tier.Name())
		}
	}
	return nil
}

// Invalidate drops a cached record (e.g. after a delete in the store).
func (r *Records) Invalidate(ctx context.Context, key string) {
	if err := r.tier.Delete(ctx, key); err != nil {
		r.m.writeError(r.tier.Name())
	}
}

// Pending is the number of queued write-behind records.
func (r *Records) Pending() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.queue) - r.head
}

// Flush writes every queued record now.
func (r *Records) Flush(ctx context.Context) error { return r.flush(ctx, true) }

// Close stops the flusher and flushes what is queued, within ctx. When ctx
// ends first (a sink that is slow or stuck) Close returns at once: the
// flusher's context is canceled, and the records still queued plus those in
// the WriteBatch in flight are counted as dropped and reported in the error
// (a batch in flight that still succeeds later is then also counted flushed).
func (r *Records) Close(ctx context.Context) error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	r.mu.Unlock()
	defer r.fcancel()
	if r.strategy != Behind {
		return nil
	}
	close(r.closing)
	finished := make(chan error, 1)
	go func() {
		<-r.done // the flusher's current WriteBatch, if any, ends first
		finished <- r.flush(ctx, true)
	}()
	var err error
	select {
	case err = <-finished:
	case <-ctx.Done():
		r.fcancel()
		err = ctx.Err()
	}
	r.mu.Lock()
	lost := len(r.queue) - r.head + r.inflight
	r.queue, r.head = nil, 0
	r.gaugeLocked()
	r.mu.Unlock()
	if lost > 0 {
		if r.m != nil {
			r.m.WBDropped.Add(float64(lost))
		}
		return fmt.Errorf("write-behind close: %d records not written: %w", lost, err)
	}
	return nil
}

func (r *Records) cacheSet(ctx context.Context, rec Record) {
	if err := r.tier.Set(ctx, rec.Key, rec.Value, rec.TTL); err != nil {
		r.m.writeError(r.tier.Name())
	}
}

func (r *Records) enqueue(rec Record) error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return fmt.Errorf("write-behind %s: records closed", rec.Key)
	}
	dropped := 0
	if n := len(r.queue) - r.head; n >= r.opts.MaxQueue {
		dropped = n - r.opts.MaxQueue + 1
		clear(r.queue[r.head : r.head+dropped]) // release the dropped values
		r.head += dropped
	}
	r.compactLocked()
	r.queue = append(r.queue, rec)
	n := len(r.queue) - r.head
	r.gaugeLocked()
	r.mu.Unlock()
	if dropped > 0 && r.m != nil {
		r.m.WBDropped.Add(float64(dropped))
	}
	if n >= r.opts.MaxBatch {
		select {
		case r.kick <- struct{}{}:
		default:
		}
	}
	return nil
}

// compactLocked moves the pending records to the front once the consumed
// prefix is at least half the slice, keeping appends amortised O(1).
func (r *Records) compactLocked() {
	if r.head > 0 && r.head >= len(r.queue)/2 {
		n := copy(r.queue, r.queue[r.head:])
		clear(r.queue[n:])
		r.queue, r.head = r.queue[:n], 0
	}
}

func (r *Records) flusher() {
	defer close(r.done)
	t := time.NewTicker(r.opts.Interval)
	defer t.Stop()
	for {
		select {
		case <-r.closing:
			return
		case <-t.C:
			_ = r.flush(r.fctx, true)
		case <-r.kick:
			_ = r.flush(r.fctx, false)
		}
	}
}

// flush writes batches of MaxBatch; all: until empty, else while a full
// batch is queued. A failed batch goes back to the queue's front.
func (r *Records) flush(ctx context.Context, all bool) error {
	r.flushMu.Lock()
	defer r.flushMu.Unlock()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		r.mu.Lock()
		n := len(r.queue) - r.head
		if n == 0 || (!all && n < r.opts.MaxBatch) {
			r.mu.Unlock()
			return nil
		}
		batch := make([]Record, min(n, r.opts.MaxBatch))
		copy(batch, r.queue[r.head:])
		clear(r.queue[r.head : r.head+len(batch)])
		r.head += len(batch)
		r.inflight = len(batch)
		r.compactLocked()
		r.gaugeLocked()
		r.mu.Unlock()

		err := r.sink.WriteBatch(ctx, batch)
		r.mu.Lock()
		r.inflight = 0
		r.mu.Unlock()
		if err != nil {
			r.requeue(batch)
			if r.m != nil {
				r.m.WBFlushErrors.Inc()
			}
			return fmt.Errorf("write-behind flush of %d records: %w", len(batch), err)
		}
		if r.m != nil {
			r.m.WBFlushed.Add(float64(len(batch)))
		}
	}
}

// requeue puts a failed batch back in front, dropping the oldest beyond
// MaxQueue.
func (r *Records) requeue(batch []Record) {
	r.mu.Lock()
	q := append(batch, r.queue[r.head:]...)
	dropped := 0
	if len(q) > r.opts.MaxQueue {
		dropped = len(q) - r.opts.MaxQueue
		q = q[dropped:]
	}
	r.queue, r.head = q, 0
	r.gaugeLocked()
	r.mu.Unlock()
	if dropped > 0 && r.m != nil {
		r.m.WBDropped.Add(float64(dropped))
	}
}

func (r *Records) gaugeLocked() {
	if r.m != nil {
		r.m.WBQueue.Set(float64(len(r.queue) - r.head))
	}
}

// writeTier is the sink of deferred cache copies (Behind with a nil sink).
func (r *Records) writeTier(ctx context.Context, recs []Record) error {
	var errs []error
	for _, rec := range recs {
		if err := r.tier.Set(ctx, rec.Key, rec.Value, rec.TTL); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		r.m.writeError(r.tier.Name())
	}
	// A cache copy is best effort: never retry it (the store has the data).
	return nil
}
