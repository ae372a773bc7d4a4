package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hal9-lab/hal9-lab/server/store"
)

func refreshToken(id, family, userID string, created time.Time) store.RefreshToken {
	return store.RefreshToken{ID: id, FamilyID: family, UserID: userID, CreatedAt: created, ExpiresAt: created.Add(time.Hour)}
}

// testRefreshTokens: rotation retires the token presented; presenting it
// again revokes its whole family (and only it); logout revokes a family;
// expired tokens are refused and deleted.
func testRefreshTokens(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	u, v := user("rt"), user("rt2")
	mustNoErr(t, s.CreateUser(ctx, u), "CreateUser")
	mustNoErr(t, s.CreateUser(ctx, v), "CreateUser 2")
	t0 := now()

	a1 := refreshToken("a1", "fam-a", u.ID, t0)
	b1 := refreshToken("b1", "fam-b", u.ID, t0) // another login of the same user
	c1 := refreshToken("c1", "fam-c", v.ID, t0)
	for _, tk := range []store.RefreshToken{a1, b1, c1} {
		mustNoErr(t, s.CreateRefreshToken(ctx, tk), "CreateRefreshToken "+tk.ID)
	}
	wantErr(t, s.CreateRefreshToken(ctx, a1), store.ErrConflict, "CreateRefreshToken with a taken id")
	wantErr(t, s.CreateRefreshToken(ctx, refreshToken("x", "fam-x", "u-missing", t0)), store.ErrNotFound, "CreateRefreshToken for an unknown user")

	// Rotation: a1 → a2 → a3.
	a2 := refreshToken("a2", "fam-a", u.ID, t0.Add(time.Second))
	mustNoErr(t, s.RotateRefreshToken(ctx, "a1", a2, t0.Add(time.Second)), "rotate a1")
	a3 := refreshToken("a3", "fam-a", u.ID, t0.Add(2*time.Second))
	mustNoErr(t, s.RotateRefreshToken(ctx, "a2", a3, t0.Add(2*time.Second)), "rotate a2")

	wantErr(t, s.RotateRefreshToken(ctx, "missing", refreshToken("m2", "fam-a", u.ID, t0), t0), store.ErrNotFound, "rotate an unknown token")
	wantErr(t, s.RotateRefreshToken(ctx, "a3", refreshToken("a4x", "fam-b", u.ID, t0), t0), store.ErrNotFound, "rotate into another family")

	// Replay of a retired token: refused, and the family (a3 too) is revoked.
	wantErr(t, s.RotateRefreshToken(ctx, "a1", refreshToken("a-evil", "fam-a", u.ID, t0), t0.Add(3*time.Second)),
		store.ErrTokenReused, "replay of a1")
	wantErr(t, s.RotateRefreshToken(ctx, "a3", refreshToken("a4", "fam-a", u.ID, t0), t0.Add(4*time.Second)),
		store.ErrTokenRevoked, "the newest token after a replay in its family")
	// The other families are untouched.
	mustNoErr(t, s.RotateRefreshToken(ctx, "b1", refreshToken("b2", "fam-b", u.ID, t0), t0.Add(time.Second)), "rotate b1 after fam-a's revocation")
	mustNoErr(t, s.RotateRefreshToken(ctx, "c1", refreshToken("c2", "fam-c", v.ID, t0), t0.Add(time.Second)), "rotate c1")

	// Logout revokes the family; again is fine; unknown is ErrNotFound.
	mustNoErr(t, s.RevokeRefreshFamily(ctx, "fam-b", t0.Add(5*time.Second)), "revoke fam-b")
	mustNoErr(t, s.RevokeRefreshFamily(ctx, "fam-b", t0.Add(6*time.Second)), "revoke fam-b again")
	wantErr(t, s.RevokeRefreshFamily(ctx, "fam-missing", t0), store.ErrNotFound, "revoke an unknown family")
	wantErr(t, s.RotateRefreshToken(ctx, "b2", refreshToken("b3", "fam-b", u.ID, t0), t0.Add(7*time.Second)),
		store.ErrTokenRevoked, "rotate after logout")

	// Expiry.
	wantErr(t, s.RotateRefreshToken(ctx, "c2", refreshToken("c3", "fam-c", v.ID, t0), t0.Add(2*time.Hour)),
		store.ErrTokenRevoked, "rotate an expired token")
	n, err := s.DeleteExpiredRefreshTokens(ctx, t0.Add(90*time.Minute))
	mustNoErr(t, err, "DeleteExpiredRefreshTokens")
	if n < 5 {
		t.Fatalf("DeleteExpiredRefreshTokens removed %d tokens, want every token (all expire within the hour)", n)
	}
	wantErr(t, s.RotateRefreshToken(ctx, "c2", refreshToken("c3", "fam-c", v.ID, t0), t0), store.ErrNotFound, "rotate a deleted token")

	// Two refreshes racing with one token: exactly one wins; the loser
	// is a replay and revokes the family, winner's successor included.
	d1 := refreshToken("d1", "fam-d", u.ID, t0)
	mustNoErr(t, s.CreateRefreshToken(ctx, d1), "CreateRefreshToken d1")
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.RotateRefreshToken(ctx, "d1", refreshToken(fmt.Sprintf("d2-%d", i), "fam-d", u.ID, t0), t0.Add(time.Second))
		}()
	}
	wg.Wait()
	won := -1
	for i, err := range errs {
		switch {
		case err == nil:
			won = i
		case !errors.Is(err, store.ErrTokenReused):
			t.Fatalf("racing refresh %d: %v, want nil or ErrTokenReused", i, err)
		}
	}
	if won < 0 || errs[1-won] == nil {
		t.Fatalf("racing refreshes: %v, want exactly one success", errs)
	}
	wantErr(t, s.RotateRefreshToken(ctx, fmt.Sprintf("d2-%d", won), refreshToken("d3", "fam-d", u.ID, t0), t0.Add(2*time.Second)),
		store.ErrTokenRevoked, "the race winner's token after the replay")
}

// testSecrets: the first candidate stored under a name is the one every
// later caller gets, even when many race.
func testSecrets(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	var wg sync.WaitGroup
	got := make([][]byte, 8)
	errs := make([]error, len(got))
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i], errs[i] = s.EnsureSecret(ctx, "jwt", []byte(fmt.Sprintf("candidate-%d-%032d", i, i)))
		}()
	}
	wg.Wait()
	for i := range got {
		mustNoErr(t, errs[i], "EnsureSecret")
		if string(got[i]) != string(got[0]) {
			t.Fatalf("EnsureSecret gave different secrets to racing callers: %q and %q", got[0], got[i])
		}
	}
	again, err := s.EnsureSecret(ctx, "jwt", []byte("a later candidate, ignored"))
	mustNoErr(t, err, "EnsureSecret again")
	if string(again) != string(got[0]) {
		t.Fatalf("EnsureSecret later = %q, want the stored %q", again, got[0])
	}
	other, err := s.EnsureSecret(ctx, "other", []byte("other secret"))
	mustNoErr(t, err, "EnsureSecret other name")
	if string(other) != "other secret" {
		t.Fatalf("a second name got %q", other)
	}
	if _, err := s.EnsureSecret(ctx, "empty", nil); err == nil {
		t.Fatal("EnsureSecret accepted an empty candidate")
	}
}

// testFailManyPending: a sweep larger than one chunk fails every stale
// pending signal and nothing else.
func testFailManyPending(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	const stale = 600
	cut := now()
	saveConcurrently(t, s, stale, func(i int) store.Signal {
		return signal(fmt.Sprintf("mp-%d", i), cut.Add(-time.Hour))
	})
	keep := signal("mp-fresh", cut.Add(time.Minute))
	mustNoErr(t, s.SaveSignal(ctx, keep, nil, nil), "SaveSignal fresh")
	n, err := s.FailPendingSignals(ctx, cut)
	mustNoErr(t, err, "FailPendingSignals")
	if n != stale {
		t.Fatalf("FailPendingSignals changed %d signals, want %d", n, stale)
	}
	got, _, err := s.GetSignal(ctx, keep.ID)
	mustNoErr(t, err, "GetSignal fresh")
	if got.Status != store.SignalPending {
		t.Fatalf("a fresh pending signal was failed: %+v", got)
	}
}

// saveConcurrently saves n signals from 16 goroutines.
func saveConcurrently(t *testing.T, s store.Store, n int, mk func(i int) store.Signal) {
	t.Helper()
	ctx := ctxT(t)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	next := make(chan int, n)
	for i := range n {
		next <- i
	}
	close(next)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := s.SaveSignal(ctx, mk(i), nil, nil); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
