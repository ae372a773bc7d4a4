package llm

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// SpendRow is one bucket of kept spend: Scope "" is everyone, else a user
// id; Kind "minute" or "hour"; the row is useless (and deleted) once
// Expires passes.
type SpendRow struct {
	Scope   string
	Kind    string
	Start   time.Time
	Expires time.Time
	NanoUSD int64
}

// Bucket kinds of SpendRow.
const (
	KindMinute = "minute"
	KindHour   = "hour"
)

// SpendStore keeps spend across restarts and lets servers without a
// shared Redis see each other's (server/app adapts the database to it).
type SpendStore interface {
	// AddLLMSpend adds each row's NanoUSD to its kept (Scope, Kind, Start)
	// total, creating it, in one transaction.
	AddLLMSpend(ctx context.Context, rows []SpendRow) error
	// LLMSpend returns the rows that have not expired at now: everyone's
	// (Scope "") only, or, with users, every scope's.
	LLMSpend(ctx context.Context, now time.Time, users bool) ([]SpendRow, error)
	// DeleteLLMSpend removes the rows expired at now.
	DeleteLLMSpend(ctx context.Context, now time.Time) (int, error)
}

// StoredSpend is a MemorySpend that a database keeps: reservations and
// settlements are decided and counted in memory and written to the store
// in aggregate, one transaction per Sync (SyncEvery, and at Close), never
// one write per LLM call. Each Sync also reloads everyone's spend as every
// server on the database wrote it, so servers sharing it see each other's
// spend with at most one interval's delay; users' spend is reloaded only at
// start (a restart keeps the users' shares), so without Redis a user's
// share counts per server (reloading every user's buckets every few
// seconds would grow with the users). A crash loses what was counted since
// the last Sync: the spend of at most one interval.
type StoredSpend struct {
	mem *MemorySpend
	st  SpendStore
	log *slog.Logger

	mu      sync.Mutex
	pending map[rowKey]int64 // counted, not yet written
}

type rowKey struct {
	scope string
	kind  string
	start int64 // the bucket number: unix minute or hour
}

// SyncEvery is how often a StoredSpend writes and reloads the spend.
const SyncEvery = 5 * time.Second

var _ SpendBackend = (*StoredSpend)(nil)

// NewStoredSpend loads the kept spend; log may be nil.
func NewStoredSpend(ctx context.Context, st SpendStore, log *slog.Logger, now time.Time) (*StoredSpend, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &StoredSpend{mem: NewMemorySpend(), st: st, log: log, pending: map[rowKey]int64{}}
	rows, err := st.LLMSpend(ctx, now, true)
	if err != nil {
		return nil, fmt.Errorf("load LLM spend: %w", err)
	}
	s.replace(rows, true)
	return s, nil
}

// Reserve implements SpendBackend.
func (s *StoredSpend) Reserve(ctx context.Context, r Reservation, lim SpendLimits) (Verdict, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, err := s.mem.Reserve(ctx, r, lim)
	if err == nil && v.Refused == "" {
		s.countLocked(r, r.Amount)
	}
	return v, err
}

// Settle implements SpendBackend.
func (s *StoredSpend) Settle(ctx context.Context, r Reservation, delta int64, now time.Time) (SpendTotals, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if delta != 0 {
		s.countLocked(r, delta)
	}
	return s.mem.Settle(ctx, r, delta, now)
}

// Totals implements SpendBackend.
func (s *StoredSpend) Totals(ctx context.Context, now time.Time) (SpendTotals, error) {
	return s.mem.Totals(ctx, now)
}

func (s *StoredSpend) countLocked(r Reservation, n int64) {
	scopes := []string{""}
	if r.User != "" {
		scopes = append(scopes, r.User)
	}
	for _, scope := range scopes {
		s.pending[rowKey{scope, KindMinute, minuteOf(r.At)}] += n
		s.pending[rowKey{scope, KindHour, hourOf(r.At)}] += n
	}
}

// Sync writes what was counted since the last Sync in one transaction,
// then reloads the kept spend of every server (and adds what was counted
// meanwhile). A failed write keeps the counts for the next Sync.
func (s *StoredSpend) Sync(ctx context.Context, now time.Time) error {
	s.mu.Lock()
	batch := s.pending
	s.pending = map[rowKey]int64{}
	s.mu.Unlock()

	if len(batch) > 0 {
		rows := make([]SpendRow, 0, len(batch))
		for k, n := range batch {
			if n != 0 {
				rows = append(rows, k.row(n))
			}
		}
		if err := s.st.AddLLMSpend(ctx, rows); err != nil {
			s.mu.Lock()
			for k, n := range batch {
				s.pending[k] += n
			}
			s.mu.Unlock()
			return fmt.Errorf("write LLM spend: %w", err)
		}
	}
	rows, err := s.st.LLMSpend(ctx, now, false)
	if err != nil {
		return fmt.Errorf("read LLM spend: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, n := range s.pending { // counted while the write and the read ran
		if k.scope == "" {
			rows = append(rows, k.row(n))
		}
	}
	s.replace(rows, false)
	return nil
}

// Run syncs every interval until ctx ends, and prunes expired rows about
// once an hour.
func (s *StoredSpend) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	var pruned time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		// Bounded: a database that stopped answering must not stall the
		// loop (the counts wait in memory for the next try).
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if err := s.Sync(sctx, now); err != nil && ctx.Err() == nil {
			s.log.Warn("LLM spend not synced with the database; counted in memory until the next try", "error", err)
		}
		if now.Sub(pruned) > time.Hour {
			pruned = now
			if _, err := s.st.DeleteLLMSpend(sctx, now); err != nil && ctx.Err() == nil {
				s.log.Warn("delete expired LLM spend", "error", err)
			}
		}
		cancel()
	}
}

// replace rebuilds the memory's buckets of everyone, and with users of
// every user, from rows (leases are kept).
func (s *StoredSpend) replace(rows []SpendRow, users bool) {
	m := s.mem
	m.mu.Lock()
	defer m.mu.Unlock()
	m.all = newBuckets()
	if users {
		m.users = map[string]*buckets{}
	}
	for _, r := range rows {
		b := m.all
		if r.Scope != "" {
			if b = m.users[r.Scope]; b == nil {
				b = newBuckets()
				m.users[r.Scope] = b
			}
		}
		switch r.Kind {
		case KindMinute:
			b.minutes[minuteOf(r.Start)] += r.NanoUSD
		case KindHour:
			b.hours[hourOf(r.Start)] += r.NanoUSD
		}
	}
}

func (k rowKey) row(n int64) SpendRow {
	if k.kind == KindMinute {
		start := minuteStart(k.start)
		return SpendRow{Scope: k.scope, Kind: k.kind, Start: start, Expires: start.Add(HourBuckets * time.Minute), NanoUSD: n}
	}
	start := hourStart(k.start)
	return SpendRow{Scope: k.scope, Kind: k.kind, Start: start, Expires: start.Add(DayBuckets * time.Hour), NanoUSD: n}
}
