package postgres

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	dto "github.com/prometheus/client_model/go"

	"github.com/hal9-lab/hal9-lab/lab/infra/infratest"
	"github.com/hal9-lab/hal9-lab/server/store"
)

// BenchmarkHopInserts writes one signal with 5 or 50 hops, four ways:
//
//	row:        BEGIN; upsert signal; delete hops; one INSERT per hop; COMMIT (hops+4 round trips)
//	copy:       BEGIN; upsert signal; delete hops; COPY hops; COMMIT
//	batch:      one pgx.Batch (upsert, delete, INSERT per hop) in its implicit transaction: 1 round trip
//	savesignal: the store's SaveSignal (batch, plus replacing memories and stale copies)
//
// Run: go test -run '^$' -bench HopInserts ./server/store/postgres/
func BenchmarkHopInserts(b *testing.B) {
	url := infratest.PostgresURL(b)
	ctx := context.Background()
	s, err := Open(ctx, url, Options{MaxConns: 4, MinConns: 1})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()

	run := map[string]func(sg store.Signal, hops []store.Hop) error{
		"row": func(sg store.Signal, hops []store.Hop) error {
			return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
				if _, err := tx.Exec(ctx, sqlUpsertSignal, signalArgs(sg)...); err != nil {
					return err
				}
				if _, err := tx.Exec(ctx, `DELETE FROM signal_hops WHERE signal_id = $1`, sg.ID); err != nil {
					return err
				}
				for _, h := range hops {
					if _, err := tx.Exec(ctx, sqlInsertHop, hopArgs(sg.ID, h)...); err != nil {
						return err
					}
				}
				return nil
			})
		},
		"copy": func(sg store.Signal, hops []store.Hop) error {
			return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
				if _, err := tx.Exec(ctx, sqlUpsertSignal, signalArgs(sg)...); err != nil {
					return err
				}
				if _, err := tx.Exec(ctx, `DELETE FROM signal_hops WHERE signal_id = $1`, sg.ID); err != nil {
					return err
				}
				_, err := tx.CopyFrom(ctx, pgx.Identifier{"signal_hops"},
					[]string{"signal_id", "seq", "neuron_id", "layer", "cache", "tokens_in", "tokens_out", "cost_usd", "duration_ms", "error"},
					pgx.CopyFromSlice(len(hops), func(i int) ([]any, error) { return hopArgs(sg.ID, hops[i]), nil }))
				return err
			})
		},
		"batch": func(sg store.Signal, hops []store.Hop) error {
			bt := &pgx.Batch{}
			bt.Queue(sqlUpsertSignal, signalArgs(sg)...)
			bt.Queue(`DELETE FROM signal_hops WHERE signal_id = $1`, sg.ID)
			for _, h := range hops {
				bt.Queue(sqlInsertHop, hopArgs(sg.ID, h)...)
			}
			return s.pool.SendBatch(ctx, bt).Close()
		},
		"savesignal": func(sg store.Signal, hops []store.Hop) error { return s.SaveSignal(ctx, sg, hops, nil) },
	}
	for _, n := range []int{5, 50} {
		for _, mode := range []string{"row", "copy", "batch", "savesignal"} {
			b.Run(fmt.Sprintf("hops=%d/%s", n, mode), func(b *testing.B) {
				hops := make([]store.Hop, n)
				for i := range hops {
					hops[i] = store.Hop{Seq: i, NeuronID: "n", Layer: "L2", Cache: "miss", TokensIn: 10, TokensOut: 20, CostUSD: 0.0001, DurationMS: 3}
				}
				now := time.Now().UTC()
				for i := 0; b.Loop(); i++ {
					sg := store.Signal{ID: fmt.Sprintf("%s-%d-%d", mode, n, i), Layer: "L2", NeuronID: "n", Content: "bench",
						Status: store.SignalProcessed, CreatedAt: now, CompletedAt: now}
					if err := run[mode](sg, hops); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func signalArgs(sg store.Signal) []any {
	return []any{sg.ID, sg.UserID, sg.Layer, sg.NeuronID, sg.Content, sg.Output, sg.Status, sg.Error,
		sg.TokensIn, sg.TokensOut, sg.CostUSD, sg.DurationMS, sg.CreatedAt, nullTime(sg.CompletedAt)}
}

func hopArgs(signalID string, h store.Hop) []any {
	return []any{signalID, int32(h.Seq), h.NeuronID, h.Layer, h.Cache, int32(h.TokensIn), int32(h.TokensOut), h.CostUSD, h.DurationMS, h.Error}
}

// BenchmarkConcurrentSaveSignal: 64 goroutines saving signals (5 hops, one
// memory each) at once, as a busy server does, with and without the store's
// group commit (Options.GroupCommit: many signals per pgx.Batch and commit).
// It answers whether PostgreSQL's own group commit of concurrent
// transactions already gives what ours would; it needs a durable
// PostgreSQL to mean anything, e.g. HAL9_PG_DSN pointing at one with
// fsync=on and synchronous_commit=on (lab/infra's own runs with both off):
//
//	HAL9_PG_DSN='postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable' \
//	  go test -run '^$' -bench ConcurrentSaveSignal -benchtime 3000x ./server/store/postgres/
func BenchmarkConcurrentSaveSignal(b *testing.B) {
	cases := []struct {
		name       string
		group      bool
		committers int
	}{
		{"postgres_own_group_commit", false, 0}, // one transaction per signal, 64 connections
		{"store_group_commit/committers=1", true, 1},
		{"store_group_commit/committers=2", true, 2},
		{"store_group_commit/committers=4", true, 4},
		{"store_group_commit/committers=8", true, 8},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			ctx := context.Background()
			s, err := Open(ctx, infratest.PostgresURL(b), Options{MaxConns: 64, MinConns: 8, GroupCommit: c.group, Committers: c.committers})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			var fsync, syncCommit string
			s.pool.QueryRow(ctx, `SELECT current_setting('fsync'), current_setting('synchronous_commit')`).Scan(&fsync, &syncCommit)
			b.Logf("fsync=%s synchronous_commit=%s", fsync, syncCommit)
			hops := make([]store.Hop, 5)
			for i := range hops {
				hops[i] = store.Hop{Seq: i, NeuronID: "n", Layer: "L2", Cache: "hit"}
			}
			var seq atomic.Int64
			// WAL syncs per save: PostgreSQL flushes the WAL once for every
			// commit waiting on it, so under concurrency this falls below 1
			// without any batching of ours (pg_stat_wal, PostgreSQL 14+; the
			// counter is the whole server's).
			walSyncs := func() (n int64) {
				s.pool.QueryRow(ctx, `SELECT wal_sync FROM pg_stat_wal`).Scan(&n)
				return n
			}
			syncs0 := walSyncs()
			commits0, commitSecs0 := commitStats(b, s)
			b.SetParallelism(32) // × GOMAXPROCS goroutines
			start := time.Now()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					id := fmt.Sprintf("c-%d", seq.Add(1))
					sg := store.Signal{ID: id, Layer: "L2", NeuronID: "n", Content: "bench", Status: store.SignalProcessed, CreatedAt: time.Now()}
					mem := []store.Memory{{NeuronID: "n", Layer: "L2", Content: "benchmark memory " + id}}
					if err := s.SaveSignal(ctx, sg, hops, mem); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "saves/s")
			if syncs := walSyncs() - syncs0; syncs > 0 {
				b.ReportMetric(float64(syncs)/float64(b.N), "wal_syncs/save")
			}
			if commits, secs := commitStats(b, s); commits > commits0 {
				n := float64(commits - commits0)
				b.ReportMetric(n/time.Since(start).Seconds(), "commits/s")
				b.ReportMetric((secs-commitSecs0)/n*1000, "ms/commit")
				b.ReportMetric(float64(b.N)/n, "saves/commit")
			}
		})
	}
}

// commitStats reads hal9_db_commit_duration_seconds' count and sum.
func commitStats(b *testing.B, s *Store) (count uint64, sum float64) {
	b.Helper()
	var m dto.Metric
	if err := s.batches.Duration().Write(&m); err != nil {
		b.Fatal(err)
	}
	return m.GetHistogram().GetSampleCount(), m.GetHistogram().GetSampleSum()
}
