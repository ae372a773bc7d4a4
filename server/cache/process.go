package cache

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/ristretto/v2"
)

// ProcessOptions bound the in-process tier.
type ProcessOptions struct {
	MaxEntries int64         // default 50,000 (seed 000)
	MaxBytes   int64         // value bytes; default 256 MiB
	DefaultTTL time.Duration // for Set with ttl 0; default 5 min
}

// Process is the in-process tier on ristretto: TinyLFU admission and sampled
// LFU eviction weighted by cost, so large, rarely used entries go first.
//
// Both bounds hold through the cost: each entry costs
// max(len(value), MaxBytes/MaxEntries) against a capacity of MaxBytes, so
// the values never exceed MaxBytes and the count never exceeds MaxEntries.
//
// Set is asynchronous in ristretto: it queues the item and returns; the item
// becomes visible a moment later, after the policy admits it (or never, if
// TinyLFU rejects it or the queue is full and the Set is dropped). A re-read
// right after Set may therefore miss once; for a cache that only costs one
// extra load. Call Wait when a test or caller needs the Set applied.
type Process struct {
	c       *ristretto.Cache[string, *entry]
	minCost int64
	ttl     time.Duration
	m       *Metrics
	closing atomic.Bool // Close clears the cache: not evictions
}

var _ Tier = (*Process)(nil)

// entry boxes a value so callbacks can tell a stored value from "none".
type entry struct{ val []byte }

// NewProcess creates the process tier.
func NewProcess(opts ProcessOptions, m *Metrics) (*Process, error) {
	if opts.MaxEntries == 0 {
		opts.MaxEntries = 50_000
	}
	if opts.MaxBytes == 0 {
		opts.MaxBytes = 256 << 20
	}
	if opts.DefaultTTL == 0 {
		opts.DefaultTTL = 5 * time.Minute
	}
	if opts.MaxEntries < 0 || opts.MaxBytes < 0 {
		return nil, fmt.Errorf("process cache: MaxEntries %d and MaxBytes %d must be positive", opts.MaxEntries, opts.MaxBytes)
	}
	if opts.MaxBytes < opts.MaxEntries {
		return nil, fmt.Errorf("process cache: MaxBytes %d is below MaxEntries %d; give at least one byte per entry", opts.MaxBytes, opts.MaxEntries)
	}
	p := &Process{minCost: opts.MaxBytes / opts.MaxEntries, ttl: opts.DefaultTTL, m: m}
	var entries, bytes func(float64)
	if m != nil {
		eg, bg := m.Entries.WithLabelValues("process"), m.Bytes.WithLabelValues("process")
		entries, bytes = eg.Add, bg.Add
	} else {
		entries, bytes = func(float64) {}, func(float64) {}
	}
	c, err := ristretto.NewCache(&ristretto.Config[string, *entry]{
		NumCounters:        opts.MaxEntries * 10, // ristretto's advice: 10× the items kept
		MaxCost:            opts.MaxBytes,
		BufferItems:        64,
		IgnoreInternalCost: true, // our cost already is the bound
		OnEvict: func(it *ristretto.Item[*entry]) {
			if m == nil || p.closing.Load() {
				return
			}
			// TTL sweeps carry the expiration; room evictions do not.
			if !it.Expiration.IsZero() && !it.Expiration.After(time.Now()) {
				m.Expired.WithLabelValues("process").Inc()
			} else {
				m.Evictions.WithLabelValues("process").Inc()
			}
		},
		// OnExit runs whenever a stored (or queued, then rejected) value
		// leaves: eviction, expiry, rejection, replacement, delete.
		OnExit: func(e *entry) {
			if e != nil {
				entries(-1)
				bytes(-float64(len(e.val)))
			}
		},
	})
	if err != nil {
		return nil, fmt.Errorf("process cache (max %d entries, %d bytes): %w", opts.MaxEntries, opts.MaxBytes, err)
	}
	p.c = c
	if m != nil {
		m.Entries.WithLabelValues("process").Set(0)
		m.Bytes.WithLabelValues("process").Set(0)
		m.Evictions.WithLabelValues("process")
		m.Expired.WithLabelValues("process")
	}
	return p, nil
}

// Name is "process".
func (p *Process) Name() string { return "process" }

// Get returns the value; callers must not modify it (it is shared).
func (p *Process) Get(_ context.Context, key string) ([]byte, error) {
	e, ok := p.c.Get(key)
	if !ok || e == nil {
		return nil, ErrMiss
	}
	return e.val, nil
}

// Set queues the value (see the type's note on asynchrony); ttl 0 means the
// default TTL. The caller must not modify val afterwards.
func (p *Process) Set(_ context.Context, key string, val []byte, ttl time.Duration) error {
	if ttl <= 0 {
		ttl = p.ttl
	}
	if p.c.SetWithTTL(key, &entry{val: val}, max(int64(len(val)), p.minCost), ttl) && p.m != nil {
		p.m.Entries.WithLabelValues("process").Inc()
		p.m.Bytes.WithLabelValues("process").Add(float64(len(val)))
	}
	return nil
}

// Delete removes the key at once.
func (p *Process) Delete(_ context.Context, key string) error {
	p.c.Del(key)
	return nil
}

// Wait blocks until every earlier Set is applied (admitted or rejected).
func (p *Process) Wait() { p.c.Wait() }

// Close releases the cache's goroutines; the tier must not be used after.
func (p *Process) Close() {
	p.closing.Store(true)
	p.c.Close()
}
