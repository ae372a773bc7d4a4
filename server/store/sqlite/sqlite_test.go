package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/hal9-lab/hal9-lab/server/store"
	"github.com/hal9-lab/hal9-lab/server/store/storetest"
)

func openAt(t *testing.T, path string) store.Store {
	t.Helper()
	s, err := Open(context.Background(), path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestContract(t *testing.T) {
	storetest.Run(t,
		func(t *testing.T) store.Store { return openAt(t, filepath.Join(t.TempDir(), "hal9.db")) },
		storetest.WithReopen(func(t *testing.T) storetest.Opener {
			path := filepath.Join(t.TempDir(), "hal9.db")
			return func(t *testing.T) store.Store { return openAt(t, path) }
		}),
	)
}

func TestOpenBadPath(t *testing.T) {
	cases := []struct{ path, want string }{
		{"", "empty path"},
		{":memory:", "in-memory"},
		{"a?b.db", "must not contain"},
		{filepath.Join(t.TempDir(), "missing-dir", "x.db"), "open sqlite store"},
	}
	for _, c := range cases {
		s, err := Open(context.Background(), c.path)
		if err == nil {
			s.Close()
			t.Fatalf("Open(%q) succeeded, want an error", c.path)
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("Open(%q) = %v, want it to mention %q", c.path, err, c.want)
		}
	}
}

func TestPragmas(t *testing.T) {
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "p.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, c := range []struct{ pragma, want string }{
		{"journal_mode", "wal"}, {"synchronous", "2"}, {"foreign_keys", "1"}, {"busy_timeout", "10000"},
	} {
		var got string
		if err := s.writer.QueryRow("PRAGMA " + c.pragma).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != c.want {
			t.Errorf("writer PRAGMA %s = %s, want %s", c.pragma, got, c.want)
		}
		if err := s.reader.QueryRow("PRAGMA " + c.pragma).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != c.want {
			t.Errorf("reader PRAGMA %s = %s, want %s", c.pragma, got, c.want)
		}
	}
	if _, err := s.reader.Exec(`DELETE FROM users`); err == nil {
		t.Error("the reader pool accepted a write; it must be query_only")
	}
}

func TestNewerSchemaIsRejected(t *testing.T) {
	path := filepath.Join(t.TempDir(), "n.db")
	s, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.writer.Exec(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, 'future', 0)`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := Open(context.Background(), path); err == nil || !strings.Contains(err.Error(), "newer hal9") {
		t.Fatalf("Open on a newer schema: %v, want an error asking for a newer hal9", err)
	}
}

func TestClosedStoreErrors(t *testing.T) {
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if err := s.Ping(context.Background()); err == nil {
		t.Fatal("Ping on a closed store succeeded")
	}
	if _, err := s.UserByID(context.Background(), "x"); err == nil || errors.Is(err, store.ErrNotFound) {
		t.Fatalf("UserByID on a closed store: %v, want a non-NotFound error", err)
	}
}

func TestCollector(t *testing.T) {
	s := openAt(t, filepath.Join(t.TempDir(), "m.db"))
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(s.(*Store).Collector())
	n, err := testutil.GatherAndCount(reg)
	if err != nil {
		t.Fatal(err)
	}
	if n != 10 { // acquires_total is PostgreSQL-only; + the group commits' two histograms, splits and commits in flight
		t.Fatalf("got %d series, want 10", n)
	}
	want := `
# HELP hal9_db_pool_max_conns Maximum connections the pool may open.
# TYPE hal9_db_pool_max_conns gauge
hal9_db_pool_max_conns{db="sqlite"} ` + strconv.Itoa(1+s.(*Store).reader.Stats().MaxOpenConnections) + `
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "hal9_db_pool_max_conns"); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkSaveSignal: one processed signal with 5 hops and a memory, the
// write every synchronous POST /api/v1/signals makes (synchronous=FULL:
// an fsync per commit, so the disk sets the pace).
func BenchmarkSaveSignal(b *testing.B) {
	s, err := Open(context.Background(), filepath.Join(b.TempDir(), "bench.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	hops := make([]store.Hop, 5)
	for i := range hops {
		hops[i] = store.Hop{Seq: i, NeuronID: "n", Layer: "L2", Cache: "miss", TokensIn: 10, TokensOut: 20}
	}
	for i := 0; b.Loop(); i++ {
		sg := store.Signal{ID: "b-" + strconv.Itoa(i), Layer: "L2", NeuronID: "n", Content: "bench",
			Status: store.SignalProcessed, CreatedAt: time.Now()}
		mem := []store.Memory{{NeuronID: "n", Layer: "L2", Content: "benchmark memory " + strconv.Itoa(i)}}
		if err := s.SaveSignal(ctx, sg, hops, mem); err != nil {
			b.Fatal(err)
		}
	}
}

// TestMemoryUserMigration: a database from before 0002_memory_user.sql
// migrates; its memories take their signal's user, and memories whose
// signal had no user are never returned.
func TestMemoryUserMigration(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "m.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	// Back to schema version 1 (undo 0005, 0004, 0003, then 0002), with data written the old way.
	for _, q := range []string{
		`DELETE FROM schema_migrations WHERE version = 5`, // 0005 altered refresh_tokens, dropped below
		`DELETE FROM schema_migrations WHERE version = 4`, `DROP TABLE llm_spend`,
		`DROP TABLE refresh_tokens`, `DROP TABLE server_secrets`, `DROP INDEX signals_pending`,
		`CREATE TRIGGER memories_ai AFTER INSERT ON memories BEGIN
			INSERT INTO memories_fts (rowid, content) VALUES (new.id, new.content);
		END`,
		`DELETE FROM schema_migrations WHERE version = 3`,
		`DROP INDEX memories_user`,
		`ALTER TABLE memories DROP COLUMN user_id`,
		`DELETE FROM schema_migrations WHERE version = 2`,
		`INSERT INTO signals (id, user_id, layer, neuron_id, content, status, created_at) VALUES
			('s-alice', 'alice', 'L1', 'n', 'c', 'processed', 1), ('s-anon', '', 'L1', 'n', 'c', 'processed', 1)`,
		`INSERT INTO memories (neuron_id, layer, signal_id, content, created_at) VALUES
			('n-alice', 'L1', 's-alice', 'old pelican memory', 1), ('n-anon', 'L1', 's-anon', 'old pelican orphan', 1),
			('n-gone', 'L1', 's-gone', 'old pelican lost', 1)`,
	} {
		if _, err := s.writer.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	s.Close()

	r := openAt(t, path) // applies 0002
	for _, c := range []struct {
		user string
		want int
	}{{"alice", 1}, {"", 0}, {"bob", 0}} {
		got, err := r.SearchMemories(ctx, c.user, "pelican", 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != c.want || (c.want == 1 && (got[0].NeuronID != "n-alice" || got[0].UserID != "alice")) {
			t.Fatalf("user %q after migration: %+v, want %d of alice's", c.user, got, c.want)
		}
	}
}

// TestCrashDurability: 32 writers through the group committer, SIGKILL
// mid-stream, and every acknowledged signal is in the file afterwards.
func TestCrashDurability(t *testing.T) {
	storetest.Crash(t,
		func(t *testing.T) string { return filepath.Join(t.TempDir(), "crash.db") },
		func(ctx context.Context, path string) (store.Store, error) { return Open(ctx, path) },
		storetest.CrashOptions{WantBatches: true})
}

// TestGroupCommitIsolatesBadWrite: writes queued behind a held commit go
// in one batch; the one that breaks a constraint fails alone and leaves no
// trace, the others are all committed.
func TestGroupCommitIsolatesBadWrite(t *testing.T) {
	s := openAt(t, filepath.Join(t.TempDir(), "g.db")).(*Store)
	ctx := context.Background()
	release, held := make(chan struct{}), make(chan struct{})
	go s.write(ctx, 1, func(context.Context, *sql.Tx) error { close(held); <-release; return nil })
	<-held
	const n = 8
	hops := []store.Hop{{Seq: 0, NeuronID: "n", Layer: "L1", Cache: "hit"}, {Seq: 1, NeuronID: "n", Layer: "L1", Cache: "hit"}}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		hs := hops
		if i == 3 {
			hs = []store.Hop{hops[0], hops[0]} // duplicate seq: a constraint violation
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sg := store.Signal{ID: fmt.Sprintf("g-%d", i), Layer: "L1", NeuronID: "n", Content: "c", Status: store.SignalProcessed, CreatedAt: time.Now()}
			mem := []store.Memory{{NeuronID: "n", Layer: "L1", Content: fmt.Sprintf("grouped memory %d", i)}}
			errs[i] = s.SaveSignal(ctx, sg, hs, mem)
		}()
	}
	for s.commits.Queued() < n {
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	for i, err := range errs {
		_, gotHops, gerr := s.GetSignal(ctx, fmt.Sprintf("g-%d", i))
		switch {
		case i == 3:
			if !errors.Is(err, store.ErrConflict) || !errors.Is(gerr, store.ErrNotFound) {
				t.Fatalf("the bad write: save %v, read %v; want a conflict and nothing stored", err, gerr)
			}
		case err != nil || gerr != nil || len(gotHops) != 2:
			t.Fatalf("write %d of the batch: save %v, read %v, %d hops", i, err, gerr, len(gotHops))
		}
	}
	if found, _ := s.SearchMemories(ctx, "", "grouped", 20); len(found) != 0 {
		t.Fatalf("memories without a user must not be found: %v", found)
	}
	count, sum := batchCounts(t, s)
	if sum-count < n-1 {
		t.Fatalf("%v writes in %v commits: the %d queued writes were not committed together", sum, count, n)
	}
	if splits := batchSplits(t, s); splits != 1 {
		t.Fatalf("hal9_db_batch_splits_total = %v, want 1: the batch with the bad write is run again write by write", splits)
	}
}

// TestExpectedOutcomesKeepTheBatch: a write whose answer is "not found" or
// "taken" (a delete of a missing API key, a touch of one, a logout of an
// unknown login, a taken username, a refresh with an unknown token) is an
// answer, not a failure: the batch it shares with other users' writes
// commits in its one transaction, and nothing is run again write by write.
func TestExpectedOutcomesKeepTheBatch(t *testing.T) {
	s := openAt(t, filepath.Join(t.TempDir(), "o.db")).(*Store)
	ctx := context.Background()
	alice := store.User{ID: "u-alice", Username: "alice", Email: "alice@example.com", PasswordHash: "h", CreatedAt: time.Now()}
	if err := s.CreateUser(ctx, alice); err != nil {
		t.Fatal(err)
	}
	commits0, sum0 := batchCounts(t, s)
	splits0 := batchSplits(t, s)
	release, held := make(chan struct{}), make(chan struct{})
	go s.write(ctx, 1, func(context.Context, *sql.Tx) error { close(held); <-release; return nil })
	<-held

	at := time.Now()
	writes := []struct {
		name string
		do   func() error
		want error // nil: must succeed
	}{
		{"delete a missing api key", func() error { return s.DeleteAPIKey(ctx, alice.ID, "missing") }, store.ErrNotFound},
		{"touch a missing api key", func() error { return s.TouchAPIKey(ctx, "missing", at) }, store.ErrNotFound},
		{"revoke an unknown family", func() error { return s.RevokeRefreshFamily(ctx, "fam-missing", at) }, store.ErrNotFound},
		{"register a taken username", func() error {
			return s.CreateUser(ctx, store.User{ID: "u-2", Username: "alice", Email: "other@example.com", PasswordHash: "h", CreatedAt: at})
		}, store.ErrConflict},
		{"rotate an unknown token", func() error {
			_, err := s.RotateRefreshToken(ctx, "missing", store.RefreshToken{ID: "n", FamilyID: "f", UserID: alice.ID, CreatedAt: at, ExpiresAt: at.Add(time.Hour)}, at, 0)
			return err
		}, store.ErrNotFound},
		{"register bob", func() error {
			return s.CreateUser(ctx, store.User{ID: "u-bob", Username: "bob", Email: "bob@example.com", PasswordHash: "h", CreatedAt: at})
		}, nil},
	}
	for i := range 4 {
		writes = append(writes, struct {
			name string
			do   func() error
			want error
		}{fmt.Sprintf("save signal %d", i), func() error {
			return s.SaveSignal(ctx, store.Signal{ID: fmt.Sprintf("o-%d", i), Layer: "L1", NeuronID: "n", Content: "c",
				Status: store.SignalProcessed, CreatedAt: at}, nil, nil)
		}, nil})
	}
	errs := make([]error, len(writes))
	var wg sync.WaitGroup
	for i, w := range writes {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = w.do() }()
	}
	for s.commits.Queued() < len(writes) {
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	for i, w := range writes {
		switch {
		case w.want == nil && errs[i] != nil:
			t.Errorf("%s: %v", w.name, errs[i])
		case w.want != nil && !errors.Is(errs[i], w.want):
			t.Errorf("%s: %v, want %v", w.name, errs[i], w.want)
		}
	}
	for i := range 4 {
		if _, _, err := s.GetSignal(ctx, fmt.Sprintf("o-%d", i)); err != nil {
			t.Errorf("signal o-%d of the batch: %v", i, err)
		}
	}
	if _, err := s.UserByUsername(ctx, "bob"); err != nil {
		t.Errorf("bob of the batch: %v", err)
	}
	commits, sum := batchCounts(t, s)
	splits := batchSplits(t, s) - splits0
	if splits != 0 || commits-commits0 != 2 || sum-sum0 != float64(1+len(writes)) {
		t.Fatalf("%v writes in %v group commits, %v of them split into a transaction per write: want the held write, then the %d queued writes in one transaction, none split",
			sum-sum0, commits-commits0, splits, len(writes))
	}
}

// batchSplits reads hal9_db_batch_splits_total.
func batchSplits(t *testing.T, s *Store) float64 {
	t.Helper()
	return storeMetric(t, s, "hal9_db_batch_splits_total").GetCounter().GetValue()
}

// batchCounts reads hal9_db_batch_size: commits and writes in them.
func batchCounts(t *testing.T, s *Store) (count, sum float64) {
	t.Helper()
	h := storeMetric(t, s, "hal9_db_batch_size").GetHistogram()
	return float64(h.GetSampleCount()), h.GetSampleSum()
}

// storeMetric is the one series of the store's metric family name.
func storeMetric(t *testing.T, s *Store, name string) *dto.Metric {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(s.Collector())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0]
		}
	}
	t.Fatalf("no %s", name)
	return nil
}

// TestSearchIndexAcrossABatch: memories are indexed once per group commit;
// a signal saved twice in one batch (its memories replaced before they
// were indexed) leaves an index that is consistent (FTS5 integrity-check)
// and finds only the second save's memories.
func TestSearchIndexAcrossABatch(t *testing.T) {
	s := openAt(t, filepath.Join(t.TempDir(), "i.db")).(*Store)
	ctx := context.Background()
	release, held := make(chan struct{}), make(chan struct{})
	go s.write(ctx, 1, func(context.Context, *sql.Tx) error { close(held); <-release; return nil })
	<-held
	sg := store.Signal{ID: "twice", UserID: "u", Layer: "L1", NeuronID: "n", Content: "c", Status: store.SignalProcessed, CreatedAt: time.Now()}
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i, words := range []string{"first aardvark", "second aardvark"} {
		if i == 1 {
			for s.commits.Queued() < 1 {
				time.Sleep(time.Millisecond)
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.SaveSignal(ctx, sg, nil, []store.Memory{{NeuronID: "n", Layer: "L1", Content: words}, {NeuronID: "m", Layer: "L1", Content: words + " too"}})
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		other := sg
		other.ID = "other"
		errs[2] = s.SaveSignal(ctx, other, nil, []store.Memory{{NeuronID: "o", Layer: "L1", Content: "third aardvark"}})
	}()
	for s.commits.Queued() < 3 {
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("save %d: %v", i, err)
		}
	}
	got, err := s.SearchMemories(ctx, "u", "aardvark", 10)
	if err != nil {
		t.Fatal(err)
	}
	var contents []string
	for _, m := range got {
		contents = append(contents, m.Content)
	}
	slices.Sort(contents)
	// The two saves of "twice" ran in either order; one set is left.
	want1 := []string{"first aardvark", "first aardvark too", "third aardvark"}
	want2 := []string{"second aardvark", "second aardvark too", "third aardvark"}
	if !slices.Equal(contents, want1) && !slices.Equal(contents, want2) {
		t.Fatalf("search after a double save in one batch: %q", contents)
	}
	if _, err := s.writer.Exec(`INSERT INTO memories_fts (memories_fts) VALUES ('integrity-check')`); err != nil {
		t.Fatalf("FTS5 index inconsistent: %v", err)
	}
	if count, sum := batchCounts(t, s); sum-count < 2 {
		t.Fatalf("%v writes in %v commits: the saves did not share a batch", sum, count)
	}
}

// TestFileModes: the database and its WAL and shared-memory files are
// readable by their owner only (0600), whether Open creates them or finds
// them with wider modes (a database from an older hal9, which left 0644).
func TestFileModes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hal9.db")
	files := []string{path, path + "-wal", path + "-shm"}
	check := func(when string) {
		t.Helper()
		for _, f := range files {
			fi, err := os.Stat(f)
			if err != nil {
				t.Fatalf("%s: %v", when, err)
			}
			if m := fi.Mode().Perm(); m != 0o600 {
				t.Errorf("%s: %s has mode %o, want 600", when, filepath.Base(f), m)
			}
		}
	}
	save := func(s store.Store, id string) {
		t.Helper()
		if err := s.SaveSignal(context.Background(), store.Signal{ID: id, Layer: "L1", NeuronID: "n", Content: "c",
			Status: store.SignalProcessed, CreatedAt: time.Now()}, nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	s := openAt(t, path)
	save(s, "a")
	check("created by Open")
	s.Close()

	// An older hal9's files at 0644 (an empty WAL and shared-memory file,
	// as a crash may leave them).
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, f := range files[1:] {
		if err := os.WriteFile(f, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s = openAt(t, path)
	save(s, "b")
	check("found at 0644 by Open")
	if _, _, err := s.GetSignal(context.Background(), "a"); err != nil {
		t.Fatalf("the first open's signal after reopening: %v", err)
	}
}
