package infra

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

func TestThroughPgBouncer(t *testing.T) {
	for _, tt := range []struct{ db, bouncer, want string }{
		{"postgres://postgres@127.0.0.1:5432/hal9lab_x?sslmode=disable", "postgres://postgres@127.0.0.1:6432/postgres?sslmode=disable&default_query_exec_mode=exec",
			"postgres://postgres@127.0.0.1:6432/hal9lab_x?default_query_exec_mode=exec&sslmode=disable"},
		{"postgres://u:p%40ss@db:5432/hal9", "postgres://u@127.0.0.1:7000/postgres",
			"postgres://u:p%40ss@127.0.0.1:7000/hal9?default_query_exec_mode=exec&sslmode=disable"},
	} {
		got, err := ThroughPgBouncer(tt.db, tt.bouncer)
		if err != nil || got != tt.want {
			t.Errorf("ThroughPgBouncer(%s) = %s, %v; want %s", tt.db, got, err, tt.want)
		}
	}
}

// TestPgBouncerProcess: a local PgBouncer in transaction mode in front of a
// local PostgreSQL carries many concurrent clients with arguments (pgx in
// exec mode) over a few server connections, and leaves nothing behind.
func TestPgBouncerProcess(t *testing.T) {
	needProcess(t, "postgres")
	needProcess(t, "pgbouncer")
	ctx := context.Background()
	pg, err := StartPostgresProcess(ctx, ProcessOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close(ctx)
	const poolSize = 2
	pb, err := StartPgBouncerProcess(ctx, PgBouncerOptions{Upstream: pg.URL(), PoolSize: poolSize, MaxClientConn: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer pb.Close(ctx)
	if !strings.Contains(pb.URL(), "default_query_exec_mode=exec") {
		t.Fatalf("PgBouncer URL %s lacks default_query_exec_mode=exec", pb.URL())
	}
	c, err := pgx.Connect(ctx, pg.URL())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exec(ctx, "CREATE DATABASE bounced"); err != nil {
		t.Fatal(err)
	}
	c.Close(ctx)
	dbURL := strings.Replace(pg.URL(), "/postgres?", "/bounced?", 1)
	through, err := ThroughPgBouncer(dbURL, pb.URL())
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := pgxpool.ParseConfig(through)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 12
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if _, err := pool.Exec(ctx, "CREATE TABLE t (id int PRIMARY KEY, v text)"); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for w := 0; w < 12; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 15; i++ {
				id := w*100 + i
				if _, err := pool.Exec(ctx, "INSERT INTO t (id, v) VALUES ($1, $2)", id, fmt.Sprint("v", id)); err != nil {
					errs <- err
					return
				}
				var v string
				if err := pool.QueryRow(ctx, "SELECT v FROM t WHERE id = $1", id).Scan(&v); err != nil || v != fmt.Sprint("v", id) {
					errs <- fmt.Errorf("read back %d: %q %v", id, v, err)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("through PgBouncer: %v", err)
	}
	var n int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM t").Scan(&n); err != nil || n != 12*15 {
		t.Fatalf("rows %d (%v), want %d", n, err, 12*15)
	}
	// PostgreSQL saw at most the pool's server connections for the
	// database, whatever the 12 clients did.
	c, err = pgx.Connect(ctx, pg.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var servers int
	if err := c.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE datname = 'bounced'").Scan(&servers); err != nil {
		t.Fatal(err)
	}
	if servers < 1 || servers > poolSize {
		t.Errorf("%d server connections to the database, want 1..%d (default_pool_size)", servers, poolSize)
	}
	pool.Close()

	pid, dir := pb.PID(), pb.Dir()
	if err := pb.Close(ctx); err != nil {
		t.Fatalf("close: %v", err)
	}
	if !gone(pid) {
		t.Fatalf("pgbouncer pid %d alive after Close", pid)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("dir %s left behind", dir)
	}
}
