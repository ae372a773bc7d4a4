// Package storetest is the contract every store.Store implementation passes.
// One behaviour, several databases: the sqlite and postgres packages run
// this same suite in their tests.
//
//	func TestContract(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store { return openFresh(t) },
//			storetest.WithReopen(newDatabase))
//	}
package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hal9-lab/hal9-lab/server/store"
)

// Opener opens a Store. The suite calls it once per subtest and expects a
// migrated, EMPTY store each time; the opener registers Close with
// t.Cleanup (Close must therefore tolerate being called twice).
type Opener func(t *testing.T) store.Store

// Option adjusts the suite.
type Option func(*config)

type config struct {
	newDB func(t *testing.T) Opener
}

// WithReopen enables the durability subtest. newDB creates one fresh backing
// database (a file, a PostgreSQL database) and returns an Opener for it; every
// call of that Opener opens a new Store on the SAME database, so the suite can
// write, Close, open again and read back. Without this option the durability
// subtest is skipped.
func WithReopen(newDB func(t *testing.T) Opener) Option {
	return func(c *config) { c.newDB = newDB }
}

// Run runs the whole contract against the stores open returns.
func Run(t *testing.T, open Opener, opts ...Option) {
	t.Helper()
	var c config
	for _, o := range opts {
		o(&c)
	}
	mustOpen := func(t *testing.T) store.Store {
		t.Helper()
		s := open(t)
		if s == nil {
			t.Fatal("open returned a nil store")
		}
		return s
	}
	t.Run("Migrate", func(t *testing.T) { testMigrate(t, mustOpen(t)) })
	t.Run("Users", func(t *testing.T) { testUsers(t, mustOpen(t)) })
	t.Run("APIKeys", func(t *testing.T) { testAPIKeys(t, mustOpen(t)) })
	t.Run("Neurons", func(t *testing.T) { testNeurons(t, mustOpen(t)) })
	t.Run("Signals", func(t *testing.T) { testSignals(t, mustOpen(t)) })
	t.Run("SearchMemories", func(t *testing.T) { testSearch(t, mustOpen(t)) })
	t.Run("MemoriesArePerUser", func(t *testing.T) { testMemoryIsolation(t, mustOpen(t)) })
	t.Run("FailPendingSignals", func(t *testing.T) { testFailPending(t, mustOpen(t)) })
	t.Run("FailSignals", func(t *testing.T) { testFailSignals(t, mustOpen(t)) })
	t.Run("FailManyPendingSignals", func(t *testing.T) { testFailManyPending(t, mustOpen(t)) })
	t.Run("RefreshTokens", func(t *testing.T) { testRefreshTokens(t, mustOpen(t)) })
	t.Run("RefreshGrace", func(t *testing.T) { testRefreshGrace(t, mustOpen(t)) })
	t.Run("Secrets", func(t *testing.T) { testSecrets(t, mustOpen(t)) })
	t.Run("LLMSpend", func(t *testing.T) { testLLMSpend(t, mustOpen(t)) })
	t.Run("CanceledContext", func(t *testing.T) { testCanceled(t, mustOpen(t)) })
	t.Run("ConcurrentWriters", func(t *testing.T) { testConcurrent(t, mustOpen(t)) })
	t.Run("CloseIsDurable", func(t *testing.T) {
		if c.newDB == nil {
			t.Skip("no storetest.WithReopen option: cannot reopen the same database")
		}
		testDurable(t, c.newDB(t))
	})
}

// now returns a time both databases store exactly (microseconds, UTC).
func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func mustNoErr(t *testing.T, err error, what string) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func wantErr(t *testing.T, err, target error, what string) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: got error %v, want %v", what, err, target)
	}
}

// utc normalises every time.Time field (and zeroes search ranks) so that
// values read back compare with reflect.DeepEqual regardless of the location
// or monotonic reading a driver returns.
func utc[T any](v T) T {
	rv := reflect.ValueOf(&v).Elem()
	normalize(rv)
	return v
}

func normalize(v reflect.Value) {
	switch v.Kind() {
	case reflect.Struct:
		if tm, ok := v.Interface().(time.Time); ok {
			if tm.IsZero() {
				v.Set(reflect.ValueOf(time.Time{}))
			} else {
				v.Set(reflect.ValueOf(tm.UTC()))
			}
			return
		}
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).Name == "Rank" {
				v.Field(i).SetFloat(0)
				continue
			}
			normalize(v.Field(i))
		}
	case reflect.Slice:
		if v.Len() == 0 {
			v.Set(reflect.Zero(v.Type())) // nil and empty compare equal
			return
		}
		for i := 0; i < v.Len(); i++ {
			normalize(v.Index(i))
		}
	}
}

func sameValue(t *testing.T, what string, got, want any) {
	t.Helper()
	g, w := utc(got), utc(want)
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("%s:\n got  %+v\n want %+v", what, g, w)
	}
}

func testMigrate(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	mustNoErr(t, s.Migrate(ctx), "Migrate on a migrated store")
	mustNoErr(t, s.Migrate(ctx), "Migrate a second time")
	mustNoErr(t, s.Ping(ctx), "Ping")
}

func user(n string) store.User {
	return store.User{
		ID:           "u-" + n,
		Username:     "user_" + n,
		Email:        n + "@example.com",
		PasswordHash: "$2a$04$hash-of-" + n,
		CreatedAt:    now(),
	}
}

func testUsers(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	a := user("a")
	mustNoErr(t, s.CreateUser(ctx, a), "CreateUser a")

	got, err := s.UserByID(ctx, a.ID)
	mustNoErr(t, err, "UserByID")
	sameValue(t, "UserByID", got, a)
	got, err = s.UserByUsername(ctx, a.Username)
	mustNoErr(t, err, "UserByUsername")
	sameValue(t, "UserByUsername", got, a)

	conflicts := []struct {
		name  string
		u     store.User
		field string // the ConflictError's Field
	}{
		{"same username", store.User{ID: "u-x1", Username: a.Username, Email: "x1@example.com", PasswordHash: "h", CreatedAt: now()}, "username"},
		{"same email", store.User{ID: "u-x2", Username: "other", Email: a.Email, PasswordHash: "h", CreatedAt: now()}, "email"},
		{"same id", store.User{ID: a.ID, Username: "other2", Email: "x3@example.com", PasswordHash: "h", CreatedAt: now()}, ""},
	}
	for _, c := range conflicts {
		err := s.CreateUser(ctx, c.u)
		wantErr(t, err, store.ErrConflict, "CreateUser with "+c.name)
		var ce *store.ConflictError
		if !errors.As(err, &ce) || ce.Field != c.field {
			t.Fatalf("CreateUser with %s: %#v, want a *store.ConflictError with Field %q", c.name, err, c.field)
		}
	}
	// A conflict must not leave a partial row behind.
	_, err = s.UserByUsername(ctx, "other")
	wantErr(t, err, store.ErrNotFound, "UserByUsername after a failed create")

	b := user("b")
	mustNoErr(t, s.CreateUser(ctx, b), "CreateUser b")
	got, err = s.UserByUsername(ctx, b.Username)
	mustNoErr(t, err, "UserByUsername b")
	sameValue(t, "UserByUsername b", got, b)

	_, err = s.UserByID(ctx, "u-missing")
	wantErr(t, err, store.ErrNotFound, "UserByID unknown")
	_, err = s.UserByUsername(ctx, "missing")
	wantErr(t, err, store.ErrNotFound, "UserByUsername unknown")
}

func apiKey(id, userID string, created time.Time) store.APIKey {
	return store.APIKey{
		ID: id, UserID: userID, Name: "key " + id, Prefix: "hal9_" + id[:2],
		Hash: fmt.Sprintf("%064x", []byte(id)), CreatedAt: created,
	}
}

func testAPIKeys(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	a, b := user("a"), user("b")
	mustNoErr(t, s.CreateUser(ctx, a), "CreateUser a")
	mustNoErr(t, s.CreateUser(ctx, b), "CreateUser b")

	t0 := now()
	ka1 := apiKey("ka1", a.ID, t0)
	ka2 := apiKey("ka2", a.ID, t0.Add(time.Second))
	kb1 := apiKey("kb1", b.ID, t0)
	for _, k := range []store.APIKey{ka2, ka1, kb1} {
		mustNoErr(t, s.CreateAPIKey(ctx, k), "CreateAPIKey "+k.ID)
	}

	got, err := s.APIKeyByHash(ctx, ka1.Hash)
	mustNoErr(t, err, "APIKeyByHash")
	sameValue(t, "APIKeyByHash", got, ka1)
	_, err = s.APIKeyByHash(ctx, "0000")
	wantErr(t, err, store.ErrNotFound, "APIKeyByHash unknown")

	dup := apiKey("kdup", a.ID, t0)
	dup.Hash = ka1.Hash
	wantErr(t, s.CreateAPIKey(ctx, dup), store.ErrConflict, "CreateAPIKey with a duplicate hash")
	wantErr(t, s.CreateAPIKey(ctx, apiKey("ka1", b.ID, t0)), store.ErrConflict, "CreateAPIKey with a duplicate id")
	wantErr(t, s.CreateAPIKey(ctx, apiKey("kx", "u-missing", t0)), store.ErrNotFound, "CreateAPIKey for an unknown user")

	list, err := s.ListAPIKeys(ctx, a.ID)
	mustNoErr(t, err, "ListAPIKeys a")
	sameValue(t, "ListAPIKeys a (oldest first)", list, []store.APIKey{ka1, ka2})
	list, err = s.ListAPIKeys(ctx, "u-missing")
	mustNoErr(t, err, "ListAPIKeys unknown user")
	if len(list) != 0 {
		t.Fatalf("ListAPIKeys unknown user: got %d keys, want 0", len(list))
	}

	// Touch.
	used := t0.Add(time.Minute)
	mustNoErr(t, s.TouchAPIKey(ctx, ka1.ID, used), "TouchAPIKey")
	got, err = s.APIKeyByHash(ctx, ka1.Hash)
	mustNoErr(t, err, "APIKeyByHash after touch")
	if !got.LastUsedAt.Equal(used) {
		t.Fatalf("LastUsedAt after touch = %v, want %v", got.LastUsedAt, used)
	}
	wantErr(t, s.TouchAPIKey(ctx, "k-missing", used), store.ErrNotFound, "TouchAPIKey unknown")

	// Delete: only the owner's own keys.
	wantErr(t, s.DeleteAPIKey(ctx, b.ID, ka1.ID), store.ErrNotFound, "DeleteAPIKey of another user's key")
	if _, err := s.APIKeyByHash(ctx, ka1.Hash); err != nil {
		t.Fatalf("key deleted by another user: %v", err)
	}
	wantErr(t, s.DeleteAPIKey(ctx, a.ID, "k-missing"), store.ErrNotFound, "DeleteAPIKey unknown id")
	mustNoErr(t, s.DeleteAPIKey(ctx, a.ID, ka1.ID), "DeleteAPIKey own")
	_, err = s.APIKeyByHash(ctx, ka1.Hash)
	wantErr(t, err, store.ErrNotFound, "APIKeyByHash after delete")
	wantErr(t, s.DeleteAPIKey(ctx, a.ID, ka1.ID), store.ErrNotFound, "DeleteAPIKey twice")
	list, err = s.ListAPIKeys(ctx, a.ID)
	mustNoErr(t, err, "ListAPIKeys after delete")
	sameValue(t, "ListAPIKeys after delete", list, []store.APIKey{ka2})
	list, err = s.ListAPIKeys(ctx, b.ID)
	mustNoErr(t, err, "ListAPIKeys b")
	sameValue(t, "ListAPIKeys b", list, []store.APIKey{kb1})
}

func testNeurons(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	list, err := s.ListNeurons(ctx)
	mustNoErr(t, err, "ListNeurons empty")
	if len(list) != 0 {
		t.Fatalf("ListNeurons on an empty store: %d neurons", len(list))
	}
	mustNoErr(t, s.UpsertNeurons(ctx, nil), "UpsertNeurons(nil)")

	t0 := now()
	ns := []store.Neuron{
		{ID: "l2-a", Layer: "L2", State: "active", UpdatedAt: t0},
		{ID: "l1-a", Layer: "L1", State: "active", UpdatedAt: t0},
		{ID: "l5-a", Layer: "L5", State: "active", UpdatedAt: t0},
	}
	mustNoErr(t, s.UpsertNeurons(ctx, ns), "UpsertNeurons")
	list, err = s.ListNeurons(ctx)
	mustNoErr(t, err, "ListNeurons")
	sameValue(t, "ListNeurons (ordered by id)", list, []store.Neuron{ns[1], ns[0], ns[2]})

	t1 := t0.Add(time.Second)
	upd := []store.Neuron{
		{ID: "l2-a", Layer: "L2", State: "degraded", UpdatedAt: t1},
		{ID: "l3-a", Layer: "L3", State: "active", UpdatedAt: t1},
	}
	mustNoErr(t, s.UpsertNeurons(ctx, upd), "UpsertNeurons update")
	list, err = s.ListNeurons(ctx)
	mustNoErr(t, err, "ListNeurons after update")
	sameValue(t, "ListNeurons after update", list, []store.Neuron{ns[1], upd[0], upd[1], ns[2]})
}

func signal(id string, created time.Time) store.Signal {
	return store.Signal{
		ID: id, UserID: "u-1", Layer: "L4", NeuronID: "l4-a",
		Content: "plan the quarterly roadmap", Status: store.SignalPending, CreatedAt: created,
	}
}

func hops(id string, n int) []store.Hop {
	hs := make([]store.Hop, n)
	for i := range hs {
		hs[i] = store.Hop{
			SignalID: id, Seq: i, NeuronID: fmt.Sprintf("n-%d", i), Layer: fmt.Sprintf("L%d", 4-i%4),
			Cache: []string{"hit", "miss"}[i%2], TokensIn: 10 * (i + 1), TokensOut: 20 * (i + 1),
			CostUSD: 0.000125 * float64(i+1), DurationMS: 1.5 * float64(i+1),
		}
	}
	return hs
}

func testSignals(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	_, _, err := s.GetSignal(ctx, "sig-missing")
	wantErr(t, err, store.ErrNotFound, "GetSignal unknown")

	created := now()
	sig := signal("sig-1", created)
	mustNoErr(t, s.SaveSignal(ctx, sig, nil, nil), "SaveSignal pending")
	got, gotHops, err := s.GetSignal(ctx, sig.ID)
	mustNoErr(t, err, "GetSignal pending")
	sameValue(t, "pending signal", got, sig)
	if len(gotHops) != 0 {
		t.Fatalf("pending signal has %d hops, want 0", len(gotHops))
	}

	// Complete it: hops given out of order come back ordered by Seq.
	done := sig
	done.Status = store.SignalProcessed
	done.Output = "roadmap: ship the lab"
	done.TokensIn, done.TokensOut, done.CostUSD, done.DurationMS = 60, 120, 0.00075, 12.25
	done.CompletedAt = created.Add(12 * time.Millisecond)
	hs := hops(sig.ID, 3)
	shuffled := []store.Hop{hs[2], hs[0], hs[1]}
	mems := []store.Memory{
		{NeuronID: "l4-a", Layer: "L4", SignalID: sig.ID, Content: "zanzibar roadmap remembered", CreatedAt: done.CompletedAt},
		{NeuronID: "l3-a", Layer: "L3", SignalID: sig.ID, Content: "zanzibar design remembered", CreatedAt: done.CompletedAt},
	}
	mustNoErr(t, s.SaveSignal(ctx, done, shuffled, mems), "SaveSignal processed")
	got, gotHops, err = s.GetSignal(ctx, sig.ID)
	mustNoErr(t, err, "GetSignal processed")
	sameValue(t, "processed signal", got, done)
	sameValue(t, "hops ordered by seq", gotHops, hs)

	found, err := s.SearchMemories(ctx, "u-1", "zanzibar", 10)
	mustNoErr(t, err, "SearchMemories")
	if len(found) != 2 {
		t.Fatalf("SearchMemories after save: %d memories, want 2", len(found))
	}
	for _, m := range found {
		if m.SignalID != sig.ID || m.ID == 0 || m.NeuronID == "" || m.Layer == "" || m.CreatedAt.IsZero() {
			t.Fatalf("memory read back incompletely: %+v", m)
		}
	}

	// Saving again replaces hops and memories instead of adding to them.
	again := done
	again.Output = "roadmap v2"
	mustNoErr(t, s.SaveSignal(ctx, again, hs[:2], mems[:1]), "SaveSignal again")
	got, gotHops, err = s.GetSignal(ctx, sig.ID)
	mustNoErr(t, err, "GetSignal after re-save")
	sameValue(t, "re-saved signal", got, again)
	sameValue(t, "re-saved hops", gotHops, hs[:2])
	found, err = s.SearchMemories(ctx, "u-1", "zanzibar", 10)
	mustNoErr(t, err, "SearchMemories after re-save")
	if len(found) != 1 || found[0].NeuronID != "l4-a" {
		t.Fatalf("memories after re-save: %+v, want only l4-a's", found)
	}

	// SaveSignal is atomic: a bad hop (duplicate seq) leaves the earlier save intact.
	broken := again
	broken.Output = "must not be stored"
	dupHops := []store.Hop{hs[0], hs[1], hs[1]}
	wantErr(t, s.SaveSignal(ctx, broken, dupHops, nil), store.ErrConflict, "SaveSignal with a duplicate hop seq")
	got, gotHops, err = s.GetSignal(ctx, sig.ID)
	mustNoErr(t, err, "GetSignal after a failed save")
	sameValue(t, "signal after a failed save", got, again)
	sameValue(t, "hops after a failed save", gotHops, hs[:2])
	if found, err = s.SearchMemories(ctx, "u-1", "zanzibar", 10); err != nil || len(found) != 1 {
		t.Fatalf("memories after a failed save: %d, %v; want the 1 from the last good save", len(found), err)
	}

	// A failed signal without a user.
	failed := signal("sig-2", created.Add(time.Second))
	failed.UserID = ""
	failed.Status = store.SignalFailed
	failed.Error = "llm: circuit open"
	failed.CompletedAt = failed.CreatedAt.Add(time.Millisecond)
	fh := hops(failed.ID, 1)
	fh[0].Error = "circuit open"
	mustNoErr(t, s.SaveSignal(ctx, failed, fh, nil), "SaveSignal failed")
	got, gotHops, err = s.GetSignal(ctx, failed.ID)
	mustNoErr(t, err, "GetSignal failed")
	sameValue(t, "failed signal", got, failed)
	sameValue(t, "failed hops", gotHops, fh)

	// Signals in different months (different partitions in PostgreSQL).
	for i, at := range []time.Time{created.AddDate(0, 1, 0), created.AddDate(0, 2, 0)} {
		sg := signal(fmt.Sprintf("sig-month-%d", i), at)
		mustNoErr(t, s.SaveSignal(ctx, sg, hops(sg.ID, 2), nil), "SaveSignal in a later month")
		got, gh, err := s.GetSignal(ctx, sg.ID)
		mustNoErr(t, err, "GetSignal in a later month")
		sameValue(t, "later-month signal", got, sg)
		sameValue(t, "later-month hops", gh, hops(sg.ID, 2))
	}
}

// testMemoryIsolation: user B never sees user A's memories, whatever the
// query, and memories of a signal without a user are never returned.
func testMemoryIsolation(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	for _, c := range []struct{ id, user, content string }{
		{"iso-a", "user-a", "secret walrus plans of alice"},
		{"iso-b", "user-b", "public walrus notes of bob"},
		{"iso-none", "", "orphan walrus memory"},
	} {
		sg := signal(c.id, now())
		sg.UserID, sg.Status, sg.CompletedAt = c.user, store.SignalProcessed, now()
		mem := store.Memory{NeuronID: "n-" + c.id, Layer: "L2", SignalID: sg.ID, Content: c.content, CreatedAt: sg.CreatedAt}
		mustNoErr(t, s.SaveSignal(ctx, sg, nil, []store.Memory{mem}), "SaveSignal "+c.id)
	}
	cases := []struct {
		user, query string
		want        []string // neuron ids
	}{
		{"user-a", "walrus", []string{"n-iso-a"}},
		{"user-b", "walrus", []string{"n-iso-b"}},
		{"user-b", "secret alice", nil},
		{"user-c", "walrus", nil},
		{"", "walrus", nil},
		{"", "orphan", nil},
	}
	for _, c := range cases {
		got, err := s.SearchMemories(ctx, c.user, c.query, 10)
		mustNoErr(t, err, fmt.Sprintf("SearchMemories(%q, %q)", c.user, c.query))
		var ids []string
		for _, m := range got {
			ids = append(ids, m.NeuronID)
			if m.UserID != c.user {
				t.Errorf("SearchMemories(%q, %q) returned a memory of user %q: %+v", c.user, c.query, m.UserID, m)
			}
		}
		if !reflect.DeepEqual(ids, c.want) {
			t.Errorf("SearchMemories(%q, %q) = %v, want %v", c.user, c.query, ids, c.want)
		}
	}
}

// testFailSignals: the pending signals among those named are failed with
// store.InterruptedError; the others named (finished, unknown) and the
// pending ones not named are untouched.
func testFailSignals(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	at := now()
	a, b, other := signal("fs-a", at), signal("fs-b", at.Add(-time.Hour)), signal("fs-other", at)
	done := signal("fs-done", at)
	done.Status, done.CompletedAt, done.Output = store.SignalProcessed, at.Add(time.Second), "ok"
	for _, sg := range []store.Signal{a, b, other, done} {
		mustNoErr(t, s.SaveSignal(ctx, sg, nil, nil), "SaveSignal "+sg.ID)
	}
	n, err := s.FailSignals(ctx, []string{a.ID, b.ID, done.ID, "fs-missing"})
	mustNoErr(t, err, "FailSignals")
	if n != 2 {
		t.Fatalf("FailSignals changed %d signals, want 2 (fs-a, fs-b)", n)
	}
	for _, id := range []string{a.ID, b.ID} {
		got, _, err := s.GetSignal(ctx, id)
		mustNoErr(t, err, "GetSignal "+id)
		if got.Status != store.SignalFailed || got.Error != store.InterruptedError || got.CompletedAt.IsZero() {
			t.Fatalf("%s after FailSignals: status %q error %q completed %v", id, got.Status, got.Error, got.CompletedAt)
		}
	}
	for _, want := range []store.Signal{other, done} {
		got, _, err := s.GetSignal(ctx, want.ID)
		mustNoErr(t, err, "GetSignal "+want.ID)
		sameValue(t, want.ID+" untouched", got, want)
	}
	if n, err := s.FailSignals(ctx, nil); err != nil || n != 0 {
		t.Fatalf("FailSignals(nil) = %d, %v; want 0, nil", n, err)
	}
}

// testFailPending: pending signals created before the cut are failed with
// store.InterruptedError; later ones and finished ones are untouched.
func testFailPending(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	cut := now()
	old := signal("fp-old", cut.Add(-time.Minute))
	done := signal("fp-done", cut.Add(-time.Minute))
	done.Status, done.CompletedAt, done.Output = store.SignalProcessed, cut.Add(-time.Second), "ok"
	fresh := signal("fp-fresh", cut.Add(time.Second))
	for _, sg := range []store.Signal{old, done, fresh} {
		mustNoErr(t, s.SaveSignal(ctx, sg, nil, nil), "SaveSignal "+sg.ID)
	}
	n, err := s.FailPendingSignals(ctx, cut)
	mustNoErr(t, err, "FailPendingSignals")
	if n != 1 {
		t.Fatalf("FailPendingSignals changed %d signals, want 1 (fp-old)", n)
	}
	got, _, err := s.GetSignal(ctx, old.ID)
	mustNoErr(t, err, "GetSignal fp-old")
	if got.Status != store.SignalFailed || got.Error != store.InterruptedError || got.CompletedAt.IsZero() {
		t.Fatalf("fp-old after FailPendingSignals: status %q error %q completed %v", got.Status, got.Error, got.CompletedAt)
	}
	for _, want := range []store.Signal{done, fresh} {
		got, _, err := s.GetSignal(ctx, want.ID)
		mustNoErr(t, err, "GetSignal "+want.ID)
		sameValue(t, want.ID+" untouched", got, want)
	}
	if n, err := s.FailPendingSignals(ctx, cut); err != nil || n != 0 {
		t.Fatalf("second FailPendingSignals = %d, %v; want 0, nil", n, err)
	}
}

func saveMemories(t *testing.T, s store.Store, contents ...string) {
	t.Helper()
	ctx := ctxT(t)
	for i, c := range contents {
		sg := signal(fmt.Sprintf("mem-sig-%d", i), now())
		sg.Status = store.SignalProcessed
		sg.CompletedAt = sg.CreatedAt
		mem := store.Memory{NeuronID: fmt.Sprintf("n-%d", i), Layer: "L2", SignalID: sg.ID, Content: c, CreatedAt: sg.CreatedAt}
		mustNoErr(t, s.SaveSignal(ctx, sg, nil, []store.Memory{mem}), "SaveSignal with a memory")
	}
}

func testSearch(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	saveMemories(t, s,
		"quantum entanglement quantum computing quantum",           // n-0: "quantum" three times
		"quantum physics lecture notes about particles",            // n-1: once
		"classical mechanics lecture",                              // n-2: none
		"Un café au lait et un croissant",                          // n-3: non-ASCII
		`a "quoted" phrase with AND OR NOT NEAR operators * - ^ :`, // n-4: operator-looking text
	)

	neurons := func(ms []store.Memory) []string {
		out := make([]string, len(ms))
		for i, m := range ms {
			out[i] = m.NeuronID
		}
		return out
	}
	cases := []struct {
		name  string
		query string
		limit int
		want  []string // neuron ids, best first; order matters
		any   bool     // only check that no error occurs
	}{
		{name: "ranked", query: "quantum", limit: 10, want: []string{"n-0", "n-1"}},
		{name: "limit", query: "quantum", limit: 1, want: []string{"n-0"}},
		{name: "default limit", query: "quantum", limit: 0, want: []string{"n-0", "n-1"}},
		{name: "all terms required", query: "quantum physics", limit: 10, want: []string{"n-1"}},
		{name: "shared term", query: "lecture", limit: 10, want: []string{"n-1", "n-2"}, any: true},
		{name: "no match", query: "zeppelin", limit: 10, want: nil},
		{name: "empty", query: "", limit: 10, want: nil},
		{name: "blank", query: "   \t ", limit: 10, want: nil},
		{name: "unicode", query: "café", limit: 10, want: []string{"n-3"}},
		{name: "case-insensitive", query: "QUANTUM Physics", limit: 10, want: []string{"n-1"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := s.SearchMemories(ctx, "u-1", c.query, c.limit)
			mustNoErr(t, err, fmt.Sprintf("SearchMemories(%q, %d)", c.query, c.limit))
			g := neurons(got)
			if c.any { // the same set; order between equal ranks is not specified
				slices.Sort(g)
			}
			if !reflect.DeepEqual(g, c.want) && !(len(g) == 0 && len(c.want) == 0) {
				t.Fatalf("SearchMemories(%q, %d) = %v, want %v", c.query, c.limit, g, c.want)
			}
			for i, m := range got {
				if m.Rank <= 0 {
					t.Fatalf("result %d has rank %v, want > 0", i, m.Rank)
				}
				if i > 0 && m.Rank > got[i-1].Rank {
					t.Fatalf("results not best first: rank %v after %v", m.Rank, got[i-1].Rank)
				}
			}
		})
	}

	// User input never becomes a syntax error, whatever it looks like.
	hostile := []string{
		`"`, `""`, `"unbalanced`, `'`, `it's`, `a AND`, `OR`, `NOT`, `AND OR NOT`, `NEAR(a b)`, `NEAR/2`,
		`*`, `quantum*`, `-`, `-quantum`, `+quantum`, `^quantum`, `col:quantum`, `content:quantum`,
		`(`, `)`, `((quantum)`, `{a b}`, `a & b | !c`, `a <-> b`, `:*`, `\`, `\\"`, `%`, `_`, `;`,
		`'; DROP TABLE memories; --`, `日本語のテキスト`, `😀 emoji`, `ℌ𝔞𝔩`, "tab\tnew\nline", "nul\x00byte",
		`"quoted" phrase`, `quoted AND NOT phrase`, `a OR b OR`, `NOT NOT NOT`, `or`, `and`, `near`,
		string([]byte{0xff, 0xfe, 'q'}), // invalid UTF-8
	}
	for _, q := range hostile {
		if _, err := s.SearchMemories(ctx, "u-1", q, 5); err != nil {
			t.Errorf("SearchMemories(%q) returned an error; user input must never be a syntax error: %v", q, err)
		}
	}
}

func testCanceled(t *testing.T, s store.Store) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	// A client that went away is not an unavailable database (no 503 for it).
	if _, err := s.UserByID(ctx, "u-1"); !errors.Is(err, context.Canceled) {
		t.Fatalf("UserByID with a canceled context: got %v, want context.Canceled", err)
	}
	if err := s.SaveSignal(ctx, signal("sig-c", now()), nil, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("SaveSignal with a canceled context: got %v, want context.Canceled", err)
	}
}

func testConcurrent(t *testing.T, s store.Store) {
	const writers, perWriter = 8, 25
	ctx := ctxT(t)
	var wg sync.WaitGroup
	errs := make(chan error, writers*perWriter)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < perWriter; i++ {
				sg := signal(fmt.Sprintf("cc-%d-%d", w, i), now())
				if err := s.SaveSignal(ctx, sg, nil, nil); err != nil {
					errs <- fmt.Errorf("writer %d save pending %d: %w", w, i, err)
					return
				}
				sg.Status = store.SignalProcessed
				sg.CompletedAt = now()
				mem := store.Memory{NeuronID: "n", Layer: "L1", SignalID: sg.ID, Content: fmt.Sprintf("concurrency writer%d", w), CreatedAt: sg.CompletedAt}
				if err := s.SaveSignal(ctx, sg, hops(sg.ID, 3), []store.Memory{mem}); err != nil {
					errs <- fmt.Errorf("writer %d save done %d: %w", w, i, err)
					return
				}
				if _, _, err := s.GetSignal(ctx, sg.ID); err != nil {
					errs <- fmt.Errorf("writer %d read %d: %w", w, i, err)
					return
				}
				if i%5 == 0 {
					if _, err := s.SearchMemories(ctx, "u-1", "concurrency", 5); err != nil {
						errs <- fmt.Errorf("writer %d search: %w", w, err)
						return
					}
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	for w := 0; w < writers; w++ {
		for i := 0; i < perWriter; i++ {
			id := fmt.Sprintf("cc-%d-%d", w, i)
			sg, hs, err := s.GetSignal(ctx, id)
			mustNoErr(t, err, "GetSignal "+id)
			if sg.Status != store.SignalProcessed || len(hs) != 3 {
				t.Fatalf("signal %s: status %q with %d hops, want processed with 3", id, sg.Status, len(hs))
			}
		}
	}
	found, err := s.SearchMemories(ctx, "u-1", "writer3", 100)
	mustNoErr(t, err, "SearchMemories writer3")
	if len(found) != perWriter {
		t.Fatalf("writer3's memories: %d, want %d", len(found), perWriter)
	}
}

func testDurable(t *testing.T, open Opener) {
	ctx := ctxT(t)
	s := open(t)
	u := user("d")
	k := apiKey("kd1", u.ID, now())
	n := store.Neuron{ID: "l1-d", Layer: "L1", State: "active", UpdatedAt: now()}
	sg := signal("sig-d", now())
	sg.Status, sg.CompletedAt, sg.Output = store.SignalProcessed, now(), "kept"
	hs := hops(sg.ID, 4)
	mem := store.Memory{NeuronID: "l1-d", Layer: "L1", SignalID: sg.ID, Content: "durable xylophone", CreatedAt: now()}

	mustNoErr(t, s.CreateUser(ctx, u), "CreateUser")
	mustNoErr(t, s.CreateAPIKey(ctx, k), "CreateAPIKey")
	mustNoErr(t, s.UpsertNeurons(ctx, []store.Neuron{n}), "UpsertNeurons")
	mustNoErr(t, s.SaveSignal(ctx, sg, hs, []store.Memory{mem}), "SaveSignal")
	mustNoErr(t, s.Close(), "Close")
	mustNoErr(t, s.Close(), "Close a second time")

	r := open(t)
	mustNoErr(t, r.Migrate(ctx), "Migrate after reopen")
	gu, err := r.UserByUsername(ctx, u.Username)
	mustNoErr(t, err, "UserByUsername after reopen")
	sameValue(t, "user after reopen", gu, u)
	gk, err := r.APIKeyByHash(ctx, k.Hash)
	mustNoErr(t, err, "APIKeyByHash after reopen")
	sameValue(t, "api key after reopen", gk, k)
	gn, err := r.ListNeurons(ctx)
	mustNoErr(t, err, "ListNeurons after reopen")
	sameValue(t, "neurons after reopen", gn, []store.Neuron{n})
	gs, gh, err := r.GetSignal(ctx, sg.ID)
	mustNoErr(t, err, "GetSignal after reopen")
	sameValue(t, "signal after reopen", gs, sg)
	sameValue(t, "hops after reopen", gh, hs)
	found, err := r.SearchMemories(ctx, "u-1", "xylophone", 5)
	mustNoErr(t, err, "SearchMemories after reopen")
	if len(found) != 1 || found[0].Content != mem.Content {
		t.Fatalf("memories after reopen: %+v", found)
	}
}
