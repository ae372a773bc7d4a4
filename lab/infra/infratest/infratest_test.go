package infratest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		// A child of TestNoMainLeavesNothing: a test binary without
		// infratest.Main, ending with a plain exit.
		os.Exit(m.Run())
	}
	Main(m)
}

const childEnv = "HAL9_INFRATEST_CHILD"

// TestNoMainChild runs only in the child: it starts the shared servers and
// reports their pids and directories.
func TestNoMainChild(t *testing.T) {
	if os.Getenv(childEnv) == "" {
		t.Skip("helper for TestNoMainLeavesNothing")
	}
	PostgresURL(t)
	RedisURL(t)
	fmt.Printf("CHILD %d %s %d %d %s %d\n", pgShared.PID(), pgShared.Dir(), pgShared.ReaperPID(),
		redisShared.PID(), redisShared.Dir(), redisShared.ReaperPID())
}

// TestNoMainLeavesNothing: a test binary that used the shared servers and
// exits without Main leaves no process and no directory behind.
func TestNoMainLeavesNothing(t *testing.T) {
	if os.Getenv(childEnv) != "" {
		t.Skip("in the child")
	}
	if os.Getenv(EnvPostgresDSN) != "" || os.Getenv(EnvRedisURL) != "" {
		t.Skip("external backends configured; no shared processes to check")
	}
	PostgresURL(t) // skip here, not in the child, when there is no postgres
	RedisURL(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestNoMainChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), childEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	var pgPID, pgReaper, rPID, rReaper int
	var pgDir, rDir string
	line := ""
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "CHILD ") {
			line = l
		}
	}
	if _, err := fmt.Sscanf(line, "CHILD %d %s %d %d %s %d", &pgPID, &pgDir, &pgReaper, &rPID, &rDir, &rReaper); err != nil {
		t.Fatalf("child output %q: %v\n%s", line, err, out)
	}
	exited := time.Now()
	deadline := exited.Add(20 * time.Second)
	for {
		var left []string
		for _, pid := range []int{pgPID, pgReaper, rPID, rReaper} {
			if !processGone(pid) {
				left = append(left, fmt.Sprintf("pid %d", pid))
			}
		}
		for _, d := range []string{pgDir, rDir} {
			if _, err := os.Stat(d); err == nil {
				left = append(left, d)
			}
		}
		if len(left) == 0 {
			t.Logf("all gone %v after the child exited", time.Since(exited).Round(time.Millisecond))
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("left behind 20s after the child exited: %v", left)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// processGone: no such process, or a zombie nobody reaps yet.
func processGone(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return os.IsNotExist(err)
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && len(s) > i+2 && s[i+2] == 'Z'
}

func pgConnect(t *testing.T, u string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatalf("connect %s: %v", u, err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

func dbExists(t *testing.T, admin, name string) bool {
	t.Helper()
	c := pgConnect(t, admin)
	var n int
	if err := c.QueryRow(context.Background(), "SELECT count(*) FROM pg_database WHERE datname=$1", name).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n == 1
}

// testPostgresURL checks fresh, distinct, empty databases that are dropped
// at cleanup, whatever backs them.
func testPostgresURL(t *testing.T, admin func() string) {
	var names []string
	for i := 0; i < 2; i++ {
		t.Run("db", func(t *testing.T) {
			u := PostgresURL(t)
			c := pgConnect(t, u)
			ctx := context.Background()
			var name string
			var tables int
			if err := c.QueryRow(ctx, "SELECT current_database()").Scan(&name); err != nil {
				t.Fatal(err)
			}
			if err := c.QueryRow(ctx, "SELECT count(*) FROM pg_tables WHERE schemaname='public'").Scan(&tables); err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(name, "hal9_t_") || tables != 0 {
				t.Fatalf("database %q with %d tables, want a fresh hal9_t_* one", name, tables)
			}
			if _, err := c.Exec(ctx, "CREATE TABLE t(x int)"); err != nil {
				t.Fatal(err)
			}
			names = append(names, name)
		})
	}
	if len(names) != 2 || names[0] == names[1] {
		t.Fatalf("databases %v, want two distinct ones", names)
	}
	for _, n := range names {
		if dbExists(t, admin(), n) {
			t.Errorf("database %s still exists after its test", n)
		}
	}
}

func TestPostgresURLShared(t *testing.T) {
	if os.Getenv(EnvPostgresDSN) != "" {
		t.Skipf("%s is set; the external path is what runs", EnvPostgresDSN)
	}
	testPostgresURL(t, func() string { return pgShared.URL() })
}

func TestPostgresURLExternal(t *testing.T) {
	p := PostgresProcess(t) // stands in for an engineer's server
	t.Setenv(EnvPostgresDSN, p.URL())
	testPostgresURL(t, p.URL)
}

func TestWithDatabase(t *testing.T) {
	for _, tc := range []struct{ base, want string }{
		{"postgres://u:p@h:5432/test?sslmode=disable", "postgres://u:p@h:5432/x?sslmode=disable"},
		{"postgresql://h/", "postgresql://h/x"},
		{"host=h user=u dbname=test", "host=h user=u dbname=test dbname=x"},
	} {
		got, err := withDatabase(tc.base, "x")
		if err != nil || got != tc.want {
			t.Errorf("withDatabase(%q) = %q, %v; want %q", tc.base, got, err, tc.want)
		}
	}
}

func redisConnect(t *testing.T, u string) *redis.Client {
	t.Helper()
	o, err := redis.ParseURL(u)
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(o)
	t.Cleanup(func() { c.Close() })
	return c
}

// testRedisURL checks that tests holding DBs at the same time get distinct
// empty ones, flushed at cleanup, claimed concurrently too.
func testRedisURL(t *testing.T) {
	ctx := context.Background()
	var urls []string
	t.Run("hold3", func(t *testing.T) {
		var mu sync.Mutex
		var wg sync.WaitGroup
		for i := 0; i < 3; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				u := RedisURL(t) // the DBs stay held until hold3's cleanup
				mu.Lock()
				urls = append(urls, u)
				mu.Unlock()
			}()
		}
		wg.Wait()
		if t.Failed() || len(urls) != 3 {
			t.FailNow()
		}
		for _, u := range urls {
			c := redisConnect(t, u)
			if n, err := c.DBSize(ctx).Result(); err != nil || n != 0 {
				t.Fatalf("DBSIZE of %s = %d, %v; want an empty DB", u, n, err)
			}
			if err := c.Set(ctx, "hal9:k", u, 0).Err(); err != nil {
				t.Fatal(err)
			}
		}
	})
	seen := map[string]bool{}
	for _, u := range urls {
		if seen[u] {
			t.Fatalf("two holders got %s", u)
		}
		seen[u] = true
		if strings.HasSuffix(u, "/0") && os.Getenv(EnvRedisURL) != "" {
			t.Fatalf("external DB 0 handed out: %s", u)
		}
		if n, err := redisConnect(t, u).DBSize(ctx).Result(); err != nil || n != 0 {
			t.Errorf("%s holds %d keys after its test (%v)", u, n, err)
		}
	}
	if len(seen) != 3 {
		t.Fatalf("got %d URLs, want 3", len(seen))
	}
}

func TestRedisURLShared(t *testing.T) {
	if os.Getenv(EnvRedisURL) != "" {
		t.Skipf("%s is set; the external path is what runs", EnvRedisURL)
	}
	testRedisURL(t)
}

func TestRedisURLExternal(t *testing.T) {
	p := RedisProcess(t) // stands in for an engineer's server
	ctx := context.Background()
	base := strings.TrimSuffix(p.URL(), "/0")
	// DB 1 holds someone else's data: it must be neither used nor flushed.
	foreign := redisConnect(t, base+"/1")
	if err := foreign.Set(ctx, "theirs", "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	t.Setenv(EnvRedisURL, p.URL())
	testRedisURL(t)
	if v, err := foreign.Get(ctx, "theirs").Result(); err != nil || v != "1" {
		t.Fatalf("foreign key in DB 1: %q, %v; want it untouched", v, err)
	}
	for _, u := range []string{base + "/0"} {
		keys, _ := redisConnect(t, u).Keys(ctx, "*").Result()
		for _, k := range keys {
			if strings.HasPrefix(k, "hal9:infratest:lock:") {
				t.Errorf("lock %s not released", k)
			}
		}
	}
}

func TestRedisURLExternalBadURL(t *testing.T) {
	t.Setenv(EnvRedisURL, "http://nope")
	if _, err := claimExternalDB(t, "http://nope"); err == nil || !strings.Contains(err.Error(), "redis://") {
		t.Fatalf("err = %v, want a message naming redis://", err)
	}
}

func TestProcessesRestart(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		start func(testing.TB) interface {
			URL() string
			Stop(context.Context) error
			Start(context.Context) error
		}
	}{
		{"postgres", func(t testing.TB) interface {
			URL() string
			Stop(context.Context) error
			Start(context.Context) error
		} {
			return PostgresProcess(t)
		}},
		{"redis", func(t testing.TB) interface {
			URL() string
			Stop(context.Context) error
			Start(context.Context) error
		} {
			return RedisProcess(t)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.start(t)
			u := p.URL()
			if err := p.Stop(ctx); err != nil {
				t.Fatal(err)
			}
			if err := p.Start(ctx); err != nil {
				t.Fatal(err)
			}
			if p.URL() != u {
				t.Fatalf("URL changed across restart: %s -> %s", u, p.URL())
			}
		})
	}
}
