package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hal9-lab/hal9-lab/server/store"
)

// AddLLMSpend adds the rows in one transaction (one batch, one round trip).
func (s *Store) AddLLMSpend(ctx context.Context, rows []store.LLMSpend) error {
	if len(rows) == 0 {
		return nil
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var b pgx.Batch
		for _, r := range rows {
			b.Queue(`INSERT INTO llm_spend (scope, kind, start, expires_at, nano_usd) VALUES ($1, $2, $3, $4, $5)
				ON CONFLICT (scope, kind, start) DO UPDATE SET nano_usd = llm_spend.nano_usd + excluded.nano_usd,
					expires_at = greatest(llm_spend.expires_at, excluded.expires_at)`,
				r.Scope, r.Kind, r.Start, r.Expires, r.NanoUSD)
		}
		return tx.SendBatch(ctx, &b).Close()
	})
	return s.wrap(ctx, "add LLM spend", err)
}

// LLMSpend returns the rows not expired at now (everyone's, or every scope's).
func (s *Store) LLMSpend(ctx context.Context, now time.Time, users bool) ([]store.LLMSpend, error) {
	rows, err := s.pool.Query(ctx, `SELECT scope, kind, start, expires_at, nano_usd FROM llm_spend WHERE expires_at > $1 AND ($2 OR scope = '')`, now, users)
	if err != nil {
		return nil, s.wrap(ctx, "read LLM spend", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.LLMSpend, error) {
		var r store.LLMSpend
		err := row.Scan(&r.Scope, &r.Kind, &r.Start, &r.Expires, &r.NanoUSD)
		r.Start, r.Expires = r.Start.UTC(), r.Expires.UTC()
		return r, err
	})
	return out, s.wrap(ctx, "read LLM spend", err)
}

// DeleteLLMSpend removes the rows expired at now.
func (s *Store) DeleteLLMSpend(ctx context.Context, now time.Time) (int, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM llm_spend WHERE expires_at <= $1`, now)
	return int(tag.RowsAffected()), s.wrap(ctx, "delete expired LLM spend", err)
}
