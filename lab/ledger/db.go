package ledger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	_ "modernc.org/sqlite" // database/sql driver "sqlite"

	"github.com/hal9-lab/hal9-lab/internal/redact"
)

// DB reads a HAL9 database the lab created itself, read-only: SQLite
// (sqlite://PATH) or PostgreSQL (postgres://…). It knows the schema's
// tables (users, api_keys, signals, neurons) but nothing of the server's
// code: the lab talks to the server only over HTTP and by starting its
// binary.
type DB struct {
	url string
	sq  *sql.DB   // SQLite
	pg  *pgx.Conn // PostgreSQL
}

var _ Lookup = (*DB)(nil)

// OpenDB opens the database of url for reading.
func OpenDB(ctx context.Context, url string) (*DB, error) {
	d := &DB{url: url}
	switch {
	case strings.HasPrefix(url, "sqlite://"):
		path := strings.TrimPrefix(url, "sqlite://")
		if i := strings.IndexByte(path, '?'); i >= 0 {
			path = path[:i]
		}
		// mode=ro and query_only: this reader can change nothing, and
		// never creates a missing file.
		db, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=query_only(1)&_pragma=busy_timeout(10000)")
		if err != nil {
			return nil, fmt.Errorf("open %s read-only: %w", path, err)
		}
		if err := db.PingContext(ctx); err != nil {
			db.Close()
			return nil, fmt.Errorf("open %s read-only: %w", path, err)
		}
		d.sq = db
	case strings.HasPrefix(url, "postgres://"), strings.HasPrefix(url, "postgresql://"):
		cfg, err := pgx.ParseConfig(url)
		if err != nil {
			return nil, fmt.Errorf("parse %s: %w", redact.URL(url), err)
		}
		cfg.RuntimeParams["default_transaction_read_only"] = "on"
		c, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			return nil, fmt.Errorf("connect to %s: %w", redact.URL(url), err)
		}
		d.pg = c
	default:
		return nil, fmt.Errorf("database %q: want sqlite://PATH or postgres://…", redact.URL(url))
	}
	return d, nil
}

// Close closes the connection.
func (d *DB) Close() error {
	if d.sq != nil {
		return d.sq.Close()
	}
	if d.pg != nil {
		return d.pg.Close(context.Background())
	}
	return nil
}

// Describe implements Lookup.
func (d *DB) Describe() (string, string) { return "database", "durability" }

// queries by kind: id and owner's username of the rows with the given ids.
var findSQL = map[string]string{
	KindSignal: `SELECT s.id, coalesce(u.username, '') FROM signals s LEFT JOIN users u ON u.id = s.user_id WHERE s.id IN (%s)`,
	KindUser:   `SELECT id, username FROM users WHERE id IN (%s)`,
	KindAPIKey: `SELECT k.id, coalesce(u.username, '') FROM api_keys k LEFT JOIN users u ON u.id = k.user_id WHERE k.id IN (%s)`,
}

// chunk bounds the ids of one query.
const chunk = 500

// Find implements Lookup: one query per 500 ids.
func (d *DB) Find(ctx context.Context, kind string, entries []Entry) (map[string][]string, error) {
	q, ok := findSQL[kind]
	if !ok {
		return nil, fmt.Errorf("unknown kind %q", kind)
	}
	out := map[string][]string{}
	for lo := 0; lo < len(entries); lo += chunk {
		part := entries[lo:min(lo+chunk, len(entries))]
		args := make([]any, len(part))
		marks := make([]string, len(part))
		for i, e := range part {
			args[i] = e.ID
			if d.pg != nil {
				marks[i] = fmt.Sprintf("$%d", i+1)
			} else {
				marks[i] = "?"
			}
		}
		stmt := fmt.Sprintf(q, strings.Join(marks, ","))
		if err := d.rows(ctx, stmt, args, func(id, owner string) { out[id] = append(out[id], owner) }); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (d *DB) rows(ctx context.Context, stmt string, args []any, each func(a, b string)) error {
	if d.pg != nil {
		rows, err := d.pg.Query(ctx, stmt, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		return scanPairs(rows, each)
	}
	rows, err := d.sq.QueryContext(ctx, stmt, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	return scanPairs(rows, each)
}

// pairRows is what pgx.Rows and *sql.Rows share.
type pairRows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
}

// scanPairs calls each with every row's two text columns.
func scanPairs(rows pairRows, each func(a, b string)) error {
	for rows.Next() {
		var a, b string
		if err := rows.Scan(&a, &b); err != nil {
			return err
		}
		each(a, b)
	}
	return rows.Err()
}

// NeuronsUpdatedAt is the newest neurons.updated_at: how current the
// persisted neuron states are (the write-behind loss window is the time
// from it to a crash). Zero when there is no neuron row.
func (d *DB) NeuronsUpdatedAt(ctx context.Context) (time.Time, error) {
	if d.pg != nil {
		var t *time.Time
		if err := d.pg.QueryRow(ctx, `SELECT max(updated_at) FROM neurons`).Scan(&t); err != nil {
			return time.Time{}, err
		}
		if t == nil {
			return time.Time{}, nil
		}
		return t.UTC(), nil
	}
	var us sql.NullInt64 // SQLite keeps times as microseconds since the epoch
	if err := d.sq.QueryRowContext(ctx, `SELECT max(updated_at) FROM neurons`).Scan(&us); err != nil {
		return time.Time{}, err
	}
	if !us.Valid {
		return time.Time{}, nil
	}
	return time.UnixMicro(us.Int64).UTC(), nil
}

// HasSchema tells whether the server migrated this database (a
// schema_migrations table exists): the port-taken fault checks that a
// server that could not bind its port touched nothing.
func (d *DB) HasSchema(ctx context.Context) (bool, error) {
	var n int
	var err error
	if d.pg != nil {
		err = d.pg.QueryRow(ctx, `SELECT count(*) FROM pg_tables WHERE tablename = 'schema_migrations'`).Scan(&n)
	} else {
		err = d.sq.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'`).Scan(&n)
	}
	if err != nil {
		return false, errors.Join(errors.New("read the schema"), err)
	}
	return n > 0, nil
}

// VerifyDB opens url, verifies entries in it and closes it.
func VerifyDB(ctx context.Context, url string, entries []Entry) (v Verdict) {
	d, err := OpenDB(ctx, url)
	if err != nil {
		v.Source, v.Checks = "database", "durability"
		v.Acknowledged = len(entries)
		v.Error = err.Error()
		return v
	}
	defer d.Close()
	return Verify(ctx, entries, d)
}
