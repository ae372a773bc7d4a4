package infra

import (
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
)

// needProcess skips (or fails under HAL9_REQUIRE_INFRA=1) when the binaries
// for a local server are missing.
func needProcess(t *testing.T, kind string) {
	t.Helper()
	var err error
	switch kind {
	case "postgres":
		_, _, err = findPostgres("")
	case "redis":
		_, err = findRedis("")
	case "haproxy":
		_, err = findHAProxy("")
	case "pgbouncer":
		_, err = findPgBouncer("")
	}
	if err != nil {
		if os.Getenv("HAL9_REQUIRE_INFRA") == "1" {
			t.Fatalf("HAL9_REQUIRE_INFRA=1 but %v", err)
		}
		t.Skipf("no local %s: %v", kind, err)
	}
}

// gone reports whether pid no longer exists (a zombie counts as gone: it
// holds no resources and its parent is not ours to reap).
func gone(pid int) bool {
	if pid <= 0 {
		return true
	}
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	b, err := os.ReadFile("/proc/" + itoa(pid) + "/stat")
	if err != nil {
		return os.IsNotExist(err)
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && len(s) > i+2 {
		return s[i+2] == 'Z'
	}
	return false
}

func itoa(i int) string { return strconv.Itoa(i) }

// eventually polls cond until it holds or the (generous) bound passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still not true after 20s: %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func pgQuery(t *testing.T, url string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	defer c.Close(ctx)
	var n int
	if err := c.QueryRow(ctx, "SELECT 41+1").Scan(&n); err != nil {
		t.Fatalf("query: %v", err)
	}
	return n
}

func TestPostgresProcessLifecycle(t *testing.T) {
	needProcess(t, "postgres")
	ctx := context.Background()
	p, err := StartPostgresProcess(ctx, ProcessOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	if got := pgQuery(t, p.URL()); got != 42 {
		t.Fatalf("SELECT 41+1 = %d", got)
	}
	url, pid, dir, reaper := p.URL(), p.PID(), p.Dir(), p.ReaperPID()
	if err := p.Stop(ctx); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if !gone(pid) {
		t.Fatalf("postgres pid %d still alive after Stop", pid)
	}
	if err := pingPostgres(ctx, url); err == nil {
		t.Fatal("postgres answers after Stop")
	}
	if err := p.Start(ctx); err != nil {
		t.Fatalf("restart: %v", err)
	}
	if p.URL() != url {
		t.Fatalf("restart changed URL %s -> %s", url, p.URL())
	}
	pgQuery(t, p.URL())
	pid = p.PID()
	if err := p.Close(ctx); err != nil {
		t.Fatalf("close: %v", err)
	}
	if !gone(pid) {
		t.Fatalf("postgres pid %d alive after Close", pid)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("dir %s left behind (stat err %v)", dir, err)
	}
	eventually(t, "reaper exited", func() bool { return gone(reaper) })
	if err := p.Start(ctx); err == nil {
		t.Fatal("Start after Close succeeded")
	}
}

func TestRedisProcessLifecycle(t *testing.T) {
	needProcess(t, "redis")
	ctx := context.Background()
	p, err := StartRedisProcess(ctx, ProcessOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	o, _ := redis.ParseURL(p.URL())
	c := redis.NewClient(o)
	defer c.Close()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	pid, dir := p.PID(), p.Dir()
	if err := p.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if !gone(pid) {
		t.Fatalf("redis pid %d alive after Stop", pid)
	}
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	// No persistence: the key is gone after a restart.
	if err := c.Get(ctx, "k").Err(); !errors.Is(err, redis.Nil) {
		t.Fatalf("get after restart: %v, want redis.Nil", err)
	}
	pid = p.PID()
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if !gone(pid) || dirExistsT(dir) {
		t.Fatalf("leftovers after Close: pid %d gone=%v dir exists=%v", pid, gone(pid), dirExistsT(dir))
	}
}

func dirExistsT(dir string) bool {
	_, err := os.Stat(dir)
	return err == nil
}

// A server that dies by itself is started again by Start.
func TestProcessStartAfterCrash(t *testing.T) {
	needProcess(t, "redis")
	ctx := context.Background()
	p, err := StartRedisProcess(ctx, ProcessOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	pid := p.PID()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, "redis killed and reaped", func() bool { return !p.running() })
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := pingRedis(ctx, p.URL()); err != nil {
		t.Fatalf("after Start: %v", err)
	}
	if p.PID() == pid {
		t.Fatal("Start did not start a new process")
	}
}
