package faults

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ServerHandle is one server the lab started; the lab's replicas
// implement it too (replica N is Env.Servers[N]).
type ServerHandle interface {
	// Signal sends sig to the server's process group.
	Signal(sig syscall.Signal) error
	// Wait waits up to timeout for the server to exit; its exit code.
	Wait(timeout time.Duration) (int, error)
	// Restart starts it again on the same addresses and waits until it
	// is ready.
	Restart(ctx context.Context) error
	// AdminURL is its admin listener (http://host:port).
	AdminURL() string
}

// Process is a backend server the lab started as a local process
// (*infra.Process).
type Process interface {
	PID() int
	Running() bool
	Stop(ctx context.Context) error
	Start(ctx context.Context) error
}

// Env is what a timeline acts on.
type Env struct {
	Servers         []ServerHandle // by replica (nil: a server the lab did not start)
	Redis, Postgres Process        // nil when the leg has none (or not as processes)
	// Proxies by replica, then backend ("postgres", "redis").
	Proxies []map[string]*Proxy
	// AdminURLs by replica: where LLM faults go (for a server the lab
	// did not start: --admin-url).
	AdminURLs []string
	// BeforeKill runs right before a SIGKILL of a server and AfterKill
	// right after it, before the restart (the lab measures the
	// write-behind loss window there); their notes go into the record.
	BeforeKill func(ctx context.Context, s Spec) []string
	AfterKill  func(ctx context.Context, s Spec, killedAt time.Time) []string
	// Drain is the server's --shutdown-timeout (SIGTERM's exit wait).
	Drain  time.Duration
	Logf   func(format string, args ...any)
	Client *http.Client
}

// Record is what happened to one fault.
type Record struct {
	Spec     Spec
	Injected time.Time
	Healed   time.Time
	Err      error
	Notes    []string
	ExitCode *int // server faults: the exit code after the signal
}

// Run plays the timeline from t0 (the start of the load): each fault at
// t0+At, taken away Duration later. Faults on different targets overlap
// freely. When ctx ends, pending faults are skipped and running ones
// healed at once. It returns when every fault is healed.
func Run(ctx context.Context, t0 time.Time, specs []Spec, env Env) []Record {
	if env.Logf == nil {
		env.Logf = func(string, ...any) {}
	}
	if env.Client == nil {
		env.Client = &http.Client{Timeout: 10 * time.Second}
	}
	if env.Drain <= 0 {
		env.Drain = 10 * time.Second
	}
	var (
		wg  sync.WaitGroup
		mu  sync.Mutex
		out []Record
	)
	for _, s := range Sorted(specs) {
		if s.Target == Server && s.Kind == "port-taken" {
			continue // the lab does it when it starts the server
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := env.play(ctx, t0, s)
			mu.Lock()
			out = append(out, r)
			mu.Unlock()
		}()
	}
	wg.Wait()
	sortRecords(out)
	return out
}

func sortRecords(rs []Record) {
	for i := 1; i < len(rs); i++ {
		for j := i; j > 0 && rs[j].Spec.At < rs[j-1].Spec.At; j-- {
			rs[j], rs[j-1] = rs[j-1], rs[j]
		}
	}
}

// play injects one fault at its time, holds it and heals it.
func (env Env) play(ctx context.Context, t0 time.Time, s Spec) Record {
	r := Record{Spec: s}
	select {
	case <-ctx.Done():
		r.Err = errors.New("not injected: the run ended first")
		return r
	case <-time.After(time.Until(t0.Add(s.At))):
	}
	// Healing must happen even when the run is being stopped.
	hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute+s.Duration)
	defer cancel()
	hold := func(from time.Time) {
		select {
		case <-ctx.Done():
		case <-time.After(time.Until(from.Add(s.Duration))):
		}
	}
	env.Logf("fault: %s", s.Name())
	r.Injected = time.Now()
	var err error
	switch s.Target {
	case Redis, Postgres:
		err = env.backend(hctx, s, &r, hold)
	case Network:
		err = env.network(hctx, s, hold)
	case LLM:
		err = env.llm(hctx, s, hold)
	case Server:
		err = env.server(hctx, s, &r, hold)
	default:
		err = fmt.Errorf("unknown target %q", s.Target)
	}
	r.Healed = time.Now()
	if err != nil {
		r.Err = err
		env.Logf("fault %s: %v", s.Name(), err)
	} else {
		env.Logf("fault healed: %s (after %s)", s.Name(), r.Healed.Sub(r.Injected).Round(time.Millisecond))
	}
	return r
}

func (env Env) backend(ctx context.Context, s Spec, r *Record, hold func(time.Time)) error {
	p := env.Redis
	if s.Target == Postgres {
		p = env.Postgres
	}
	if p == nil || p.PID() == 0 {
		return fmt.Errorf("%s is not a running local process of the lab", s.Target)
	}
	pid := p.PID()
	switch s.Kind {
	case "pause":
		// The process and its children: PostgreSQL's backends are the
		// postmaster's children, each in a session of its own.
		if err := signalTree(pid, syscall.SIGSTOP); err != nil {
			return fmt.Errorf("SIGSTOP %s (pid %d): %w", s.Target, pid, err)
		}
		hold(r.Injected)
		if err := signalTree(pid, syscall.SIGCONT); err != nil {
			return fmt.Errorf("SIGCONT %s (pid %d): %w", s.Target, pid, err)
		}
		return nil
	case "kill", "crash":
		kids := children(pid)
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			return fmt.Errorf("SIGKILL %s (pid %d): %w", s.Target, pid, err)
		}
		// Wait for the process and (PostgreSQL) its orphaned backends to go:
		// a new postmaster refuses to start while they hold shared memory.
		waitGone(ctx, pid, kids, p)
	case "stop", "stop-start", "restart":
		if err := p.Stop(ctx); err != nil {
			return fmt.Errorf("stop %s: %w", s.Target, err)
		}
	}
	hold(r.Injected)
	return startAgain(ctx, p, s.Target)
}

// startAgain restarts a backend, retrying a few times (a crashed
// PostgreSQL's shared memory may take a moment to be released).
func startAgain(ctx context.Context, p Process, what string) error {
	var err error
	for i := 0; i < 5; i++ {
		if err = p.Start(ctx); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("start %s again: %w", what, err)
		case <-time.After(time.Second):
		}
	}
	return fmt.Errorf("start %s again: %w", what, err)
}

// waitGone waits up to 10 s for the process to be reaped and its former
// children (PostgreSQL's backends notice the postmaster's death) to exit.
func waitGone(ctx context.Context, pid int, kids []int, p Process) {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if !p.Running() && !alive(kids) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (env Env) network(ctx context.Context, s Spec, hold func(time.Time)) error {
	if s.Replica >= len(env.Proxies) || env.Proxies[s.Replica][s.Backend] == nil {
		return fmt.Errorf("no proxy between server %d and %s: the lab puts one there only in runs with faults", s.Replica, s.Backend)
	}
	p := env.Proxies[s.Replica][s.Backend]
	start := time.Now()
	if err := p.Inject(s); err != nil {
		return err
	}
	hold(start)
	return p.Heal(ctx, s)
}

func (env Env) llm(ctx context.Context, s Spec, hold func(time.Time)) error {
	if s.Replica >= len(env.AdminURLs) || env.AdminURLs[s.Replica] == "" {
		return fmt.Errorf("no admin URL for server %d: LLM faults go through its admin listener (--admin-url)", s.Replica)
	}
	url := strings.TrimRight(env.AdminURLs[s.Replica], "/") + "/admin/llm/faults"
	before, err := env.getJSON(ctx, url)
	if err != nil {
		return err
	}
	var change map[string]any
	switch s.Kind {
	case "error-rate":
		change = map[string]any{"error_rate": s.Rate}
	case "latency-scale":
		change = map[string]any{"latency_scale": s.Scale}
	case "rate-limit":
		change = map[string]any{"rate_limit_rpm": s.RPM}
	}
	start := time.Now()
	if err := env.putJSON(ctx, url, change); err != nil {
		return err
	}
	hold(start)
	return env.putJSON(ctx, url, before)
}

func (env Env) getJSON(ctx context.Context, url string) (map[string]any, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	res, err := env.Client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: status %d: %s (LLM faults need a server built with the admin endpoint and the simulated LLM)", url, res.StatusCode, clip(b))
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	return m, nil
}

func (env Env) putJSON(ctx context.Context, url string, body map[string]any) error {
	b, _ := json.Marshal(body)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPut, url, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	res, err := env.Client.Do(req)
	if err != nil {
		return fmt.Errorf("PUT %s: %w", url, err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		rb, _ := io.ReadAll(io.LimitReader(res.Body, 4<<10))
		return fmt.Errorf("PUT %s %s: status %d: %s", url, b, res.StatusCode, clip(rb))
	}
	return nil
}

func (env Env) server(ctx context.Context, s Spec, r *Record, hold func(time.Time)) error {
	if s.Replica >= len(env.Servers) || env.Servers[s.Replica] == nil {
		return fmt.Errorf("server %d was not started by the lab", s.Replica)
	}
	srv := env.Servers[s.Replica]
	sig, wait := syscall.SIGTERM, env.Drain+10*time.Second
	if s.Kind == "sigkill" {
		sig, wait = syscall.SIGKILL, 10*time.Second
		if env.BeforeKill != nil {
			r.Notes = append(r.Notes, env.BeforeKill(ctx, s)...)
			r.Injected = time.Now()
		}
	}
	if err := srv.Signal(sig); err != nil {
		return fmt.Errorf("send %s: %w", sig, err)
	}
	code, err := srv.Wait(wait)
	r.ExitCode = &code
	if err != nil {
		return fmt.Errorf("after %s: %w", sig, err)
	}
	if s.Kind == "sigkill" && env.AfterKill != nil {
		r.Notes = append(r.Notes, env.AfterKill(ctx, s, r.Injected)...)
	}
	hold(r.Injected)
	if err := srv.Restart(ctx); err != nil {
		return fmt.Errorf("restart the server: %w", err)
	}
	return nil
}

func clip(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}
