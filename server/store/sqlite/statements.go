package sqlite

// The hot paths' prepared statements and the multi-row inserts.

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

// The hot paths, prepared once per connection (database/sql re-prepares a
// statement on each pooled connection that runs it).
var queries = map[string]struct {
	write bool
	sql   string
}{
	"userByID":       {false, `SELECT id, username, email, password_hash, created_at FROM users WHERE id = ?`},
	"userByUsername": {false, `SELECT id, username, email, password_hash, created_at FROM users WHERE username = ?`},
	"apiKeyByHash":   {false, `SELECT id, user_id, name, prefix, hash, created_at, last_used_at FROM api_keys WHERE hash = ?`},
	"touchAPIKey":    {true, `UPDATE api_keys SET last_used_at = ? WHERE id = ?`},
	"getSignal": {false, `SELECT id, user_id, layer, neuron_id, content, output, status, error, tokens_in, tokens_out,
		cost_usd, duration_ms, created_at, completed_at FROM signals WHERE id = ?`},
	"getHops": {false, `SELECT signal_id, seq, neuron_id, layer, cache, tokens_in, tokens_out, cost_usd, duration_ms, error
		FROM signal_hops WHERE signal_id = ? ORDER BY seq`},
	// A new signal is one INSERT; only a re-save (an async signal's final
	// save) updates the row and replaces its hops and memories.
	"insertSignal": {true, `INSERT INTO signals (id, user_id, layer, neuron_id, content, output, status, error,
		tokens_in, tokens_out, cost_usd, duration_ms, created_at, completed_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`},
	"updateSignal": {true, `UPDATE signals SET user_id = ?, layer = ?, neuron_id = ?, content = ?, output = ?, status = ?,
		error = ?, tokens_in = ?, tokens_out = ?, cost_usd = ?, duration_ms = ?, created_at = ?, completed_at = ? WHERE id = ?`},
	"deleteHops":     {true, `DELETE FROM signal_hops WHERE signal_id = ?`},
	"deleteMemories": {true, `DELETE FROM memories WHERE signal_id = ?`},
	"search": {false, `SELECT m.id, m.user_id, m.neuron_id, m.layer, m.signal_id, m.content, m.created_at, -bm25(memories_fts)
		FROM memories_fts JOIN memories m ON m.id = memories_fts.rowid
		WHERE memories_fts MATCH ? AND m.user_id = ? ORDER BY bm25(memories_fts), m.id DESC LIMIT ?`},
	"failPending": {true, `UPDATE signals SET status = 'failed', error = ?, completed_at = ?
		WHERE id IN (SELECT id FROM signals WHERE status = 'pending' AND created_at < ? LIMIT ?)`},
}

func (s *Store) prepare(ctx context.Context) error {
	s.stmts = make(map[string]*sql.Stmt, len(queries))
	for name, q := range queries {
		db := s.reader
		if q.write {
			db = s.writer
		}
		st, err := db.PrepareContext(ctx, q.sql)
		if err != nil {
			return fmt.Errorf("prepare %s: %w", name, err)
		}
		s.stmts[name] = st
	}
	return s.prepareMultiRow(ctx)
}

// maxRowsPerInsert bounds a multi-row INSERT (SQLite allows 32,766
// parameters; a signal has at most a handful of hops).
const maxRowsPerInsert = 16

// multiRowInserts are the INSERTs of SaveSignal's rows, by table.
var multiRowInserts = map[string]struct{ head, row string }{
	"hops": {`INSERT INTO signal_hops (signal_id, seq, neuron_id, layer, cache, tokens_in, tokens_out, cost_usd, duration_ms, error) VALUES `,
		`(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`},
	"memories": {`INSERT INTO memories (user_id, neuron_id, layer, signal_id, content, created_at) VALUES `, `(?, ?, ?, ?, ?, ?)`},
}

// multiRowTails end the multi-row INSERTs (memories return their ids for
// the search index).
var multiRowTails = map[string]string{"memories": " RETURNING id"}

// multiRow is the prepared INSERT of n (1..maxRowsPerInsert) rows into
// table. All are prepared at Open, before the committer holds the one
// writer connection.
func (s *Store) multiRow(table string, n int) *sql.Stmt { return s.multi[table][n] }

func (s *Store) prepareMultiRow(ctx context.Context) error {
	for table, q := range multiRowInserts {
		s.multi[table] = make([]*sql.Stmt, maxRowsPerInsert+1)
		for n := 1; n <= maxRowsPerInsert; n++ {
			st, err := s.writer.PrepareContext(ctx, q.head+strings.TrimSuffix(strings.Repeat(q.row+", ", n), ", ")+multiRowTails[table])
			if err != nil {
				return fmt.Errorf("prepare the %d-row insert into %s: %w", n, table, err)
			}
			s.multi[table][n] = st
		}
	}
	return nil
}
