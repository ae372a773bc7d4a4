package sqlite

// Neurons, signals with their hops, memories and their search.

import (
	"context"
	"database/sql"
	"encoding/json"
	"slices"
	"time"

	"github.com/hal9-lab/hal9-lab/server/store"
	"github.com/hal9-lab/hal9-lab/server/store/internal/ftsquery"
)

// UpsertNeurons inserts or updates the neurons in one transaction.
func (s *Store) UpsertNeurons(ctx context.Context, ns []store.Neuron) error {
	if len(ns) == 0 {
		return nil
	}
	err := s.write(ctx, 64*len(ns), func(ctx context.Context, tx *sql.Tx) error {
		st, err := tx.PrepareContext(ctx, `INSERT INTO neurons (id, layer, state, updated_at) VALUES (?, ?, ?, ?)
			ON CONFLICT (id) DO UPDATE SET layer = excluded.layer, state = excluded.state, updated_at = excluded.updated_at`)
		if err != nil {
			return err
		}
		defer st.Close()
		for _, n := range ns {
			if _, err := st.ExecContext(ctx, n.ID, n.Layer, n.State, micros(n.UpdatedAt)); err != nil {
				return err
			}
		}
		return nil
	})
	return wrap(ctx, "upsert neurons", err)
}

// ListNeurons returns every neuron ordered by id.
func (s *Store) ListNeurons(ctx context.Context) ([]store.Neuron, error) {
	rows, err := s.reader.QueryContext(ctx, `SELECT id, layer, state, updated_at FROM neurons ORDER BY id`)
	if err != nil {
		return nil, wrap(ctx, "list neurons", err)
	}
	defer rows.Close()
	var out []store.Neuron
	for rows.Next() {
		var n store.Neuron
		var upd sql.NullInt64
		if err := rows.Scan(&n.ID, &n.Layer, &n.State, &upd); err != nil {
			return nil, wrap(ctx, "list neurons", err)
		}
		n.UpdatedAt = fromMicros(upd)
		out = append(out, n)
	}
	return out, wrap(ctx, "list neurons", rows.Err())
}

// SaveSignal inserts or replaces the signal, its hops and its memories
// atomically (in the group commit's transaction); hops and memories from an
// earlier save are replaced.
func (s *Store) SaveSignal(ctx context.Context, sg store.Signal, hops []store.Hop, mems []store.Memory) error {
	err := s.write(ctx, signalSize(sg, hops, mems), func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.StmtContext(ctx, s.stmts["insertSignal"]).ExecContext(ctx,
			sg.ID, sg.UserID, sg.Layer, sg.NeuronID, sg.Content, sg.Output, sg.Status, sg.Error,
			sg.TokensIn, sg.TokensOut, sg.CostUSD, sg.DurationMS, micros(sg.CreatedAt), micros(sg.CompletedAt))
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 { // saved before: replace it all
			if _, err := tx.StmtContext(ctx, s.stmts["updateSignal"]).ExecContext(ctx,
				sg.UserID, sg.Layer, sg.NeuronID, sg.Content, sg.Output, sg.Status, sg.Error,
				sg.TokensIn, sg.TokensOut, sg.CostUSD, sg.DurationMS, micros(sg.CreatedAt), micros(sg.CompletedAt), sg.ID); err != nil {
				return err
			}
			if _, err := tx.StmtContext(ctx, s.stmts["deleteHops"]).ExecContext(ctx, sg.ID); err != nil {
				return err
			}
			if err := s.indexPending(ctx, tx, sg.ID); err != nil {
				return err
			}
			if _, err := tx.StmtContext(ctx, s.stmts["deleteMemories"]).ExecContext(ctx, sg.ID); err != nil {
				return err
			}
		}
		// Rows go in multi-row INSERTs: one statement (and one flush of
		// the FTS5 index, which SQLite makes at every statement that
		// writes it) for up to maxRowsPerInsert rows.
		for rows := range slices.Chunk(hops, maxRowsPerInsert) {
			args := make([]any, 0, len(rows)*10)
			for _, h := range rows {
				args = append(args, sg.ID, h.Seq, h.NeuronID, h.Layer, h.Cache, h.TokensIn, h.TokensOut, h.CostUSD, h.DurationMS, h.Error)
			}
			if _, err := tx.StmtContext(ctx, s.multiRow("hops", len(rows))).ExecContext(ctx, args...); err != nil {
				return err
			}
		}
		for rows := range slices.Chunk(mems, maxRowsPerInsert) {
			args := make([]any, 0, len(rows)*6)
			for _, m := range rows {
				at := m.CreatedAt
				if at.IsZero() {
					at = time.Now()
				}
				args = append(args, sg.UserID, m.NeuronID, m.Layer, sg.ID, ftsquery.Clean(m.Content), micros(at))
			}
			if err := s.insertMemories(ctx, tx, sg.ID, len(rows), args); err != nil {
				return err
			}
		}
		return nil
	})
	return wrap(ctx, "save signal "+sg.ID, err)
}

// signalSize is about the bytes a SaveSignal writes.
func signalSize(sg store.Signal, hops []store.Hop, mems []store.Memory) int {
	n := 256 + len(sg.Content) + len(sg.Output) + len(sg.Error) + 128*len(hops)
	for _, m := range mems {
		n += 64 + len(m.Content)
	}
	return n
}

// insertMemories inserts n memory rows and notes their ids for the index.
func (s *Store) insertMemories(ctx context.Context, tx *sql.Tx, signalID string, n int, args []any) error {
	s.unindexedSignals[signalID] = true
	rows, err := tx.StmtContext(ctx, s.multiRow("memories", n)).QueryContext(ctx, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return err
		}
		s.unindexed = append(s.unindexed, id)
	}
	return rows.Err()
}

// GetSignal returns the signal and its hops ordered by Seq, or ErrNotFound.
func (s *Store) GetSignal(ctx context.Context, id string) (store.Signal, []store.Hop, error) {
	var sg store.Signal
	var created, completed sql.NullInt64
	err := s.stmts["getSignal"].QueryRowContext(ctx, id).Scan(&sg.ID, &sg.UserID, &sg.Layer, &sg.NeuronID,
		&sg.Content, &sg.Output, &sg.Status, &sg.Error, &sg.TokensIn, &sg.TokensOut, &sg.CostUSD, &sg.DurationMS,
		&created, &completed)
	if err != nil {
		return store.Signal{}, nil, wrap(ctx, "signal "+id, err)
	}
	sg.CreatedAt, sg.CompletedAt = fromMicros(created), fromMicros(completed)

	rows, err := s.stmts["getHops"].QueryContext(ctx, id)
	if err != nil {
		return store.Signal{}, nil, wrap(ctx, "hops of signal "+id, err)
	}
	defer rows.Close()
	var hops []store.Hop
	for rows.Next() {
		var h store.Hop
		if err := rows.Scan(&h.SignalID, &h.Seq, &h.NeuronID, &h.Layer, &h.Cache, &h.TokensIn, &h.TokensOut,
			&h.CostUSD, &h.DurationMS, &h.Error); err != nil {
			return store.Signal{}, nil, wrap(ctx, "hops of signal "+id, err)
		}
		hops = append(hops, h)
	}
	if err := rows.Err(); err != nil {
		return store.Signal{}, nil, wrap(ctx, "hops of signal "+id, err)
	}
	return sg, hops, nil
}

// failPendingChunk is how many stale signals one write fails: the sweep
// never holds the writer for more than one small transaction at a time.
const failPendingChunk = 256

// FailPendingSignals marks signals pending since before `before` failed, a
// chunk per write (found through the partial index signals_pending), so
// request-path writes interleave with a large sweep.
func (s *Store) FailPendingSignals(ctx context.Context, before time.Time) (int, error) {
	total := 0
	for {
		var n int64
		err := s.write(ctx, 64*failPendingChunk, func(ctx context.Context, tx *sql.Tx) error {
			res, err := tx.StmtContext(ctx, s.stmts["failPending"]).ExecContext(ctx,
				store.InterruptedError, micros(time.Now()), micros(before), failPendingChunk)
			if err != nil {
				return err
			}
			n, err = res.RowsAffected()
			return err
		})
		if err != nil {
			return total, wrap(ctx, "fail pending signals", err)
		}
		total += int(n)
		if n < failPendingChunk {
			return total, nil
		}
	}
}

// FailSignals marks the given signals failed if they are still pending,
// in one write.
func (s *Store) FailSignals(ctx context.Context, ids []string) (int, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	list, _ := json.Marshal(ids)
	var n int64
	err := s.write(ctx, 64+len(list), func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE signals SET status = 'failed', error = ?, completed_at = ?
			WHERE status = 'pending' AND id IN (SELECT value FROM json_each(?))`, store.InterruptedError, micros(time.Now()), string(list))
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return int(n), wrap(ctx, "fail signals", err)
}

// SearchMemories finds userID's memories containing every word of query, best first
// (BM25). Operators and punctuation in query are treated as separators, so
// no input is a syntax error; a query without words returns nothing.
func (s *Store) SearchMemories(ctx context.Context, userID, query string, limit int) ([]store.Memory, error) {
	match := ftsquery.FTS5(query)
	if match == "" || userID == "" {
		return nil, ctx.Err()
	}
	limit = clampLimit(limit)
	rows, err := s.stmts["search"].QueryContext(ctx, match, userID, limit)
	if err != nil {
		return nil, wrap(ctx, "search memories", err)
	}
	defer rows.Close()
	var out []store.Memory
	for rows.Next() {
		var m store.Memory
		var created sql.NullInt64
		if err := rows.Scan(&m.ID, &m.UserID, &m.NeuronID, &m.Layer, &m.SignalID, &m.Content, &created, &m.Rank); err != nil {
			return nil, wrap(ctx, "search memories", err)
		}
		m.CreatedAt = fromMicros(created)
		out = append(out, m)
	}
	return out, wrap(ctx, "search memories", rows.Err())
}

func clampLimit(limit int) int {
	if limit <= 0 {
		return DefaultSearchLimit
	}
	return min(limit, MaxSearchLimit)
}
