package app

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hal9-lab/hal9-lab/lab/faults"
	"github.com/hal9-lab/hal9-lab/lab/infra/infratest"
	"github.com/hal9-lab/hal9-lab/server/store"
	"github.com/hal9-lab/hal9-lab/server/store/sqlite"
)

// TestGracefulShutdown: with sync requests in flight and async signals
// queued, shutting down turns readiness to 503, finishes every request
// with 200, processes every accepted async signal, and returns nil.
func TestGracefulShutdown(t *testing.T) {
	var dataDir string
	a := startApp(t, func(c *Config) {
		c.LLMLatencyScale = 0.5 // an L5 signal takes ~300 ms: long enough to be caught in flight
		c.AsyncWorkers, c.AsyncWorkersMax = 2, 2
		dataDir = c.DataDir
	})
	tok, _ := a.user()

	const n = 6
	var wg sync.WaitGroup
	results := make([]resp, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = a.do("POST", "/api/v1/signals", map[string]string{"content": fmt.Sprintf("in flight %d", i), "layer": "L5"}, bearer(tok)...)
		}()
	}
	var asyncIDs []string
	for i := range 4 {
		r := a.do("POST", "/api/v1/signals?async=true", map[string]string{"content": fmt.Sprintf("queued %d", i), "layer": "L5"}, bearer(tok)...)
		if r.Status != http.StatusAccepted {
			t.Fatalf("async %d: %d %s", i, r.Status, r.Body)
		}
		asyncIDs = append(asyncIDs, r.str("signal_id"))
	}
	// Wait (bounded) until the sync requests are being served.
	for i := 0; ; i++ {
		if sum(a.scrape(), "hal9_http_inflight_requests", nil) >= n {
			break
		}
		if i > 1000 {
			t.Fatal("requests never got in flight")
		}
		time.Sleep(2 * time.Millisecond)
	}

	stopped := make(chan error, 1)
	go func() { stopped <- a.stop() }()

	// Readiness turns 503 while the drain runs (the admin listener stays up).
	sawUnready := false
	for range 500 {
		r, err := client.Get(a.admin + "/readyz")
		if err != nil {
			break // admin closed: the drain is over
		}
		r.Body.Close()
		if r.StatusCode == http.StatusServiceUnavailable {
			sawUnready = true
			break
		}
		time.Sleep(time.Millisecond)
	}
	wg.Wait()
	if err := <-stopped; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if !sawUnready {
		t.Error("readiness never answered 503 during shutdown")
	}
	for i, r := range results {
		if r.Status != http.StatusOK {
			t.Errorf("in-flight request %d: %d %s", i, r.Status, r.Body)
		}
	}
	// New connections are refused.
	if _, err := http.Get(a.api + "/health"); err == nil {
		t.Error("API still accepts connections after shutdown")
	}
	// Every accepted async signal was processed and saved before the exit.
	st, err := sqlite.Open(context.Background(), filepath.Join(dataDir, "hal9.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, id := range asyncIDs {
		sig, hops, err := st.GetSignal(context.Background(), id)
		if err != nil || sig.Status != store.SignalProcessed || len(hops) != 5 {
			t.Errorf("async signal %s after shutdown: %s, %d hops, %v", id, sig.Status, len(hops), err)
		}
	}
}

// TestShutdownTimeoutCutsAsync: work still queued when the timeout ends is
// saved as failed, never left pending.
func TestShutdownTimeoutCutsAsync(t *testing.T) {
	var dataDir string
	a := startApp(t, func(c *Config) {
		c.LLMLatencyScale = 50                   // an L5 signal takes far longer than the 100ms timeout
		c.AsyncWorkers, c.AsyncWorkersMax = 1, 1 // a fixed pool: the others wait in the queue
		c.ShutdownTimeout = 100 * time.Millisecond
		dataDir = c.DataDir
	})
	tok, _ := a.user()
	var ids []string
	for i := range 3 {
		r := a.do("POST", "/api/v1/signals?async=true", map[string]string{"content": fmt.Sprintf("slow %d", i), "layer": "L5"}, bearer(tok)...)
		ids = append(ids, r.str("signal_id"))
	}
	for i, id := range ids {
		if id == "" {
			t.Fatalf("async signal %d was not accepted", i)
		}
	}
	// The work outlasts the timeout, so the drain must be cut and say so.
	if err := a.stop(); err == nil {
		t.Fatal("shutdown reported no error: the drain was not cut, so the test exercised nothing")
	}
	st, err := sqlite.Open(context.Background(), filepath.Join(dataDir, "hal9.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, id := range ids {
		sig, _, err := st.GetSignal(context.Background(), id)
		if err != nil || sig.Status != store.SignalFailed || sig.Error == "" {
			t.Errorf("signal %s: status %q error %q (%v); want failed with a reason", id, sig.Status, sig.Error, err)
		}
	}
}

// TestShutdownWithFrozenDatabase: async signals queued behind a slow one
// when PostgreSQL stops answering (a black hole between server and
// database) do not hold the shutdown: it ends within --shutdown-timeout
// plus a few seconds (the job cut mid-run gets one bounded save, the ones
// never started one write), not after a save with retries per job, which
// took about 40 s each before.
func TestShutdownWithFrozenDatabase(t *testing.T) {
	proxy, url, err := faults.ThroughProxy("postgres", infratest.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	const timeout = 2 * time.Second
	a := startApp(t, func(c *Config) {
		c.DatabaseURL = url
		c.DBMaxConns, c.DBMinConns = 8, 1
		c.DBGroupCommit = false                  // a commit in flight is bounded on its own (10 s); see docs/server.md
		c.LLMLatencyScale = 50                   // the first job runs past the deadline
		c.AsyncWorkers, c.AsyncWorkersMax = 1, 1 // a fixed pool: the others wait in the queue
		c.AsyncQueue, c.AsyncQueuePerUser = 64, 64
		c.ShutdownTimeout = timeout
	})
	tok, _ := a.user()
	for i := range 16 {
		if r := a.do("POST", "/api/v1/signals?async=true", map[string]string{"content": fmt.Sprintf("queued %d", i), "layer": "L5"}, bearer(tok)...); r.Status != http.StatusAccepted {
			t.Fatalf("async %d: %d %s", i, r.Status, r.Body)
		}
	}
	if err := proxy.Inject(faults.Spec{Kind: "blackhole"}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	stopped := make(chan error, 1)
	go func() { stopped <- a.stop() }()
	const bound = timeout + 10*time.Second
	select {
	case <-stopped:
	case <-time.After(bound):
		proxy.Heal(context.Background(), faults.Spec{Kind: "blackhole"}) // let the old way finish, then fail
		<-stopped
		t.Fatalf("shutdown with a frozen database took more than %v (--shutdown-timeout %v); it ended %v after the database came back",
			bound, timeout, time.Since(start))
	}
	t.Logf("shutdown with a frozen database: %v (--shutdown-timeout %v)", time.Since(start).Round(time.Millisecond), timeout)
}
