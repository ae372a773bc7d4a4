package sqlite

// Users and their API keys.

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/hal9-lab/hal9-lab/server/store"
)

type scanner interface{ Scan(dest ...any) error }

func scanUser(r scanner) (store.User, error) {
	var u store.User
	var created sql.NullInt64
	err := r.Scan(&u.ID, &u.Username, &u.Email, &u.PasswordHash, &created)
	u.CreatedAt = fromMicros(created)
	return u, err
}

// CreateUser inserts u; ErrConflict when the id, username or email is
// taken. Which of username and email was taken is read from the table in
// the same transaction (SQLite names a violated constraint only in its
// message text), so the ConflictError's Field is exact.
func (s *Store) CreateUser(ctx context.Context, u store.User) error {
	err := s.write(ctx, 128+len(u.PasswordHash), func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx,
			`INSERT INTO users (id, username, email, password_hash, created_at) VALUES (?, ?, ?, ?, ?)`,
			u.ID, u.Username, u.Email, u.PasswordHash, micros(u.CreatedAt))
		var se *sqlite.Error
		if err == nil || !errors.As(err, &se) || se.Code() != sqlite3.SQLITE_CONSTRAINT_UNIQUE {
			return expected(err)
		}
		var byName, byEmail bool
		if qerr := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM users WHERE username = ?),
			EXISTS (SELECT 1 FROM users WHERE email = ?)`, u.Username, u.Email).Scan(&byName, &byEmail); qerr != nil {
			return answer(err)
		}
		field := ""
		switch {
		case byName:
			field = "username"
		case byEmail:
			field = "email"
		}
		return answer(&store.ConflictError{Field: field, Detail: err.Error()})
	})
	return wrap(ctx, "create user "+u.Username, err)
}

// UserByID returns the user or ErrNotFound.
func (s *Store) UserByID(ctx context.Context, id string) (store.User, error) {
	u, err := scanUser(s.stmts["userByID"].QueryRowContext(ctx, id))
	return u, wrap(ctx, "user "+id, err)
}

// UserByUsername returns the user or ErrNotFound.
func (s *Store) UserByUsername(ctx context.Context, username string) (store.User, error) {
	u, err := scanUser(s.stmts["userByUsername"].QueryRowContext(ctx, username))
	return u, wrap(ctx, "user "+username, err)
}

func scanKey(r scanner) (store.APIKey, error) {
	var k store.APIKey
	var created, used sql.NullInt64
	err := r.Scan(&k.ID, &k.UserID, &k.Name, &k.Prefix, &k.Hash, &created, &used)
	k.CreatedAt, k.LastUsedAt = fromMicros(created), fromMicros(used)
	return k, err
}

// CreateAPIKey inserts k; ErrConflict on a duplicate id or hash, ErrNotFound
// when the user does not exist.
func (s *Store) CreateAPIKey(ctx context.Context, k store.APIKey) error {
	err := s.write(ctx, 256, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx,
			`INSERT INTO api_keys (id, user_id, name, prefix, hash, created_at, last_used_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			k.ID, k.UserID, k.Name, k.Prefix, k.Hash, micros(k.CreatedAt), micros(k.LastUsedAt))
		return expected(err)
	})
	return wrap(ctx, "create api key "+k.ID, err)
}

// APIKeyByHash returns the key with that hash or ErrNotFound.
func (s *Store) APIKeyByHash(ctx context.Context, hash string) (store.APIKey, error) {
	k, err := scanKey(s.stmts["apiKeyByHash"].QueryRowContext(ctx, hash))
	return k, wrap(ctx, "api key by hash", err)
}

// ListAPIKeys returns the user's keys, oldest first.
func (s *Store) ListAPIKeys(ctx context.Context, userID string) ([]store.APIKey, error) {
	rows, err := s.reader.QueryContext(ctx,
		`SELECT id, user_id, name, prefix, hash, created_at, last_used_at FROM api_keys
		 WHERE user_id = ? ORDER BY created_at, id`, userID)
	if err != nil {
		return nil, wrap(ctx, "list api keys", err)
	}
	defer rows.Close()
	var out []store.APIKey
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return nil, wrap(ctx, "list api keys", err)
		}
		out = append(out, k)
	}
	return out, wrap(ctx, "list api keys", rows.Err())
}

// DeleteAPIKey deletes the user's key; ErrNotFound when the key does not
// exist or belongs to someone else.
func (s *Store) DeleteAPIKey(ctx context.Context, userID, id string) error {
	err := s.write(ctx, 64, func(ctx context.Context, tx *sql.Tx) error {
		return expected(affected(tx.ExecContext(ctx, `DELETE FROM api_keys WHERE id = ? AND user_id = ?`, id, userID)))
	})
	return wrap(ctx, "delete api key "+id, err)
}

// TouchAPIKey records when the key was last used; ErrNotFound when unknown.
func (s *Store) TouchAPIKey(ctx context.Context, id string, at time.Time) error {
	err := s.write(ctx, 64, func(ctx context.Context, tx *sql.Tx) error {
		return expected(affected(tx.StmtContext(ctx, s.stmts["touchAPIKey"]).ExecContext(ctx, micros(at), id)))
	})
	return wrap(ctx, "touch api key "+id, err)
}

// affected turns "no row changed" into ErrNotFound.
func affected(res sql.Result, err error) error {
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return store.ErrNotFound
	}
	return nil
}
