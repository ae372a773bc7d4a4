package store

import (
	"context"
	"time"
)

// WithTimeout bounds every call of s that has no earlier deadline to d:
// a database that stops answering (frozen, behind a network black hole)
// then fails the call with context.DeadlineExceeded, which the server
// answers 503 + Retry-After, instead of holding the request until the
// client gives up. Migrate and Close are not bounded.
func WithTimeout(s Store, d time.Duration) Store {
	if d <= 0 {
		return s
	}
	return timeoutStore{s, d}
}

type timeoutStore struct {
	Store
	d time.Duration
}

func (t timeoutStore) ctx(ctx context.Context) (context.Context, context.CancelFunc) {
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= t.d {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, t.d)
}

func (t timeoutStore) Ping(ctx context.Context) error {
	ctx, cancel := t.ctx(ctx)
	defer cancel()
	return t.Store.Ping(ctx)
}

func (t timeoutStore) CreateUser(ctx context.Context, u User) error {
	ctx, cancel := t.ctx(ctx)
	defer cancel()
	return t.Store.CreateUser(ctx, u)
}

func (t timeoutStore) UserByID(ctx context.Context, id string) (User, error) {
	ctx, cancel := t.ctx(ctx)
	defer cancel()
	return t.Store.UserByID(ctx, id)
}

func (t timeoutStore) UserByUsername(ctx context.Context, username string) (User, error) {
	ctx, cancel := t.ctx(ctx)
	defer cancel()
	return t.Store.UserByUsername(ctx, username)
}

func (t timeoutStore) CreateAPIKey(ctx context.Context, k APIKey) error {
	ctx, cancel := t.ctx(ctx)
	defer cancel()
	return t.Store.CreateAPIKey(ctx, k)
}

func (t timeoutStore) APIKeyByHash(ctx context.Context, hash string) (APIKey, error) {
	ctx, cancel := t.ctx(ctx)
	defer cancel()
	return t.Store.APIKeyByHash(ctx, hash)
}

func (t timeoutStore) ListAPIKeys(ctx context.Context, userID string) ([]APIKey, error) {
	ctx, cancel := t.ctx(ctx)
	defer cancel()
	return t.Store.ListAPIKeys(ctx, userID)
}

func (t timeoutStore) DeleteAPIKey(ctx context.Context, userID, id string) error {
	ctx, cancel := t.ctx(ctx)
	defer cancel()
	return t.Store.DeleteAPIKey(ctx, userID, id)
}

func (t timeoutStore) TouchAPIKey(ctx context.Context, id string, at time.Time) error {
	ctx, cancel := t.ctx(ctx)
	defer cancel()
	return t.Store.TouchAPIKey(ctx, id, at)
}

func (t timeoutStore) UpsertNeurons(ctx context.Context, ns []Neuron) error {
	ctx, cancel := t.ctx(ctx)
	defer cancel()
	return t.Store.UpsertNeurons(ctx, ns)
}

func (t timeoutStore) ListNeurons(ctx context.Context) ([]Neuron, error) {
	ctx, cancel := t.ctx(ctx)
	defer cancel()
	return t.Store.ListNeurons(ctx)
}

func (t timeoutStore) SaveSignal(ctx context.Context, s Signal, hops []Hop, mems []Memory) error {
	ctx, cancel := t.ctx(ctx)
	defer cancel()
	return t.Store.SaveSignal(ctx, s, hops, mems)
}

func (t timeoutStore) GetSignal(ctx context.Context, id string) (Signal, []Hop, error) {
	ctx, cancel := t.ctx(ctx)
	defer cancel()
	return t.Store.GetSignal(ctx, id)
}

func (t timeoutStore) FailPendingSignals(ctx context.Context, before time.Time) (int, error) {
	ctx, cancel := t.ctx(ctx)
	defer cancel()
	return t.Store.FailPendingSignals(ctx, before)
}

func (t timeoutStore) SearchMemories(ctx context.Context, userID, query string, limit int) ([]Memory, error) {
	ctx, cancel := t.ctx(ctx)
	defer cancel()
	return t.Store.SearchMemories(ctx, userID, query, limit)
}
