package sqlite

// Writes go through one group committer: each caller's writeOp runs in a
// shared transaction, and an expected outcome (answerErr) is the caller's
// answer without failing the batch.

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"slices"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/hal9-lab/hal9-lab/server/store"
)

// writeOp is one caller's write: statements run in the batch's transaction.
// It may run twice (see execBatch), so it sets its results afresh. An
// error wrapped by answer is its caller's answer, not a failed write.
type writeOp func(ctx context.Context, tx *sql.Tx) error

// answerErr is an expected outcome of a write (a key to delete that is not
// there, a taken username, a replayed refresh token): the write left the
// transaction sound, having written nothing or only what it means to (a
// replay's revocation), so the batch commits and the caller gets err.
// Failing the batch instead would roll back every other user's write in it
// and run them again one fsynced transaction each.
type answerErr struct{ err error }

func (a answerErr) Error() string { return a.err.Error() }
func (a answerErr) Unwrap() error { return a.err }

// answer marks err as the write's answer to its caller (nil stays nil).
// Only for an error raised before the write changed anything it must not
// keep: a failed statement is undone by SQLite, the transaction goes on.
func answer(err error) error {
	if err == nil {
		return nil
	}
	return answerErr{err}
}

// expected marks the errors a one-statement write answers with (not found,
// a UNIQUE or FOREIGN KEY violation) as answers; others stay failures.
func expected(err error) error {
	var se *sqlite.Error
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrNotFound), errors.Is(err, sql.ErrNoRows):
		return answer(err)
	case errors.As(err, &se) && (se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE ||
		se.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY || se.Code() == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY):
		return answer(err)
	}
	return err
}

// run runs op in tx: its answer, when it gave one, is the caller's error
// and not the transaction's.
func run(ctx context.Context, tx *sql.Tx, op writeOp) (answered, failed error) {
	err := op(ctx, tx)
	if a := (answerErr{}); errors.As(err, &a) {
		return a.err, nil
	}
	return nil, err
}

// write runs op through the group committer; size is about the bytes it
// writes (it bounds the batch).
func (s *Store) write(ctx context.Context, size int, op writeOp) error {
	return s.commits.Do(ctx, op, size)
}

// execBatch commits a batch in one transaction: one WAL sync for all. When
// one write fails (a constraint, say), the transaction is rolled back and
// every write of the batch is run again in a transaction of its own, so
// only the bad one fails. Failures are rare, so this costs less than a
// SAVEPOINT per write, whose RELEASE makes FTS5 flush its index each time
// (measured: a fifth of the committer's CPU under load). Writes are
// therefore written to be run again: they set their results afresh.
func (s *Store) execBatch(ctx context.Context, ops []writeOp) []error {
	errs := make([]error, len(ops))
	if len(ops) > 1 {
		if err := s.writeTx(ctx, func(tx *sql.Tx) error {
			for i, op := range ops {
				var failed error
				if errs[i], failed = run(ctx, tx, op); failed != nil {
					return failed
				}
			}
			return nil
		}); err == nil {
			return errs
		}
		s.batches.Split()
	}
	for i, op := range ops {
		var answered error
		if errs[i] = s.writeTx(ctx, func(tx *sql.Tx) (failed error) {
			answered, failed = run(ctx, tx, op)
			return failed
		}); errs[i] == nil {
			errs[i] = answered
		}
	}
	return errs
}

// writeTx is one group-commit transaction. Memories inserted in it are
// added to the search index once, at its end, in one statement: FTS5
// flushes (and merges) its index at every statement that writes it, which
// row-by-row triggers made a fifth of the committer's CPU under load. Only
// the committer's goroutine runs it, so the watermark needs no lock.
func (s *Store) writeTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	s.unindexed = s.unindexed[:0]
	clear(s.unindexedSignals)
	return s.inTx(ctx, func(tx *sql.Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		return s.index(ctx, tx, "", s.unindexed)
	})
}

// index adds memories written in this transaction to the search index (of
// one signal, or all when signalID is ""), in one statement.
func (s *Store) index(ctx context.Context, tx *sql.Tx, signalID string, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	list, _ := json.Marshal(ids)
	_, err := tx.ExecContext(ctx, `INSERT INTO memories_fts (rowid, content) SELECT id, content FROM memories
		WHERE id IN (SELECT value FROM json_each(?)) AND (? = '' OR signal_id = ?)`, string(list), signalID, signalID)
	return err
}

// indexPending indexes the signal's memories written earlier in this
// transaction before a re-save deletes them: FTS5's external-content
// delete (the memories_ad trigger) must find exactly what was indexed.
func (s *Store) indexPending(ctx context.Context, tx *sql.Tx, signalID string) error {
	if !s.unindexedSignals[signalID] { // the usual case: nothing of it written yet
		return nil
	}
	if err := s.index(ctx, tx, signalID, s.unindexed); err != nil {
		return err
	}
	// Those rows are about to be deleted; the rest stay for the end.
	rows, err := tx.QueryContext(ctx, `SELECT id FROM memories WHERE signal_id = ?`, signalID)
	if err != nil {
		return err
	}
	defer rows.Close()
	gone := map[int64]bool{}
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return err
		}
		gone[id] = true
	}
	s.unindexed = slices.DeleteFunc(s.unindexed, func(id int64) bool { return gone[id] })
	return rows.Err()
}
