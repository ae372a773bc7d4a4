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
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/hal9-lab/hal9-lab/server/store"
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
