package main

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/hal9-lab/hal9-lab/lab/loadbench"
)

// TestBenchEngine runs `bench engine` for real, briefly: the endpoint and
// the engine as separate hal9-lab processes (this test binary, see
// TestMain), wrk beside them, two rounds.
func TestBenchEngine(t *testing.T) {
	if testing.Short() {
		t.Skip("several processes for a few seconds")
	}
	wrk, err := exec.LookPath("wrk")
	if err != nil {
		if os.Getenv("HAL9_REQUIRE_INFRA") == "1" {
			t.Fatal("wrk is required (HAL9_REQUIRE_INFRA=1): apt-get install wrk")
		}
		t.Skip("wrk is not installed")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("HAL9_LAB_TEST_AS_MAIN", "1") // the children are hal9-lab
	t.Setenv("PATH", t.TempDir())          // no vegeta: the clients are the engine and wrk
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := loadbench.Run(ctx, loadbench.Options{Connections: 4, Duration: time.Second, Rounds: 2, Threads: 1, Lab: self, Wrk: wrk})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"engine", "wrk"} {
		c := res.Client(name)
		if c == nil || len(c.Rounds) != 2 {
			t.Fatalf("%s: %+v", name, c)
		}
		for _, r := range c.Rounds {
			if r.Requests <= 0 || r.CPU <= 0 || r.ServerCPU <= 0 {
				t.Errorf("%s round: %+v", name, r)
			}
		}
	}
	var b strings.Builder
	res.WriteTable(&b)
	if !strings.Contains(b.String(), "req/CPU-s") || !strings.Contains(b.String(), "\nengine ") {
		t.Errorf("table:\n%s", b.String())
	}
}
