package postgres

import (
	"context"
	"embed"
	"fmt"
	"github.com/hal9-lab/hal9-lab/server/store/internal/migrations"
	"time"

	"github.com/jackc/pgx/v5"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Advisory lock keys ("hal9" in the high bytes) serialising schema work
// across processes: two servers starting at once, or a server and `hal9 migrate`.
const (
	lockMigrate    int64 = 0x68616c39_00000001
	lockPartitions int64 = 0x68616c39_00000002
)

// Migrate applies the embedded migrations not yet in schema_migrations (all
// in one transaction, under an advisory lock so concurrent starters wait
// for each other), then makes sure this month's and the next three months'
// signal partitions exist. Idempotent.
func (s *Store) Migrate(ctx context.Context) error {
	ms, err := migrations.Load(migrationFiles, "migrations")
	if err != nil {
		return fmt.Errorf("migrate postgres %s: %w", s.addr, err)
	}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, lockMigrate); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
			return err
		}
		var newest int
		if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&newest); err != nil {
			return err
		}
		if known := ms[len(ms)-1].Version; newest > known {
			return fmt.Errorf("the database is at schema version %d but this binary only knows up to %d; run a newer hal9", newest, known)
		}
		for _, m := range ms {
			if m.Version <= newest {
				continue
			}
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return fmt.Errorf("apply %s: %w", m.Name, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`, m.Version, m.Name); err != nil {
				return err
			}
			s.log.Info("applied migration", "db", s.addr, "migration", m.Name)
		}
		return nil
	})
	if err != nil {
		return s.wrap(ctx, "migrate", err)
	}
	return s.EnsurePartitions(ctx, time.Now())
}

// partitionName is signals_yYYYYmMM for the month containing t (UTC).
func partitionName(t time.Time) string {
	t = t.UTC()
	return fmt.Sprintf("signals_y%04dm%02d", t.Year(), int(t.Month()))
}

func monthStart(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
}

// EnsurePartitions creates the signals partitions for the month of at and
// the PartitionsAhead months after it, skipping those that exist.
// Idempotent and safe to run from several processes at once.
func (s *Store) EnsurePartitions(ctx context.Context, at time.Time) error {
	start := monthStart(at)
	for i := 0; i <= PartitionsAhead; i++ {
		if err := s.ensurePartition(ctx, start.AddDate(0, i, 0)); err != nil {
			return err
		}
	}
	return nil
}

// ensurePartition creates the partition holding t when it is missing. The
// advisory lock matters: two concurrent CREATE TABLE IF NOT EXISTS can
// still collide in the catalog.
func (s *Store) ensurePartition(ctx context.Context, t time.Time) error {
	name := partitionName(t)
	var exists bool
	if err := s.pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, name).Scan(&exists); err != nil {
		return s.wrap(ctx, "check partition "+name, err)
	}
	if exists {
		return nil
	}
	from := monthStart(t)
	to := from.AddDate(0, 1, 0)
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, lockPartitions); err != nil {
			return err
		}
		// Identifiers and bounds come from time formatting, never from input.
		_, err := tx.Exec(ctx, fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s PARTITION OF signals FOR VALUES FROM ('%s') TO ('%s')`,
			pgx.Identifier{name}.Sanitize(), from.Format(time.RFC3339), to.Format(time.RFC3339)))
		return err
	})
	if err != nil {
		return s.wrap(ctx, "create partition "+name, err)
	}
	s.log.Info("created signals partition", "db", s.addr, "partition", name, "from", from, "to", to)
	return nil
}

// Partitions lists the signals partitions, oldest first.
func (s *Store) Partitions(ctx context.Context) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT c.relname FROM pg_inherits i
		JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = 'signals'::regclass ORDER BY c.relname`)
	if err != nil {
		return nil, s.wrap(ctx, "list partitions", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	return names, s.wrap(ctx, "list partitions", err)
}

// RunMaintenance keeps the partitions ahead of time: it runs
// EnsurePartitions now and every interval (default 1h) until ctx ends, and
// logs failures (a database that is down now is retried next interval).
// Run it in a goroutine; it returns nil when ctx is done.
func (s *Store) RunMaintenance(ctx context.Context, interval time.Duration) error {
	if interval <= 0 {
		interval = time.Hour
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := s.EnsurePartitions(ctx, time.Now()); err != nil && ctx.Err() == nil {
			s.log.Warn("signals partition maintenance failed; retrying next interval", "db", s.addr, "err", err, "interval", interval)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
