package cache

import (
	"context"
	"errors"
	"sync"
	"time"
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

	mu      sync.Mutex
	flights map[string]*flight // identical misses in progress
}

// flight is one key's read of the lower tiers and load, shared by every
// caller that missed it meanwhile.
type flight struct {
	done    chan struct{}
	val     []byte
	res     Result
	err     error
	waiters int                // callers still waiting (under Layered.mu)
	cancel  context.CancelFunc // ends the load once no one waits
}

var _ Tier = (*Layered)(nil)

// NewLayered composes tiers in order; m may be nil.
func NewLayered(m *Metrics, tiers ...Tier) *Layered {
	return &Layered{tiers: tiers, m: m, flights: map[string]*flight{}}
}

// Tiers returns the composed tiers, fastest first.
func (l *Layered) Tiers() []Tier { return l.tiers }

// GetOrLoad returns the value for key from the first tier that has it
// (backfilling the tiers above it), or from load (filling every tier with
// ttl). Identical concurrent misses are coalesced: one caller reads the
// lower tiers and loads, the others wait for its answer (or their own ctx).
// The load runs with the first caller's values and deadline and goes on
// while anyone waits for it, whoever leaves; when the last waiter leaves,
// it is cancelled: an LLM call that no one will read would only spend.
// layer labels the metrics ("L1".."L5", or a record kind).
func (l *Layered) GetOrLoad(ctx context.Context, layer, key string, ttl time.Duration, load func(ctx context.Context) ([]byte, error)) ([]byte, Result, error) {
	if len(l.tiers) > 0 {
		if v, ok := l.read(ctx, 0, layer, key); ok {
			return v, Result{Hit: true, Tier: l.tiers[0].Name()}, nil
		}
	}
	l.mu.Lock()
	f, joined := l.flights[key]
	if !joined {
		lctx, cancel := loadContext(ctx)
		f = &flight{done: make(chan struct{}), cancel: cancel}
		l.flights[key] = f
		go l.fly(lctx, f, layer, key, ttl, load)
	}
	f.waiters++
	l.mu.Unlock()

	select {
	case <-ctx.Done():
		l.mu.Lock()
		f.waiters--
		if f.waiters == 0 {
			f.cancel()
			if l.flights[key] == f {
				delete(l.flights, key) // a caller coming now starts afresh
			}
		}
		l.mu.Unlock()
		return nil, Result{}, ctx.Err()
	case <-f.done:
		if f.err != nil {
			return nil, Result{Coalesced: joined}, f.err
		}
		res := f.res
		if joined {
			res.Coalesced = true
			if l.m != nil {
				l.m.Coalesced.WithLabelValues(layer).Inc()
			}
		}
		return f.val, res, nil
	}
}

// loadContext keeps ctx's values and deadline, not its cancellation: the
// flight ends it when its last waiter leaves.
func loadContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if dl, ok := ctx.Deadline(); ok {
		return context.WithDeadline(context.WithoutCancel(ctx), dl)
	}
	return context.WithCancel(context.WithoutCancel(ctx))
}

// fly reads the lower tiers, else loads, and answers the flight's waiters.
func (l *Layered) fly(ctx context.Context, f *flight, layer, key string, ttl time.Duration, load func(ctx context.Context) ([]byte, error)) {
	defer func() {
		f.cancel()
		l.mu.Lock()
		if l.flights[key] == f {
			delete(l.flights, key)
		}
		l.mu.Unlock()
		close(f.done)
	}()
	for i := 1; i < len(l.tiers); i++ {
		if v, ok := l.read(ctx, i, layer, key); ok {
			l.fill(ctx, i, key, v, ttl)
			f.val, f.res = v, Result{Hit: true, Tier: l.tiers[i].Name()}
			return
		}
	}
	v, err := load(ctx)
	if err != nil {
		f.err = err
		return
	}
	l.fill(ctx, len(l.tiers), key, v, ttl)
	f.val = v
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
