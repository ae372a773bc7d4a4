package storetest

import (
	"context"
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

// rotate rotates without a grace: every replay is a reuse.
func rotate(ctx context.Context, s store.Store, oldID string, next store.RefreshToken, at time.Time) error {
	got, err := s.RotateRefreshToken(ctx, oldID, next, at, 0)
	if err == nil && got != next {
		return fmt.Errorf("RotateRefreshToken returned %+v, want the new token %+v", got, next)
	}
	return err
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
	mustNoErr(t, rotate(ctx, s, "a1", a2, t0.Add(time.Second)), "rotate a1")
	a3 := refreshToken("a3", "fam-a", u.ID, t0.Add(2*time.Second))
	mustNoErr(t, rotate(ctx, s, "a2", a3, t0.Add(2*time.Second)), "rotate a2")

	wantErr(t, rotate(ctx, s, "missing", refreshToken("m2", "fam-a", u.ID, t0), t0), store.ErrNotFound, "rotate an unknown token")
	wantErr(t, rotate(ctx, s, "a3", refreshToken("a4x", "fam-b", u.ID, t0), t0), store.ErrNotFound, "rotate into another family")

	// Replay of a retired token: refused, and the family (a3 too) is revoked.
	wantErr(t, rotate(ctx, s, "a1", refreshToken("a-evil", "fam-a", u.ID, t0), t0.Add(3*time.Second)),
		store.ErrTokenReused, "replay of a1")
	wantErr(t, rotate(ctx, s, "a3", refreshToken("a4", "fam-a", u.ID, t0), t0.Add(4*time.Second)),
		store.ErrTokenRevoked, "the newest token after a replay in its family")
	// The other families are untouched.
	mustNoErr(t, rotate(ctx, s, "b1", refreshToken("b2", "fam-b", u.ID, t0), t0.Add(time.Second)), "rotate b1 after fam-a's revocation")
	mustNoErr(t, rotate(ctx, s, "c1", refreshToken("c2", "fam-c", v.ID, t0), t0.Add(time.Second)), "rotate c1")

	// Logout revokes the family; again is fine; unknown is ErrNotFound.
	mustNoErr(t, s.RevokeRefreshFamily(ctx, "fam-b", t0.Add(5*time.Second)), "revoke fam-b")
	mustNoErr(t, s.RevokeRefreshFamily(ctx, "fam-b", t0.Add(6*time.Second)), "revoke fam-b again")
	wantErr(t, s.RevokeRefreshFamily(ctx, "fam-missing", t0), store.ErrNotFound, "revoke an unknown family")
	wantErr(t, rotate(ctx, s, "b2", refreshToken("b3", "fam-b", u.ID, t0), t0.Add(7*time.Second)),
		store.ErrTokenRevoked, "rotate after logout")

	// Expiry.
	wantErr(t, rotate(ctx, s, "c2", refreshToken("c3", "fam-c", v.ID, t0), t0.Add(2*time.Hour)),
		store.ErrTokenRevoked, "rotate an expired token")
	n, err := s.DeleteExpiredRefreshTokens(ctx, t0.Add(90*time.Minute))
	mustNoErr(t, err, "DeleteExpiredRefreshTokens")
	if n < 5 {
		t.Fatalf("DeleteExpiredRefreshTokens removed %d tokens, want every token (all expire within the hour)", n)
	}
	wantErr(t, rotate(ctx, s, "c2", refreshToken("c3", "fam-c", v.ID, t0), t0), store.ErrNotFound, "rotate a deleted token")

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
			errs[i] = rotate(ctx, s, "d1", refreshToken(fmt.Sprintf("d2-%d", i), "fam-d", u.ID, t0), t0.Add(time.Second))
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
	wantErr(t, rotate(ctx, s, fmt.Sprintf("d2-%d", won), refreshToken("d3", "fam-d", u.ID, t0), t0.Add(2*time.Second)),
		store.ErrTokenRevoked, "the race winner's token after the replay")
}

// testRefreshGrace: a replay of the just-rotated token within the grace
// is a retry after a lost answer: it gets the successor already stored
// (nothing written, the family intact), as often as it retries and also
// when two refreshes race. Past the grace, once the successor was used, or
// in a revoked family, a replay is what it always was.
func testRefreshGrace(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	u := user("gr")
	mustNoErr(t, s.CreateUser(ctx, u), "CreateUser")
	t0 := now()
	const grace = 10 * time.Second
	rot := func(old string, next store.RefreshToken, at time.Time) (store.RefreshToken, error) {
		return s.RotateRefreshToken(ctx, old, next, at, grace)
	}
	same := func(got, want store.RefreshToken, what string) {
		t.Helper()
		if got.ID != want.ID || got.FamilyID != want.FamilyID || got.UserID != want.UserID ||
			!got.CreatedAt.Equal(want.CreatedAt) || !got.ExpiresAt.Equal(want.ExpiresAt) {
			t.Fatalf("%s: got %+v, want %+v", what, got, want)
		}
	}

	// A lost answer: e1 → e2, then e1 again (twice) within the grace.
	e1 := refreshToken("e1", "fam-e", u.ID, t0)
	mustNoErr(t, s.CreateRefreshToken(ctx, e1), "CreateRefreshToken e1")
	e2 := refreshToken("e2", "fam-e", u.ID, t0.Add(time.Second))
	got, err := rot("e1", e2, t0.Add(time.Second))
	mustNoErr(t, err, "rotate e1")
	same(got, e2, "rotate e1")
	for i, at := range []time.Duration{3 * time.Second, 10 * time.Second} {
		got, err = rot("e1", refreshToken(fmt.Sprintf("e2-retry-%d", i), "fam-e", u.ID, t0.Add(at)), t0.Add(at))
		mustNoErr(t, err, fmt.Sprintf("replay of e1 %v after its rotation", at-time.Second))
		same(got, e2, "replay of e1 within the grace")
	}
	wantErr(t, rotate(ctx, s, "e2-retry-0", refreshToken("x", "fam-e", u.ID, t0), t0.Add(4*time.Second)), store.ErrNotFound,
		"the replay's own new token (never stored)")
	e3 := refreshToken("e3", "fam-e", u.ID, t0.Add(12*time.Second))
	got, err = rot("e2", e3, t0.Add(12*time.Second))
	mustNoErr(t, err, "rotate e2, the successor the replays got")
	same(got, e3, "rotate e2")
	// e1's successor is used now: e1 is no longer the just-rotated token.
	_, err = rot("e1", refreshToken("e-late", "fam-e", u.ID, t0), t0.Add(13*time.Second))
	wantErr(t, err, store.ErrTokenReused, "replay of e1 after its successor was used")
	wantErr(t, rotate(ctx, s, "e3", refreshToken("e4", "fam-e", u.ID, t0), t0.Add(14*time.Second)), store.ErrTokenRevoked,
		"e3 after the reuse of e1")

	// Past the grace, a replay revokes the family.
	f1 := refreshToken("f1", "fam-f", u.ID, t0)
	mustNoErr(t, s.CreateRefreshToken(ctx, f1), "CreateRefreshToken f1")
	_, err = rot("f1", refreshToken("f2", "fam-f", u.ID, t0), t0)
	mustNoErr(t, err, "rotate f1")
	_, err = rot("f1", refreshToken("f-late", "fam-f", u.ID, t0), t0.Add(grace+time.Second))
	wantErr(t, err, store.ErrTokenReused, "replay of f1 after the grace")
	wantErr(t, rotate(ctx, s, "f2", refreshToken("f3", "fam-f", u.ID, t0), t0.Add(grace+2*time.Second)), store.ErrTokenRevoked,
		"f2 after the late replay")

	// A logged-out family gets nothing, grace or not.
	h1 := refreshToken("h1", "fam-h", u.ID, t0)
	mustNoErr(t, s.CreateRefreshToken(ctx, h1), "CreateRefreshToken h1")
	_, err = rot("h1", refreshToken("h2", "fam-h", u.ID, t0), t0)
	mustNoErr(t, err, "rotate h1")
	mustNoErr(t, s.RevokeRefreshFamily(ctx, "fam-h", t0.Add(time.Second)), "logout fam-h")
	_, err = rot("h1", refreshToken("h-retry", "fam-h", u.ID, t0), t0.Add(2*time.Second))
	wantErr(t, err, store.ErrTokenRevoked, "replay of h1 within the grace after logout")

	// Two refreshes racing with one token (two tabs): both get the same successor.
	d1 := refreshToken("d1", "fam-d", u.ID, t0)
	mustNoErr(t, s.CreateRefreshToken(ctx, d1), "CreateRefreshToken d1")
	var wg sync.WaitGroup
	gots := make([]store.RefreshToken, 2)
	errs := make([]error, 2)
	for i := range gots {
		wg.Add(1)
		go func() {
			defer wg.Done()
			gots[i], errs[i] = rot("d1", refreshToken(fmt.Sprintf("d2-%d", i), "fam-d", u.ID, t0), t0.Add(time.Second))
		}()
	}
	wg.Wait()
	mustNoErr(t, errors.Join(errs...), "racing refreshes within the grace")
	if gots[0].ID != gots[1].ID {
		t.Fatalf("racing refreshes within the grace got %q and %q, want one successor for both", gots[0].ID, gots[1].ID)
	}
	_, err = rot(gots[0].ID, refreshToken("d3", "fam-d", u.ID, t0), t0.Add(2*time.Second))
	mustNoErr(t, err, "rotate the racers' successor")
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
