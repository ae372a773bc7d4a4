// Package groupcommit gathers concurrent writes into shared transactions:
// one commit (one WAL sync) for many writers instead of one each.
//
// A Committer has Options.Committers goroutines that commit (one by
// default). A write that arrives while a committer is free is committed at
// once, alone, so an idle store adds no latency; writes that arrive while
// every committer has a commit in flight wait for the first to finish and
// then go together in its next batch, bounded by a count and a byte size.
// With several committers several commits are in flight at once (each on
// its own connection): a database whose commit waits on a WAL flush then
// overlaps the flushes of one batch with the work of the next. Writes in
// different batches have no order between them; a caller that needs one
// write before another waits for the first's Do to return (every caller
// does: Do returns after the commit).
// Each caller is answered only after the commit holding its write returned,
// so an acknowledged write is as durable as the database makes a commit.
// Isolating a bad write, so that it fails alone, is the store's job in its
// Exec function (both stores roll the batch back and run it again write by
// write).
package groupcommit

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ErrClosed is returned for writes after Close.
var ErrClosed = errors.New("store is closed")

// Defaults of Options.
const (
	DefaultMaxBatch = 128
	DefaultMaxBytes = 4 << 20
	queueLen        = 4096
)

// Exec commits a batch: it applies every write in one transaction and
// returns one error per write (nil: committed). A write that failed must
// leave no trace, and must not make the others fail.
type Exec[T any] func(ctx context.Context, batch []T) []error

// Options bound a Committer's batches.
type Options struct {
	MaxBatch int // writes per commit (128)
	MaxBytes int // the writes' Size summed, per commit (4 MiB); a larger write goes alone
	// Timeout bounds one batch, begin to commit; 0: none, and Exec gets a
	// context without a Done channel (SQLite's driver then watches no
	// context per statement; its own busy_timeout bounds a wait).
	Timeout time.Duration
	// Committers is how many batches may be committing at once (1); the
	// Exec must then be safe for concurrent use.
	Committers int
	Metrics    *Metrics // nil: none
}

// Metrics are hal9_db_batch_size, hal9_db_commit_duration_seconds and
// hal9_db_batch_splits_total for one database (label db).
type Metrics struct {
	size, duration prometheus.Histogram
	splits         prometheus.Counter
	inFlight       prometheus.Gauge
}

// NewMetrics returns unregistered histograms labelled db=<db>; the store
// exports them with its Collector.
func NewMetrics(db string) *Metrics {
	labels := prometheus.Labels{"db": db}
	return &Metrics{
		size: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "hal9_db_batch_size", ConstLabels: labels,
			Help:    "Writes committed together by one group commit (one transaction).",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256},
		}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "hal9_db_commit_duration_seconds", ConstLabels: labels,
			Help:    "Time of one group commit, from BEGIN to the end of COMMIT (the WAL sync included).",
			Buckets: prometheus.ExponentialBuckets(0.0002, 2.5, 12), // 0.2 ms … ~3 s
		}),
		splits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hal9_db_batch_splits_total", ConstLabels: labels,
			Help: "Group commits rolled back because one write failed, then run again one transaction (one WAL sync) per write.",
		}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "hal9_db_commits_in_flight", ConstLabels: labels,
			Help: "Group commits running now (at most the store's committers).",
		}),
	}
}

// Collectors are the two histograms, the counter and the gauge.
func (m *Metrics) Collectors() []prometheus.Collector {
	return []prometheus.Collector{m.size, m.duration, m.splits, m.inFlight}
}

// Duration is hal9_db_commit_duration_seconds (for benchmarks that
// report commit latency).
func (m *Metrics) Duration() prometheus.Histogram { return m.duration }

// Split counts a batch that an Exec rolled back and ran again write by
// write (nil-safe).
func (m *Metrics) Split() {
	if m != nil {
		m.splits.Inc()
	}
}

// Committer batches writes of type T.
type Committer[T any] struct {
	exec  Exec[T]
	opts  Options
	reqs  chan *request[T]
	done  chan struct{} // closed when every committer returned
	loops sync.WaitGroup

	mu     sync.RWMutex // held for reading by senders, for writing by Close
	closed bool
}

// request states: a queued request can still be abandoned by its caller
// (its context ended); once taken into a batch it runs and is answered.
const (
	queued int32 = iota
	taken
	abandoned
)

type request[T any] struct {
	item  T
	size  int
	state atomic.Int32
	err   error
	done  chan struct{}
}

// New starts a committer; Close stops it.
func New[T any](exec Exec[T], opts Options) *Committer[T] {
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = DefaultMaxBatch
	}
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = DefaultMaxBytes
	}
	opts.Committers = max(opts.Committers, 1)
	c := &Committer[T]{exec: exec, opts: opts, reqs: make(chan *request[T], queueLen), done: make(chan struct{})}
	for range opts.Committers {
		c.loops.Add(1)
		go c.loop()
	}
	go func() { c.loops.Wait(); close(c.done) }()
	return c
}

// Do commits item (of about size bytes) and returns its error once the
// commit holding it is over. When ctx ends while the write still waits in
// the queue it is dropped and ctx's error returned; once it is being
// committed, Do waits for the outcome, so a nil error always means durable
// and a context error always means not written.
func (c *Committer[T]) Do(ctx context.Context, item T, size int) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r := &request[T]{item: item, size: size, done: make(chan struct{})}
	c.mu.RLock()
	if c.closed {
		c.mu.RUnlock()
		return ErrClosed
	}
	select {
	case c.reqs <- r:
	case <-ctx.Done():
		c.mu.RUnlock()
		return ctx.Err()
	}
	c.mu.RUnlock()
	select {
	case <-r.done:
		return r.err
	case <-ctx.Done():
		if r.state.CompareAndSwap(queued, abandoned) {
			return ctx.Err()
		}
		<-r.done
		return r.err
	}
}

// Queued is how many writes wait for the next batch (for tests that need
// a batch to form behind a commit they hold).
func (c *Committer[T]) Queued() int { return len(c.reqs) }

// Close commits what is queued, stops the committer and waits for it.
// Later writes get ErrClosed.
func (c *Committer[T]) Close() {
	c.mu.Lock()
	if !c.closed {
		c.closed = true
		close(c.reqs)
	}
	c.mu.Unlock()
	<-c.done
}

func (c *Committer[T]) loop() {
	defer c.loops.Done()
	var (
		carry *request[T] // took it from the queue, but it did not fit the last batch
		batch []*request[T]
		items []T
	)
	for {
		first := carry
		carry = nil
		if first == nil {
			r, ok := <-c.reqs
			if !ok {
				return
			}
			first = r
		}
		batch = batch[:0]
		bytes := 0
		take := func(r *request[T]) {
			if r.state.CompareAndSwap(queued, taken) {
				batch = append(batch, r)
				bytes += r.size
			}
		}
		take(first)
	fill:
		for len(batch) < c.opts.MaxBatch {
			select {
			case r, ok := <-c.reqs:
				if !ok {
					break fill
				}
				if len(batch) > 0 && bytes+r.size > c.opts.MaxBytes {
					carry = r
					break fill
				}
				take(r)
			default:
				break fill
			}
		}
		if len(batch) == 0 {
			continue
		}
		items = items[:0]
		for _, r := range batch {
			items = append(items, r.item)
		}
		c.commit(batch, items)
		clear(batch) // let the answered requests be collected
	}
}

func (c *Committer[T]) commit(batch []*request[T], items []T) {
	ctx := context.Background()
	if c.opts.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.opts.Timeout)
		defer cancel()
	}
	m := c.opts.Metrics
	if m != nil {
		m.inFlight.Inc()
	}
	start := time.Now()
	errs := c.exec(ctx, items)
	if m != nil {
		m.inFlight.Dec()
		m.size.Observe(float64(len(batch)))
		m.duration.Observe(time.Since(start).Seconds())
	}
	for i, r := range batch {
		if i < len(errs) {
			r.err = errs[i]
		} else {
			r.err = errors.New("group commit: no outcome reported for this write")
		}
		close(r.done)
	}
	clear(items)
}
