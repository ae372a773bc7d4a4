// Package sqlite is the embedded store.Store: one file, WAL journal, FTS5
// search, no server to run. It is HAL9's default backend.
//
// Concurrency: SQLite allows one writer at a time. Instead of letting many
// connections fight over the write lock (SQLITE_BUSY under load), the store
// keeps two pools: a writer pool of exactly one connection, used only by a
// group committer (server/store/internal/groupcommit) that gathers the
// writes arriving while a commit is in flight into the next transaction, and
// a reader pool that WAL lets read in parallel with that writer. When one
// write of a batch fails, the batch is run again write by write, so it fails
// alone and the others still commit.
package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/hal9-lab/hal9-lab/server/store"
	"github.com/hal9-lab/hal9-lab/server/store/internal/ftsquery"
	"github.com/hal9-lab/hal9-lab/server/store/internal/groupcommit"
	"github.com/hal9-lab/hal9-lab/server/store/internal/poolmetrics"
)

// DefaultSearchLimit applies when SearchMemories gets limit <= 0;
// MaxSearchLimit caps larger limits.
const (
	DefaultSearchLimit = 20
	MaxSearchLimit     = 1000
)

// Store is a store.Store on one SQLite file.
type Store struct {
	path   string
	writer *sql.DB // exactly one connection: writes queue here, not on SQLITE_BUSY
	reader *sql.DB // WAL readers, in parallel with the writer

	stmts map[string]*sql.Stmt
	multi map[string][]*sql.Stmt // multi-row INSERTs by table and row count
	// unindexed: memories written by the running write transaction, not
	// in the search index yet (writeTx); only the committer touches it.
	unindexed        []int64
	unindexedSignals map[string]bool // the signals those memories belong to
	commits          *groupcommit.Committer[writeOp]
	batches          *groupcommit.Metrics
	closeOnce        sync.Once
	closeErr         error
}

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

var _ store.Store = (*Store)(nil)

// Open opens (creating if needed) the database file at path and applies the
// migrations. Every acknowledged write survives a crash: synchronous=FULL
// syncs the WAL on each commit (NORMAL would only survive an application
// crash, not a power loss or a kernel panic).
func Open(ctx context.Context, path string) (*Store, error) {
	switch {
	case path == "":
		return nil, errors.New("open sqlite store: empty path; give a file such as ./data/hal9.db")
	case path == ":memory:" || strings.HasPrefix(path, "file::memory:"):
		return nil, fmt.Errorf("open sqlite store %s: in-memory databases are not supported (the reader and writer pools would see different databases); use a file in a temporary directory", path)
	case strings.ContainsAny(path, "?#"):
		return nil, fmt.Errorf("open sqlite store %s: the path must not contain '?' or '#'", path)
	}
	if err := ownerOnly(path); err != nil {
		return nil, fmt.Errorf("open sqlite store %s: %w", path, err)
	}
	pragmas := "_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=foreign_keys(1)"
	writer, err := sql.Open("sqlite", "file:"+path+"?"+pragmas+"&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("open sqlite store %s: %w", path, err)
	}
	writer.SetMaxOpenConns(1)
	writer.SetMaxIdleConns(1)
	writer.SetConnMaxLifetime(0)
	writer.SetConnMaxIdleTime(0)

	s := &Store{path: path, writer: writer, multi: map[string][]*sql.Stmt{}, unindexedSignals: map[string]bool{}}
	// The writer creates the file and switches it to WAL before any reader opens.
	if err := writer.PingContext(ctx); err != nil {
		writer.Close()
		return nil, fmt.Errorf("open sqlite store %s: %w", path, mapErr(err))
	}
	reader, err := sql.Open("sqlite", "file:"+path+"?"+pragmas+"&_pragma=query_only(1)")
	if err != nil {
		writer.Close()
		return nil, fmt.Errorf("open sqlite store %s: %w", path, err)
	}
	n := max(4, runtime.GOMAXPROCS(0)*2)
	reader.SetMaxOpenConns(n)
	reader.SetMaxIdleConns(n)
	s.reader = reader

	if err := s.Migrate(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("open sqlite store %s: %w", path, err)
	}
	if err := s.prepare(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("open sqlite store %s: %w", path, err)
	}
	s.batches = groupcommit.NewMetrics("sqlite")
	s.commits = groupcommit.New(s.execBatch, groupcommit.Options{Metrics: s.batches})
	return s, nil
}

// ownerOnly creates the database file 0600 when it is missing and narrows
// it, its WAL and its shared-memory file to 0600 when they are wider (an
// older hal9 left 0644): they hold password and API-key hashes, refresh
// tokens and, without --jwt-secret, the JWT key. SQLite creates the WAL and
// shared-memory files with the database file's mode, so they follow it.
// A file that cannot be narrowed (someone else owns it) is an error naming
// the fix, not a warning: anyone on the machine could mint tokens.
func ownerOnly(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	f.Close()
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		if m := fi.Mode().Perm(); m&0o077 != 0 {
			if err := os.Chmod(p, 0o600); err != nil {
				return fmt.Errorf("%s is readable by others (mode %o) and could not be made 0600: %w; run `chmod 600 %s` as its owner", p, m, err, p)
			}
		}
	}
	return nil
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

// Path is the database file.
func (s *Store) Path() string { return s.path }

// Ping checks that the file can be read.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.reader.PingContext(ctx); err != nil {
		return fmt.Errorf("ping sqlite %s: %w", s.path, mapErr(err))
	}
	var one int
	if err := s.reader.QueryRowContext(ctx, `SELECT 1`).Scan(&one); err != nil {
		return fmt.Errorf("ping sqlite %s: %w", s.path, mapErr(err))
	}
	return nil
}

// Close commits the writes already queued, then closes both pools. Every
// acknowledged write is already durable (synchronous=FULL); the last
// connection to close also checkpoints the WAL into the main file. Safe to
// call more than once.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		if s.commits != nil {
			s.commits.Close()
		}
		for _, st := range s.stmts {
			st.Close()
		}
		for _, sts := range s.multi {
			for _, st := range sts {
				if st != nil {
					st.Close()
				}
			}
		}
		var errs []error
		if s.reader != nil {
			errs = append(errs, s.reader.Close())
		}
		errs = append(errs, s.writer.Close())
		if err := errors.Join(errs...); err != nil {
			s.closeErr = fmt.Errorf("close sqlite store %s: %w", s.path, err)
		}
	})
	return s.closeErr
}

// Collector exports the two pools' statistics, summed, as hal9_db_pool_*
// with db="sqlite", and the group commits as hal9_db_batch_size and
// hal9_db_commit_duration_seconds. database/sql does not count
// acquisitions, so hal9_db_pool_acquires_total is PostgreSQL-only;
// empty_acquires_total is database/sql's WaitCount.
func (s *Store) Collector() prometheus.Collector {
	return poolmetrics.Join(append(s.batches.Collectors(), s.poolCollector())...)
}

func (s *Store) poolCollector() prometheus.Collector {
	return poolmetrics.New("sqlite", func() poolmetrics.Stats {
		w, r := s.writer.Stats(), s.reader.Stats()
		waits := w.WaitCount + r.WaitCount
		return poolmetrics.Stats{
			Acquired:           int64(w.InUse + r.InUse),
			Idle:               int64(w.Idle + r.Idle),
			Total:              int64(w.OpenConnections + r.OpenConnections),
			Max:                int64(w.MaxOpenConnections + r.MaxOpenConnections),
			EmptyAcquires:      &waits,
			AcquireWaitSeconds: (w.WaitDuration + r.WaitDuration).Seconds(),
		}
	})
}

// micros stores times as microseconds since the epoch; the zero time is NULL.
func micros(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMicro()
}

func fromMicros(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return time.UnixMicro(v.Int64).UTC()
}

// mapErr turns driver errors into the store's sentinel errors, keeping the
// original text for logs.
func mapErr(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		return store.ErrNotFound
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return &store.ConflictError{Detail: err.Error()}
		case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
			return fmt.Errorf("%w: referenced record: %v", store.ErrNotFound, err)
		}
		switch se.Code() & 0xff { // primary result code
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_FULL:
			return fmt.Errorf("%w: %v", store.ErrUnavailable, err)
		}
	}
	return err
}

// ctxErr prefers the context's error: a query interrupted because the
// client went away must read as context.Canceled, not as a database fault.
func ctxErr(ctx context.Context, err error) error {
	if err != nil && ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
		return fmt.Errorf("%w (%v)", ctx.Err(), err)
	}
	return err
}

func wrap(ctx context.Context, what string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("sqlite %s: %w", what, ctxErr(ctx, mapErr(err)))
}

// inTx runs fn in one write transaction (BEGIN IMMEDIATE via _txlock):
// the group committer's, or a migration's before the committer starts.
func (s *Store) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

type scanner interface{ Scan(dest ...any) error }

func scanUser(r scanner) (store.User, error) {
	var u store.User
	var created sql.NullInt64
	err := r.Scan(&u.ID, &u.Username, &u.Email, &u.PasswordHash, &created)
	u.CreatedAt = fromMicros(created)
	return u, err
}

// CreateUser inserts u; ErrConflict when the id, username or email is
// taken. Which of username and email was taken is read from the table in
// the same transaction (SQLite names a violated constraint only in its
// message text), so the ConflictError's Field is exact.
func (s *Store) CreateUser(ctx context.Context, u store.User) error {
	err := s.write(ctx, 128+len(u.PasswordHash), func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx,
			`INSERT INTO users (id, username, email, password_hash, created_at) VALUES (?, ?, ?, ?, ?)`,
			u.ID, u.Username, u.Email, u.PasswordHash, micros(u.CreatedAt))
		var se *sqlite.Error
		if err == nil || !errors.As(err, &se) || se.Code() != sqlite3.SQLITE_CONSTRAINT_UNIQUE {
			return expected(err)
		}
		var byName, byEmail bool
		if qerr := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM users WHERE username = ?),
			EXISTS (SELECT 1 FROM users WHERE email = ?)`, u.Username, u.Email).Scan(&byName, &byEmail); qerr != nil {
			return answer(err)
		}
		field := ""
		switch {
		case byName:
			field = "username"
		case byEmail:
			field = "email"
		}
		return answer(&store.ConflictError{Field: field, Detail: err.Error()})
	})
	return wrap(ctx, "create user "+u.Username, err)
}

// UserByID returns the user or ErrNotFound.
func (s *Store) UserByID(ctx context.Context, id string) (store.User, error) {
	u, err := scanUser(s.stmts["userByID"].QueryRowContext(ctx, id))
	return u, wrap(ctx, "user "+id, err)
}

// UserByUsername returns the user or ErrNotFound.
func (s *Store) UserByUsername(ctx context.Context, username string) (store.User, error) {
	u, err := scanUser(s.stmts["userByUsername"].QueryRowContext(ctx, username))
	return u, wrap(ctx, "user "+username, err)
}

func scanKey(r scanner) (store.APIKey, error) {
	var k store.APIKey
	var created, used sql.NullInt64
	err := r.Scan(&k.ID, &k.UserID, &k.Name, &k.Prefix, &k.Hash, &created, &used)
	k.CreatedAt, k.LastUsedAt = fromMicros(created), fromMicros(used)
	return k, err
}

// CreateAPIKey inserts k; ErrConflict on a duplicate id or hash, ErrNotFound
// when the user does not exist.
func (s *Store) CreateAPIKey(ctx context.Context, k store.APIKey) error {
	err := s.write(ctx, 256, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx,
			`INSERT INTO api_keys (id, user_id, name, prefix, hash, created_at, last_used_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			k.ID, k.UserID, k.Name, k.Prefix, k.Hash, micros(k.CreatedAt), micros(k.LastUsedAt))
		return expected(err)
	})
	return wrap(ctx, "create api key "+k.ID, err)
}

// APIKeyByHash returns the key with that hash or ErrNotFound.
func (s *Store) APIKeyByHash(ctx context.Context, hash string) (store.APIKey, error) {
	k, err := scanKey(s.stmts["apiKeyByHash"].QueryRowContext(ctx, hash))
	return k, wrap(ctx, "api key by hash", err)
}

// ListAPIKeys returns the user's keys, oldest first.
func (s *Store) ListAPIKeys(ctx context.Context, userID string) ([]store.APIKey, error) {
	rows, err := s.reader.QueryContext(ctx,
		`SELECT id, user_id, name, prefix, hash, created_at, last_used_at FROM api_keys
		 WHERE user_id = ? ORDER BY created_at, id`, userID)
	if err != nil {
		return nil, wrap(ctx, "list api keys", err)
	}
	defer rows.Close()
	var out []store.APIKey
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return nil, wrap(ctx, "list api keys", err)
		}
		out = append(out, k)
	}
	return out, wrap(ctx, "list api keys", rows.Err())
}

// DeleteAPIKey deletes the user's key; ErrNotFound when the key does not
// exist or belongs to someone else.
func (s *Store) DeleteAPIKey(ctx context.Context, userID, id string) error {
	err := s.write(ctx, 64, func(ctx context.Context, tx *sql.Tx) error {
		return expected(affected(tx.ExecContext(ctx, `DELETE FROM api_keys WHERE id = ? AND user_id = ?`, id, userID)))
	})
	return wrap(ctx, "delete api key "+id, err)
}

// TouchAPIKey records when the key was last used; ErrNotFound when unknown.
func (s *Store) TouchAPIKey(ctx context.Context, id string, at time.Time) error {
	err := s.write(ctx, 64, func(ctx context.Context, tx *sql.Tx) error {
		return expected(affected(tx.StmtContext(ctx, s.stmts["touchAPIKey"]).ExecContext(ctx, micros(at), id)))
	})
	return wrap(ctx, "touch api key "+id, err)
}

// affected turns "no row changed" into ErrNotFound.
func affected(res sql.Result, err error) error {
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return store.ErrNotFound
	}
	return nil
}

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
