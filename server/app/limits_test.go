package app

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestSlowBodyCutOff: a client that sends its headers and then trickles
// (here: stalls) its body gets 408 once --http-read-timeout passes, instead
// of holding a goroutine and a connection for ever. The test's own bound
// (20 s) only keeps it from hanging if the server never answers.
func TestSlowBodyCutOff(t *testing.T) {
	a := startApp(t, func(c *Config) { c.HTTPReadTimeout = 300 * time.Millisecond })
	conn, err := net.Dial("tcp", strings.TrimPrefix(a.api, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"user")
	conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer to a stalled body: %v", err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusRequestTimeout {
		t.Fatalf("stalled body: %d, want 408", res.StatusCode)
	}
}

// TestLongSignalOutlivesReadTimeout: the body deadline is lifted once the
// body is in, so a signal that takes longer than --http-read-timeout is
// answered (net/http would cancel it with a server-wide ReadTimeout).
func TestLongSignalOutlivesReadTimeout(t *testing.T) {
	a := startApp(t, func(c *Config) {
		c.HTTPReadTimeout = 100 * time.Millisecond
		c.LLMLatencyScale = 1 // an L5 signal: five simulated calls, far over 100 ms
	})
	tok, _ := a.user()
	start := time.Now()
	a.signal(tok, "a slow strategic question", "L5")
	if took := time.Since(start); took < 100*time.Millisecond {
		t.Skipf("the signal took only %v: it did not outlast the read timeout, nothing was tested", took)
	}
}

// TestBudgetEnforced: past the budget, signals that need the LLM get 503
// budget_exceeded with Retry-After; a cached one is still answered.
func TestBudgetEnforced(t *testing.T) {
	// $0.009 holds one hop's worst case (about $0.0082: 512 output tokens
	// of sonnet and the prompt's bytes), not two.
	a := startApp(t, func(c *Config) { c.LLMBudgetHourly, c.LLMBudgetEnforce, c.LLMBudgetPerUser = 0.009, "on", 1 })
	tok, _ := a.user()
	a.signal(tok, "spend the budget", "L1") // one hop, one miss
	// Five hops: the second can no longer reserve its worst case.
	r := a.do("POST", "/api/v1/signals", map[string]string{"content": "a new question", "layer": "L5"}, bearer(tok)...)
	if r.Status != http.StatusServiceUnavailable || r.errCode() != "budget_exceeded" || r.Header.Get("Retry-After") == "" ||
		!strings.Contains(r.errMsg(), "budget") {
		t.Fatalf("uncached signal past the budget: %d %s %v", r.Status, r.Body, r.Header)
	}
	if ra := r.Header.Get("Retry-After"); ra == "1" {
		t.Fatalf("Retry-After %s: want the time until the hour window frees up", ra)
	}
	if r := a.signal(tok, "spend the budget", "L1"); r.Header.Get("X-HAL9-Cache") != "hit" {
		t.Fatalf("cached signal past the budget: %v", r.Header)
	}
	for _, n := range a.do("GET", "/api/v1/neurons", nil).JSON["neurons"].([]any) {
		if st := n.(map[string]any)["state"]; st != "active" {
			t.Fatalf("a spent budget degraded a neuron: %v", n)
		}
	}
}

// TestAsyncShareOfTheQueue: one user cannot take more than its share of the
// async queue; another user still gets in.
func TestAsyncShareOfTheQueue(t *testing.T) {
	a := startApp(t, func(c *Config) {
		c.AsyncQueue, c.AsyncQueuePerUser, c.AsyncWorkers, c.AsyncWorkersMax = 8, 2, 1, 1
		c.LLMLatencyScale = 20 // the worker stays busy for the whole test
		c.ShutdownTimeout = time.Second
	})
	hog, _ := a.user()
	other, _ := a.user()
	post := func(tok string, i int) resp {
		return a.do("POST", "/api/v1/signals?async=true", map[string]string{"content": fmt.Sprint("queued ", i), "layer": "L5"}, bearer(tok)...)
	}
	for i := range 2 {
		if r := post(hog, i); r.Status != http.StatusAccepted {
			t.Fatalf("async %d within the share: %d %s", i, r.Status, r.Body)
		}
	}
	r := post(hog, 3)
	if r.Status != http.StatusTooManyRequests || !strings.Contains(r.errMsg(), "your share of the queue") {
		t.Fatalf("async past the user's share: %d %s", r.Status, r.Body)
	}
	if r := post(other, 4); r.Status != http.StatusAccepted {
		t.Fatalf("another user's async: %d %s", r.Status, r.Body)
	}
}

// TestShutdownStagesKeepToTheTotal: with a fake clock, each stage ends by
// the start plus the total minus what later stages are owed, a stage that
// finishes early leaves its time to the next, and one that overruns cannot
// push the last deadline past the total.
func TestShutdownStagesKeepToTheTotal(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	start, total := now, 10*time.Second

	var deadlines []time.Time
	var began []time.Time
	step := func(took time.Duration) func(ctx context.Context) error {
		return func(ctx context.Context) error {
			d, ok := ctx.Deadline()
			if !ok {
				t.Fatal("a stage without a deadline")
			}
			deadlines = append(deadlines, d)
			began = append(began, clock())
			advance(took)
			return nil
		}
	}
	errs := runStages(clock, total, []stage{
		{"quick", 0.25, step(time.Second)},        // finishes 1.5 s early
		{"overruns", 0.25, step(6 * time.Second)}, // ignores its deadline
		{"third", 0.3, step(0)},
		{"last", 0.2, step(0)},
	})
	if len(errs) != 0 {
		t.Fatal(errs)
	}
	want := []time.Duration{2500 * time.Millisecond, 5 * time.Second, 8 * time.Second, 10 * time.Second}
	for i, d := range deadlines {
		if got := d.Sub(start); got != want[i] {
			t.Errorf("stage %d deadline at +%v, want +%v (its share, plus what earlier stages left)", i, got, want[i])
		}
		if d.After(start.Add(total)) {
			t.Errorf("stage %d may run past the total", i)
		}
	}
	if began[1].Sub(start) != time.Second {
		t.Errorf("the second stage began at +%v, want +1s: the first's unused time passes on", began[1].Sub(start))
	}
	// The real stages: shares add up to 1 whatever the delay.
	for _, delay := range []time.Duration{0, time.Second, time.Minute} {
		a := &Server{cfg: Config{ShutdownTimeout: 20 * time.Second, ShutdownDelay: delay}}
		sum := 0.0
		for _, st := range a.shutdownStages() {
			sum += st.share
		}
		if sum < 0.999 || sum > 1.001 {
			t.Errorf("delay %v: shares add up to %v", delay, sum)
		}
		if p := a.shutdownStages()[0].share; p > 0.25 {
			t.Errorf("delay %v: the readiness pause takes %v of the total, more than a quarter", delay, p)
		}
	}
}
