package lab

import (
	"context"
	"fmt"
	"maps"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hal9-lab/hal9-lab/lab/build"
	"github.com/hal9-lab/hal9-lab/lab/infra"
	"github.com/hal9-lab/hal9-lab/lab/report"
	"github.com/hal9-lab/hal9-lab/lab/serve"
)

// startServer starts the leg's servers (one, or replicas behind HAProxy)
// with --rate-limit limit (0: off) on the run's database, the profile's
// server: block as flags, and waits until they are ready.
func (l *leg) startServer(ctx context.Context, limit float64) error {
	s := l.s
	env := map[string]string{} // the profile's, then the session's, then the leg's
	maps.Copy(env, s.opts.Profile.Env)
	maps.Copy(env, s.opts.ServerEnv)
	maps.Copy(env, l.spec.env)
	opts := serve.Options{Bin: l.spec.bin, DatabaseURL: l.serverDB, RedisURL: l.serverRedis, RateLimit: limit,
		PyroscopeURL: s.side.recvURL, DataDir: l.dataDir, Shutdown: s.opts.Drain, Env: env, AdminAddr: s.side.adminAddr(),
		LogPath: l.logPath(fmt.Sprint(len(l.out.Steps)))}
	if l.ctr != nil {
		opts.Container, opts.PyroscopeURL = l.ctr, l.spec.backend.ReceiverURL()
	}
	if err := l.applySettings(ctx, &opts); err != nil {
		return err
	}
	plan, err := l.serverPlan(&opts)
	if err != nil {
		return err
	}
	s.side.recv.SetLeg(l.key)
	rs, err := serve.StartReplicas(ctx, opts, plan, s.prog.step)
	if err != nil {
		return err
	}
	l.srv, l.limit = rs, limit
	if l.out.Containers != nil {
		l.out.Containers.Starts = append(l.out.Containers.Starts, rs.Containers()...)
	}
	if rs.Len() == 1 {
		r, _ := rs.Replica(0)
		s.prog.step("server ready: API %s, admin %s (rate limit %s)", r.URL(), r.AdminURL(), limitString(limit))
	} else {
		l.noteBalancer(rs.Balancer())
		s.prog.step("%d replicas ready behind %s (rate limit %s each)", rs.Len(), rs.URL(), limitString(limit))
	}
	return nil
}

// stopServer sends SIGTERM to the running servers (if any) and records
// their exit code and shutdown time; a bad exit is the leg's error.
func (l *leg) stopServer() {
	if l.srv == nil {
		return
	}
	if cr := l.s.capacity; cr != nil { // for the service demand, over the same lives as the CPU profile
		if err := cr.count(l.key, l.srv); err != nil {
			l.s.labError("%s", err)
		}
	}
	var code int
	var took time.Duration
	err := l.step("SIGTERM, expect exit 0 within the drain time", func() error {
		var err error
		code, took, err = l.srv.Stop()
		return err
	})
	l.out.Server.ExitCode, l.out.Server.ShutdownMS = &code, float64(took.Milliseconds())
	if err != nil && l.out.Error == "" {
		l.out.Error = err.Error()
	}
	l.srv = nil
}

// applySettings adds the profile's server: block to the server's flags,
// reads the configuration they make (hal9 config) and records how it
// departs from the binary's defaults, which are production's.
func (l *leg) applySettings(ctx context.Context, opts *serve.Options) error {
	s := l.s
	def, err := s.defaults.Of(ctx, opts.Bin)
	if err != nil {
		return err
	}
	extra, err := s.opts.Profile.Server.Args(func(flag string) bool { _, ok := def[flag]; return ok })
	if err != nil {
		return fmt.Errorf("profile %s: %w", s.opts.Profile.Name, err)
	}
	opts.Extra = append(opts.Extra, extra...)
	eff, err := serve.Config(ctx, opts.Bin, opts.Args("127.0.0.1:1", "127.0.0.1:2"), opts.Env)
	if err != nil {
		return fmt.Errorf("the server's configuration: %w", err)
	}
	l.config = eff
	if !l.checkOnly { // the check's --rate-limit is not a departure of the measurements
		s.noteDepartures(l.spec.backend.Name, serve.Departures(def, eff))
	}
	return nil
}

// serverPlan shapes the leg's next start: how many servers, their shared
// secret, the pools that fit PostgreSQL's max_connections (or PgBouncer's
// URL), and, with several, HAProxy's options and --trusted-proxies. It
// fills the leg's report: Replicas and Connections.
func (l *leg) serverPlan(opts *serve.Options) (serve.Plan, error) {
	s, b := l.s, l.spec.backend
	n := b.Servers(s.opts.Replicas)
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
		if len(s.side.adminAddrs) >= n {
			plan.AdminAddrs = s.side.adminAddrs[:n]
		}
		// HAProxy adds X-Forwarded-For; the servers believe it from
		// HAProxy only, so each client keeps its own rate limit.
		if envOr(opts.Env, "HAL9_TRUSTED_PROXIES") == "" {
			if ext != nil {
				s.prog.step("note: an external HAProxy: set HAL9_TRUSTED_PROXIES to its address, or every client shares its rate limit")
			} else {
				plan.Env["HAL9_TRUSTED_PROXIES"] = l.ctr.TrustedProxy()
			}
		}
		h := s.opts.Profile.HAProxy
		plan.HAProxy = infra.HAProxyOptions{CheckInterval: h.CheckInterval.D(), Fall: h.Fall, Rise: h.Rise, MetricsAddr: s.side.lbMetrics,
			Process: infra.ProcessOptions{Logger: s.log}}
		if l.out.Replicas == nil {
			l.out.Replicas = &report.Replicas{Count: n}
		}
	}
	pools, err := b.Pools(n, opts.DatabaseURL)
	if err != nil || pools == nil { // SQLite: no pool
		return plan, err
	}
	c := l.out.Connections
	if c == nil {
		c = &report.Connections{}
		l.out.Connections = c
	}
	c.MaxConnections, c.Reserved, c.Replicas, c.PoolPerReplica = pools.MaxConnections, pools.Reserved, n, pools.PoolPerServer
	if pools.PgBouncer {
		c.PgBouncerPool = pools.PgBouncerPool
		if l.out.Replicas == nil {
			l.out.Replicas = &report.Replicas{Count: n, Balancer: "none"}
		}
		l.out.Replicas.PgBouncer = true
	}
	opts.DatabaseURL = pools.DatabaseURL
	plan.Extra = pools.Flags
	return plan, nil
}

// noteBalancer names the leg's balancer in its report.
func (l *leg) noteBalancer(lb *infra.Balancer) {
	if l.out.Replicas == nil || lb == nil {
		return
	}
	l.out.Replicas.Balancer = "haproxy (" + lb.Mode.String() + ")"
	if lb.Mode == infra.ModeExternal {
		l.out.Replicas.Balancer = "haproxy (external " + lb.URL + ")"
	}
}

// serverImage makes sure the leg's server image exists (a step of its
// own, so that "start server" times the start alone), that the data dir
// is writable by the image's unprivileged user, and how the leg's
// servers run as containers of it.
func (l *leg) serverImage(ctx context.Context) error {
	b := l.spec.backend
	if err := os.Chmod(l.dataDir, 0o777); err != nil { // the image's user (65532) writes here
		return fmt.Errorf("data dir %s: %w", l.dataDir, err)
	}
	var img *build.Image
	err := l.step("server image", func() error {
		var err error
		img, err = l.s.images.For(ctx, b.Containers(), l.spec.bin)
		return err
	})
	if err != nil {
		return err
	}
	sess := b.Containers()
	l.out.Containers = &report.Containers{Image: img.Ref, ImageSource: img.Source, Network: sess.Network, Gateway: sess.Gateway}
	var n atomic.Int32
	prefix := fmt.Sprintf("hal9-%s-run%d", strings.ReplaceAll(l.key, "+", "-"), l.spec.run)
	l.ctr = &serve.Container{Session: sess, Image: img.Ref, NetworkURL: b.NetworkURL,
		Name: func() string { return fmt.Sprintf("%s-%d", prefix, n.Add(1)) }}
	return nil
}

func limitString(l float64) string {
	if l <= 0 {
		return "off"
	}
	return fmt.Sprintf("%g/s", l)
}

// envOr is the value of key in env, else in the lab's environment.
func envOr(env map[string]string, key string) string {
	if v := env[key]; v != "" {
		return v
	}
	return os.Getenv(key)
}
