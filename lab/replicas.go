package lab

import (
	"context"
	"fmt"
	"net/http"
	"os"

	"github.com/hal9-lab/hal9-lab/lab/infra"
	"github.com/hal9-lab/hal9-lab/lab/profile"
	"github.com/hal9-lab/hal9-lab/lab/prom"
	"github.com/hal9-lab/hal9-lab/lab/readings"
	"github.com/hal9-lab/hal9-lab/lab/report"
	"github.com/hal9-lab/hal9-lab/lab/serve"
)

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
		a, err := serve.FreeAddr()
		if err != nil {
			return nil, err
		}
		s.adminAddrs = append(s.adminAddrs, a)
		targets = append(targets, prom.Target{Job: "hal9", Addr: a})
	}
	s.adminAddr = s.adminAddrs[0]
	if s.opts.Replicas > 1 {
		a, err := serve.FreeAddr()
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
func (l *leg) replicaPlan(opts *serve.Options) (serve.Plan, error) {
	s, b := l.s, l.spec.Backend
	n := s.legReplicas(b.Name)
	plan := serve.Plan{N: n, Env: map[string]string{}}
	// A token one replica (or one life of a restarted server) issued must
	// be good at the others: one secret per leg, unless the user set one.
	if envOr(opts.Env, "HAL9_JWT_SECRET") == "" {
		plan.Env["HAL9_JWT_SECRET"] = l.secret
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
		plan.Addrs = ext
		if len(s.adminAddrs) >= n {
			plan.AdminAddrs = s.adminAddrs[:n]
		}
		// HAProxy adds X-Forwarded-For; the servers believe it from
		// HAProxy only, so each client keeps its own rate limit.
		if envOr(opts.Env, "HAL9_TRUSTED_PROXIES") == "" {
			if ext != nil {
				s.Step("note: an external HAProxy: set HAL9_TRUSTED_PROXIES to its address, or every client shares its rate limit")
			} else {
				plan.Env["HAL9_TRUSTED_PROXIES"] = l.ctr.TrustedProxy()
			}
		}
		h := s.opts.Profile.HAProxy
		plan.HAProxy = infra.HAProxyOptions{CheckInterval: h.CheckInterval.D(), Fall: h.Fall, Rise: h.Rise, MetricsAddr: s.lbMetrics,
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
	plan.Extra = []string{"--db-max-conns", fmt.Sprint(pool), "--db-min-conns", fmt.Sprint(minConns(pool))}
	return plan, nil
}

// noteBalancer names the leg's balancer in its report.
func (l *leg) noteBalancer(rs *serve.ReplicaSet) {
	lb := rs.Balancer()
	if l.out.Replicas == nil || lb == nil {
		return
	}
	l.out.Replicas.Balancer = "haproxy (" + lb.Mode.String() + ")"
	if lb.Mode == infra.ModeExternal {
		l.out.Replicas.Balancer = "haproxy (external " + lb.URL + ")"
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
	if l.srv == nil || l.srv.Balancer() == nil || l.srv.Balancer().MetricsURL == "" {
		return nil
	}
	sc, err := prom.Fetch(ctx, client, l.srv.Balancer().MetricsURL)
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
	servers := readings.ReplicaServers(before, after, l.srv.Servers())
	var lb *report.HAProxyNumbers
	if lbBefore != nil && lbAfter != nil {
		lb = readings.HAProxyNumbers(lbBefore, lbAfter, servers)
		lb.MetricsURL = l.srv.Balancer().MetricsURL
	}
	readings.AddReplicas(r, servers, lb, n.CacheHits, n.HitsByTier["redis"])
}
