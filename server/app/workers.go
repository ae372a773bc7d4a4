package app

// The server's background work: neuron states written through the record
// cache, and the sweep of async signals left pending by a dead server.

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/hal9-lab/hal9-lab/server/cache"
	"github.com/hal9-lab/hal9-lab/server/store"
)

// neuronStates are the router's neurons as store records, stamped now.
func (a *Server) neuronStates() []store.Neuron {
	now := time.Now().UTC()
	var ns []store.Neuron
	for _, n := range a.Router.Neurons() {
		ns = append(ns, store.Neuron{ID: n.ID, Layer: n.Layer, State: n.State, UpdatedAt: now})
	}
	return ns
}

// publishNeuronStates writes neuron-state records when a state changes
// (and once a minute), through the cache strategy: behind batches them into
// the store, aside and through write the store at once.
func (a *Server) publishNeuronStates(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	last := map[string]string{}
	lastAll := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		all := time.Since(lastAll) > time.Minute
		if all {
			lastAll = time.Now()
		}
		for _, n := range a.neuronStates() {
			if !all && last[n.ID] == n.State {
				continue
			}
			last[n.ID] = n.State
			b, _ := json.Marshal(n)
			if err := a.neuronRecords.Put(ctx, cache.Record{Key: cache.NeuronStateKey(n.ID), Value: b, Data: n}); err != nil {
				a.log.Warn("write neuron state", "neuron", n.ID, "error", err)
			}
		}
	}
}

func (a *Server) writeNeurons(ctx context.Context, recs []cache.Record) error {
	ns := make([]store.Neuron, 0, len(recs))
	for _, r := range recs {
		if n, ok := r.Data.(store.Neuron); ok {
			ns = append(ns, n)
		}
	}
	return a.Store.UpsertNeurons(ctx, ns)
}

// failStalePending marks signals pending since before now −
// cfg.PendingMaxAge() failed: the longest a live async signal can wait
// behind a full queue and run, so only abandoned ones are failed.
func (a *Server) failStalePending(ctx context.Context, now time.Time) error {
	maxAge := a.cfg.PendingMaxAge()
	n, err := a.Store.FailPendingSignals(ctx, now.Add(-maxAge))
	if err != nil {
		return fmt.Errorf("fail signals pending for over %s: %w", maxAge, err)
	}
	if n > 0 {
		a.log.Warn("signals pending too long (their server stopped) marked failed", "count", n, "max_age", maxAge.String())
	}
	return nil
}

// sweep fails stale pending signals and drops expired refresh tokens every
// period until ctx ends.
func (a *Server) sweep(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if err := a.failStalePending(ctx, now); err != nil && ctx.Err() == nil {
				a.log.Warn("failing stale pending signals", "error", err)
			}
			if _, err := a.Store.DeleteExpiredRefreshTokens(ctx, now); err != nil && ctx.Err() == nil {
				a.log.Warn("deleting expired refresh tokens", "error", err)
			}
		}
	}
}
