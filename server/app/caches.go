package app

import (
	"context"
	"encoding/json"
	"strconv"
	"time"

	"github.com/hal9-lab/hal9-lab/server"
	"github.com/hal9-lab/hal9-lab/server/cache"
	"github.com/hal9-lab/hal9-lab/server/neuron"
	"github.com/hal9-lab/hal9-lab/server/store"
)

// layeredCache adapts *cache.Layered to neuron.Cache.
type layeredCache struct{ l *cache.Layered }

func (c layeredCache) GetOrLoad(ctx context.Context, layer, key string, ttl time.Duration, load func(context.Context) ([]byte, error)) ([]byte, neuron.CacheResult, error) {
	b, r, err := c.l.GetOrLoad(ctx, layer, key, ttl, load)
	return b, neuron.CacheResult{Hit: r.Hit, Tier: r.Tier, Coalesced: r.Coalesced}, err
}

// The adapters satisfy the interfaces the packages they serve declare.
var (
	_ neuron.Cache         = layeredCache{}
	_ server.SignalRecords = signalRecords{}
	_ server.SearchCache   = searchCache{}
)

// signalRecords adapts *cache.Records to server.SignalRecords: completed signals
// are cached by the strategy on write (aside: invalidate, through: set,
// behind: set later) and, under every strategy, filled on a read miss;
// pending ones are never cached.
type signalRecords struct{ r *cache.Records }

type signalRecord struct {
	Signal store.Signal `json:"signal"`
	Hops   []store.Hop  `json:"hops"`
}

func (s signalRecords) Saved(ctx context.Context, sig store.Signal, hops []store.Hop) {
	if s.r.Strategy() == cache.Aside {
		// Nothing to invalidate: a signal is saved completed once, and
		// nothing cached it before (pending signals are never filled), so
		// aside would only pay a Redis round trip per signal for nothing.
		return
	}
	b, err := json.Marshal(signalRecord{sig, hops})
	if err != nil {
		return
	}
	s.r.Put(ctx, cache.Record{Key: cache.SignalKey(sig.ID), Value: b})
}

// Fill caches a completed signal the handler read from the store after a
// miss: Records.Get with a load that returns the record misses again (or
// hits a concurrent fill) and backfills the tiers.
func (s signalRecords) Fill(ctx context.Context, sig store.Signal, hops []store.Hop) {
	if sig.Status == store.SignalPending {
		return
	}
	b, err := json.Marshal(signalRecord{sig, hops})
	if err != nil {
		return
	}
	_, _, _ = s.r.Get(ctx, cache.SignalKey(sig.ID), 0, func(context.Context) ([]byte, error) { return b, nil })
}

func (s signalRecords) Get(ctx context.Context, id string) (store.Signal, []store.Hop, bool) {
	// Lookup only: on a miss the handler reads the store and calls Fill for
	// a completed signal, so a pending signal never sits in the cache.
	b, _, err := s.r.Get(ctx, cache.SignalKey(id), 0, func(context.Context) ([]byte, error) { return nil, cache.ErrMiss })
	if err != nil {
		return store.Signal{}, nil, false
	}
	var rec signalRecord
	if json.Unmarshal(b, &rec) != nil {
		return store.Signal{}, nil, false
	}
	return rec.Signal, rec.Hops, true
}

// SearchTTL is how long a memory search answer is cached: a new memory
// shows in search after at most this long.
const SearchTTL = 30 * time.Second

// searchCache adapts *cache.Layered to server.SearchCache (cache-aside).
type searchCache struct{ l *cache.Layered }

func (c searchCache) GetOrLoad(ctx context.Context, userID, query string, limit int, load func(context.Context) ([]byte, error)) ([]byte, error) {
	// The key holds all the answer depends on: the user (memories are
	// private), the limit and the query.
	b, _, err := c.l.GetOrLoad(ctx, "search", cache.MemorySearchKey(userID, strconv.Itoa(limit)+"\x00"+query), SearchTTL, load)
	return b, err
}
