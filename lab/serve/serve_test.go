package serve_test

import (
	"context"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hal9-lab/hal9-lab/lab/build/buildtest"
	"github.com/hal9-lab/hal9-lab/lab/serve"
)

// root is the repository root (tests run in lab/serve).
const root = "../.."

func TestMain(m *testing.M) { buildtest.Main(m) }

func serverBin(t testing.TB) string { return buildtest.Server(t, root) }

func TestArgs(t *testing.T) {
	o := serve.Options{DatabaseURL: "sqlite:///d/hal9.db", RateLimit: 2.5, DataDir: "/d", Shutdown: 10 * time.Second,
		RedisURL: "redis://r:6379/1", PyroscopeURL: "http://p:4040", Extra: []string{"--bcrypt-cost", "4"}}
	got := strings.Join(o.Args("127.0.0.1:1", "127.0.0.1:2"), " ")
	want := "--addr 127.0.0.1:1 --admin-addr 127.0.0.1:2 --database-url sqlite:///d/hal9.db --rate-limit 2.5 --data-dir /d --shutdown-timeout 10s " +
		"--redis-url redis://r:6379/1 --pyroscope-url http://p:4040 --bcrypt-cost 4"
	if got != want {
		t.Errorf("args\n%s\nwant\n%s", got, want)
	}
}

func TestStartErrors(t *testing.T) {
	ctx := context.Background()
	if _, err := serve.Start(ctx, serve.Options{}); err == nil || !strings.Contains(err.Error(), "no binary") {
		t.Errorf("no binary: %v", err)
	}
	if _, err := serve.Start(ctx, serve.Options{Bin: "/nonexistent/hal9"}); err == nil || !strings.Contains(err.Error(), "/nonexistent/hal9") {
		t.Errorf("missing binary: %v", err)
	}
}

// TestServerProcess: a server process on SQLite gets ready, reports its
// /proc numbers, dies with -1 on SIGKILL (its log in the error of a second
// start on a taken port), and exits 0 on SIGTERM.
func TestServerProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: starts the server")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	data := t.TempDir()
	opts := serve.Options{Bin: serverBin(t), DatabaseURL: "sqlite://" + filepath.Join(data, "hal9.db"), DataDir: data, Shutdown: 5 * time.Second,
		LogPath: filepath.Join(t.TempDir(), "hal9.log"), Env: map[string]string{"HAL9_BCRYPT_COST": "4"}}
	srv, err := serve.Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Kill()
	if err := srv.WaitReady(ctx, time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, ok := srv.ContainerStart(); ok || srv.PID() <= 0 {
		t.Errorf("a process: container %v, pid %d", ok, srv.PID())
	}
	if rss, _, ok := srv.Stats(); !ok || rss <= 0 {
		t.Errorf("stats %v %v", rss, ok)
	}
	// Its API port taken: a second server exits at once, and says so.
	taken := opts
	taken.Addr, taken.LogPath = srv.Addr, filepath.Join(t.TempDir(), "taken.log")
	if second, err := serve.Start(ctx, taken); err == nil {
		if err := second.WaitReady(ctx, 30*time.Second); err == nil || !strings.Contains(err.Error(), "exited before it was ready") || !strings.Contains(err.Error(), srv.Addr) {
			t.Errorf("a server on a taken port: %v", err)
		}
		if code, ok := second.WaitExit(10 * time.Second); !ok || code == 0 {
			t.Errorf("a server on a taken port: exit %d, exited %v", code, ok)
		}
	}
	if err := srv.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if code, ok := srv.WaitExit(30 * time.Second); !ok || code != -1 || !srv.Exited() {
		t.Errorf("after SIGKILL: exit %d, exited %v; want -1", code, ok)
	}
	srv, err = serve.Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.WaitReady(ctx, time.Minute); err != nil {
		t.Fatal(err)
	}
	if code, took, err := srv.Stop(); code != 0 || err != nil || took > opts.Shutdown+5*time.Second {
		t.Errorf("SIGTERM: exit %d in %s, %v", code, took, err)
	}
}
