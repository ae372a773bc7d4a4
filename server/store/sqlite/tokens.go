package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/hal9-lab/hal9-lab/server/store"
)

// CreateRefreshToken stores the first token of a new family.
func (s *Store) CreateRefreshToken(ctx context.Context, t store.RefreshToken) error {
	err := s.write(ctx, 192, func(ctx context.Context, tx *sql.Tx) error {
		return expected(insertRefresh(ctx, tx, t))
	})
	return wrap(ctx, "create refresh token", err)
}

func insertRefresh(ctx context.Context, tx *sql.Tx, t store.RefreshToken) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO refresh_tokens (id, family_id, user_id, created_at, expires_at)
		VALUES (?, ?, ?, ?, ?)`, t.ID, t.FamilyID, t.UserID, micros(t.CreatedAt), micros(t.ExpiresAt))
	return err
}

// RotateRefreshToken retires oldID and stores next in its family, in one
// write; a replay of a retired token revokes the family in that same
// write, unless it is a retry within grace (see store.Store).
func (s *Store) RotateRefreshToken(ctx context.Context, oldID string, next store.RefreshToken, at time.Time, grace time.Duration) (store.RefreshToken, error) {
	var got store.RefreshToken
	err := s.write(ctx, 256, func(ctx context.Context, tx *sql.Tx) error {
		got = next
		var family, user string
		var expires int64
		var used, revoked sql.NullInt64
		var successor sql.NullString
		var familyRevoked bool
		err := tx.QueryRowContext(ctx, `SELECT t.family_id, t.user_id, t.expires_at, t.used_at, t.revoked_at, t.replaced_by,
			EXISTS (SELECT 1 FROM refresh_tokens f WHERE f.family_id = t.family_id AND f.revoked_at IS NOT NULL)
			FROM refresh_tokens t WHERE t.id = ?`, oldID).Scan(&family, &user, &expires, &used, &revoked, &successor, &familyRevoked)
		if err != nil {
			return expected(err) // sql.ErrNoRows → ErrNotFound
		}
		switch {
		case family != next.FamilyID || user != next.UserID:
			return answer(fmt.Errorf("%w: the new token is not of the old one's family", store.ErrNotFound))
		case revoked.Valid || familyRevoked:
			return answer(store.ErrTokenRevoked)
		case used.Valid:
			if successor.Valid && at.Sub(fromMicros(used)) < grace {
				ok, err := liveSuccessor(ctx, tx, successor.String, at, &got)
				if err != nil || ok {
					return err // a retry within the grace: its successor, nothing written
				}
			}
			// A replay: the revocation commits, the caller hears of the reuse.
			if _, err := tx.ExecContext(ctx, `UPDATE refresh_tokens SET revoked_at = ? WHERE family_id = ? AND revoked_at IS NULL`,
				micros(at), family); err != nil {
				return err
			}
			return answer(store.ErrTokenReused)
		case expires <= at.UnixMicro():
			return answer(fmt.Errorf("%w: expired", store.ErrTokenRevoked))
		}
		if _, err := tx.ExecContext(ctx, `UPDATE refresh_tokens SET used_at = ?, replaced_by = ? WHERE id = ?`,
			micros(at), next.ID, oldID); err != nil {
			return err
		}
		return insertRefresh(ctx, tx, next)
	})
	if err != nil {
		return store.RefreshToken{}, wrap(ctx, "rotate refresh token", err)
	}
	return got, nil
}

// liveSuccessor reads the token id into t and reports whether it is still
// the family's newest: never used, not revoked, not expired at at.
func liveSuccessor(ctx context.Context, tx *sql.Tx, id string, at time.Time, t *store.RefreshToken) (bool, error) {
	var created, expires int64
	var used, revoked sql.NullInt64
	err := tx.QueryRowContext(ctx, `SELECT id, family_id, user_id, created_at, expires_at, used_at, revoked_at
		FROM refresh_tokens WHERE id = ?`, id).Scan(&t.ID, &t.FamilyID, &t.UserID, &created, &expires, &used, &revoked)
	if errors.Is(err, sql.ErrNoRows) { // deleted as expired
		return false, nil
	}
	if err != nil {
		return false, err
	}
	t.CreatedAt, t.ExpiresAt = time.UnixMicro(created).UTC(), time.UnixMicro(expires).UTC()
	return !used.Valid && !revoked.Valid && expires > at.UnixMicro(), nil
}

// RevokeRefreshFamily revokes every token of the family.
func (s *Store) RevokeRefreshFamily(ctx context.Context, familyID string, at time.Time) error {
	err := s.write(ctx, 64, func(ctx context.Context, tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM refresh_tokens WHERE family_id = ?`, familyID).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return answer(store.ErrNotFound)
		}
		_, err := tx.ExecContext(ctx, `UPDATE refresh_tokens SET revoked_at = ? WHERE family_id = ? AND revoked_at IS NULL`,
			micros(at), familyID)
		return err
	})
	return wrap(ctx, "revoke refresh tokens", err)
}

// DeleteExpiredRefreshTokens removes tokens expired before `before`.
func (s *Store) DeleteExpiredRefreshTokens(ctx context.Context, before time.Time) (int, error) {
	var n int64
	err := s.write(ctx, 64, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM refresh_tokens WHERE expires_at < ?`, micros(before))
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return int(n), wrap(ctx, "delete expired refresh tokens", err)
}

// EnsureSecret returns the secret under name, storing candidate if none is.
func (s *Store) EnsureSecret(ctx context.Context, name string, candidate []byte) ([]byte, error) {
	if len(candidate) == 0 {
		return nil, errors.New("sqlite ensure secret: empty candidate")
	}
	var got []byte
	err := s.write(ctx, 64+len(candidate), func(ctx context.Context, tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO server_secrets (name, value, created_at) VALUES (?, ?, ?)
			ON CONFLICT (name) DO NOTHING`, name, candidate, micros(time.Now())); err != nil {
			return err
		}
		return tx.QueryRowContext(ctx, `SELECT value FROM server_secrets WHERE name = ?`, name).Scan(&got)
	})
	return got, wrap(ctx, "secret "+name, err)
}
