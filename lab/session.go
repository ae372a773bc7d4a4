package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/hal9-lab/hal9-lab/lab/baseline"
	"github.com/hal9-lab/hal9-lab/lab/build"
	"github.com/hal9-lab/hal9-lab/lab/faults"
	"github.com/hal9-lab/hal9-lab/lab/load"
	"github.com/hal9-lab/hal9-lab/lab/profile"
	"github.com/hal9-lab/hal9-lab/lab/profiles"
	"github.com/hal9-lab/hal9-lab/lab/prom"
	"github.com/hal9-lab/hal9-lab/lab/report"
	"github.com/hal9-lab/hal9-lab/lab/serve"
	"github.com/hal9-lab/hal9-lab/lab/workload"
)

// Options configure a lab session (one `hal9-lab run`, gate or baseline).
type Options struct {
	Root      string           // repository root: scenarios/, dashboards/, alerts/
	Profile   *profile.Profile // what to run
	Backends  []string         // nil: the profile's
	Scenarios []string         // scenario files replacing the profile's (nil: the profile's)
	OutDir    string           // where reports, logs and profiles go
	Infra     string           // ""(auto)|external|testcontainers|process
	// Server is where the servers run: "process" (default) or "container"
	// (the server's image on the backend's container network; implies
	// Infra testcontainers: servercontainer.go).
	Server     string
	RequireAll bool   // a backend that cannot be had is an error, not a skip
	Prometheus bool   // run a real Prometheus and check dashboard and rule queries
	HalBin     string // server binary; "" builds Root/bin/hal9 once
	// Scale multiplies the profile's scale (tests use tiny values); 0: 1.
	Scale float64
	// Repetitions overrides the profile's (0: the profile's).
	Repetitions int
	// Replicas overrides the profile's replicas (0: the profile's);
	// PgBouncer true puts PgBouncer in front of PostgreSQL (false: the
	// profile's pgbouncer). See replicas.go.
	Replicas  int
	PgBouncer bool
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
	adminAddr   string   // fixed admin address when Prometheus scrapes the server
	adminAddrs  []string // with replicas: each one's (adminAddr is the first)
	lbMetrics   string   // with replicas: HAProxy's exporter address Prometheus scrapes
	plans       []scenarioPlan
	images      *build.Images // --server container: each binary's image
	summary     *report.RunSummary
	mu          sync.Mutex
	labErrors   []string
	capacity    *capacityRun   // the profile's capacity: block (capacityleg.go)
	defaults    serve.Defaults // each server binary's `hal9 config` defaults
}

type scenarioPlan struct {
	file      string
	plan      *load.Plan
	scale     float64
	rateLimit float64
	faults    []faults.Spec // its timeline, scaled (profile_faults.go)
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
	if opts.Replicas == 0 {
		opts.Replicas = opts.Profile.Replicas
	}
	if opts.Replicas < 0 || opts.Replicas > profile.MaxReplicas {
		return nil, fmt.Errorf("lab: %d replicas: want 1..%d", opts.Replicas, profile.MaxReplicas)
	}
	opts.PgBouncer = opts.PgBouncer || opts.Profile.PgBouncer
	if err := ValidateServerMode(&opts); err != nil {
		return nil, err
	}
	if opts.OutDir == "" {
		return nil, errors.New("lab: no output directory")
	}
	if err := os.MkdirAll(opts.OutDir, 0o755); err != nil {
		return nil, fmt.Errorf("create output dir: %w", err)
	}
	s := &Session{opts: opts, prog: newProgress(opts.Progress), log: opts.Logger, recv: profiles.NewReceiver(opts.Logger), reg: prometheus.NewRegistry()}
	s.images = &build.Images{Root: opts.Root, Progress: s.prog.step}
	// Load every scenario now: a bad file fails before any infra starts.
	specs := opts.Profile.Scenarios
	if len(opts.Scenarios) > 0 {
		specs = nil
		for _, f := range opts.Scenarios {
			specs = append(specs, profile.Scenario{File: f})
		}
	}
	for _, ps := range specs {
		path := profile.Resolve(opts.Root, ps.File)
		plan, _, err := workload.Load(path)
		if err != nil {
			return nil, err
		}
		sc := ps.Scale
		if sc == 0 {
			sc = 1
		}
		limit := ps.RateLimit
		if limit == 0 && opts.Profile.Server != nil && opts.Profile.Server.RateLimit != nil {
			limit = *opts.Profile.Server.RateLimit
		}
		sp := scenarioPlan{file: ps.File, plan: plan, scale: sc * opts.Profile.Scale * opts.Scale, rateLimit: limit}
		if sp.faults, err = opts.Profile.ScenarioFaults(plan, sp.scale, opts.Backends, opts.Infra); err != nil {
			return nil, err
		}
		s.plans = append(s.plans, sp)
	}
	if err := s.loadCapacity(); err != nil {
		return nil, err
	}
	s.checkOpenFiles()
	s.summary = &report.RunSummary{Version: report.Version, Command: opts.Command, Profile: opts.Profile.Name, StartedAt: time.Now().UTC(),
		Commit: build.GitCommit(opts.Root), Machine: baseline.DescribeMachine(), Seed: report.DefaultSeed()}

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
		targets, err := s.promTargets()
		if err != nil {
			s.Close()
			return nil, err
		}
		rules, _ := filepath.Glob(filepath.Join(opts.Root, "alerts", "*.rules.yml"))
		s.prom, err = prom.Start(ctx, prom.Options{Targets: targets, RuleFiles: rules, Logger: opts.Logger})
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("--prometheus: %w", err)
		}
		s.prog.step("Prometheus on http://%s scraping the server (%s) and the lab", s.prom.Addr, s.adminAddr)
	}
	return s, nil
}

// checkOpenFiles warns when the open-file limit cannot hold a connection
// per VU the profile may run (plus a margin for the lab's own files): the
// stress ramp's 5,000 VUs need 5,000 sockets in the lab and as many in the
// server.
func (s *Session) checkOpenFiles() {
	need := 0
	for _, sp := range s.plans {
		n := 0
		for _, sc := range sp.plan.Scenarios {
			scaled := sc.Scaled(sp.scale)
			n += scaled.MaxVUCount()
		}
		need = max(need, n)
	}
	if c := s.capacity; c != nil {
		need = max(need, 2*c.spec.Params.MaxVUs) // settle and measure pools
	}
	limit, ok := openFileLimit()
	if ok && need > 0 && uint64(need)+256 > limit {
		s.prog.step("WARNING: the open-file limit is %d and the profile may hold %d connections: raise it (ulimit -n %d, or LimitNOFILE in a systemd unit) or connections will fail with 'too many open files'", limit, need, need+1024)
	}
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
		if s.opts.Server == ServerModeContainer {
			if err := build.CheckStatic(s.opts.HalBin); err != nil {
				return "", fmt.Errorf("--hal9-bin with --server container: %w", err)
			}
		}
		return s.opts.HalBin, nil
	}
	out := filepath.Join(s.opts.Root, "bin", "hal9")
	s.prog.step("building %s (go build ./cmd/hal9)", out)
	t := time.Now()
	if err := build.Server(ctx, s.opts.Root, out); err != nil {
		return "", err
	}
	s.prog.step("built in %s", time.Since(t).Round(100*time.Millisecond))
	s.opts.HalBin = out
	return out, nil
}

// needsProcesses: a fault kills, stops or pauses PostgreSQL or Redis.
func needsProcesses(plans []scenarioPlan) bool {
	for _, sp := range plans {
		for _, f := range sp.faults {
			if f.Target == faults.Redis || f.Target == faults.Postgres {
				return true
			}
		}
	}
	return false
}

// hasFaults: some scenario of the session has a timeline.
func hasFaults(plans []scenarioPlan) bool {
	for _, sp := range plans {
		if len(sp.faults) > 0 {
			return true
		}
	}
	return false
}

// noteDepartures records departures of one leg in the summary: each text
// once, with the legs it applies to.
func (s *Session) noteDepartures(leg string, texts []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range texts {
		found := false
		for i := range s.summary.Departures {
			d := &s.summary.Departures[i]
			if d.Text == t {
				found = true
				if !slices.Contains(d.Legs, leg) {
					d.Legs = append(d.Legs, leg)
				}
			}
		}
		if !found {
			s.summary.Departures = append(s.summary.Departures, report.Departure{Text: t, Legs: []string{leg}})
		}
	}
}
