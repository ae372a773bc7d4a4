package lab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hal9-lab/hal9-lab/lab/infra"
	"github.com/hal9-lab/hal9-lab/lab/procstat"
	"github.com/hal9-lab/hal9-lab/lab/profile"
	"github.com/hal9-lab/hal9-lab/lab/prom"
	"github.com/hal9-lab/hal9-lab/lab/readings"
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
	opts      ServerOptions // Addr and AdminAddr fixed after the first start
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
	case <-old.done:
	case <-time.After(old.opts.Shutdown + 5*time.Second):
		old.Kill()
		<-old.done
	case <-ctx.Done():
		return ctx.Err()
	}
	if opts.LogPath != "" {
		opts.LogPath = strings.TrimSuffix(opts.LogPath, ".log") + fmt.Sprintf("-restart%d.log", n)
	}
	srv, err := StartServer(ctx, opts)
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

// servers names each replica for the report: address, restarts and
// whether its last Scrape had to use an older answer.
func (rs *ReplicaSet) servers() []report.ReplicaServer {
	rs.mu.Lock()
	stale := append([]bool(nil), rs.stale...)
	rs.mu.Unlock()
	out := make([]report.ReplicaServer, len(rs.replicas))
	for i, r := range rs.replicas {
		out[i] = report.ReplicaServer{Name: r.Name, Addr: r.Addr(), Stale: i < len(stale) && stale[i], Restarts: r.Restarts()}
	}
	return out
}

// ProcStats adds up the replicas' peak RSS and CPU seconds from /proc.
func (rs *ReplicaSet) ProcStats() (rss, cpu float64, ok bool) {
	for _, r := range rs.replicas {
		if x, c, k := procstat.Stats(r.PID()); k {
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

// replicaPlan is how one start of a leg's servers is shaped.
type replicaPlan struct {
	n          int               // servers
	addrs      []string          // fixed API addresses ("" : free port), e.g. an external HAProxy's servers
	adminAddrs []string          // fixed admin addresses ("" : free port), e.g. Prometheus's targets
	extra      []string          // flags every replica gets (pool sizes)
	env        map[string]string // environment every replica gets
	haproxy    infra.HAProxyOptions
}

// startReplicaSet starts plan.n servers with base's options at once, waits
// until each is ready, then (n > 1) starts HAProxy in front and waits
// until its checks see every server up. On error everything started is
// killed.
func startReplicaSet(ctx context.Context, base ServerOptions, plan replicaPlan, logger func(format string, args ...any)) (*ReplicaSet, error) {
	rs := &ReplicaSet{}
	for i := 0; i < plan.n; i++ {
		o := base
		o.Env = map[string]string{}
		for k, v := range base.Env {
			o.Env[k] = v
		}
		for k, v := range plan.env {
			o.Env[k] = v
		}
		o.Extra = append(append([]string(nil), base.Extra...), plan.extra...)
		if i < len(plan.addrs) {
			o.Addr = plan.addrs[i]
		}
		if i < len(plan.adminAddrs) {
			o.AdminAddr = plan.adminAddrs[i]
		}
		if plan.n > 1 && o.LogPath != "" {
			o.LogPath = strings.TrimSuffix(o.LogPath, ".log") + fmt.Sprintf("-r%d.log", i)
		}
		rs.replicas = append(rs.replicas, &Replica{Index: i, Name: fmt.Sprintf("r%d", i), opts: o})
	}
	errs := make([]error, plan.n)
	var wg sync.WaitGroup
	for i, r := range rs.replicas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			srv, err := StartServer(ctx, r.opts)
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
			if plan.n > 1 {
				err = fmt.Errorf("replica r%d: %w", i, err)
			}
			return fail(err)
		}
	}
	if plan.n == 1 {
		return rs, nil
	}
	h := plan.haproxy
	for _, r := range rs.replicas {
		h.Servers = append(h.Servers, r.Addr())
	}
	lb, err := infra.StartBalancer(ctx, h)
	if err != nil {
		return fail(fmt.Errorf("HAProxy in front of %d replicas: %w", plan.n, err))
	}
	rs.lb = lb
	if lb.MetricsURL != "" {
		if err := waitServersUp(ctx, lb.MetricsURL, plan.n, 30*time.Second); err != nil {
			return fail(err)
		}
	}
	logger("HAProxy (%s) on %s, metrics %s, balancing %d replicas", lb.Mode, lb.URL, orNone(lb.MetricsURL), plan.n)
	return rs, nil
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// waitServersUp polls HAProxy's exporter until n servers are UP.
func waitServersUp(ctx context.Context, metricsURL string, n int, timeout time.Duration) error {
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

// randomSecret is a leg's shared --jwt-secret: every replica must accept
// the others' tokens.
func randomSecret() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Pool sizing. Every replica's pool must fit PostgreSQL's max_connections
// beside the connections the lab and an operator need:
//
//	pool = min(default, ⌊(max_connections − reserved) / replicas⌋)
//	reserved = superuser_reserved_connections + labReserve
//
// A stock PostgreSQL (max_connections 100, 3 reserved) gives one server
// the pool of 92 instead of its default 100, and three replicas 30 each.
// With PgBouncer in front the servers keep their default pools (client
// connections to PgBouncer are cheap) and PgBouncer's default_pool_size
// takes the budget instead: max_connections − reserved − 1 (one server
// connection of its own for the readiness pings to database postgres).
const (
	// labReserve: the lab's own connections (creating and dropping the
	// leg's database, the connection sampler) and one psql.
	labReserve = 5
	// defaultPool is the server's --db-max-conns default (seed 000).
	defaultPool = 100
	// minPool is the smallest pool the lab gives a server.
	minPool = 2
)

// poolPerReplica is the --db-max-conns each of n replicas gets.
func poolPerReplica(maxConns, reserved, n int) (int, error) {
	if n < 1 {
		return 0, fmt.Errorf("pool sizing: %d replicas", n)
	}
	avail := maxConns - reserved
	pool := min(defaultPool, avail/n)
	if pool < minPool {
		return 0, fmt.Errorf("PostgreSQL's max_connections %d leaves %d connections after %d reserved: fewer than %d for each of %d replicas; raise max_connections, run fewer replicas, or put PgBouncer in front (pgbouncer: true, --pgbouncer)",
			maxConns, max(avail, 0), reserved, minPool, n)
	}
	return pool, nil
}

// pgbouncerPool is PgBouncer's default_pool_size for a PostgreSQL with
// maxConns connections of which reserved are kept.
func pgbouncerPool(maxConns, reserved int) (int, error) {
	pool := maxConns - reserved - 1
	if pool < minPool {
		return 0, fmt.Errorf("PostgreSQL's max_connections %d leaves PgBouncer %d server connections after %d reserved; raise max_connections", maxConns, max(pool, 0), reserved)
	}
	return pool, nil
}

// minConns is --db-min-conns for a pool: the default 10, at most the pool.
func minConns(pool int) int { return min(10, pool) }

// legReplicas is the number of servers a leg on backend runs: SQLite's
// database is a file of one server.
func (s *Session) legReplicas(backend string) int {
	if backend == profile.SQLite {
		return 1
	}
	return max(s.opts.Replicas, 1)
}

// envOr is the value of key in env, else in the lab's environment.
func envOr(env map[string]string, key string) string {
	if v := env[key]; v != "" {
		return v
	}
	return os.Getenv(key)
}

// promTargets picks the fixed addresses a --prometheus run scrapes: each
// replica's admin listener (job hal9), HAProxy's exporter (job haproxy,
// with replicas) and the lab's own /metrics (job hal9lab).
func (s *Session) promTargets() ([]prom.Target, error) {
	var targets []prom.Target
	for i := 0; i < max(s.opts.Replicas, 1); i++ {
		a, err := freeAddr()
		if err != nil {
			return nil, err
		}
		s.adminAddrs = append(s.adminAddrs, a)
		targets = append(targets, prom.Target{Job: "hal9", Addr: a})
	}
	s.adminAddr = s.adminAddrs[0]
	if s.opts.Replicas > 1 {
		a, err := freeAddr()
		if err != nil {
			return nil, err
		}
		s.lbMetrics = a
		targets = append(targets, prom.Target{Job: "haproxy", Addr: a})
	}
	return append(targets, prom.Target{Job: "hal9lab", Addr: s.MetricsAddr}), nil
}

// replicaPlan shapes the leg's next start: how many servers, their shared
// secret, the pools that fit PostgreSQL's max_connections (or PgBouncer's
// URL), and, with several, HAProxy's options and --trusted-proxies. It
// fills the leg's report: Replicas and Connections.
func (l *leg) replicaPlan(opts *ServerOptions) (replicaPlan, error) {
	s, b := l.s, l.spec.Backend
	n := s.legReplicas(b.Name)
	plan := replicaPlan{n: n, env: map[string]string{}}
	// A token one replica (or one life of a restarted server) issued must
	// be good at the others: one secret per leg, unless the user set one.
	if envOr(opts.Env, "HAL9_JWT_SECRET") == "" {
		plan.env["HAL9_JWT_SECRET"] = l.secret
	}
	if s.opts.Replicas > 1 && n == 1 && l.out.Replicas == nil {
		l.out.Replicas = &report.Replicas{Count: 1, Balancer: "none",
			Note: fmt.Sprintf("%s runs one server: its database is a file of one process (%d replicas run on the PostgreSQL legs)", b.Name, s.opts.Replicas)}
	}
	if n > 1 {
		ext, err := infra.ExternalHAProxyServers()
		if err != nil {
			return plan, err
		}
		if ext != nil && len(ext) != n {
			return plan, fmt.Errorf("%s lists %d servers but the leg runs %d replicas: list one address per replica", infra.EnvHAProxyServers, len(ext), n)
		}
		plan.addrs = ext
		if len(s.adminAddrs) >= n {
			plan.adminAddrs = s.adminAddrs[:n]
		}
		// HAProxy adds X-Forwarded-For; the servers believe it from
		// HAProxy only, so each client keeps its own rate limit.
		if envOr(opts.Env, "HAL9_TRUSTED_PROXIES") == "" {
			if ext != nil {
				s.Step("note: an external HAProxy: set HAL9_TRUSTED_PROXIES to its address, or every client shares its rate limit")
			} else {
				plan.env["HAL9_TRUSTED_PROXIES"] = l.trustedProxy()
			}
		}
		h := s.opts.Profile.HAProxy
		plan.haproxy = infra.HAProxyOptions{CheckInterval: h.CheckInterval.D(), Fall: h.Fall, Rise: h.Rise, MetricsAddr: s.lbMetrics,
			Process: infra.ProcessOptions{Logger: s.log}}
		if l.out.Replicas == nil {
			l.out.Replicas = &report.Replicas{Count: n}
		}
	}
	if b.pg.maxConns == 0 { // SQLite
		return plan, nil
	}
	c := l.out.Connections
	if c == nil {
		c = &report.Connections{}
		l.out.Connections = c
	}
	c.MaxConnections, c.Reserved, c.Replicas = b.pg.maxConns, b.pg.reserved, n
	pool := defaultPool
	if b.pg.bouncer != nil {
		through, err := infra.ThroughPgBouncer(opts.DatabaseURL, b.pg.bouncer.URL())
		if err != nil {
			return plan, err
		}
		opts.DatabaseURL = through
		c.PgBouncerPool = b.pg.bouncerPool
		if l.out.Replicas == nil {
			l.out.Replicas = &report.Replicas{Count: n, Balancer: "none"}
		}
		l.out.Replicas.PgBouncer = true
	} else {
		var err error
		if pool, err = poolPerReplica(b.pg.maxConns, b.pg.reserved, n); err != nil {
			return plan, err
		}
	}
	c.PoolPerReplica = pool
	plan.extra = []string{"--db-max-conns", fmt.Sprint(pool), "--db-min-conns", fmt.Sprint(minConns(pool))}
	return plan, nil
}

// noteBalancer names the leg's balancer in its report.
func (l *leg) noteBalancer(rs *ReplicaSet) {
	if l.out.Replicas == nil || rs.lb == nil {
		return
	}
	l.out.Replicas.Balancer = "haproxy (" + rs.lb.Mode.String() + ")"
	if rs.lb.Mode == infra.ModeExternal {
		l.out.Replicas.Balancer = "haproxy (external " + rs.lb.URL + ")"
	}
}

// limitersText names the limiters of the rate-limit check.
func limitersText(n int) string {
	if n <= 1 {
		return ""
	}
	return fmt.Sprintf(" on each of %d replicas in round robin", n)
}

// scrapeBalancer reads HAProxy's exporter (nil without one or on error:
// HAProxy's numbers are then missing from the report, with the reason in
// the progress).
func (l *leg) scrapeBalancer(ctx context.Context, client *http.Client) *prom.Snapshot {
	if l.srv == nil || l.srv.lb == nil || l.srv.lb.MetricsURL == "" {
		return nil
	}
	sc, err := prom.Fetch(ctx, client, l.srv.lb.MetricsURL)
	if err != nil {
		l.s.Step("HAProxy's metrics: %v", err)
		return nil
	}
	return sc
}

// addReplicaScenario adds one scenario's per-replica numbers (two merged
// scrapes of the replicas, two of HAProxy) and cache hits to the leg's.
func (l *leg) addReplicaScenario(before, after, lbBefore, lbAfter *prom.Snapshot, n readings.Numbers) {
	r := l.out.Replicas
	if r == nil || l.srv == nil {
		return
	}
	servers := readings.ReplicaServers(before, after, l.srv.servers())
	var lb *report.HAProxyNumbers
	if lbBefore != nil && lbAfter != nil {
		lb = readings.HAProxyNumbers(lbBefore, lbAfter, servers)
		lb.MetricsURL = l.srv.lb.MetricsURL
	}
	readings.AddReplicas(r, servers, lb, n.CacheHits, n.HitsByTier["redis"])
}
