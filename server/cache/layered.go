package cache

import (
	"context"
	"errors"
	"time"

	"golang.org/x/sync/singleflight"
)

// Result says how a read was answered.
type Result struct {
	Hit       bool   // answered from a tier
	Tier      string // "process", "redis", or "" when loaded
	Coalesced bool   // this caller shared another caller's in-flight read or load
}

// Layered composes tiers, fastest first (process → redis), over a loader.
// A tier's failure is counted (hal9_cache_requests_total{result="error"})
// and treated as a miss: the cache never fails a request.
type Layered struct {
	tiers []Tier
	m     *Metrics
	sf    singleflight.Group
}

var _ Tier = (*Layered)(nil)

// NewLayered composes tiers in order; m may be nil.
func NewLayered(m *Metrics, tiers ...Tier) *Layered {
	return &Layered{tiers: tiers, m: m}
}

// Tiers returns the composed tiers, fastest first.
func (l *Layered) Tiers() []Tier { return l.tiers }

// GetOrLoad returns the value for key from the first tier that has it
// (backfilling the tiers above it), or from load (filling every tier with
// ttl). Identical concurrent misses are coalesced: one caller reads the
// lower tiers and loads, the others wait for its answer (or their own ctx).
// The load runs with the first caller's values and deadline but is not
// cancelled when that caller goes away, since others may be waiting.
// layer labels the metrics ("L1".."L5", or a record kind).
func (l *Layered) GetOrLoad(ctx context.Context, layer, key string, ttl time.Duration, load func(ctx context.Context) ([]byte, error)) ([]byte, Result, error) {
	if len(l.tiers) > 0 {
		if v, ok := l.read(ctx, 0, layer, key); ok {
			return v, Result{Hit: true, Tier: l.tiers[0].Name()}, nil
		}
	}
	type answer struct {
		val []byte
		res Result
	}
	var led bool // set only by the closure this caller's Do runs
	ch := l.sf.DoChan(key, func() (any, error) {
		led = true
		lctx := context.WithoutCancel(ctx)
		if dl, ok := ctx.Deadline(); ok {
			var cancel context.CancelFunc
			lctx, cancel = context.WithDeadline(lctx, dl)
			defer cancel()
		}
		for i := 1; i < len(l.tiers); i++ {
			if v, ok := l.read(lctx, i, layer, key); ok {
				l.fill(lctx, i, key, v, ttl)
				return answer{v, Result{Hit: true, Tier: l.tiers[i].Name()}}, nil
			}
		}
		v, err := load(lctx)
		if err != nil {
			return nil, err
		}
		l.fill(lctx, len(l.tiers), key, v, ttl)
		return answer{v, Result{}}, nil
	})
	select {
	case <-ctx.Done():
		return nil, Result{}, ctx.Err()
	case r := <-ch:
		if r.Err != nil {
			return nil, Result{Coalesced: !led}, r.Err
		}
		a := r.Val.(answer)
		if !led {
			a.res.Coalesced = true
			if l.m != nil {
				l.m.Coalesced.WithLabelValues(layer).Inc()
			}
		}
		return a.val, a.res, nil
	}
}

// Lookup reads key through the tiers (backfilling upper tiers on a lower
// hit) without loading; ErrMiss when no tier has it. For cache-aside records
// and search results.
func (l *Layered) Lookup(ctx context.Context, layer, key string, ttl time.Duration) ([]byte, Result, error) {
	for i := range l.tiers {
		if v, ok := l.read(ctx, i, layer, key); ok {
			l.fill(ctx, i, key, v, ttl)
			return v, Result{Hit: true, Tier: l.tiers[i].Name()}, nil
		}
	}
	return nil, Result{}, ErrMiss
}

// Name is "layered".
func (l *Layered) Name() string { return "layered" }

// Get is Lookup with layer "record" and the tiers' default TTL for backfill.
func (l *Layered) Get(ctx context.Context, key string) ([]byte, error) {
	v, _, err := l.Lookup(ctx, "record", key, 0)
	return v, err
}

// Set writes every tier. Failures are counted and returned joined; callers
// treating the cache as best effort may ignore them.
func (l *Layered) Set(ctx context.Context, key string, val []byte, ttl time.Duration) error {
	var errs []error
	for _, t := range l.tiers {
		if err := t.Set(ctx, key, val, ttl); err != nil {
			l.m.writeError(t.Name())
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Delete removes key from every tier (lowest first, so a concurrent read
// cannot backfill the upper tier from a stale lower copy after the delete).
func (l *Layered) Delete(ctx context.Context, key string) error {
	var errs []error
	for i := len(l.tiers) - 1; i >= 0; i-- {
		t := l.tiers[i]
		if err := t.Delete(ctx, key); err != nil {
			l.m.writeError(t.Name())
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// read asks tier i, counting hit, miss or error (an error is a miss).
func (l *Layered) read(ctx context.Context, i int, layer, key string) ([]byte, bool) {
	t := l.tiers[i]
	v, err := t.Get(ctx, key)
	switch {
	case err == nil:
		l.m.request(t.Name(), layer, ResultHit)
		return v, true
	case errors.Is(err, ErrMiss):
		l.m.request(t.Name(), layer, ResultMiss)
	default:
		l.m.request(t.Name(), layer, ResultError)
	}
	return nil, false
}

// fill writes v into the tiers above index below.
func (l *Layered) fill(ctx context.Context, below int, key string, v []byte, ttl time.Duration) {
	for i := 0; i < below && i < len(l.tiers); i++ {
		if err := l.tiers[i].Set(ctx, key, v, ttl); err != nil {
			l.m.writeError(l.tiers[i].Name())
		}
	}
}
