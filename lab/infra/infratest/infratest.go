// Package infratest hands tests real PostgreSQL and Redis backends.
//
// PostgresURL gives each test a fresh, empty database; RedisURL gives each
// test an empty logical Redis database of its own. They are backed by
// HAL9_PG_DSN / HAL9_REDIS_URL when set, else by one local postgres and one
// local redis-server process per test binary, started lazily (lab/infra's
// process mode) the first time a test asks. PostgresProcess and RedisProcess
// give a test a server of its own to stop and restart.
//
// When a backend cannot be had, the test is skipped with the reason; with
// HAL9_REQUIRE_INFRA=1 (CI) it fails instead.
//
// Lifetime of the shared processes: a test binary has no teardown hook
// unless it has a TestMain. Packages may call Main from TestMain to stop the
// shared servers and remove their directories explicitly:
//
//	func TestMain(m *testing.M) { infratest.Main(m) }
//
// Without it nothing is left behind either: each server gets a signal from
// the kernel when the test binary exits (Pdeathsig), and a small watchdog
// process per server, which sees the binary's end as EOF on a pipe, stops
// what remains of the server's process group and removes its temporary
// directory (see lab/infra).
package infratest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hal9-lab/hal9-lab/internal/redact"
	"github.com/hal9-lab/hal9-lab/lab/infra"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/redis/go-redis/v9"
)

// Environment variables read by this package.
const (
	EnvPostgresDSN  = "HAL9_PG_DSN"        // an existing PostgreSQL to create test databases on
	EnvRedisURL     = "HAL9_REDIS_URL"     // an existing Redis to borrow logical DBs 1..15 from
	EnvRequireInfra = "HAL9_REQUIRE_INFRA" // "1": a missing backend fails the test instead of skipping it
)

// sharedDBs is the number of logical databases of the shared local Redis:
// at most this many tests of one binary hold a Redis DB at the same time.
const sharedDBs = 64

// startTimeout bounds starting a shared server.
const startTimeout = 90 * time.Second

// The shared servers of this test binary. Package state is the point here:
// one server per binary, however many tests ask.
var (
	pgOnce   sync.Once
	pgShared *infra.Process
	pgErr    error

	redisOnce   sync.Once
	redisShared *infra.Process
	redisErr    error
	redisFree   chan int // free logical DB numbers of redisShared

	staleOnce sync.Once
)

// Main runs the tests and then stops the shared servers and removes their
// directories. Call it from TestMain; optional (see the package comment).
func Main(m *testing.M) {
	code := m.Run()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	if err := closeShared(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "infratest:", err)
	}
	cancel()
	os.Exit(code)
}

func closeShared(ctx context.Context) error {
	var errs []error
	if pgShared != nil {
		errs = append(errs, pgShared.Close(ctx))
	}
	if redisShared != nil {
		errs = append(errs, redisShared.Close(ctx))
	}
	return errors.Join(errs...)
}

// unavailable skips the test, or fails it under HAL9_REQUIRE_INFRA=1.
func unavailable(t testing.TB, what string, err error) {
	t.Helper()
	if os.Getenv(EnvRequireInfra) == "1" {
		t.Fatalf("%s unavailable and %s=1: %v", what, EnvRequireInfra, err)
	}
	t.Skipf("%s unavailable, skipping (set %s=1 to fail instead): %v", what, EnvRequireInfra, err)
}

// ---- PostgreSQL ----

// PostgresURL returns the URL of a new, empty database that exists only for
// this test: CREATE DATABASE hal9_t_<time>_<random> on HAL9_PG_DSN when set,
// else on this binary's shared local postgres; DROP DATABASE … WITH (FORCE)
// at cleanup. The user is a superuser (the local server's "postgres").
func PostgresURL(t testing.TB) string {
	t.Helper()
	base, err := postgresBase()
	if err != nil {
		unavailable(t, "PostgreSQL", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	name := "hal9_t_" + strconv.FormatInt(time.Now().Unix(), 10) + "_" + randomHex(5)
	if err := createDatabase(ctx, base, name); err != nil {
		unavailable(t, "PostgreSQL", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := dropDatabase(ctx, base, name); err != nil {
			t.Errorf("infratest: drop test database %s: %v", name, err)
		}
	})
	u, err := withDatabase(base, name)
	if err != nil {
		t.Fatalf("infratest: %v", err)
	}
	return u
}

// postgresBase returns the admin URL test databases are created on.
func postgresBase() (string, error) {
	if dsn := os.Getenv(EnvPostgresDSN); dsn != "" {
		staleOnce.Do(func() { dropStale(dsn) })
		return dsn, nil
	}
	pgOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
		defer cancel()
		pgShared, pgErr = infra.StartPostgresProcess(ctx, infra.ProcessOptions{})
		if pgErr != nil {
			pgErr = fmt.Errorf("%s not set and no local postgres could be started: %w", EnvPostgresDSN, pgErr)
		}
	})
	if pgErr != nil {
		return "", pgErr
	}
	return pgShared.URL(), nil
}

func createDatabase(ctx context.Context, base, name string) error {
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", redact.URL(base), err)
	}
	defer conn.Close(context.Background())
	for attempt := 0; ; attempt++ {
		_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
		// 55006: the template database is being accessed by someone else;
		// that passes, so retry for a while.
		var pgErr *pgconn.PgError
		if err == nil || !errors.As(err, &pgErr) || pgErr.Code != "55006" || attempt >= 50 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("create test database %s: %w", name, err)
	}
	return nil
}

func dropDatabase(ctx context.Context, base, name string) error {
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", redact.URL(base), err)
	}
	defer conn.Close(context.Background())
	ident := pgx.Identifier{name}.Sanitize()
	if _, err = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+ident+" WITH (FORCE)"); err == nil {
		return nil
	}
	// Before PostgreSQL 13 there is no WITH (FORCE).
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "42601" {
		return err
	}
	_, _ = conn.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name)
	_, err = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+ident)
	return err
}

// dropStale drops test databases an earlier, crashed test binary left on
// the external server: those named hal9_t_<unix time>_… older than 6 hours.
// Best effort; only names this package makes are touched.
func dropStale(base string) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		return
	}
	rows, err := conn.Query(ctx, `SELECT datname FROM pg_database WHERE datname LIKE 'hal9\_t\_%'`)
	if err != nil {
		conn.Close(ctx)
		return
	}
	names, _ := pgx.CollectRows(rows, pgx.RowTo[string])
	conn.Close(ctx)
	cutoff := time.Now().Add(-6 * time.Hour).Unix()
	for _, n := range names {
		parts := strings.Split(n, "_") // hal9 t <time> <random>
		if len(parts) != 4 {
			continue
		}
		if ts, err := strconv.ParseInt(parts[2], 10, 64); err == nil && ts < cutoff {
			_ = dropDatabase(ctx, base, n)
		}
	}
}

// withDatabase points a PostgreSQL URL or key=value DSN at database name.
func withDatabase(base, name string) (string, error) {
	if strings.HasPrefix(base, "postgres://") || strings.HasPrefix(base, "postgresql://") {
		u, err := url.Parse(base)
		if err != nil {
			return "", fmt.Errorf("parse %s: %w", EnvPostgresDSN, err)
		}
		u.Path = "/" + name
		u.RawPath = ""
		return u.String(), nil
	}
	return base + " dbname=" + name, nil // later keys win in a DSN
}

// PostgresProcess starts a PostgreSQL server for this test alone, to stop
// and restart (Stop/Start keep its port and data); closed at cleanup.
func PostgresProcess(t testing.TB) *infra.Process {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	p, err := infra.StartPostgresProcess(ctx, infra.ProcessOptions{})
	if err != nil {
		unavailable(t, "local PostgreSQL process", err)
	}
	t.Cleanup(func() { closeProcess(t, p) })
	return p
}

// RedisProcess starts a redis-server for this test alone, to stop and
// restart (Stop/Start keep its port); closed at cleanup.
func RedisProcess(t testing.TB) *infra.Process {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	p, err := infra.StartRedisProcess(ctx, infra.ProcessOptions{})
	if err != nil {
		unavailable(t, "local Redis process", err)
	}
	t.Cleanup(func() { closeProcess(t, p) })
	return p
}

func closeProcess(t testing.TB, p *infra.Process) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		t.Errorf("infratest: %v", err)
	}
}

// ---- Redis ----

// RedisURL returns the URL of an empty logical Redis database that belongs
// to this test until its cleanup.
//
// Without HAL9_REDIS_URL: a logical DB (0..63) of this binary's shared local
// redis-server; flushed and handed to the next test at cleanup. With
// HAL9_REDIS_URL: one of its DBs 1..15 (never 0), claimed with a lock key in
// DB 0 (hal9:infratest:lock:<n>, so test binaries running in parallel never
// share one) and only when it is empty or was used by infratest before
// (marker hal9:infratest:used:<n>); FLUSHDB of that DB alone at cleanup.
func RedisURL(t testing.TB) string {
	t.Helper()
	if raw := os.Getenv(EnvRedisURL); raw != "" {
		u, err := claimExternalDB(t, raw)
		if err != nil {
			unavailable(t, "Redis", err)
		}
		return u
	}
	redisOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
		defer cancel()
		redisShared, redisErr = infra.StartRedisProcess(ctx, infra.ProcessOptions{RedisDatabases: sharedDBs})
		if redisErr != nil {
			redisErr = fmt.Errorf("%s not set and no local redis-server could be started: %w", EnvRedisURL, redisErr)
			return
		}
		redisFree = make(chan int, sharedDBs)
		for i := 0; i < sharedDBs; i++ {
			redisFree <- i
		}
	})
	if redisErr != nil {
		unavailable(t, "Redis", redisErr)
	}
	var db int
	select {
	case db = <-redisFree:
	case <-time.After(60 * time.Second):
		t.Fatalf("infratest: all %d Redis DBs of the shared server are held by running tests", sharedDBs)
	}
	u := fmt.Sprintf("redis://127.0.0.1:%d/%d", redisShared.Port(), db)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := flushDB(ctx, u); err != nil {
			// Do not hand a dirty DB to the next test.
			t.Errorf("infratest: flush %s: %v (DB %d retired)", u, err, db)
			return
		}
		redisFree <- db
	})
	return u
}

func flushDB(ctx context.Context, u string) error {
	c, err := redisClient(u)
	if err != nil {
		return err
	}
	defer c.Close()
	return c.FlushDB(ctx).Err()
}

func redisClient(u string) (*redis.Client, error) {
	o, err := redis.ParseURL(u)
	if err != nil {
		return nil, fmt.Errorf("parse Redis URL %s: %w", redact.URL(u), err)
	}
	o.PoolSize = 2
	return redis.NewClient(o), nil
}

const (
	lockTTL   = 30 * time.Minute
	claimWait = 30 * time.Second
)

// claimExternalDB borrows one of DBs 1..15 of an existing Redis.
func claimExternalDB(t testing.TB, raw string) (string, error) {
	base, err := url.Parse(raw)
	if err != nil || (base.Scheme != "redis" && base.Scheme != "rediss") {
		return "", fmt.Errorf("%s=%q is not a redis:// or rediss:// URL", EnvRedisURL, redact.URL(raw))
	}
	dbURL := func(n int) string {
		u := *base
		u.Path = "/" + strconv.Itoa(n)
		u.RawPath = ""
		return u.String()
	}
	ctx, cancel := context.WithTimeout(context.Background(), claimWait+10*time.Second)
	defer cancel()
	admin, err := redisClient(dbURL(0))
	if err != nil {
		return "", err
	}
	defer admin.Close()
	token := randomHex(8)
	deadline := time.Now().Add(claimWait)
	for {
		for n := 1; n <= 15; n++ {
			ok, err := tryClaim(ctx, admin, dbURL(n), n, token)
			if err != nil {
				return "", err
			}
			if !ok {
				continue
			}
			u := dbURL(n)
			t.Cleanup(func() { releaseExternalDB(t, dbURL(0), u, n, token) })
			return u, nil
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("no free logical DB among 1..15 of %s after %v: all are held by running tests or hold data that is not ours", redact.URL(raw), claimWait)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func lockKey(n int) string { return "hal9:infratest:lock:" + strconv.Itoa(n) }
func usedKey(n int) string { return "hal9:infratest:used:" + strconv.Itoa(n) }

func tryClaim(ctx context.Context, admin *redis.Client, u string, n int, token string) (bool, error) {
	ok, err := admin.SetNX(ctx, lockKey(n), token, lockTTL).Result()
	if err != nil {
		return false, fmt.Errorf("claim Redis DB %d: %w", n, err)
	}
	if !ok {
		return false, nil
	}
	c, err := redisClient(u)
	if err != nil {
		return false, err
	}
	defer c.Close()
	size, err := c.DBSize(ctx).Result()
	if err == nil && size > 0 {
		var used int64
		used, err = admin.Exists(ctx, usedKey(n)).Result()
		if err == nil && used == 0 {
			// Someone else's data: leave this DB alone.
			admin.Del(ctx, lockKey(n))
			return false, nil
		}
	}
	if err == nil {
		err = c.FlushDB(ctx).Err() // leftovers of a crashed infratest user
	}
	if err == nil {
		err = admin.Set(ctx, usedKey(n), "1", 0).Err()
	}
	if err != nil {
		admin.Del(ctx, lockKey(n))
		return false, fmt.Errorf("claim Redis DB %d: %w", n, err)
	}
	return true, nil
}

func releaseExternalDB(t testing.TB, adminURL, u string, n int, token string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := flushDB(ctx, u); err != nil {
		t.Errorf("infratest: flush Redis DB %d: %v", n, err)
	}
	admin, err := redisClient(adminURL)
	if err != nil {
		return
	}
	defer admin.Close()
	// Release only our own lock (it may have expired and been re-taken).
	if v, err := admin.Get(ctx, lockKey(n)).Result(); err == nil && v == token {
		admin.Del(ctx, lockKey(n))
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// ---- a container engine ----

// Containers returns a container session on the Docker engine
// testcontainers finds, closed when the test ends; without an engine the
// test is skipped (fails under HAL9_REQUIRE_INFRA=1; .ci/run gives the
// tests one with .ci/with-dockerd).
func Containers(t testing.TB) *infra.ContainerSession {
	t.Helper()
	sess, err := infra.NewContainerSession(context.Background(), infra.ImageOptions{}, nil)
	if err != nil {
		unavailable(t, "a Docker engine", err)
	}
	t.Cleanup(func() { _ = sess.Close(context.Background()) })
	return sess
}
