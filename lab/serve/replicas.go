package serve

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hal9-lab/hal9-lab/lab/infra"
	"github.com/hal9-lab/hal9-lab/lab/prom"
	"github.com/hal9-lab/hal9-lab/lab/report"
)

// A leg's servers: one `hal9 serve`, or N replicas on one database and one
// Redis behind HAProxy (the load goes through HAProxy). Each replica keeps
// its API and admin addresses for its whole life, so HAProxy's
// configuration and Prometheus's targets stay right across restarts.
//
// Faults address replicas through the ReplicaSet: Replica(i) gives the
// i-th (0 when a fault names none), whose Signal, Restart, Stop and Kill
// act on that server only; HAProxy's health checks take a dead or draining
// replica out of the rotation and put it back once /readyz answers 200.

// Replica is one `hal9 serve` of a leg on fixed addresses. Its methods are
// safe for concurrent use.
type Replica struct {
	Index int
	Name  string // r0, r1, …: HAProxy's name for it

	restartMu sync.Mutex // one Restart at a time
	mu        sync.Mutex
	opts      Options // Addr and AdminAddr fixed after the first start
	srv       *Server
	restarts  int
}

// URL is the replica's API base URL, AdminURL its admin listener's.
func (r *Replica) URL() string { return "http://" + r.Addr() }
func (r *Replica) AdminURL() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return "http://" + r.opts.AdminAddr
}

// Addr is the API listener's host:port.
func (r *Replica) Addr() string { r.mu.Lock(); defer r.mu.Unlock(); return r.opts.Addr }

// Server is the process running now (a new one after Restart).
func (r *Replica) Server() *Server { r.mu.Lock(); defer r.mu.Unlock(); return r.srv }

// PID of the current process.
func (r *Replica) PID() int { return r.Server().PID() }

// Exited tells whether the current process has ended.
func (r *Replica) Exited() bool { return r.Server().Exited() }

// Restarts counts the Restart calls that started a new process.
func (r *Replica) Restarts() int { r.mu.Lock(); defer r.mu.Unlock(); return r.restarts }

// Signal sends sig to the replica's process group (SIGTERM: drain and
// exit; SIGKILL: die at once).
func (r *Replica) Signal(sig syscall.Signal) error {
	srv := r.Server()
	if srv.Exited() {
		return fmt.Errorf("replica %s: not running", r.Name)
	}
	if err := srv.Signal(sig); err != nil {
		return fmt.Errorf("replica %s: send %v: %w", r.Name, sig, err)
	}
	return nil
}

// Restart starts the replica again on the same addresses and waits until
// it is ready. A replica still running (e.g. draining after SIGTERM) is
// waited for first, up to its drain time plus 5 s, then killed. The other
// methods keep answering meanwhile (about the old process until the new
// one has started).
func (r *Replica) Restart(ctx context.Context) error {
	r.restartMu.Lock()
	defer r.restartMu.Unlock()
	r.mu.Lock()
	old, opts, n := r.srv, r.opts, r.restarts+1
	r.mu.Unlock()
	select {
	case <-old.Done():
	case <-time.After(old.opts.Shutdown + 5*time.Second):
		old.Kill()
		<-old.Done()
	case <-ctx.Done():
		return ctx.Err()
	}
	if opts.LogPath != "" {
		opts.LogPath = strings.TrimSuffix(opts.LogPath, ".log") + fmt.Sprintf("-restart%d.log", n)
	}
	srv, err := Start(ctx, opts)
	if err != nil {
		return fmt.Errorf("restart replica %s: %w", r.Name, err)
	}
	r.mu.Lock()
	r.srv, r.restarts = srv, n
	r.mu.Unlock()
	if err := srv.WaitReady(ctx, 60*time.Second); err != nil {
		srv.Kill()
		return fmt.Errorf("restart replica %s: %w", r.Name, err)
	}
	return nil
}

// Wait waits up to timeout for the current server to exit and returns
// its exit code (a fault's SIGTERM or SIGKILL).
func (r *Replica) Wait(timeout time.Duration) (int, error) {
	code, ok := r.Server().WaitExit(timeout)
	if !ok {
		return -1, fmt.Errorf("replica %s did not exit within %s", r.Name, timeout)
	}
	return code, nil
}

// Stop sends SIGTERM and waits for the exit (Server.Stop).
func (r *Replica) Stop() (code int, took time.Duration, err error) { return r.Server().Stop() }

// Kill SIGKILLs the replica's process group (not once it has exited and
// been reaped: its group id may belong to another process by then).
func (r *Replica) Kill() {
	if srv := r.Server(); !srv.Exited() {
		srv.Kill()
	}
}

// ReplicaSet is a leg's servers and, with more than one, the HAProxy in
// front of them.
type ReplicaSet struct {
	replicas []*Replica
	lb       *infra.Balancer // nil with one server

	mu    sync.Mutex
	last  []*prom.Snapshot // each replica's last answered /metrics
	stale []bool           // its last Scrape had to use last
}

// URL is where the load goes: HAProxy's frontend, or the only server.
func (rs *ReplicaSet) URL() string {
	if rs.lb != nil {
		return rs.lb.URL
	}
	return rs.replicas[0].URL()
}

// Len is the number of replicas.
func (rs *ReplicaSet) Len() int { return len(rs.replicas) }

// Replica returns the i-th replica (0-based).
func (rs *ReplicaSet) Replica(i int) (*Replica, error) {
	if i < 0 || i >= len(rs.replicas) {
		return nil, fmt.Errorf("no replica %d: this leg runs %d (0..%d)", i, len(rs.replicas), len(rs.replicas)-1)
	}
	return rs.replicas[i], nil
}

// Balancer is the HAProxy in front (nil with one server).
func (rs *ReplicaSet) Balancer() *infra.Balancer { return rs.lb }

// Scrape reads every replica's /metrics and merges them into one scrape
// whose series carry a replica="rN" label: sums over it are the fleet's,
// sums by replica each server's. A replica that does not answer (killed)
// contributes its last answered scrape and is marked stale; only when none
// answers is it an error.
func (rs *ReplicaSet) Scrape(ctx context.Context, client *http.Client) (*prom.Snapshot, error) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.last == nil {
		rs.last, rs.stale = make([]*prom.Snapshot, len(rs.replicas)), make([]bool, len(rs.replicas))
	}
	merged := &prom.Snapshot{At: time.Now()}
	var errs []error
	answered := 0
	for i, r := range rs.replicas {
		sc, err := prom.Fetch(ctx, client, r.AdminURL()+"/metrics")
		if err == nil {
			rs.last[i], rs.stale[i] = sc, false
			answered++
		} else {
			errs = append(errs, fmt.Errorf("replica %s: %w", r.Name, err))
			rs.stale[i] = true
			if sc = rs.last[i]; sc == nil {
				continue
			}
		}
		merged.AddReplica(sc, r.Name)
	}
	if answered == 0 {
		return nil, errors.Join(errs...)
	}
	return merged, nil
}

// Servers names each replica for the report: address, restarts and
// whether its last Scrape had to use an older answer.
func (rs *ReplicaSet) Servers() []report.ReplicaServer {
	rs.mu.Lock()
	stale := append([]bool(nil), rs.stale...)
	rs.mu.Unlock()
	out := make([]report.ReplicaServer, len(rs.replicas))
	for i, r := range rs.replicas {
		out[i] = report.ReplicaServer{Name: r.Name, Addr: r.Addr(), Stale: i < len(stale) && stale[i], Restarts: r.Restarts()}
	}
	return out
}

// Containers are the replicas' current containers' starts (none for
// processes).
func (rs *ReplicaSet) Containers() []report.ContainerStart {
	var out []report.ContainerStart
	for _, r := range rs.replicas {
		if st, ok := r.Server().ContainerStart(); ok {
			out = append(out, st)
		}
	}
	return out
}

// Stats adds up the replicas' peak RSS and CPU seconds from /proc.
func (rs *ReplicaSet) Stats() (rss, cpu float64, ok bool) {
	for _, r := range rs.replicas {
		if x, c, k := r.Server().Stats(); k {
			rss, cpu, ok = rss+x, cpu+c, true
		}
	}
	return rss, cpu, ok
}

// Stop sends SIGTERM to every replica at once, waits for them, then stops
// HAProxy. It returns the worst exit code (0 when all exited 0), the
// longest shutdown and every error. A replica that had already exited
// (killed by a fault) counts with its exit code.
func (rs *ReplicaSet) Stop() (code int, took time.Duration, err error) {
	type result struct {
		code int
		took time.Duration
		err  error
	}
	res := make([]result, len(rs.replicas))
	var wg sync.WaitGroup
	for i, r := range rs.replicas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, t, e := r.Stop()
			if e != nil && len(rs.replicas) > 1 {
				e = fmt.Errorf("replica %s: %w", r.Name, e)
			}
			res[i] = result{c, t, e}
		}()
	}
	wg.Wait()
	var errs []error
	for _, x := range res {
		if x.code != 0 && code == 0 {
			code = x.code
		}
		took = max(took, x.took)
		errs = append(errs, x.err)
	}
	if rs.lb != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		if e := rs.lb.Stop(ctx); e != nil {
			errs = append(errs, fmt.Errorf("stop HAProxy: %w", e))
		}
		cancel()
	}
	return code, took, errors.Join(errs...)
}

// Kill SIGKILLs every replica and stops HAProxy.
func (rs *ReplicaSet) Kill() {
	for _, r := range rs.replicas {
		r.Kill()
	}
	if rs.lb != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		_ = rs.lb.Stop(ctx)
		cancel()
	}
}

// Plan is how one start of a leg's servers is shaped.
type Plan struct {
	N          int               // servers
	Addrs      []string          // fixed API addresses ("" : free port), e.g. an external HAProxy's servers
	AdminAddrs []string          // fixed admin addresses ("" : free port), e.g. Prometheus's targets
	Extra      []string          // flags every replica gets (pool sizes)
	Env        map[string]string // environment every replica gets
	HAProxy    infra.HAProxyOptions
}

// StartReplicas starts plan.N servers with base's options at once, waits
// until each is ready, then (n > 1) starts HAProxy in front and waits
// until its checks see every server up. On error everything started is
// killed.
func StartReplicas(ctx context.Context, base Options, plan Plan, logger func(format string, args ...any)) (*ReplicaSet, error) {
	rs := &ReplicaSet{}
	for i := 0; i < plan.N; i++ {
		o := base
		o.Env = map[string]string{}
		for k, v := range base.Env {
			o.Env[k] = v
		}
		for k, v := range plan.Env {
			o.Env[k] = v
		}
		o.Extra = append(append([]string(nil), base.Extra...), plan.Extra...)
		if i < len(plan.Addrs) {
			o.Addr = plan.Addrs[i]
		}
		if i < len(plan.AdminAddrs) {
			o.AdminAddr = plan.AdminAddrs[i]
		}
		if plan.N > 1 && o.LogPath != "" {
			o.LogPath = strings.TrimSuffix(o.LogPath, ".log") + fmt.Sprintf("-r%d.log", i)
		}
		rs.replicas = append(rs.replicas, &Replica{Index: i, Name: fmt.Sprintf("r%d", i), opts: o})
	}
	errs := make([]error, plan.N)
	var wg sync.WaitGroup
	for i, r := range rs.replicas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			srv, err := Start(ctx, r.opts)
			if err != nil {
				errs[i] = err
				return
			}
			r.srv = srv
			r.opts.Addr, r.opts.AdminAddr = srv.Addr, srv.AdminAddr
			if err := srv.WaitReady(ctx, 60*time.Second); err != nil {
				errs[i] = err
			}
		}()
	}
	wg.Wait()
	fail := func(err error) (*ReplicaSet, error) {
		for _, r := range rs.replicas {
			if r.srv != nil {
				r.srv.Kill()
			}
		}
		if rs.lb != nil {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
			_ = rs.lb.Stop(cctx)
			cancel()
		}
		return nil, err
	}
	for i, err := range errs {
		if err != nil {
			if plan.N > 1 {
				err = fmt.Errorf("replica r%d: %w", i, err)
			}
			return fail(err)
		}
	}
	if plan.N == 1 {
		return rs, nil
	}
	h := plan.HAProxy
	for _, r := range rs.replicas {
		h.Servers = append(h.Servers, r.Addr())
	}
	lb, err := infra.StartBalancer(ctx, h)
	if err != nil {
		return fail(fmt.Errorf("HAProxy in front of %d replicas: %w", plan.N, err))
	}
	rs.lb = lb
	if lb.MetricsURL != "" {
		if err := WaitServersUp(ctx, lb.MetricsURL, plan.N, 30*time.Second); err != nil {
			return fail(err)
		}
	}
	logger("HAProxy (%s) on %s, metrics %s, balancing %d replicas", lb.Mode, lb.URL, orNone(lb.MetricsURL), plan.N)
	return rs, nil
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// WaitServersUp polls HAProxy's exporter until n servers are UP.
func WaitServersUp(ctx context.Context, metricsURL string, n int, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second}
	var last string
	for {
		sc, err := prom.Fetch(ctx, client, metricsURL)
		if err == nil {
			up := sc.SumBy("haproxy_server_status", "server", map[string]string{"state": "UP"})
			got := 0
			var states []string
			for s, v := range up {
				if v == 1 {
					got++
				}
				states = append(states, fmt.Sprintf("%s=%g", s, v))
			}
			if got >= n {
				return nil
			}
			last = fmt.Sprintf("%d of %d servers UP (%s)", got, n, strings.Join(states, " "))
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("HAProxy's checks do not see the replicas up within %s: %s", timeout, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// NewSecret is a leg's shared --jwt-secret: every replica (and every life
// of a restarted one) must accept the others' tokens.
func NewSecret() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
