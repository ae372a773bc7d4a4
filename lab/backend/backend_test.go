package backend_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hal9-lab/hal9-lab/lab/backend"
	"github.com/hal9-lab/hal9-lab/lab/infra"
	"github.com/hal9-lab/hal9-lab/lab/report"
)

func requireInfra() bool { return os.Getenv("HAL9_REQUIRE_INFRA") == "1" }

// TestSQLite: SQLite has nothing to start: one server, a file database,
// no pools, no processes.
func TestSQLite(t *testing.T) {
	ctx := context.Background()
	b, err := backend.Start(ctx, "sqlite", backend.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Stop(ctx)
	dir := t.TempDir()
	db, err := b.FreshDatabase(ctx, dir)
	if err != nil || db.DatabaseURL != "sqlite://"+filepath.Join(dir, "hal9.db") || db.RedisURL != "" {
		t.Fatalf("database %+v, %v", db, err)
	}
	if err := db.Close(ctx); err != nil {
		t.Error(err)
	}
	pools, err := b.Pools(1, db.DatabaseURL)
	if pools != nil || err != nil {
		t.Errorf("pools %+v, %v: SQLite has none", pools, err)
	}
	if b.Infra() != "none" || b.Servers(3) != 1 || b.CPUSeconds() != 0 {
		t.Errorf("infra %q, servers %d, CPU %v", b.Infra(), b.Servers(3), b.CPUSeconds())
	}
	if pg, redis := b.Processes(); pg != nil || redis != nil {
		t.Error("SQLite has processes")
	}
	if off, err := b.Durability(ctx); off != nil || err != nil {
		t.Errorf("durability %v, %v", off, err)
	}
	if _, err := b.NetworkURL("postgres://x/y"); err == nil {
		t.Error("SQLite has a container network")
	}
}

// TestPostgresRedis: local PostgreSQL and Redis processes, a fresh
// database and Redis DB per run (dropped after), pools that fit three
// servers, PostgreSQL's connections sampled, its CPU counted, and with
// PgBouncer in front the servers' URL through it.
func TestPostgresRedis(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: starts PostgreSQL and Redis")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, lookErr := exec.LookPath("pgbouncer")
	if _, err := os.Stat("/usr/sbin/pgbouncer"); err == nil {
		lookErr = nil
	}
	var progress []string
	b, err := backend.Start(ctx, "postgres+redis", backend.Options{
		Infra:     infra.Options{Postgres: true, Redis: true, Mode: infra.ModeProcess, Durable: false},
		PgBouncer: lookErr == nil, Replicas: 3,
		Progress: func(f string, a ...any) { progress = append(progress, f) }})
	if err != nil {
		b.Stop(ctx)
		if requireInfra() {
			t.Fatal(err)
		}
		t.Skipf("no PostgreSQL and Redis: %v", err)
	}
	defer func() {
		if err := b.Stop(ctx); err != nil {
			t.Error(err)
		}
	}()
	if b.Infra() != "process" || b.Servers(3) != 3 {
		t.Errorf("infra %q, servers %d", b.Infra(), b.Servers(3))
	}
	if pg, redis := b.Processes(); pg == nil || redis == nil {
		t.Fatalf("processes %v %v", pg, redis)
	}
	if off, err := b.Durability(ctx); err != nil || len(off) == 0 {
		t.Errorf("durability off: %v, %v; want fsync and the rest off (Durable false)", off, err)
	}
	db, err := b.FreshDatabase(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(db.DatabaseURL, "postgres://") || !strings.Contains(db.RedisURL, "/") {
		t.Fatalf("database %+v", db)
	}
	conn, err := pgx.Connect(ctx, db.DatabaseURL)
	if err != nil {
		t.Fatalf("the fresh database: %v", err)
	}
	var conns report.Connections
	sampler := b.SampleConnections(ctx, db.DatabaseURL, &conns)
	time.Sleep(1200 * time.Millisecond)
	sampler.Stop()
	conn.Close(ctx)
	if conns.Samples < 2 || conns.PeakLegDatabase < 1 || conns.Error != "" {
		t.Errorf("connections %+v: want samples that see the open connection", conns)
	}
	pools, err := b.Pools(3, db.DatabaseURL)
	if err != nil || pools == nil {
		t.Fatalf("pools %+v, %v", pools, err)
	}
	if pools.PgBouncer {
		if len(progress) == 0 || !strings.HasPrefix(progress[0], "PgBouncer") {
			t.Errorf("progress %q: PgBouncer's start not told", progress)
		}
		if pools.DatabaseURL == db.DatabaseURL || pools.PgBouncerPool < 2 || pools.PoolPerServer != 100 {
			t.Errorf("through PgBouncer: %+v", pools)
		}
	} else if pools.DatabaseURL != db.DatabaseURL || pools.PoolPerServer*3+pools.Reserved > pools.MaxConnections {
		t.Errorf("pools %+v do not fit %d connections", pools, pools.MaxConnections)
	}
	if len(pools.Flags) != 4 || pools.Flags[0] != "--db-max-conns" {
		t.Errorf("flags %v", pools.Flags)
	}
	if cpu := b.CPUSeconds(); cpu <= 0 {
		t.Errorf("PostgreSQL and Redis used %v CPU seconds", cpu)
	}
	if err := db.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if c, err := pgx.Connect(ctx, db.DatabaseURL); err == nil {
		c.Close(ctx)
		t.Error("the run's database is still there after Close")
	}
}
