package sqlite

import (
	"context"
	"database/sql"
	"time"

	"github.com/hal9-lab/hal9-lab/server/store"
)

// AddLLMSpend adds the rows in one group-committed transaction.
func (s *Store) AddLLMSpend(ctx context.Context, rows []store.LLMSpend) error {
	if len(rows) == 0 {
		return nil
	}
	err := s.write(ctx, 64*len(rows), func(ctx context.Context, tx *sql.Tx) error {
		for _, r := range rows {
			if _, err := tx.ExecContext(ctx, `INSERT INTO llm_spend (scope, kind, start, expires_at, nano_usd) VALUES (?, ?, ?, ?, ?)
				ON CONFLICT (scope, kind, start) DO UPDATE SET nano_usd = nano_usd + excluded.nano_usd,
					expires_at = max(expires_at, excluded.expires_at)`,
				r.Scope, r.Kind, micros(r.Start), micros(r.Expires), r.NanoUSD); err != nil {
				return err
			}
		}
		return nil
	})
	return wrap(ctx, "add LLM spend", err)
}

// LLMSpend returns the rows not expired at now (everyone's, or every scope's).
func (s *Store) LLMSpend(ctx context.Context, now time.Time, users bool) ([]store.LLMSpend, error) {
	rs, err := s.reader.QueryContext(ctx, `SELECT scope, kind, start, expires_at, nano_usd FROM llm_spend WHERE expires_at > ? AND (? OR scope = '')`, micros(now), users)
	if err != nil {
		return nil, wrap(ctx, "read LLM spend", err)
	}
	defer rs.Close()
	var out []store.LLMSpend
	for rs.Next() {
		var r store.LLMSpend
		var start, exp sql.NullInt64
		if err := rs.Scan(&r.Scope, &r.Kind, &start, &exp, &r.NanoUSD); err != nil {
			return nil, wrap(ctx, "read LLM spend", err)
		}
		r.Start, r.Expires = fromMicros(start), fromMicros(exp)
		out = append(out, r)
	}
	return out, wrap(ctx, "read LLM spend", rs.Err())
}

// DeleteLLMSpend removes the rows expired at now.
func (s *Store) DeleteLLMSpend(ctx context.Context, now time.Time) (int, error) {
	var n int64
	err := s.write(ctx, 64, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM llm_spend WHERE expires_at <= ?`, micros(now))
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return int(n), wrap(ctx, "delete expired LLM spend", err)
}
