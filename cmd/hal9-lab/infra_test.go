package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hal9-lab/hal9-lab/lab/infra"
)

func TestInfraArgs(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string // in the error; "" = no error
	}{
		{nil, "missing subcommand"},
		{[]string{"down"}, `unknown infra subcommand "down"`},
		{[]string{"up", "--bogus"}, "flag provided but not defined: -bogus"},
		{[]string{"up", "--infra", "docker"}, `unknown infra mode "docker"`},
		{[]string{"up", "postgres"}, `unexpected argument "postgres"`},
		{[]string{"images", "--server", "--stage-only"}, "give --context DIR"},
		{[]string{"images", "--server", "--tag", "x:1", "--context", ".", "--redis"}, "builds the server's image only"},
		{[]string{"images", "--tag", "x:1"}, "go with --server"},
		{[]string{"images", "--stage-only"}, "go with --server"},
		{[]string{"images", "redis"}, `unexpected argument "redis"`},
		{[]string{"help"}, ""},
		{[]string{"up", "-h"}, ""},
	} {
		var stderr bytes.Buffer
		err := infraMain(context.Background(), tc.args, io.Discard, &stderr)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%v: %v", tc.args, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%v: err = %v, want %q", tc.args, err, tc.want)
		}
		if tc.args != nil && (tc.args[0] == "up" || tc.args[0] == "images") && tc.want != "" && !strings.HasPrefix(tc.want, "flag") {
			continue // a clear error suffices; no usage dump
		}
		if !strings.Contains(stderr.String(), "usage: hal9-lab infra up") {
			t.Errorf("%v: no usage on stderr: %q", tc.args, stderr.String())
		}
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://postgres@127.0.0.1:5/postgres?sslmode=disable": "postgres://postgres@127.0.0.1:5/postgres?sslmode=disable",
		"redis://:p w@h:1/0": `'redis://:p w@h:1/0'`,
		"a'b&c":              `'a'\''b&c'`,
	} {
		got := shellQuote(in)
		if got != want {
			t.Errorf("shellQuote(%q) = %q, want %q", in, got, want)
		}
		// The shell must give back the value.
		out, err := exec.Command("sh", "-c", "V="+got+"; printf %s \"$V\"").Output()
		if err != nil || string(out) != in {
			t.Errorf("sh reads %q back as %q (%v)", got, out, err)
		}
	}
}

func TestInfraUpProcess(t *testing.T) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("HAL9_REQUIRE_INFRA") == "1" {
			t.Fatal("HAL9_REQUIRE_INFRA=1 but redis-server is not installed")
		}
		t.Skip("redis-server not installed (apt-get install redis-server)")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	envFile := filepath.Join(t.TempDir(), "hal9.env")
	r, w := io.Pipe()
	var stderr bytes.Buffer
	done := make(chan error, 1)
	go func() {
		done <- infraMain(ctx, []string{"up", "--redis", "--infra", "process", "--env-file", envFile}, w, &stderr)
		w.Close()
	}()
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil {
		cancel()
		t.Fatalf("no output: %v (err %v)\n%s", err, <-done, stderr.String())
	}
	if !strings.HasPrefix(line, "HAL9_REDIS_URL=redis://127.0.0.1:") {
		t.Fatalf("stdout line %q", line)
	}
	file, err := os.ReadFile(envFile)
	if err != nil || string(file) != line {
		t.Fatalf("env file %q (%v), want %q", file, err, line)
	}
	// Sourced by a shell, the URL reaches a child process.
	out, err := exec.Command("sh", "-c", "set -a; . "+envFile+"; sh -c 'printf %s \"$HAL9_REDIS_URL\"'").Output()
	if err != nil || !strings.HasPrefix(string(out), "redis://127.0.0.1:") {
		t.Fatalf("sourced env file gives %q, %v", out, err)
	}
	cancel() // as Ctrl-C does through main's signal-aware context
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("infra up did not return 30s after its context ended")
	}
	if _, err := os.Stat(envFile); !os.IsNotExist(err) {
		t.Errorf("env file left behind: %v", err)
	}
	if !strings.Contains(stderr.String(), "stopped everything") {
		t.Errorf("stderr lacks the stop log:\n%s", stderr.String())
	}
}

// TestInfraUpNoticesDeadServer: when a server it holds dies, infra up says so
// and exits instead of holding URLs that point at nothing.
func TestInfraUpNoticesDeadServer(t *testing.T) {
	p, err := infra.StartRedisProcess(context.Background(), infra.ProcessOptions{})
	if err != nil {
		if os.Getenv("HAL9_REQUIRE_INFRA") == "1" {
			t.Fatalf("redis-server: %v", err)
		}
		t.Skipf("no redis-server: %v", err)
	}
	t.Cleanup(func() { p.Close(context.Background()) })
	done := make(chan error, 1)
	go func() { done <- holdUntilDone(context.Background(), []heldServer{processHeld{p}}, 10*time.Millisecond) }()
	if err := p.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "exited by itself") || !strings.Contains(err.Error(), p.URL()) {
			t.Fatalf("err = %v, want it to name the dead server %s", err, p.URL())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("infra up kept holding a dead server for 10 s")
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := holdUntilDone(ctx, nil, time.Hour); err != nil {
		t.Fatalf("Ctrl-C: err = %v, want nil", err)
	}
}
