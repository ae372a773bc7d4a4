package postgres

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/hal9-lab/hal9-lab/lab/infra/infratest"
	"github.com/hal9-lab/hal9-lab/server/store"
)

// TestRevokeRacesRotation: a logout, or a replay of a retired token, that
// arrives while another request rotates the family's newest token must
// revoke the successor that rotation is adding. Under READ COMMITTED an
// UPDATE … WHERE family_id = … does not see a row inserted by a transaction
// that commits while it waits, so without serializing the family the
// successor stayed alive after the logout.
//
// The rotation is held mid-transaction: the test locks the user's row, and
// the successor's foreign-key check waits for it. The revoker starts, is
// seen waiting too, and then the rotation is let go.
func TestRevokeRacesRotation(t *testing.T) {
	for _, tc := range []struct {
		name   string
		revoke func(ctx context.Context, s *Store, at time.Time) error
		want   error
	}{
		{"logout", func(ctx context.Context, s *Store, at time.Time) error {
			return s.RevokeRefreshFamily(ctx, "fam", at)
		}, nil},
		{"replay", func(ctx context.Context, s *Store, at time.Time) error {
			_, err := s.RotateRefreshToken(ctx, "t1", token("t-evil", at), at, 0)
			return err
		}, store.ErrTokenReused},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url := infratest.PostgresURL(t)
			s := openURL(t, url)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			t0 := time.Now().UTC().Truncate(time.Microsecond).Add(-time.Hour)
			if err := s.CreateUser(ctx, store.User{ID: "u", Username: "racer", Email: "racer@example.com", PasswordHash: "h", CreatedAt: t0}); err != nil {
				t.Fatal(err)
			}
			if err := s.CreateRefreshToken(ctx, token("t1", t0)); err != nil {
				t.Fatal(err)
			}
			if _, err := s.RotateRefreshToken(ctx, "t1", token("t2", t0), t0, 0); err != nil { // t1 retired, t2 the newest
				t.Fatal(err)
			}

			holder, err := pgx.Connect(ctx, url)
			if err != nil {
				t.Fatal(err)
			}
			defer holder.Close(context.Background())
			hold, err := holder.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := hold.Exec(ctx, `SELECT 1 FROM users WHERE id = 'u' FOR UPDATE`); err != nil {
				t.Fatal(err)
			}

			now := time.Now().UTC().Truncate(time.Microsecond)
			rotated, revoked := make(chan error, 1), make(chan error, 1)
			go func() { _, err := s.RotateRefreshToken(ctx, "t2", token("t3", now), now, 0); rotated <- err }()
			waitLockWaiters(t, holder, 1)
			go func() { revoked <- tc.revoke(ctx, s, now) }()
			waitLockWaiters(t, holder, 2)
			if err := hold.Rollback(ctx); err != nil {
				t.Fatal(err)
			}
			if err := <-rotated; err != nil {
				t.Fatalf("the held rotation t2 → t3: %v", err)
			}
			if err := <-revoked; !errors.Is(err, tc.want) && !(tc.want == nil && err == nil) {
				t.Fatalf("the %s racing it: %v, want %v", tc.name, err, tc.want)
			}
			_, err = s.RotateRefreshToken(ctx, "t3", token("t4", now), now.Add(time.Minute), 0)
			if !errors.Is(err, store.ErrTokenRevoked) {
				t.Fatalf("rotating t3, the successor added while the %s ran: %v, want ErrTokenRevoked (its family was revoked)", tc.name, err)
			}
		})
	}
}

func token(id string, created time.Time) store.RefreshToken {
	return store.RefreshToken{ID: id, FamilyID: "fam", UserID: "u", CreatedAt: created, ExpiresAt: created.Add(24 * time.Hour)}
}

// waitLockWaiters waits until n other backends of the database wait on a
// lock.
func waitLockWaiters(t *testing.T, conn *pgx.Conn, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var got int
		if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()`).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d backends wait on a lock after 30 s, want %d", got, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestPrivateTables: the tables holding the JWT secret, login tokens,
// password hashes and API-key hashes grant nothing to PUBLIC: another role
// on the same PostgreSQL (not a superuser, not a member of the server's
// role or of pg_read_all_data) cannot read them. A migration that granted
// them away would fail here. docs/store.md says who can read them.
func TestPrivateTables(t *testing.T) {
	url := infratest.PostgresURL(t)
	openURL(t, url) // migrated
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	role := fmt.Sprintf("hal9_other_%d", time.Now().UnixNano())
	if _, err := conn.Exec(ctx, `CREATE ROLE `+role+` NOLOGIN`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Exec(context.Background(), `DROP ROLE IF EXISTS `+role) })
	for _, table := range []string{"server_secrets", "refresh_tokens", "users", "api_keys"} {
		var acl *string
		if err := conn.QueryRow(ctx, `SELECT relacl::text FROM pg_class WHERE oid = $1::regclass`, table).Scan(&acl); err != nil {
			t.Fatal(err)
		}
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `SET LOCAL ROLE `+role); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `SELECT * FROM `+table+` LIMIT 1`)
			return err
		})
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "42501" {
			t.Errorf("SELECT from %s as another role: %v, want permission denied (42501); its grants: %v", table, err, deref(acl))
		}
	}
}

func deref(s *string) string {
	if s == nil {
		return "none (the owner only)"
	}
	return *s
}
