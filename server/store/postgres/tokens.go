package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hal9-lab/hal9-lab/server/store"
)

// CreateRefreshToken stores the first token of a new family.
func (s *Store) CreateRefreshToken(ctx context.Context, t store.RefreshToken) error {
	_, err := s.pool.Exec(ctx, sqlInsertRefresh, t.ID, t.FamilyID, t.UserID, t.CreatedAt, t.ExpiresAt)
	return s.wrap(ctx, "create refresh token", err)
}

const sqlInsertRefresh = `INSERT INTO refresh_tokens (id, family_id, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)`

// familyLockClass is the first key of the advisory locks that serialize a
// refresh family's writes (the two-key space does not overlap the one-key
// locks of migrations and partitions): "hal9".
const familyLockClass = 0x68616c39

// lockFamily serializes the rotations and revocations of one family until
// tx ends. Under READ COMMITTED an UPDATE … WHERE family_id = … does not
// see a successor inserted by a rotation that commits while the UPDATE
// waits for a row it locked, so a logout (or a replay's revocation) racing
// a rotation left that successor alive. Every statement after the lock is
// granted sees what the family's earlier writers committed. Two families
// whose names hash alike merely wait for each other.
func lockFamily(ctx context.Context, tx pgx.Tx, family string) error {
	_, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext($2))`, familyLockClass, family)
	return err
}

// RotateRefreshToken retires oldID and stores next in its family in one
// transaction, with the family locked (lockFamily): of two concurrent
// refreshes with one token the second sees it retired, a replay (or, within
// grace, a retry that gets the first one's successor); a logout waits for
// the rotation and revokes its successor too. A family with any revoked
// token is revoked whole (rows written by a race before the lock existed
// included).
func (s *Store) RotateRefreshToken(ctx context.Context, oldID string, next store.RefreshToken, at time.Time, grace time.Duration) (store.RefreshToken, error) {
	got := next
	var outcome error // a reuse commits the revocation, so it is not the transaction's error
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := lockFamily(ctx, tx, next.FamilyID); err != nil {
			return err
		}
		var family, user string
		var expires time.Time
		var used, revoked *time.Time
		var successor *string
		var familyRevoked bool
		err := tx.QueryRow(ctx, `SELECT t.family_id, t.user_id, t.expires_at, t.used_at, t.revoked_at, t.replaced_by,
			EXISTS (SELECT 1 FROM refresh_tokens f WHERE f.family_id = t.family_id AND f.revoked_at IS NOT NULL)
			FROM refresh_tokens t WHERE t.id = $1 FOR UPDATE OF t`, oldID).Scan(&family, &user, &expires, &used, &revoked, &successor, &familyRevoked)
		if err != nil {
			return err
		}
		switch {
		case family != next.FamilyID || user != next.UserID:
			return fmt.Errorf("%w: the new token is not of the old one's family", store.ErrNotFound)
		case revoked != nil || familyRevoked:
			outcome = store.ErrTokenRevoked
			_, err := tx.Exec(ctx, sqlRevokeFamily, at, family)
			return err
		case used != nil:
			if successor != nil && at.Sub(*used) < grace {
				ok, err := liveSuccessor(ctx, tx, *successor, at, &got)
				if err != nil || ok {
					return err // a retry within the grace: its successor, nothing written
				}
			}
			outcome = store.ErrTokenReused
			_, err := tx.Exec(ctx, sqlRevokeFamily, at, family)
			return err
		case !expires.After(at):
			outcome = fmt.Errorf("%w: expired", store.ErrTokenRevoked)
			return nil
		}
		if _, err := tx.Exec(ctx, `UPDATE refresh_tokens SET used_at = $1, replaced_by = $2 WHERE id = $3`, at, next.ID, oldID); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, sqlInsertRefresh, next.ID, next.FamilyID, next.UserID, next.CreatedAt, next.ExpiresAt)
		return err
	})
	if err == nil {
		err = outcome
	}
	if err != nil {
		return store.RefreshToken{}, s.wrap(ctx, "rotate refresh token", err)
	}
	return got, nil
}

// liveSuccessor reads the token id into t and reports whether it is still
// the family's newest: never used, not revoked, not expired at at.
func liveSuccessor(ctx context.Context, tx pgx.Tx, id string, at time.Time, t *store.RefreshToken) (bool, error) {
	var used, revoked *time.Time
	err := tx.QueryRow(ctx, `SELECT id, family_id, user_id, created_at, expires_at, used_at, revoked_at
		FROM refresh_tokens WHERE id = $1`, id).Scan(&t.ID, &t.FamilyID, &t.UserID, &t.CreatedAt, &t.ExpiresAt, &used, &revoked)
	if errors.Is(err, pgx.ErrNoRows) { // deleted as expired
		return false, nil
	}
	if err != nil {
		return false, err
	}
	t.CreatedAt, t.ExpiresAt = t.CreatedAt.UTC(), t.ExpiresAt.UTC()
	return used == nil && revoked == nil && t.ExpiresAt.After(at), nil
}

const sqlRevokeFamily = `UPDATE refresh_tokens SET revoked_at = $1 WHERE family_id = $2 AND revoked_at IS NULL`

// RevokeRefreshFamily revokes every token of the family, with the family
// locked (lockFamily): a rotation in flight finishes first and its
// successor is revoked with the rest.
func (s *Store) RevokeRefreshFamily(ctx context.Context, familyID string, at time.Time) error {
	var found bool
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := lockFamily(ctx, tx, familyID); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `WITH r AS (UPDATE refresh_tokens SET revoked_at = coalesce(revoked_at, $1)
			WHERE family_id = $2 RETURNING 1) SELECT count(*) > 0 FROM r`, at, familyID).Scan(&found)
	})
	if err == nil && !found {
		err = store.ErrNotFound
	}
	return s.wrap(ctx, "revoke refresh tokens", err)
}

// DeleteExpiredRefreshTokens removes tokens expired before `before`.
func (s *Store) DeleteExpiredRefreshTokens(ctx context.Context, before time.Time) (int, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM refresh_tokens WHERE expires_at < $1`, before)
	if err != nil {
		return 0, s.wrap(ctx, "delete expired refresh tokens", err)
	}
	return int(tag.RowsAffected()), nil
}

// EnsureSecret returns the secret under name, storing candidate if none is.
// Two statements, each its own transaction: after an INSERT that found a
// row (or lost a race and waited for the winner's commit), the SELECT's
// fresh snapshot sees the committed value.
func (s *Store) EnsureSecret(ctx context.Context, name string, candidate []byte) ([]byte, error) {
	if len(candidate) == 0 {
		return nil, errors.New("postgres ensure secret: empty candidate")
	}
	if _, err := s.pool.Exec(ctx, `INSERT INTO server_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING`,
		name, candidate); err != nil {
		return nil, s.wrap(ctx, "secret "+name, err)
	}
	var got []byte
	err := s.pool.QueryRow(ctx, `SELECT value FROM server_secrets WHERE name = $1`, name).Scan(&got)
	return got, s.wrap(ctx, "secret "+name, err)
}
