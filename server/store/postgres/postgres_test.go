package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/puddle/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"

	"github.com/hal9-lab/hal9-lab/lab/infra/infratest"
	"github.com/hal9-lab/hal9-lab/server/store"
	"github.com/hal9-lab/hal9-lab/server/store/storetest"
)

func TestMain(m *testing.M) { infratest.Main(m) }

// Small pools: many test binaries share one PostgreSQL and its max_connections.
var testOpts = Options{MaxConns: 8, MinConns: 1}

func openURL(t *testing.T, url string) *Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := Open(ctx, url, testOpts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestContract(t *testing.T) {
	storetest.Run(t,
		func(t *testing.T) store.Store { return openURL(t, infratest.PostgresURL(t)) },
		storetest.WithReopen(func(t *testing.T) storetest.Opener {
			url := infratest.PostgresURL(t)
			return func(t *testing.T) store.Store { return openURL(t, url) }
		}),
	)
}

func TestPartitions(t *testing.T) {
	url := infratest.PostgresURL(t)
	a, b := openURL(t, url), openURL(t, url)
	ctx := context.Background()

	now := time.Now().UTC()
	want := make([]string, 0, PartitionsAhead+1)
	for i := 0; i <= PartitionsAhead; i++ {
		want = append(want, partitionName(monthStart(now).AddDate(0, i, 0)))
	}
	got, err := a.Partitions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("partitions after Open = %v, want %v", got, want)
	}

	// Two processes (two pools) maintaining at once, for the same far-off
	// months: no "already exists" error, no duplicates.
	future := now.AddDate(3, 0, 0)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := 0; i < 8; i++ {
		s := []*Store{a, b}[i%2]
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- s.EnsurePartitions(ctx, future)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent EnsurePartitions: %v", err)
		}
	}
	got, err = b.Partitions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2*(PartitionsAhead+1) {
		t.Fatalf("partitions after maintenance for %s: %v", future.Format("2006-01"), got)
	}

	// A signal in a month nobody prepared gets its partition on demand.
	far := time.Date(2040, 2, 29, 12, 0, 0, 0, time.UTC)
	sg := store.Signal{ID: "far", Layer: "L1", NeuronID: "n", Content: "x", Status: store.SignalPending, CreatedAt: far}
	if err := a.SaveSignal(ctx, sg, nil, nil); err != nil {
		t.Fatalf("SaveSignal into an unprepared month: %v", err)
	}
	if _, _, err := b.GetSignal(ctx, "far"); err != nil {
		t.Fatal(err)
	}
	got, _ = a.Partitions(ctx)
	if !strings.Contains(strings.Join(got, ","), "signals_y2040m02") {
		t.Fatalf("no partition for 2040-02: %v", got)
	}

	// RunMaintenance runs once at once and stops with its context.
	mctx, cancel := context.WithCancel(ctx)
	done := make(chan error)
	go func() { done <- a.RunMaintenance(mctx, time.Hour) }()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("RunMaintenance: %v", err)
	}
}

func TestOpenErrors(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name, url string
		opts      Options
		want      string
		is        error
	}{
		{name: "bad url", url: "postgres://%zz", want: "invalid database URL"},
		{name: "bad pool sizes", url: "postgres://u@127.0.0.1:1/db", opts: Options{MaxConns: 2, MinConns: 5}, want: "MinConns"},
		{name: "refused", url: "postgres://u@127.0.0.1:1/db?sslmode=disable", opts: Options{ConnectTimeout: time.Second}, is: store.ErrUnavailable},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := Open(ctx, c.url, c.opts)
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded, want an error")
			}
			if c.want != "" && !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q does not mention %q", err, c.want)
			}
			if c.is != nil && !errors.Is(err, c.is) {
				t.Fatalf("error %v is not %v", err, c.is)
			}
		})
	}
}

func TestMapErr(t *testing.T) {
	ctx := context.Background()
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	cases := []struct {
		name string
		ctx  context.Context
		err  error
		want error
	}{
		{"unique", ctx, &pgconn.PgError{Code: "23505"}, store.ErrConflict},
		{"foreign key", ctx, &pgconn.PgError{Code: "23503"}, store.ErrNotFound},
		{"admin shutdown", ctx, &pgconn.PgError{Code: "57P01"}, store.ErrUnavailable},
		{"starting up", ctx, &pgconn.PgError{Code: "57P03"}, store.ErrUnavailable},
		{"connection failure", ctx, &pgconn.PgError{Code: "08006"}, store.ErrUnavailable},
		{"too many connections", ctx, &pgconn.PgError{Code: "53300"}, store.ErrUnavailable},
		{"conn closed", ctx, fmt.Errorf("x: %w", pgconn.ErrConnClosed), store.ErrUnavailable},
		{"unexpected EOF", ctx, errors.New("read: unexpected EOF"), store.ErrUnavailable},
		{"connection reset", ctx, fmt.Errorf("read tcp: %w", syscall.ECONNRESET), store.ErrUnavailable},
		{"refused", ctx, fmt.Errorf("dial tcp: %w", syscall.ECONNREFUSED), store.ErrUnavailable},
		{"pool closed", ctx, fmt.Errorf("acquire: %w", puddle.ErrClosedPool), store.ErrUnavailable},
		{"no rows", ctx, pgx.ErrNoRows, store.ErrNotFound},
		{"deadline is the caller's", ctx, context.DeadlineExceeded, nil},
		{"canceled wins", canceled, &pgconn.PgError{Code: "57P01"}, context.Canceled},
		{"syntax stays itself", ctx, &pgconn.PgError{Code: "42601"}, nil},
	}
	for _, c := range cases {
		got := mapErr(c.ctx, c.err)
		for _, sentinel := range []error{store.ErrConflict, store.ErrNotFound, store.ErrUnavailable, context.Canceled} {
			if errors.Is(got, sentinel) != (sentinel == c.want) {
				t.Errorf("%s: mapErr = %v; errors.Is(%v) = %v", c.name, got, sentinel, errors.Is(got, sentinel))
			}
		}
	}
}

func TestCollector(t *testing.T) {
	s := openURL(t, infratest.PostgresURL(t))
	if err := s.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(s.Collector())
	want := `
# HELP hal9_db_pool_max_conns Maximum connections the pool may open.
# TYPE hal9_db_pool_max_conns gauge
hal9_db_pool_max_conns{db="postgres"} 8
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "hal9_db_pool_max_conns"); err != nil {
		t.Fatal(err)
	}
	// Every pool family is there as one series labelled db="postgres" only.
	names := []string{"hal9_db_pool_acquired_conns", "hal9_db_pool_idle_conns", "hal9_db_pool_total_conns", "hal9_db_pool_max_conns",
		"hal9_db_pool_acquires_total", "hal9_db_pool_empty_acquires_total", "hal9_db_pool_acquire_wait_seconds_total"}
	text, err := testutil.GatherAndFormat(reg, expfmt.TypeTextPlain, names...)
	if n := strings.Count(string(text), `{db="postgres"} `); err != nil || n != len(names) {
		t.Errorf("%d of the %d pool families %v exported with db=\"postgres\" alone (%v):\n%s", n, len(names), names, err, text)
	}
}

// TestRestart takes PostgreSQL away mid-test and brings it back: calls fail
// with store.ErrUnavailable while it is down, the same Store works again
// once it is up, and every write acknowledged before the stop is there.
func TestRestart(t *testing.T) {
	p := infratest.PostgresProcess(t)
	s := openURL(t, p.URL())
	ctx := context.Background()

	var acked []string
	for i := 0; i < 20; i++ {
		sg := store.Signal{ID: fmt.Sprintf("before-%d", i), Layer: "L2", NeuronID: "n", Content: "c",
			Status: store.SignalProcessed, CreatedAt: time.Now().UTC().Truncate(time.Microsecond)}
		hops := []store.Hop{{Seq: 0, NeuronID: "n", Layer: "L2", Cache: "miss"}}
		if err := s.SaveSignal(ctx, sg, hops, nil); err != nil {
			t.Fatalf("save before stop: %v", err)
		}
		acked = append(acked, sg.ID)
	}

	stopCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := p.Stop(stopCtx); err != nil {
		t.Fatalf("stop postgres: %v", err)
	}
	down := []struct {
		name string
		call func(context.Context) error
	}{
		{"Ping", s.Ping},
		{"SaveSignal", func(ctx context.Context) error {
			return s.SaveSignal(ctx, store.Signal{ID: "during", Layer: "L1", NeuronID: "n", Content: "c",
				Status: store.SignalPending, CreatedAt: time.Now()}, nil, nil)
		}},
		{"CreateUser", func(ctx context.Context) error {
			return s.CreateUser(ctx, store.User{ID: "u", Username: "u", Email: "u@x.org", PasswordHash: "h", CreatedAt: time.Now()})
		}},
		{"GetSignal", func(ctx context.Context) error { _, _, err := s.GetSignal(ctx, "before-0"); return err }},
		{"SearchMemories", func(ctx context.Context) error { _, err := s.SearchMemories(ctx, "u", "x", 1); return err }},
	}
	for _, d := range down {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := d.call(cctx)
		cancel()
		t.Logf("%s while down: %v", d.name, err)
		if !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("%s with the database down: %v, want store.ErrUnavailable", d.name, err)
		}
	}

	if err := p.Start(stopCtx); err != nil {
		t.Fatalf("restart postgres: %v", err)
	}
	// pgxpool reconnects on its own; allow it a few attempts, bounded.
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := s.Ping(ctx)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("store did not recover after the restart: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	sg := store.Signal{ID: "after", Layer: "L3", NeuronID: "n", Content: "c", Status: store.SignalPending, CreatedAt: time.Now()}
	if err := s.SaveSignal(ctx, sg, nil, nil); err != nil {
		t.Fatalf("save after restart: %v", err)
	}
	for _, id := range append(acked, "after") {
		if _, hops, err := s.GetSignal(ctx, id); err != nil {
			t.Fatalf("acknowledged signal %s after restart: %v", id, err)
		} else if id != "after" && len(hops) != 1 {
			t.Fatalf("signal %s lost its hop", id)
		}
	}
}

func TestClosedStoreIsUnavailable(t *testing.T) {
	s := openURL(t, infratest.PostgresURL(t))
	s.Close()
	if err := s.Ping(context.Background()); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Ping after Close: %v, want store.ErrUnavailable", err)
	}
}

// TestCrashDurability: 32 writers, SIGKILL of their process mid-stream, and
// every acknowledged signal is in the database afterwards.
func TestCrashDurability(t *testing.T) {
	storetest.Crash(t,
		func(t *testing.T) string { return infratest.PostgresURL(t) },
		func(ctx context.Context, url string) (store.Store, error) { return Open(ctx, url, testOpts) },
		storetest.CrashOptions{})
}

// TestCrashDurabilityGroupCommit: the same with the server's default,
// Options.GroupCommit (many signals per batch and commit).
func TestCrashDurabilityGroupCommit(t *testing.T) {
	opts := testOpts
	opts.GroupCommit = true
	storetest.Crash(t,
		func(t *testing.T) string { return infratest.PostgresURL(t) },
		func(ctx context.Context, url string) (store.Store, error) { return Open(ctx, url, opts) },
		storetest.CrashOptions{WantBatches: true})
}

// TestGroupCommitIsolatesBadWrite: with Options.GroupCommit, saves queued
// behind a held one go in one pgx.Batch; the one that breaks a constraint
// fails that batch, and the retry one by one commits the others.
func TestGroupCommitIsolatesBadWrite(t *testing.T) {
	url := infratest.PostgresURL(t)
	ctx := context.Background()
	opts := testOpts
	opts.GroupCommit = true
	opts.Committers = 1 // the others queue behind the held commit, into one batch
	s := openURLWith(t, url, opts)
	// Hold the first save: a table lock its hop inserts wait for.
	locker, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer locker.Close(ctx)
	tx, err := locker.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `LOCK TABLE signal_hops IN EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	hop := func(seq int) store.Hop { return store.Hop{Seq: seq, NeuronID: "n", Layer: "L1", Cache: "hit"} }
	save := func(id string, hs []store.Hop) error {
		sg := store.Signal{ID: id, Layer: "L1", NeuronID: "n", Content: "c", Status: store.SignalProcessed, CreatedAt: time.Now()}
		return s.SaveSignal(ctx, sg, hs, nil)
	}
	first := make(chan error, 1)
	go func() { first <- save("held", []store.Hop{hop(0)}) }()
	const n = 6
	errs := make([]error, n)
	var wg sync.WaitGroup
	for deadline := time.Now().Add(10 * time.Second); ; {
		var waiting bool
		locker.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database())`).Scan(&waiting)
		if waiting {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the first save never waited for the lock")
		}
		time.Sleep(5 * time.Millisecond)
	}
	for i := range n {
		hs := []store.Hop{hop(0), hop(1)}
		if i == 2 {
			hs = []store.Hop{hop(0), hop(0)} // duplicate seq
		}
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = save(fmt.Sprintf("gc-%d", i), hs) }()
	}
	for s.commits.Queued() < n {
		time.Sleep(time.Millisecond)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if err := <-first; err != nil {
		t.Fatalf("the held save: %v", err)
	}
	for i, err := range errs {
		_, hs, gerr := s.GetSignal(ctx, fmt.Sprintf("gc-%d", i))
		switch {
		case i == 2:
			if !errors.Is(err, store.ErrConflict) || !errors.Is(gerr, store.ErrNotFound) {
				t.Fatalf("the bad save: %v, read %v; want a conflict and nothing stored", err, gerr)
			}
		case err != nil || gerr != nil || len(hs) != 2:
			t.Fatalf("save %d: %v, read %v, %d hops", i, err, gerr, len(hs))
		}
	}
}

func openURLWith(t *testing.T, url string, opts Options) *Store {
	t.Helper()
	s, err := Open(context.Background(), url, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestCommittersIsolateBadWrites: with 4 committers (batches committing
// at once on their own connections), 40 concurrent saves of which every
// tenth is bad: exactly the bad ones fail and nothing of them is stored;
// every other save is stored with its hops.
func TestCommittersIsolateBadWrites(t *testing.T) {
	opts := testOpts
	opts.GroupCommit, opts.Committers = true, 4
	s := openURLWith(t, infratest.PostgresURL(t), opts)
	ctx := context.Background()
	const n = 40
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		hs := []store.Hop{{Seq: 0, NeuronID: "n", Layer: "L1"}, {Seq: 1, NeuronID: "n", Layer: "L1"}}
		if i%10 == 3 {
			hs[1].Seq = 0 // duplicate seq
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sg := store.Signal{ID: fmt.Sprintf("cm-%d", i), Layer: "L1", NeuronID: "n", Content: "c", Status: store.SignalProcessed, CreatedAt: time.Now()}
			errs[i] = s.SaveSignal(ctx, sg, hs, nil)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		_, hs, gerr := s.GetSignal(ctx, fmt.Sprintf("cm-%d", i))
		switch {
		case i%10 == 3:
			if !errors.Is(err, store.ErrConflict) || !errors.Is(gerr, store.ErrNotFound) {
				t.Fatalf("bad save %d: %v, read %v; want a conflict and nothing stored", i, err, gerr)
			}
		case err != nil || gerr != nil || len(hs) != 2:
			t.Fatalf("save %d: %v, read %v, %d hops", i, err, gerr, len(hs))
		}
	}
}
