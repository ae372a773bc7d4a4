package history

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hal9-lab/hal9-lab/internal/redact"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	_ "modernc.org/sqlite"             // database/sql driver "sqlite"
)

// EnvURL names the history's database when --history is not given.
const EnvURL = "HAL9_HISTORY"

// DefaultURL is the SQLite file under root's reports/ (ignored by git).
func DefaultURL(root string) string {
	return "sqlite://" + filepath.Join(root, "reports", "history.db")
}

// dialect is what differs between the two databases: the driver, and
// how a statement names its parameters.
type dialect struct {
	driver string
	// numbered: $1, $2 … (PostgreSQL) instead of ? (SQLite).
	numbered bool
}

// Store is the history's database.
type Store struct {
	db  *sql.DB
	d   dialect
	url string // redacted, for messages
}

// Open connects to the history at rawURL (sqlite://PATH, creating the file
// and its directory, or postgres://…) and applies the migrations.
func Open(ctx context.Context, rawURL string) (*Store, error) {
	shown := redact.URL(rawURL)
	var (
		s   = &Store{url: shown}
		dsn string
	)
	switch {
	case strings.HasPrefix(rawURL, "sqlite://"):
		path := strings.TrimPrefix(rawURL, "sqlite://")
		switch {
		case path == "":
			return nil, fmt.Errorf("history %s: no path: write sqlite://reports/history.db or sqlite:///abs/path.db", shown)
		case strings.ContainsAny(path, "?#"):
			return nil, fmt.Errorf("history %s: the path must not contain '?' or '#'", shown)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return nil, fmt.Errorf("history %s: %w", shown, err)
		}
		// A rollback journal rather than WAL: the history is one file at
		// rest, which CI can cache and restore; FULL syncs each commit.
		s.d = dialect{driver: "sqlite"}
		dsn = "file:" + path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(DELETE)&_pragma=synchronous(FULL)&_pragma=foreign_keys(1)&_txlock=immediate"
	case strings.HasPrefix(rawURL, "postgres://"), strings.HasPrefix(rawURL, "postgresql://"):
		s.d, dsn = dialect{driver: "pgx", numbered: true}, rawURL
	default:
		return nil, fmt.Errorf("history %q: want sqlite://PATH (e.g. sqlite://reports/history.db) or postgres://user:pass@host:5432/db", shown)
	}
	db, err := sql.Open(s.d.driver, dsn)
	if err != nil {
		return nil, fmt.Errorf("open history %s: %w", shown, err)
	}
	if s.d.driver == "sqlite" {
		db.SetMaxOpenConns(1) // one writer; a CLI needs no more
	}
	s.db = db
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open history %s: %w", shown, err)
	}
	return s, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// String is the store's URL without its password.
func (s *Store) String() string { return s.url }

// q writes a statement's ? parameters as the dialect wants them.
func (s *Store) q(query string) string {
	if !s.d.numbered {
		return query
	}
	var b strings.Builder
	n := 0
	for _, r := range query {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// migrations are applied in order, each once, each in its own
// transaction; the SQL is the same for SQLite and PostgreSQL. Never edit
// one that has shipped: append another.
var migrations = []string{
	`CREATE TABLE history_runs (
		id         TEXT PRIMARY KEY,
		time_ms    BIGINT NOT NULL,
		commit_id  TEXT NOT NULL,
		profile    TEXT NOT NULL,
		command    TEXT NOT NULL,
		machine    TEXT NOT NULL,
		cpu_model  TEXT NOT NULL,
		cores      INTEGER NOT NULL,
		go_version TEXT NOT NULL,
		kernel     TEXT NOT NULL,
		reference  TEXT NOT NULL,
		source     TEXT NOT NULL,
		added_ms   BIGINT NOT NULL
	);
	CREATE INDEX history_runs_profile_time ON history_runs (profile, time_ms);
	CREATE TABLE history_values (
		run_id     TEXT NOT NULL REFERENCES history_runs (id) ON DELETE CASCADE,
		leg        TEXT NOT NULL,
		scenario   TEXT NOT NULL,
		op         TEXT NOT NULL,
		metric     TEXT NOT NULL,
		kind       TEXT NOT NULL CHECK (kind IN ('absolute', 'ratio')),
		repetition INTEGER NOT NULL,
		value      DOUBLE PRECISION NOT NULL,
		PRIMARY KEY (run_id, leg, scenario, op, metric, kind, repetition)
	);`,
}

// migrate brings the schema to the newest version, in one transaction.
// PostgreSQL serialises concurrent migrators (two CI jobs on one
// database) with an advisory lock taken before anything else, since even
// CREATE TABLE IF NOT EXISTS races there; SQLite with its write lock
// (_txlock=immediate).
func (s *Store) migrate(ctx context.Context) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		if s.d.driver == "pgx" {
			if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(8119)`); err != nil {
				return fmt.Errorf("lock the schema: %w", err)
			}
		}
		if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS history_schema (version INTEGER PRIMARY KEY, applied_ms BIGINT NOT NULL)`); err != nil {
			return fmt.Errorf("create history_schema: %w", err)
		}
		var newest int
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM history_schema`).Scan(&newest); err != nil {
			return fmt.Errorf("read the schema version: %w", err)
		}
		if newest > len(migrations) {
			return fmt.Errorf("the history's schema is version %d, this hal9-lab knows %d: use a newer hal9-lab", newest, len(migrations))
		}
		for i, m := range migrations[newest:] {
			version := newest + i + 1
			for _, stmt := range strings.Split(m, ";") {
				if strings.TrimSpace(stmt) == "" {
					continue
				}
				if _, err := tx.ExecContext(ctx, stmt); err != nil {
					return fmt.Errorf("migration %d: %w", version, err)
				}
			}
			if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO history_schema (version, applied_ms) VALUES (?, ?)`), version, time.Now().UnixMilli()); err != nil {
				return fmt.Errorf("migration %d: %w", version, err)
			}
		}
		return nil
	})
}

func (s *Store) inTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// Add stores a run and its values in one transaction. It returns false,
// and changes nothing, when a run with the same id is already there (the
// same summary or CSV night added twice).
func (s *Store) Add(ctx context.Context, r Run) (bool, error) {
	if r.ID == "" {
		return false, errors.New("add run: no id")
	}
	added := false
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.q(`INSERT INTO history_runs
			(id, time_ms, commit_id, profile, command, machine, cpu_model, cores, go_version, kernel, reference, source, added_ms)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`),
			r.ID, r.Time.UnixMilli(), r.Commit, r.Profile, r.Command, r.Machine, r.Host.CPUModel, r.Host.Cores,
			r.Host.GoVersion, r.Host.Kernel, r.Reference, r.Source, time.Now().UnixMilli())
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return err
		}
		stmt, err := tx.PrepareContext(ctx, s.q(`INSERT INTO history_values
			(run_id, leg, scenario, op, metric, kind, repetition, value) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`))
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, v := range r.Values {
			if _, err := stmt.ExecContext(ctx, r.ID, v.Leg, v.Scenario, v.Op, v.Metric, string(v.Kind), v.Repetition, v.Value); err != nil {
				return fmt.Errorf("%s %s repetition %d: %w", v.Key, v.Kind, v.Repetition, err)
			}
		}
		added = true
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("add run %s (%s) to history %s: %w", r.ID, r.Source, s.url, err)
	}
	return added, nil
}

// Runs reads the runs of a profile ("": every profile), oldest first, with
// their values.
func (s *Store) Runs(ctx context.Context, profile string) ([]Run, error) {
	where, args := "", []any{}
	if profile != "" {
		where, args = " WHERE profile = ?", append(args, profile)
	}
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT id, time_ms, commit_id, profile, command, machine, cpu_model, cores,
		go_version, kernel, reference, source FROM history_runs`+where+` ORDER BY time_ms, id`), args...)
	if err != nil {
		return nil, fmt.Errorf("read history %s: %w", s.url, err)
	}
	var runs []Run
	index := map[string]int{}
	for rows.Next() {
		var r Run
		var ms int64
		if err := rows.Scan(&r.ID, &ms, &r.Commit, &r.Profile, &r.Command, &r.Machine, &r.Host.CPUModel, &r.Host.Cores,
			&r.Host.GoVersion, &r.Host.Kernel, &r.Reference, &r.Source); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read history %s: %w", s.url, err)
		}
		r.Time = time.UnixMilli(ms).UTC()
		index[r.ID] = len(runs)
		runs = append(runs, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read history %s: %w", s.url, err)
	}
	vrows, err := s.db.QueryContext(ctx, s.q(`SELECT v.run_id, v.leg, v.scenario, v.op, v.metric, v.kind, v.repetition, v.value
		FROM history_values v JOIN history_runs r ON r.id = v.run_id`+strings.ReplaceAll(where, "profile", "r.profile")), args...)
	if err != nil {
		return nil, fmt.Errorf("read history values %s: %w", s.url, err)
	}
	defer vrows.Close()
	for vrows.Next() {
		var id, kind string
		var v Value
		if err := vrows.Scan(&id, &v.Leg, &v.Scenario, &v.Op, &v.Metric, &kind, &v.Repetition, &v.Value); err != nil {
			return nil, fmt.Errorf("read history values %s: %w", s.url, err)
		}
		v.Kind = Kind(kind)
		if i, ok := index[id]; ok {
			runs[i].Values = append(runs[i].Values, v)
		}
	}
	if err := vrows.Err(); err != nil {
		return nil, fmt.Errorf("read history values %s: %w", s.url, err)
	}
	for i := range runs { // the database's order is not the stored one
		slices.SortFunc(runs[i].Values, compareValues)
	}
	return runs, nil
}

func compareValues(a, b Value) int {
	if c := strings.Compare(a.Key.String(), b.Key.String()); c != 0 {
		return c
	}
	if c := strings.Compare(string(a.Kind), string(b.Kind)); c != 0 {
		return c
	}
	return a.Repetition - b.Repetition
}
