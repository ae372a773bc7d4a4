package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// ApplyRetention drops the signals partitions that end at or before
// cutoff (whole months: the month of cutoff is kept), deleting first the
// hops and memories of their signals (those tables are not partitioned).
// Each partition goes in one transaction under the partition lock. It
// returns how many signals it removed.
func (s *Store) ApplyRetention(ctx context.Context, cutoff time.Time) (int64, error) {
	parts, err := s.Partitions(ctx)
	if err != nil {
		return 0, err
	}
	var total int64
	for _, name := range parts {
		var y, m int
		if _, err := fmt.Sscanf(name, "signals_y%04dm%02d", &y, &m); err != nil {
			continue // not one of ours: never touched
		}
		end := time.Date(y, time.Month(m), 1, 0, 0, 0, 0, time.UTC).AddDate(0, 1, 0)
		if end.After(cutoff) {
			continue
		}
		id := pgx.Identifier{name}.Sanitize()
		var n int64
		err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, lockPartitions); err != nil {
				return err
			}
			if err := tx.QueryRow(ctx, `SELECT count(*) FROM `+id).Scan(&n); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `DELETE FROM signal_hops h USING `+id+` p WHERE h.signal_id = p.id`); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `DELETE FROM memories m USING `+id+` p WHERE m.signal_id = p.id`); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `DROP TABLE `+id)
			return err
		})
		if err != nil {
			return total, s.wrap(ctx, "drop expired partition "+name, err)
		}
		s.log.Info("dropped expired signals partition", "db", s.addr, "partition", name, "signals", n)
		total += n
	}
	return total, nil
}
