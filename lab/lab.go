package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/pprof/profile"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/hal9-lab/hal9-lab/internal/redact"
	"github.com/hal9-lab/hal9-lab/lab/baseline"
	"github.com/hal9-lab/hal9-lab/lab/infra"
	"github.com/hal9-lab/hal9-lab/lab/load"
	"github.com/hal9-lab/hal9-lab/lab/profiles"
	"github.com/hal9-lab/hal9-lab/lab/prom"
	"github.com/hal9-lab/hal9-lab/lab/report"
	"github.com/hal9-lab/hal9-lab/lab/workload"
)

// Options configure a lab session (one `hal9-lab run`, gate or baseline).
type Options struct {
	Root       string   // repository root: scenarios/, dashboards/, alerts/
	Profile    *Profile // what to run
	Backends   []string // nil: the profile's
	Scenarios  []string // scenario files replacing the profile's (nil: the profile's)
	OutDir     string   // where reports, logs and profiles go
	Infra      string   // ""(auto)|external|testcontainers|process
	RequireAll bool     // a backend that cannot be had is an error, not a skip
	Prometheus bool     // run a real Prometheus and check dashboard and rule queries
	HalBin     string   // server binary; "" builds Root/bin/hal9 once
	// Scale multiplies the profile's scale (tests use tiny values); 0: 1.
	Scale float64
	// Repetitions overrides the profile's (0: the profile's).
	Repetitions int
	// ServerEnv is added to every server's environment.
	ServerEnv map[string]string
	// BaselineDir holds baseline files and profiles (reports/baselines).
	BaselineDir string
	// PyroscopeURL sends the servers' profiles to a real Pyroscope instead
	// of the lab's receiver (the report then has no top functions).
	PyroscopeURL string
	// Drain is the server's --shutdown-timeout (default 10s).
	Drain    time.Duration
	Command  string    // the subcommand, for the report
	Progress io.Writer // live progress; nil: none
	Logger   *slog.Logger
}

// Session holds what a lab run shares across legs: the profile receiver,
// the lab's own /metrics, Prometheus, the summary being built.
type Session struct {
	opts    Options
	prog    *progress
	log     *slog.Logger
	recv    *profiles.Receiver
	recvURL string
	reg     *prometheus.Registry
	// MetricsAddr is where the lab serves its own /metrics (hal9lab_*).
	MetricsAddr string
	servers     []*http.Server
	prom        *prom.Server
	adminAddr   string // fixed admin address when Prometheus scrapes the server
	plans       []scenarioPlan
	summary     *report.RunSummary
	mu          sync.Mutex
	labErrors   []string
}

type scenarioPlan struct {
	file      string
	plan      *load.Plan
	scale     float64
	rateLimit float64
}

// NewSession validates the scenarios, builds nothing yet, and starts the
// profile receiver, the lab's /metrics and (with Prometheus) Prometheus.
func NewSession(ctx context.Context, opts Options) (*Session, error) {
	if opts.Profile == nil {
		return nil, errors.New("lab: no profile")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Drain == 0 {
		opts.Drain = 10 * time.Second
	}
	if opts.Scale == 0 {
		opts.Scale = 1
	}
	if len(opts.Backends) == 0 {
		opts.Backends = opts.Profile.Backends
	}
	if opts.Repetitions == 0 {
		opts.Repetitions = opts.Profile.Repetitions
	}
	if opts.OutDir == "" {
		return nil, errors.New("lab: no output directory")
	}
	if err := os.MkdirAll(opts.OutDir, 0o755); err != nil {
		return nil, fmt.Errorf("create output dir: %w", err)
	}
	s := &Session{opts: opts, prog: newProgress(opts.Progress), log: opts.Logger, recv: profiles.NewReceiver(opts.Logger), reg: prometheus.NewRegistry()}
	// Load every scenario now: a bad file fails before any infra starts.
	specs := opts.Profile.Scenarios
	if len(opts.Scenarios) > 0 {
		specs = nil
		for _, f := range opts.Scenarios {
			specs = append(specs, ProfileScenario{File: f})
		}
	}
	for _, ps := range specs {
		path := resolve(opts.Root, ps.File)
		plan, _, err := workload.Load(path)
		if err != nil {
			return nil, err
		}
		sc := ps.Scale
		if sc == 0 {
			sc = 1
		}
		s.plans = append(s.plans, scenarioPlan{file: ps.File, plan: plan, scale: sc * opts.Profile.Scale * opts.Scale, rateLimit: ps.RateLimit})
	}
	s.summary = &report.RunSummary{Version: report.Version, Command: opts.Command, Profile: opts.Profile.Name, StartedAt: time.Now().UTC(),
		Commit: gitCommit(opts.Root), Machine: baseline.DescribeMachine(), Seed: report.DefaultSeed()}

	recvAddr, err := s.serve(s.recv)
	if err != nil {
		return nil, fmt.Errorf("start the profile receiver: %w", err)
	}
	s.recvURL = "http://" + recvAddr
	if opts.PyroscopeURL != "" {
		s.recvURL = opts.PyroscopeURL
	}
	s.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{}))
	if s.MetricsAddr, err = s.serve(mux); err != nil {
		s.Close()
		return nil, fmt.Errorf("start the lab's /metrics: %w", err)
	}
	s.prog.step("profiles to %s, lab metrics on http://%s/metrics", s.recvURL, s.MetricsAddr)
	if opts.Prometheus {
		if s.adminAddr, err = freeAddr(); err != nil {
			s.Close()
			return nil, err
		}
		rules, _ := filepath.Glob(filepath.Join(opts.Root, "alerts", "*.rules.yml"))
		s.prom, err = prom.Start(ctx, prom.Options{Targets: []prom.Target{{Job: "hal9", Addr: s.adminAddr}, {Job: "hal9lab", Addr: s.MetricsAddr}},
			RuleFiles: rules, Logger: opts.Logger})
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("--prometheus: %w", err)
		}
		s.prog.step("Prometheus on http://%s scraping the server (%s) and the lab", s.prom.Addr, s.adminAddr)
	}
	return s, nil
}

// serve starts h on a free loopback port.
func (s *Session) serve(h http.Handler) (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	s.servers = append(s.servers, srv)
	go func() { _ = srv.Serve(l) }()
	return l.Addr().String(), nil
}

// Close stops what NewSession started.
func (s *Session) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if s.prom != nil {
		_ = s.prom.Stop(ctx)
		s.prom = nil
	}
	for _, srv := range s.servers {
		_ = srv.Shutdown(ctx)
	}
	s.servers = nil
}

// Summary returns the run summary built so far.
func (s *Session) Summary() *report.RunSummary { return s.summary }

// Receiver returns the profile receiver.
func (s *Session) Receiver() *profiles.Receiver { return s.recv }

// Registry returns the lab's own metrics registry.
func (s *Session) Registry() *prometheus.Registry { return s.reg }

// LabError records a lab error (a measurement the lab cannot trust).
func (s *Session) LabError(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	s.mu.Lock()
	s.labErrors = append(s.labErrors, msg)
	s.mu.Unlock()
	s.prog.step("LAB ERROR: %s", msg)
}

// Step prints a progress line.
func (s *Session) Step(format string, args ...any) { s.prog.step(format, args...) }

// SetLegLabel names the leg in progress lines.
func (s *Session) SetLegLabel(l string) { s.prog.setLeg(l) }

// Binary returns the server binary to use, building Root/bin/hal9 once
// when none was given.
func (s *Session) Binary(ctx context.Context) (string, error) {
	if s.opts.HalBin != "" {
		if _, err := os.Stat(s.opts.HalBin); err != nil {
			return "", fmt.Errorf("--hal9-bin %s: %w", s.opts.HalBin, err)
		}
		return s.opts.HalBin, nil
	}
	out := filepath.Join(s.opts.Root, "bin", "hal9")
	s.prog.step("building %s (go build ./cmd/hal9)", out)
	t := time.Now()
	if err := BuildServer(ctx, s.opts.Root, out); err != nil {
		return "", err
	}
	s.prog.step("built in %s", time.Since(t).Round(100*time.Millisecond))
	s.opts.HalBin = out
	return out, nil
}

// Backend is a started backend shared by the runs of its legs: the
// servers lab/infra gave it (none for SQLite).
type Backend struct {
	Name string
	env  *infra.Env // nil for SQLite
}

// Infra says how the backend's servers were had: lab/infra's mode, or
// "none" for SQLite.
func (b *Backend) Infra() string {
	if b.env == nil {
		return "none"
	}
	return b.env.Mode.String()
}

// StartBackend starts the infrastructure of a backend. When it cannot be
// had the leg is skipped (written in the report) unless RequireAll.
func (s *Session) StartBackend(ctx context.Context, name string) (*Backend, error) {
	s.prog.setLeg(name)
	if name != SQLite {
		s.prog.step("starting infrastructure (--infra %s)", orAuto(s.opts.Infra))
	}
	t := time.Now()
	b := &Backend{Name: name}
	// External URLs (HAL9_PG_DSN, HAL9_REDIS_URL), containers or local
	// processes, as --infra says ("" tries them in that order).
	needPG, needRedis := name == Postgres || name == PostgresRedis, name == PostgresRedis
	var err error
	if needPG || needRedis {
		b.env, err = infra.Start(ctx, infra.Options{Postgres: needPG, Redis: needRedis, Mode: infra.Mode(s.opts.Infra), Logger: s.log})
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		reason := err.Error()
		if s.opts.RequireAll {
			return nil, fmt.Errorf("backend %s cannot be had (--require-all): %s", name, reason)
		}
		s.prog.step("SKIPPED: %s", reason)
		s.summary.Skipped = append(s.summary.Skipped, report.Skipped{Leg: name, Reason: reason})
		return nil, nil
	}
	if name != SQLite {
		s.prog.step("infrastructure up (%s) in %s", b.Infra(), time.Since(t).Round(100*time.Millisecond))
	}
	return b, nil
}

// eachBackend starts each backend of the run in turn, calls legs with it
// (i is its index in --backends) and stops it. A backend that cannot be had
// is skipped (the reason is recorded) unless --require-all; an interrupted
// run stops at the next backend and is not an error.
func (s *Session) eachBackend(ctx context.Context, legs func(i int, b *Backend)) error {
	for i, name := range s.opts.Backends {
		if ctx.Err() != nil {
			return nil
		}
		b, err := s.StartBackend(ctx, name)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if b == nil {
			continue // skipped, reason recorded
		}
		legs(i, b)
		if err := b.Stop(ctx); err != nil {
			s.LabError("stop %s infrastructure: %v", name, err)
		}
	}
	return nil
}

// Stop stops the backend's infrastructure.
func (b *Backend) Stop(ctx context.Context) error {
	if b == nil || b.env == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 60*time.Second)
	defer cancel()
	return b.env.Stop(ctx)
}

func orAuto(m string) string {
	if m == "" {
		return "auto"
	}
	return m
}

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

// RunLeg runs one leg: a fresh database, the server, warm-up, every
// scenario with /metrics scraped around it, the optional rate-limit check,
// SIGTERM. It always returns the leg with what was measured; errors are in
// leg.Error. A cancelled ctx stops it early (Ctrl-C).
func (s *Session) RunLeg(ctx context.Context, spec LegSpec) report.Leg {
	b := spec.Backend
	leg := report.Leg{Name: b.Name, Run: spec.Run, Role: spec.Role, Infra: b.Infra(), Redis: b.Name == PostgresRedis}
	label := b.Name
	if spec.Role != "" {
		label += " " + spec.Role
	}
	if spec.Runs > 1 {
		label += fmt.Sprintf(" %d/%d", spec.Run, spec.Runs)
	}
	s.prog.setLeg(label)
	step := func(name string, fn func() error) error {
		s.prog.step("%s", name)
		t := time.Now()
		err := fn()
		st := report.Step{Name: name, DurationMS: float64(time.Since(t).Microseconds()) / 1000}
		if err != nil {
			st.Error = err.Error()
			s.prog.step("%s: FAILED: %v", name, err)
		}
		leg.Steps = append(leg.Steps, st)
		return err
	}
	fail := func(err error) report.Leg {
		if leg.Error == "" {
			leg.Error = err.Error()
		}
		return leg
	}

	backing := &Backing{}
	defer func() {
		if err := backing.Close(context.WithoutCancel(ctx)); err != nil {
			s.LabError("%s run %d: cleaning up its database: %v", b.Name, spec.Run, err)
		}
	}()
	dataDir, err := os.MkdirTemp("", "hal9lab-"+strings.ReplaceAll(b.Name, "+", "-")+"-")
	if err != nil {
		return fail(fmt.Errorf("create data dir: %w", err))
	}
	defer os.RemoveAll(dataDir)
	if err := step("fresh database", func() error {
		switch b.Name {
		case SQLite:
			backing.DatabaseURL = "sqlite://" + filepath.Join(dataDir, "hal9.db")
			return nil
		case PostgresRedis:
			if err := provisionRedis(ctx, b.env.RedisURL, backing); err != nil {
				return err
			}
		}
		return provisionPostgres(ctx, b.env.PostgresURL, backing)
	}); err != nil {
		return fail(err)
	}
	leg.Database = redact.URL(backing.DatabaseURL)

	key := LegKey(b.Name, spec.Role)
	var srv *Server
	var curLimit float64 = -1
	startSrv := func(limit float64) error {
		env := map[string]string{}
		for k, v := range s.opts.Profile.Env {
			env[k] = v
		}
		for k, v := range s.opts.ServerEnv {
			env[k] = v
		}
		for k, v := range spec.Env {
			env[k] = v
		}
		opts := ServerOptions{Bin: spec.Bin, DatabaseURL: backing.DatabaseURL, RedisURL: backing.RedisURL, RateLimit: limit,
			PyroscopeURL: s.recvURL, DataDir: dataDir, Shutdown: s.opts.Drain, Env: env,
			LogPath: filepath.Join(s.opts.OutDir, "logs", fmt.Sprintf("%s-run%d-%d.log", strings.ReplaceAll(key, "+", "-"), spec.Run, len(leg.Steps)))}
		s.recv.SetLeg(key)
		var err error
		opts.AdminAddr = s.adminAddr
		srv, err = StartServer(ctx, opts)
		if err != nil {
			return err
		}
		curLimit = limit
		if err := srv.WaitReady(ctx, 60*time.Second); err != nil {
			srv.Kill()
			srv = nil
			return err
		}
		s.prog.step("server ready: API %s, admin %s (rate limit %s)", srv.URL(), srv.AdminURL(), limitString(limit))
		return nil
	}
	stopSrv := func() {
		if srv == nil {
			return
		}
		var code int
		var took time.Duration
		err := step("SIGTERM, expect exit 0 within the drain time", func() error {
			var err error
			code, took, err = srv.Stop()
			return err
		})
		leg.Server.ExitCode, leg.Server.ShutdownMS = &code, float64(took.Milliseconds())
		if err != nil && leg.Error == "" {
			leg.Error = err.Error()
		}
		srv = nil
	}
	defer stopSrv()

	for i, sp := range s.plans {
		if ctx.Err() != nil {
			break
		}
		if srv == nil || sp.rateLimit != curLimit {
			stopSrv()
			if err := step("start server", func() error { return startSrv(sp.rateLimit) }); err != nil {
				return fail(err)
			}
			if i == 0 && s.opts.Profile.Warmup > 0 {
				_ = step(fmt.Sprintf("warm-up: %s at %.0f/s", s.opts.Profile.Warmup.D(), s.opts.Profile.WarmupRate), func() error {
					return s.warmup(ctx, srv.URL(), sp.plan)
				})
			}
		}
		sc := s.runScenario(ctx, srv, sp, b.Name, spec.Run, step)
		leg.Scenarios = append(leg.Scenarios, sc)
		addServer(&leg.Server, sc.Server)
	}
	if spec.RateLimitCheck && s.opts.Profile.RateLimit != nil && ctx.Err() == nil {
		rc := *s.opts.Profile.RateLimit
		stopSrv()
		if err := step("start server", func() error { return startSrv(rc.Limit) }); err == nil {
			var sc report.Scenario
			_ = step(fmt.Sprintf("rate-limit check: %.0f then %.0f req/s against --rate-limit %.0f", rc.Below*rc.Limit, rc.Above*rc.Limit, rc.Limit), func() error {
				sc = s.rateLimitScenario(ctx, srv, rc)
				if sc.Error != "" {
					return errors.New(sc.Error)
				}
				return nil
			})
			leg.Scenarios = append(leg.Scenarios, sc)
		}
	}
	// Server totals come from the scenario diffs; peak RSS from /proc.
	if srv != nil {
		if rss, _, ok := ProcStats(srv.PID()); ok && rss > leg.Server.PeakRSSBytes {
			leg.Server.PeakRSSBytes = rss
		}
	}
	finishServer(&leg.Server, s.summary.Seed)
	stopSrv()
	return leg
}

func limitString(l float64) string {
	if l <= 0 {
		return "off"
	}
	return fmt.Sprintf("%g/s", l)
}

// warmup runs a short constant arrival rate of the first scenario's
// workload; nothing of it is recorded.
func (s *Session) warmup(ctx context.Context, target string, p *load.Plan) error {
	prof := s.opts.Profile
	d := time.Duration(float64(prof.Warmup.D()) * s.opts.Scale)
	if d < time.Second {
		d = time.Second
	}
	plan := &load.Plan{Name: "warmup", Workload: p.Workload, Scenarios: []load.Scenario{{
		Name: "warmup", Executor: load.ConstantArrivalRate, Rate: prof.WarmupRate, TimeUnit: time.Second, Duration: d,
		PreAllocatedVUs: 5, MaxVUs: 50, GracefulStop: 10 * time.Second}}}
	w, err := workload.New(p.Workload)
	if err != nil {
		return err
	}
	_, err = load.Run(ctx, plan, load.Options{Target: target, Workload: w, Logger: s.log, RunID: "warmup-" + randomSuffix(), Seed: 1})
	return err
}

// runScenario runs one scenario file against srv and collects both sides.
func (s *Session) runScenario(ctx context.Context, srv *Server, sp scenarioPlan, backend string, run int, step func(string, func() error) error) report.Scenario {
	sc := report.Scenario{Name: sp.plan.Name, File: sp.file}
	if sc.Name == "" {
		sc.Name = strings.TrimSuffix(filepath.Base(sp.file), filepath.Ext(sp.file))
	}
	client := &http.Client{Timeout: 10 * time.Second}
	metricsURL := srv.AdminURL() + "/metrics"
	before, err := ScrapeMetrics(ctx, client, metricsURL)
	if err != nil {
		sc.Error = err.Error()
		return sc
	}
	_, cpu0, _ := ProcStats(srv.PID())
	w, err := workload.New(sp.plan.Workload)
	if err != nil {
		sc.Error = err.Error()
		return sc
	}
	// Scrape the server every second while the load runs: cache hit rate
	// and cost over time for the charts.
	stopSeries := make(chan struct{})
	var seriesWG sync.WaitGroup
	seriesWG.Add(1)
	go func() {
		defer seriesWG.Done()
		s.scrapeSeries(ctx, client, metricsURL, before, srv.PID(), &sc.Server.Series, stopSeries)
	}()
	var res *load.Result
	err = step(fmt.Sprintf("load: %s (scale %.3g)", sc.Name, sp.scale), func() error {
		var err error
		res, err = load.Run(ctx, sp.plan, load.Options{Target: srv.URL(), Workload: w, Scale: sp.scale, Progress: s.opts.Progress,
			Registerer: s.reg, Logger: s.log, RunID: fmt.Sprintf("%s-%s-r%d-%s", strings.ReplaceAll(backend, "+", ""), sc.Name, run, randomSuffix()), Seed: 1})
		return err
	})
	close(stopSeries)
	seriesWG.Wait()
	if err != nil {
		sc.Error = err.Error()
		return sc
	}
	after, err := ScrapeMetrics(context.WithoutCancel(ctx), client, metricsURL)
	if err != nil {
		sc.Error = err.Error()
	}
	fillFromLoad(&sc, res)
	n := diffServer(before, after)
	rss, cpu1, procOK := ProcStats(srv.PID())
	fillServer(&sc.Server, n, s.summary.Seed)
	if procOK {
		sc.Server.PeakRSSBytes = max(rss, sc.Server.PeakRSSBytes)
		if n.CPUSeconds == 0 {
			sc.Server.CPUSeconds = cpu1 - cpu0
		}
	}
	if !res.Aborted {
		s.crossCheck(backend, run, &sc)
	}
	return sc
}

// scrapeSeries appends one ServerPoint per second until stop.
func (s *Session) scrapeSeries(ctx context.Context, client *http.Client, url string, base *Scrape, pid int, out *[]report.ServerPoint, stop <-chan struct{}) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	prev := base
	for {
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cur, err := ScrapeMetrics(ctx, client, url)
		if err != nil {
			continue
		}
		step, total := diffServer(prev, cur), diffServer(base, cur)
		p := report.ServerPoint{T: cur.At.UnixMilli(), CacheHitRate: -1, CostUSD: total.CostUSD, RSSBytes: total.RSSBytes, CPUSeconds: total.CPUSeconds}
		if step.CacheLookups > 0 {
			p.CacheHitRate = rate(step.CacheHits, step.CacheLookups)
		}
		if p.RSSBytes == 0 {
			p.RSSBytes, _, _ = ProcStats(pid)
		}
		*out = append(*out, p)
		prev = cur
	}
}

// crossCheck compares the workload's header metrics with the server's
// /metrics difference: they count the same things, so a disagreement
// above 1 % means one side mis-measures.
func (s *Session) crossCheck(backend string, run int, sc *report.Scenario) {
	m, sv := sc.Metrics, sc.Server
	where := fmt.Sprintf("%s run %d, scenario %s", backend, run, sc.Name)
	if m.ClientCostUSD > 0 || sv.CostUSD > 0 {
		if d := relDiff(m.ClientCostUSD, sv.CostUSD); d > 0.01 {
			s.LabError("%s: client-side LLM cost $%.6f (sum of X-HAL9-Cost-USD) and server-side $%.6f (increase of hal9_llm_cost_dollars_total) differ by %.1f%% (> 1%%)",
				where, m.ClientCostUSD, sv.CostUSD, d*100)
		}
	}
	if m.ClientCacheCount > 0 {
		if sv.CacheLookups == 0 {
			s.LabError("%s: the workload saw %.0f cached hops but the server counted no LLM cache lookups (hal9_cache_requests_total{layer=~\"L1..L5\"})", where, m.ClientCacheCount)
		} else if d := m.ClientCacheHit - sv.CacheHitRate; d > 0.01 || d < -0.01 {
			s.LabError("%s: client-side cache hit rate %.2f%% (hal9_cache_hit over %.0f hops) and server-side %.2f%% (over %.0f lookups) differ by %.2f points (> 1)",
				where, m.ClientCacheHit*100, m.ClientCacheCount, sv.CacheHitRate*100, sv.CacheLookups, d*100)
		}
	}
}

// fillFromLoad copies the engine's result into the report's scenario.
func fillFromLoad(sc *report.Scenario, res *load.Result) {
	sum := res.Summary
	v := func(metric, stat string) float64 {
		if sum == nil || sum.Metrics[metric] == nil {
			return 0
		}
		return sum.Metrics[metric].Values[stat]
	}
	m := &sc.Metrics
	m.HTTPReqs = v("http_reqs", "count")
	m.Iterations = v("iterations", "count")
	if sum != nil {
		m.DurationS = sum.State.TestRunDurationMs / 1000
	}
	m.AchievedRPS = v("http_reqs", "rate")
	m.ErrorRate = v("http_req_failed", "rate")
	m.Dropped = v("dropped_iterations", "count")
	m.ChecksRate = v("checks", "rate")
	m.ReqP50, m.ReqP95, m.ReqP99 = v("http_req_duration", "med"), v("http_req_duration", "p(95)"), v("http_req_duration", "p(99)")
	m.IterP50, m.IterP95, m.IterP99 = v("iteration_response_time", "med"), v("iteration_response_time", "p(95)"), v("iteration_response_time", "p(99)")
	m.VUsMax = v("vus_max", "max")
	if m.VUsMax == 0 {
		m.VUsMax = v("vus_max", "value")
	}
	m.ClientCacheHit = v("hal9_cache_hit", "rate")
	m.ClientCacheCount = v("hal9_cache_hit", "passes") + v("hal9_cache_hit", "fails")
	m.ClientCostUSD = v("hal9_llm_cost_usd", "count")
	m.ClientTokens = v("hal9_llm_tokens", "count")
	if sum != nil && sum.Hal9Lab != nil {
		for _, st := range sum.Hal9Lab.Scenarios {
			m.PlannedRPS += st.PlannedRate
		}
	}
	sc.Passed = res.ThresholdsOK && !res.Aborted
	for _, t := range res.Thresholds {
		sc.Thresholds = append(sc.Thresholds, report.Threshold{Metric: t.Metric, Expr: t.Expr, OK: t.OK})
	}
	if sum != nil {
		for _, c := range sum.RootGroup.Checks {
			sc.Checks = append(sc.Checks, report.Check{Name: c.Name, Passes: float64(c.Passes), Fails: float64(c.Fails)})
		}
	}
	sc.Warnings = append(sc.Warnings, res.Warnings...)
	for _, p := range res.TimeSeries {
		sc.Series = append(sc.Series, report.Point{T: p.TS, Reqs: float64(p.Reqs), Iters: float64(p.Iterations), Errors: float64(p.Errors),
			P50: p.P50, P95: p.P95, P99: p.P99, VUs: float64(p.VUs), Planned: p.Planned, Dropped: float64(p.Dropped)})
	}
	if sum != nil { // the k6 summary without the raw histograms and the series (kept above)
		cp := *sum
		if sum.Hal9Lab != nil {
			h := *sum.Hal9Lab
			h.Raw, h.TimeSeries = nil, nil
			cp.Hal9Lab = &h
		}
		if b, err := json.Marshal(&cp); err == nil {
			sc.K6 = b
		}
	}
}

// fillServer turns a /metrics difference into the report's numbers.
func fillServer(sv *report.Server, n serverNumbers, seed report.Seed) {
	sv.Requests, sv.Signals, sv.Status429 = n.Requests, n.Signals, n.Status429
	sv.RequestsByRoute = n.ByRoute
	sv.CacheLookups = n.CacheLookups
	sv.CacheHitRate = rate(n.CacheHits, n.CacheLookups)
	sv.CacheByTier = map[string]float64{}
	for t, h := range n.HitsByTier {
		sv.CacheByTier[t] = rate(h, n.CacheLookups)
	}
	sv.LLMRequests, sv.TokensIn, sv.TokensOut, sv.CostUSD = n.LLMRequests, n.TokensIn, n.TokensOut, n.CostUSD
	sv.PoolAcquires, sv.PoolWaits, sv.PoolWaitSeconds = n.PoolAcquires, n.PoolWaits, n.PoolWaitS
	sv.CPUSeconds, sv.PeakRSSBytes = n.CPUSeconds, n.RSSBytes
	sv.Missing = n.Missing
	finishServer(sv, seed)
}

// addServer accumulates a scenario's server numbers into the leg's.
func addServer(dst *report.Server, src report.Server) {
	hits := dst.CacheHitRate*dst.CacheLookups + src.CacheHitRate*src.CacheLookups
	tierHits := map[string]float64{}
	for t, r := range dst.CacheByTier {
		tierHits[t] += r * dst.CacheLookups
	}
	for t, r := range src.CacheByTier {
		tierHits[t] += r * src.CacheLookups
	}
	dst.Requests += src.Requests
	dst.Signals += src.Signals
	dst.Status429 += src.Status429
	dst.CacheLookups += src.CacheLookups
	dst.CacheHitRate = rate(hits, dst.CacheLookups)
	dst.CacheByTier = map[string]float64{}
	for t, h := range tierHits {
		dst.CacheByTier[t] = rate(h, dst.CacheLookups)
	}
	dst.LLMRequests += src.LLMRequests
	dst.TokensIn += src.TokensIn
	dst.TokensOut += src.TokensOut
	dst.CostUSD += src.CostUSD
	dst.PoolAcquires += src.PoolAcquires
	dst.PoolWaits += src.PoolWaits
	dst.PoolWaitSeconds += src.PoolWaitSeconds
	dst.CPUSeconds += src.CPUSeconds
	dst.PeakRSSBytes = max(dst.PeakRSSBytes, src.PeakRSSBytes)
	for _, m := range src.Missing {
		if !slices.Contains(dst.Missing, m) {
			dst.Missing = append(dst.Missing, m)
		}
	}
}

// finishServer derives cost per 1,000 requests and the monthly projection
// at the seed's sustained rate (30 days).
func finishServer(sv *report.Server, seed report.Seed) {
	sv.CostPer1K = rate(sv.CostUSD, sv.Requests) * 1000
	sv.MonthlyUSD = sv.CostPer1K / 1000 * seed.SustainedRPS * 86400 * 30
}

// rateLimitScenario runs the rate-limit check and reports it as a scenario
// whose thresholds are the check's conditions.
func (s *Session) rateLimitScenario(ctx context.Context, srv *Server, rc RateLimitCheck) report.Scenario {
	sc := report.Scenario{Name: "ratelimit", File: "(built in: " + s.opts.Profile.Name + " profile's ratelimit)"}
	r, err := runRateLimitCheck(ctx, srv.URL(), rc, s.opts.Progress)
	if err != nil {
		sc.Error = err.Error()
		return sc
	}
	fillFromLoad(&sc, r.LoadResult)
	sc.Thresholds = []report.Threshold{
		{Metric: fmt.Sprintf("429s at %.0f req/s (limit %.0f)", r.BelowRate, r.Limit), Expr: fmt.Sprintf("count==0 (got %d of %d)", r.Below.Limited, r.Below.Total), OK: r.Below.Limited == 0},
		{Metric: fmt.Sprintf("429s at %.0f req/s (limit %.0f)", r.AboveRate, r.Limit), Expr: fmt.Sprintf("count>0 (got %d of %d)", r.Above.Limited, r.Above.Total), OK: r.Above.Limited > 0},
		{Metric: "429s with Retry-After", Expr: fmt.Sprintf("rate==1 (%d of %d)", r.Above.WithRetryAfter, r.Above.Limited), OK: r.Above.WithRetryAfter == r.Above.Limited},
		{Metric: "accepted rate while above the limit", Expr: fmt.Sprintf("about %.0f/s (got %.1f/s)", r.Limit, r.AcceptedRate), OK: len(r.Problems) == 0 || !slices.ContainsFunc(r.Problems, func(p string) bool { return strings.Contains(p, "got through") })},
	}
	sc.Passed = r.OK
	if !r.OK {
		sc.Warnings = append(sc.Warnings, r.Problems...)
	}
	sc.Metrics.Status429 = float64(r.Below.Limited + r.Above.Limited)
	sc.Metrics.ErrorRate = 0 // 429s are the point here, not errors
	return sc
}

// Finish writes the profiles, checks Prometheus queries, fills the summary
// and writes every report file into OutDir.
func (s *Session) Finish(ctx context.Context) (*report.RunSummary, error) {
	sum := s.summary
	sum.EndedAt = time.Now().UTC()
	if ctx.Err() != nil {
		sum.Interrupted = true
	}
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	if s.prom != nil {
		s.prog.setLeg("lab")
		s.prog.step("evaluating dashboard and rule queries over the run in Prometheus")
		if err := s.checkQueries(fctx, sum.StartedAt, sum.EndedAt); err != nil {
			s.LabError("--prometheus: %v", err)
		}
	}
	if legs := s.recv.Legs(); len(legs) > 0 {
		dir := filepath.Join(s.opts.OutDir, "profiles")
		if _, err := s.recv.WriteFiles(dir); err != nil {
			s.LabError("write profiles: %v", err)
		}
		// In the order the legs ran.
		sort.SliceStable(legs, func(i, j int) bool { return legOrder(sum, legs[i]) < legOrder(sum, legs[j]) })
		for _, l := range legs {
			sum.Profiles = append(sum.Profiles, s.recv.Summarize(l, s.baselineProfile, 8))
		}
	}
	s.mu.Lock()
	sum.LabErrors = append(sum.LabErrors, s.labErrors...)
	s.labErrors = nil
	s.mu.Unlock()
	if _, err := report.WriteAll(s.opts.OutDir, sum); err != nil {
		return sum, err
	}
	return sum, nil
}

func legOrder(sum *report.RunSummary, key string) int {
	for i, l := range sum.Legs {
		if LegKey(l.Name, l.Role) == key {
			return i
		}
	}
	return len(sum.Legs)
}

// BaselineProfileDir is where a profile's baseline pprof files live.
func BaselineProfileDir(baselineDir, profileName string) string {
	return filepath.Join(baselineDir, "profiles", profileName)
}

func (s *Session) baselineProfile(leg, typ string) *profile.Profile {
	if s.opts.BaselineDir == "" {
		return nil
	}
	p, err := profiles.ReadFile(filepath.Join(BaselineProfileDir(s.opts.BaselineDir, s.opts.Profile.Name), profiles.FileName(leg, typ)))
	if err != nil {
		return nil
	}
	return p
}

// checkQueries evaluates every dashboard and rule expression over the run.
func (s *Session) checkQueries(ctx context.Context, start, end time.Time) error {
	// One more scrape of everything before evaluating.
	_ = s.prom.WaitForScrapes(ctx, []string{"hal9lab"}, 2)
	exprs, err := prom.ProjectExprs(s.opts.Root)
	if err != nil {
		return err
	}
	res := s.prom.CheckExpressions(ctx, exprs, start, end, prom.CheckOptions{Vars: map[string]string{"__rate_interval": "4s"}, Step: time.Second})
	s.summary.PrometheusChecked = len(res)
	for _, r := range res {
		switch {
		case r.Err != nil:
			s.summary.NoData = append(s.summary.NoData, report.NoData{Source: r.Source, Name: r.Name, Expr: r.Evaluated, Reason: "error: " + r.Err.Error()})
		case r.NoData():
			s.summary.NoData = append(s.summary.NoData, report.NoData{Source: r.Source, Name: r.Name, Expr: r.Evaluated, Reason: noDataReason(r.Evaluated, s.summary)})
		}
	}
	return nil
}

// noDataReason guesses the usual innocent reasons for an empty query.
func noDataReason(expr string, sum *report.RunSummary) string {
	switch {
	case strings.Contains(expr, "hal9_db_pool") && !ranBackend(sum, Postgres, PostgresRedis):
		return "no PostgreSQL leg ran (the pool metrics exist only with --database-url postgres://)"
	case strings.Contains(expr, "hal9_redis") && !ranBackend(sum, PostgresRedis):
		return "no Redis leg ran"
	case strings.Contains(expr, "ALERTS"):
		return "no alert fired during the run"
	}
	return "no series over the run's range: the metric was never exported, or the event never happened in this run"
}

func ranBackend(sum *report.RunSummary, names ...string) bool {
	for _, l := range sum.Legs {
		if slices.Contains(names, l.Name) && len(l.Scenarios) > 0 {
			return true
		}
	}
	return false
}

// gitCommit returns HEAD's hash at root, or "" (no git, no commits yet).
func gitCommit(root string) string {
	cmd := exec.Command("git", "rev-parse", "HEAD")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// Run is `hal9-lab run`: for each backend, its infrastructure, the leg's
// repetitions, then the reports. The summary is returned (and written)
// even when interrupted.
func Run(ctx context.Context, opts Options) (*report.RunSummary, error) {
	s, err := NewSession(ctx, opts)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	bin, err := s.Binary(ctx)
	if err != nil {
		return nil, err
	}
	err = s.eachBackend(ctx, func(i int, b *Backend) {
		for rep := 1; rep <= s.opts.Repetitions && ctx.Err() == nil; rep++ {
			leg := s.RunLeg(ctx, LegSpec{Backend: b, Run: rep, Runs: s.opts.Repetitions, Bin: bin, RateLimitCheck: rateLimitOn(s.opts.Profile, b.Name, i) && rep == 1})
			s.summary.Legs = append(s.summary.Legs, leg)
		}
	})
	if err != nil {
		return nil, err
	}
	s.prog.setLeg("lab")
	return s.Finish(ctx)
}

// rateLimitOn: the check runs on the backends it names, else on the first.
func rateLimitOn(p *Profile, backend string, index int) bool {
	if p.RateLimit == nil {
		return false
	}
	if len(p.RateLimit.Backends) > 0 {
		return slices.Contains(p.RateLimit.Backends, backend)
	}
	return index == 0
}
