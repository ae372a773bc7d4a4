package infra

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestParseMode(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    Mode
		wantErr bool
	}{
		{"", ModeAuto, false},
		{"auto", ModeAuto, false},
		{"external", ModeExternal, false},
		{"Process", ModeProcess, false},
		{"testcontainers", ModeTestcontainers, false},
		{"docker", "", true},
	} {
		got, err := ParseMode(tc.in)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("ParseMode(%q) = %q, %v; want %q, err %v", tc.in, got, err, tc.want, tc.wantErr)
		}
		if err != nil && !strings.Contains(err.Error(), "auto, external, testcontainers or process") {
			t.Errorf("ParseMode(%q) error %q does not list the modes", tc.in, err)
		}
	}
}

// noExternal clears the external-mode variables for this test.
func noExternal(t *testing.T) {
	t.Setenv(EnvPostgresDSN, "")
	t.Setenv(EnvRedisURL, "")
}

// closedPort returns a loopback port nothing listens on.
func closedPort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}

func TestStartErrors(t *testing.T) {
	ctx := context.Background()
	missing := ProcessOptions{PostgresBinDir: "/nonexistent/pg/bin", RedisServer: "/nonexistent/redis-server"}
	for _, tc := range []struct {
		name string
		env  map[string]string
		opts Options
		want []string // substrings of the error
	}{
		{"nothing requested", nil, Options{}, []string{"nothing requested"}},
		{"unknown mode", nil, Options{Redis: true, Mode: "docker"}, []string{`unknown infra mode "docker"`}},
		{"external unset", nil, Options{Postgres: true, Redis: true, Mode: ModeExternal},
			[]string{"HAL9_PG_DSN and HAL9_REDIS_URL not set"}},
		{"external only requested must be set", map[string]string{EnvRedisURL: "redis://x"}, Options{Postgres: true, Mode: ModeExternal},
			[]string{"HAL9_PG_DSN not set"}},
		{"external down", map[string]string{EnvPostgresDSN: fmt.Sprintf("postgres://postgres@127.0.0.1:%d/x", closedPort(t))},
			Options{Postgres: true, Process: missing}, // auto: must not fall through to other modes
			[]string{"HAL9_PG_DSN=", "does not answer", "external:"}},
		{"external redis down", map[string]string{EnvRedisURL: fmt.Sprintf("redis://127.0.0.1:%d/0", closedPort(t))},
			Options{Redis: true, Mode: ModeExternal}, []string{"HAL9_REDIS_URL=", "does not answer"}},
		{"process binaries missing", nil, Options{Postgres: true, Redis: true, Mode: ModeProcess, Process: missing},
			[]string{"process:", "/nonexistent/pg/bin", "apt-get install postgresql"}},
		{`"auto" spelled out`, nil, Options{Postgres: true, Mode: "auto", Process: missing},
			[]string{"external: HAL9_PG_DSN not set", "process:"}},
		{"auto, nothing works", nil, Options{Postgres: true, Redis: true, Process: missing},
			[]string{"external: HAL9_PG_DSN and HAL9_REDIS_URL not set", "testcontainers:", "process:", "apt-get install postgresql redis-server"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			noExternal(t)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			if tc.opts.Mode.String() == "auto" && strings.Contains(strings.Join(tc.want, " "), "process:") && dockerHealth(ctx) == nil {
				t.Skip("a Docker engine answers here, so auto mode would use it")
			}
			env, err := Start(ctx, tc.opts)
			if err == nil {
				env.Stop(ctx)
				t.Fatalf("Start succeeded in mode %s, want an error", env.Mode)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not mention %q:\n%v", w, err)
				}
			}
			if tc.name == "external down" && strings.Contains(err.Error(), "process:") {
				t.Errorf("auto mode fell through after a configured external server failed:\n%v", err)
			}
		})
	}
}

func TestStartExternal(t *testing.T) {
	needProcess(t, "postgres")
	needProcess(t, "redis")
	ctx := context.Background()
	pg, err := StartPostgresProcess(ctx, ProcessOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close(ctx)
	rd, err := StartRedisProcess(ctx, ProcessOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close(ctx)
	t.Setenv(EnvPostgresDSN, pg.URL())
	t.Setenv(EnvRedisURL, rd.URL())
	env, err := Start(ctx, Options{Postgres: true, Redis: true})
	if err != nil {
		t.Fatal(err)
	}
	if env.Mode != ModeExternal || env.PostgresURL != pg.URL() || env.RedisURL != rd.URL() {
		t.Fatalf("env = %+v, want external with the given URLs", env)
	}
	if err := env.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := pingPostgres(ctx, pg.URL()); err != nil {
		t.Fatalf("Stop of an external env touched the server: %v", err)
	}
}

// procsMentioning lists processes whose command line contains s.
func procsMentioning(s string) []string {
	var out []string
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && strings.Contains(string(b), s) && !gone(atoi(e.Name())) {
			out = append(out, e.Name()+": "+strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
	return out
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}

// tempRoot makes a directory for the servers' temp dirs that the postgres
// user can reach (t.TempDir is 0700).
func tempRoot(t *testing.T) string {
	dir, err := os.MkdirTemp("", "hal9-infra-test-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func TestStartProcessesLeavesNothing(t *testing.T) {
	needProcess(t, "postgres")
	needProcess(t, "redis")
	noExternal(t)
	ctx := context.Background()
	root := tempRoot(t)
	env, err := Start(ctx, Options{Postgres: true, Redis: true, Mode: ModeProcess, Process: ProcessOptions{TempRoot: root}})
	if err != nil {
		t.Fatal(err)
	}
	if env.Mode != ModeProcess || len(env.Processes) != 2 {
		t.Fatalf("env = %+v", env)
	}
	pgQuery(t, env.PostgresURL)
	if err := pingRedis(ctx, env.RedisURL); err != nil {
		t.Fatal(err)
	}
	var pids []int
	var dirs []string
	for _, p := range env.Processes {
		pids = append(pids, p.PID(), p.ReaperPID())
		dirs = append(dirs, p.Dir())
	}
	if err := env.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := env.Stop(ctx); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	for _, pid := range pids {
		if !gone(pid) {
			t.Errorf("pid %d alive after Stop", pid)
		}
	}
	for _, d := range dirs {
		if dirExistsT(d) {
			t.Errorf("dir %s left after Stop", d)
		}
	}
	if left := procsMentioning(root); len(left) > 0 {
		t.Errorf("processes left: %v", left)
	}
}

func TestStartProcessesRedisFailsAfterPostgres(t *testing.T) {
	needProcess(t, "postgres")
	noExternal(t)
	ctx := context.Background()
	root := tempRoot(t)
	notExec := filepath.Join(t.TempDir(), "redis-server")
	if err := os.WriteFile(notExec, []byte("not a program"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, redis, want string
		noCache           bool
	}{
		{"exits at once", "/bin/false", "exited before accepting connections", true}, // plain initdb here
		{"not executable", notExec, "not an executable file", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Start(ctx, Options{Postgres: true, Redis: true, Mode: ModeProcess,
				Process: ProcessOptions{TempRoot: root, RedisServer: tc.redis, NoInitdbCache: tc.noCache}})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			entries, _ := os.ReadDir(root)
			if len(entries) > 0 {
				t.Errorf("left in %s: %v", root, entries)
			}
			eventually(t, "no process mentions "+root, func() bool { return len(procsMentioning(root)) == 0 })
		})
	}
}

func TestContainerSpecs(t *testing.T) {
	for _, img := range []*Image{{Kind: "postgres", Ref: "postgres:15"}, {Kind: "postgres", Ref: "hal9-lab/postgres:15.2-x", Host: true}} {
		spec := postgresSpec(img, false)
		cmd := strings.Join(spec.Cmd, " ")
		for _, want := range []string{"max_connections=200", "synchronous_commit=off", "fsync=off"} {
			if !strings.Contains(cmd, want) {
				t.Errorf("%s: postgres cmd %q lacks %s", img.Ref, cmd, want)
			}
		}
		if spec.Ready == nil || len(spec.Ports) != 1 || spec.Ports[0] != 5432 || len(spec.Tmpfs) != 1 {
			t.Errorf("%s: spec %+v", img.Ref, spec)
		}
		if !img.Host && (spec.Env["POSTGRES_HOST_AUTH_METHOD"] != "trust" || spec.Env["POSTGRES_DB"] != "postgres") {
			t.Errorf("official postgres image env %v", spec.Env)
		}
	}
	for _, img := range []*Image{{Kind: "postgres", Ref: "postgres:15"}, {Kind: "postgres", Ref: "hal9-lab/postgres:15.2-x", Host: true}} {
		spec := postgresSpec(img, true)
		if cmd := strings.Join(spec.Cmd, " "); strings.Contains(cmd, "fsync=off") || strings.Contains(cmd, "synchronous_commit=off") || strings.Contains(cmd, "full_page_writes=off") {
			t.Errorf("%s durable: postgres cmd %q turns durability off", img.Ref, cmd)
		}
		if len(spec.Tmpfs) != 0 {
			t.Errorf("%s durable: data on a tmpfs %v", img.Ref, spec.Tmpfs)
		}
	}
	spec := redisSpec(&Image{Kind: "redis", Ref: "redis:7"})
	if got := strings.Join(spec.Cmd, " "); !strings.Contains(got, "--appendonly no") || !strings.Contains(got, "--protected-mode no") {
		t.Errorf("redis container cmd %q keeps persistence or protected mode", got)
	}
}

func TestTestcontainersWithoutDocker(t *testing.T) {
	ctx := context.Background()
	if dockerHealth(ctx) == nil {
		t.Skip("a Docker engine answers here; see TestTestcontainersIntegration")
	}
	noExternal(t)
	_, err := Start(ctx, Options{Postgres: true, Mode: ModeTestcontainers})
	if err == nil || !strings.Contains(err.Error(), "no Docker engine answered") || !strings.Contains(err.Error(), "apt-get install") {
		t.Fatalf("err = %v, want 'no Docker engine answered' and an install hint", err)
	}
}

// ---- a lab killed by a signal leaves nothing behind ----

const childEnv = "HAL9_INFRA_TEST_CHILD"

// TestSignalChild is the child of the killed-lab tests: with childEnv set
// to HOW:MODE it starts infra in MODE (process: PostgreSQL and Redis;
// testcontainers: Redis), prints what it started on a READY line, and
// waits for a signal, handling it (HOW graceful) or not (abrupt: the
// default action, death at once).
func TestSignalChild(t *testing.T) {
	how, mode, ok := strings.Cut(os.Getenv(childEnv), ":")
	if !ok {
		t.Skip("helper process for TestKilledLabLeavesNothing and TestKilledLabLeavesNoContainers")
	}
	ctx := context.Background()
	if how == "graceful" {
		var stop context.CancelFunc
		ctx, stop = signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
		defer stop()
	}
	opts := Options{Postgres: true, Redis: true, Mode: Mode(mode)}
	if opts.Mode == ModeTestcontainers {
		opts.Postgres = false // the network and one container suffice, and start faster
	}
	env, err := Start(context.Background(), opts)
	if err != nil {
		fmt.Println("ERROR", strings.ReplaceAll(err.Error(), "\n", " | "))
		os.Exit(3)
	}
	line := "READY"
	if env.Containers != nil {
		line += " " + env.Containers.ID
	}
	for _, p := range env.Processes {
		line += fmt.Sprintf(" %d %d %s", p.PID(), p.ReaperPID(), p.Dir())
	}
	fmt.Println(line)
	<-ctx.Done() // forever when signals are not handled
	if err := env.Stop(context.Background()); err != nil {
		fmt.Println("STOP ERROR", err)
		os.Exit(4)
	}
	os.Exit(0)
}

// killCases are the ways a lab ends: Ctrl-C it handles, a SIGTERM it does
// not handle, SIGKILL.
var killCases = []struct {
	name string
	how  string
	sig  syscall.Signal
}{
	{"SIGINT handled", "graceful", syscall.SIGINT},
	{"SIGTERM unhandled", "abrupt", syscall.SIGTERM},
	{"SIGKILL", "abrupt", syscall.SIGKILL},
}

// signalChild starts TestSignalChild in mode and returns the fields of its
// READY line, and kill, which sends sig and waits for the child's end (a
// graceful child must exit 0).
func signalChild(t *testing.T, how string, mode Mode) (ready []string, kill func(syscall.Signal)) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestSignalChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), childEnv+"="+how+":"+string(mode), EnvPostgresDSN+"=", EnvRedisURL+"=")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	var line string
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if l := sc.Text(); strings.HasPrefix(l, "READY") || strings.HasPrefix(l, "ERROR") {
			line = l
			break
		}
	}
	if !strings.HasPrefix(line, "READY") {
		t.Fatalf("child did not start infra: %q", line)
	}
	return strings.Fields(line)[1:], func(sig syscall.Signal) {
		t.Helper()
		if err := cmd.Process.Signal(sig); err != nil {
			t.Fatal(err)
		}
		go func() { _, _ = bufio.NewReader(out).WriteTo(os.Stdout) }()
		if err := cmd.Wait(); how == "graceful" && err != nil {
			t.Errorf("graceful child exited with %v", err)
		}
	}
}

func TestKilledLabLeavesNothing(t *testing.T) {
	if os.Getenv(childEnv) != "" {
		t.Skip("in the child")
	}
	needProcess(t, "postgres")
	needProcess(t, "redis")
	for _, tc := range killCases {
		t.Run(tc.name, func(t *testing.T) {
			f, kill := signalChild(t, tc.how, ModeProcess)
			if len(f) != 6 {
				t.Fatalf("child said %q", f)
			}
			pids := []int{atoi(f[0]), atoi(f[1]), atoi(f[3]), atoi(f[4])}
			dirs := []string{f[2], f[5]}
			for _, pid := range pids {
				if gone(pid) {
					t.Fatalf("pid %d not running before the signal", pid)
				}
			}
			kill(tc.sig)
			eventually(t, fmt.Sprintf("pids %v and dirs %v gone", pids, dirs), func() bool {
				for _, pid := range pids {
					if !gone(pid) {
						return false
					}
				}
				for _, d := range dirs {
					if _, err := os.Stat(d); err == nil {
						return false
					}
				}
				return true
			})
			for _, d := range dirs {
				if left := procsMentioning(filepath.Base(d)); len(left) > 0 {
					t.Errorf("processes left for %s: %v", d, left)
				}
			}
		})
	}
}
