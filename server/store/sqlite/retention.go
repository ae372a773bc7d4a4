package sqlite

import (
	"context"
	"database/sql"
	"time"
)

// retentionChunk bounds one delete transaction, so retention never holds
// the single writer for long.
const retentionChunk = 1000

// ApplyRetention deletes the signals created before cutoff, with their
// hops (ON DELETE CASCADE) and memories, 1,000 signals per transaction. It
// returns how many signals it deleted. SQLite has no partitions: this is
// the same retention as PostgreSQL's dropped monthly partitions, by rows.
func (s *Store) ApplyRetention(ctx context.Context, cutoff time.Time) (int64, error) {
	var total int64
	for {
		var n int64
		err := s.inTx(ctx, func(tx *sql.Tx) error {
			const old = `SELECT id FROM signals WHERE created_at < ? ORDER BY created_at LIMIT ?`
			if _, err := tx.ExecContext(ctx, `DELETE FROM memories WHERE signal_id IN (`+old+`)`, cutoff.UnixMicro(), retentionChunk); err != nil {
				return err
			}
			res, err := tx.ExecContext(ctx, `DELETE FROM signals WHERE id IN (`+old+`)`, cutoff.UnixMicro(), retentionChunk)
			if err != nil {
				return err
			}
			n, err = res.RowsAffected()
			return err
		})
		if err != nil {
			return total, wrap(ctx, "apply signal retention", err)
		}
		total += n
		if n < retentionChunk {
			return total, nil
		}
	}
}
