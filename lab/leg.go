package lab

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hal9-lab/hal9-lab/internal/redact"
	"github.com/hal9-lab/hal9-lab/lab/profile"
	"github.com/hal9-lab/hal9-lab/lab/readings"
	"github.com/hal9-lab/hal9-lab/lab/report"
	"github.com/hal9-lab/hal9-lab/lab/serve"
)

// LegSpec is one run of one leg.
type LegSpec struct {
	Backend *Backend
	Run     int
	Runs    int    // of how many, for progress
	Role    string // gate --against: "candidate" or "reference"; "" otherwise
	Bin     string
	Env     map[string]string // on top of the session's ServerEnv
	// RateLimitCheck runs the profile's rate-limit check after the scenarios.
	RateLimitCheck bool
}

// LegKey names a leg's profiles and logs: "sqlite", "sqlite-reference".
func LegKey(backend, role string) string {
	if role == "" || role == "candidate" {
		return backend
	}
	return backend + "-" + role
}

// leg is one run of one leg while it runs: what its steps share. RunLeg
// drives it: fresh database, server, warm-up, scenarios, rate-limit
// check, SIGTERM; each step is timed into out.Steps.
type leg struct {
	s       *Session
	spec    LegSpec
	key     string            // LegKey: names its profiles and logs
	out     report.Leg        // what the report gets
	backing *Backing          // the run's own database (and Redis logical DB)
	dataDir string            // the server's --data-dir (and the SQLite file)
	srv     *serve.ReplicaSet // the servers running now (one, or replicas behind HAProxy); nil between starts
	limit   float64           // srv's --rate-limit
	secret  string            // the leg's --jwt-secret, shared by its replicas and restarts
	ctr     *serve.Container  // --server container: how its servers run (nil: processes)
	fx      *legFaults        // the ledger and the faults' proxies (faultleg.go)
	config  map[string]any    // srv's effective configuration (hal9 config)
	// capMachine: CPU seconds of the lab and of the local databases during
	// the capacity search, and the requests the server counted there.
	capMachine [3]float64
	checkOnly  bool // the running server is the rate-limit check's
}

// RunLeg runs one leg: a fresh database, the server, warm-up, every
// scenario with /metrics scraped around it, the optional rate-limit check,
// SIGTERM. It always returns the leg with what was measured; errors are in
// leg.Error. A cancelled ctx stops it early (Ctrl-C).
func (s *Session) RunLeg(ctx context.Context, spec LegSpec) report.Leg {
	b := spec.Backend
	l := &leg{s: s, spec: spec, key: LegKey(b.Name, spec.Role), backing: &Backing{}, limit: -1, secret: serve.NewSecret(),
		out: report.Leg{Name: b.Name, Run: spec.Run, Role: spec.Role, Infra: b.Infra(), Redis: b.Name == profile.PostgresRedis}}
	s.prog.setLeg(l.label())
	defer l.dropDatabase(ctx)
	var err error
	if l.dataDir, err = os.MkdirTemp("", "hal9lab-"+strings.ReplaceAll(b.Name, "+", "-")+"-"); err != nil {
		return l.fail(fmt.Errorf("create data dir: %w", err))
	}
	defer os.RemoveAll(l.dataDir)
	if err := l.containerLeg(ctx); err != nil {
		return l.fail(err)
	}
	if err := l.step("fresh database", func() error { return l.freshDatabase(ctx) }); err != nil {
		return l.fail(err)
	}
	l.out.Database = redact.URL(l.backing.DatabaseURL)
	if err := l.prepareFaults(); err != nil {
		return l.fail(err)
	}
	defer l.closeFaults()

	defer l.stopServer()
	l.portTaken(ctx)
	if err := l.runScenarios(ctx); err != nil {
		return l.fail(err)
	}
	if s.capacity != nil && ctx.Err() == nil {
		l.capacitySearch(ctx)
	}
	if spec.RateLimitCheck && s.opts.Profile.RateLimit != nil && ctx.Err() == nil {
		l.rateLimitCheck(ctx, *s.opts.Profile.RateLimit)
	}
	// Server totals come from the scenario diffs; peak RSS from /proc.
	if l.srv != nil {
		if rss, _, ok := l.srv.Stats(); ok && rss > l.out.Server.PeakRSSBytes {
			l.out.Server.PeakRSSBytes = rss
		}
	}
	readings.FinishServer(&l.out.Server, s.summary.Seed)
	l.stopServer()
	l.verifyLedger(ctx)
	l.capacityDemand()
	return l.out
}

// label names the leg in progress lines: "sqlite reference 2/5".
func (l *leg) label() string {
	label := l.spec.Backend.Name
	if l.spec.Role != "" {
		label += " " + l.spec.Role
	}
	if l.spec.Runs > 1 {
		label += fmt.Sprintf(" %d/%d", l.spec.Run, l.spec.Runs)
	}
	return label
}

// step runs one named step of the leg: a progress line, and its duration
// and error in the report.
func (l *leg) step(name string, fn func() error) error {
	l.s.prog.step("%s", name)
	t := time.Now()
	err := fn()
	st := report.Step{Name: name, DurationMS: float64(time.Since(t).Microseconds()) / 1000}
	if err != nil {
		st.Error = err.Error()
		l.s.prog.step("%s: FAILED: %v", name, err)
	}
	l.out.Steps = append(l.out.Steps, st)
	return err
}

// fail records err as the leg's error (the first one wins) and returns
// the leg as measured so far.
func (l *leg) fail(err error) report.Leg {
	if l.out.Error == "" {
		l.out.Error = err.Error()
	}
	return l.out
}

// freshDatabase provisions the run's own database: a new SQLite file, or a
// new PostgreSQL database (and an empty Redis logical DB) on the backend's
// servers.
func (l *leg) freshDatabase(ctx context.Context) error {
	b := l.spec.Backend
	switch b.Name {
	case profile.SQLite:
		l.backing.DatabaseURL = "sqlite://" + filepath.Join(l.dataDir, "hal9.db")
		return nil
	case profile.PostgresRedis:
		if err := provisionRedis(ctx, b.env.RedisURL, l.backing); err != nil {
			return err
		}
	}
	return provisionPostgres(ctx, b.env.PostgresURL, l.backing)
}

// dropDatabase drops what freshDatabase created; a failure is a lab error.
func (l *leg) dropDatabase(ctx context.Context) {
	if err := l.backing.Close(context.WithoutCancel(ctx)); err != nil {
		l.s.LabError("%s run %d: cleaning up its database: %v", l.spec.Backend.Name, l.spec.Run, err)
	}
}

// runScenarios runs the profile's scenarios in order against one server,
// started before the first (then warmed up) and again whenever a scenario
// wants another --rate-limit. Its error is a server that did not start.
func (l *leg) runScenarios(ctx context.Context) error {
	s := l.s
	for i, sp := range s.plans {
		if ctx.Err() != nil {
			break
		}
		if l.srv == nil || sp.rateLimit != l.limit {
			l.stopServer()
			if err := l.step("start server", func() error { return l.startServer(ctx, sp.rateLimit) }); err != nil {
				return err
			}
			if i == 0 && s.opts.Profile.Warmup > 0 {
				_ = l.step(fmt.Sprintf("warm-up: %s at %.0f/s", s.opts.Profile.Warmup.D(), s.opts.Profile.WarmupRate), func() error {
					return s.warmup(ctx, l.srv.URL(), sp.plan)
				})
			}
		}
		sc := l.runScenario(ctx, sp)
		l.out.Scenarios = append(l.out.Scenarios, sc)
		readings.AddServer(&l.out.Server, sc.Server)
	}
	return nil
}

// rateLimitCheck restarts the server with the check's --rate-limit and
// adds the check to the leg as a scenario.
func (l *leg) rateLimitCheck(ctx context.Context, rc profile.RateLimitCheck) {
	l.stopServer()
	l.checkOnly = true // its --rate-limit is the check's, not a departure of the measurements
	if err := l.step("start server", func() error { return l.startServer(ctx, rc.Limit) }); err != nil {
		return
	}
	var sc report.Scenario
	n := float64(l.srv.Len()) // round robin over n limiters: n × the limit gets through
	_ = l.step(fmt.Sprintf("rate-limit check: %.0f then %.0f req/s against --rate-limit %.0f%s", rc.Below*rc.Limit*n, rc.Above*rc.Limit*n, rc.Limit, limitersText(l.srv.Len())), func() error {
		sc = l.s.rateLimitScenario(ctx, l.srv.URL(), l.srv.Len(), rc)
		if sc.Error != "" {
			return errors.New(sc.Error)
		}
		return nil
	})
	l.out.Scenarios = append(l.out.Scenarios, sc)
}

// startServer starts the leg's servers (one, or replicas behind HAProxy:
// replicas.go) with --rate-limit limit (0: off) on the run's database and
// waits until they are ready.
func (l *leg) startServer(ctx context.Context, limit float64) error {
	s := l.s
	env := map[string]string{} // the profile's, then the session's, then the leg's
	maps.Copy(env, s.opts.Profile.Env)
	maps.Copy(env, s.opts.ServerEnv)
	maps.Copy(env, l.spec.Env)
	dbURL, redisURL := l.serverURLs()
	opts := serve.Options{Bin: l.spec.Bin, DatabaseURL: dbURL, RedisURL: redisURL, RateLimit: limit,
		PyroscopeURL: s.recvURL, DataDir: l.dataDir, Shutdown: s.opts.Drain, Env: env, AdminAddr: s.adminAddr,
		LogPath: filepath.Join(s.opts.OutDir, "logs", fmt.Sprintf("%s-run%d-%d.log", strings.ReplaceAll(l.key, "+", "-"), l.spec.Run, len(l.out.Steps)))}
	l.containerOptions(&opts)
	if err := l.applySettings(ctx, &opts); err != nil {
		return err
	}
	plan, err := l.replicaPlan(&opts)
	if err != nil {
		return err
	}
	s.recv.SetLeg(l.key)
	rs, err := serve.StartReplicas(ctx, opts, plan, s.prog.step)
	if err != nil {
		return err
	}
	l.srv, l.limit = rs, limit
	l.noteContainers(rs)
	if rs.Len() == 1 {
		r, _ := rs.Replica(0)
		s.prog.step("server ready: API %s, admin %s (rate limit %s)", r.URL(), r.AdminURL(), limitString(limit))
	} else {
		l.noteBalancer(rs)
		s.prog.step("%d replicas ready behind %s (rate limit %s each)", rs.Len(), rs.URL(), limitString(limit))
	}
	return nil
}

// stopServer sends SIGTERM to the running server (if any) and records its
// exit code and shutdown time; a bad exit is the leg's error.
func (l *leg) stopServer() {
	if l.srv == nil {
		return
	}
	l.countRequests()
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

func limitString(l float64) string {
	if l <= 0 {
		return "off"
	}
	return fmt.Sprintf("%g/s", l)
}
