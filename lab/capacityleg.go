package lab

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hal9-lab/hal9-lab/lab/capacity"
	"github.com/hal9-lab/hal9-lab/lab/load"
	"github.com/hal9-lab/hal9-lab/lab/procstat"
	"github.com/hal9-lab/hal9-lab/lab/profile"
	"github.com/hal9-lab/hal9-lab/lab/readings"
	"github.com/hal9-lab/hal9-lab/lab/report"
	"github.com/hal9-lab/hal9-lab/lab/serve"
)

// capacityRun is the profile's capacity: block, loaded: the plan whose
// workload the search drives, and the requests each leg's servers counted
// (for the service demand, over the same window as its CPU profile).
type capacityRun struct {
	spec *profile.CapacitySpec
	plan *load.Plan
	mu   sync.Mutex
	seen map[string]*capacity.Counts // leg key → requests over its servers' lives
}

// loadCapacity reads the capacity scenario (a bad file fails before any
// infrastructure starts).
func (s *Session) loadCapacity() error {
	spec := s.opts.Profile.Capacity
	if spec == nil {
		return nil
	}
	plan, err := load.ReadScenarioFile(profile.Resolve(s.opts.Root, spec.Scenario))
	if err != nil {
		return fmt.Errorf("capacity.scenario: %w", err)
	}
	if spec.Params.Step == 0 || spec.Params.Settle == 0 { // defaults, then --scale
		p := spec.Params
		p.Defaults()
		spec.Params.Step, spec.Params.Settle = p.Step, p.Settle
	}
	if s.opts.Scale != 1 {
		scale := func(d time.Duration) time.Duration { return max(time.Duration(float64(d)*s.opts.Scale), time.Second) }
		spec.Params.Step, spec.Params.Settle = scale(spec.Params.Step), scale(spec.Params.Settle)
	}
	s.capacity = &capacityRun{spec: spec, plan: plan, seen: map[string]*capacity.Counts{}}
	return nil
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
	if !l.checkOnly {
		s.noteDepartures(l.spec.Backend.Name, serve.Departures(def, eff))
	}
	return nil
}

// lineWriter turns the search's progress lines into the lab's.
type lineWriter struct{ s *Session }

func (w lineWriter) Write(p []byte) (int, error) {
	for _, line := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		w.s.prog.step("%s", line)
	}
	return len(p), nil
}

var _ io.Writer = lineWriter{}

// capacitySearch runs the knee search against the leg's server (started
// with the leg's default rate limit, warmed up when no scenario ran),
// each step's server side read from /metrics, and what the lab and the
// local databases spent in CPU meanwhile.
func (l *leg) capacitySearch(ctx context.Context) {
	s, cr := l.s, l.s.capacity
	c := &report.Capacity{Scenario: cr.spec.Scenario}
	l.out.Capacity = c
	limit := 0.0
	if st := s.opts.Profile.Server; st != nil && st.RateLimit != nil {
		limit = *st.RateLimit
	}
	if l.srv == nil || l.limit != limit {
		l.stopServer()
		if err := l.step("start server", func() error { return l.startServer(ctx, limit) }); err != nil {
			c.Error = err.Error()
			return
		}
		if s.opts.Profile.Warmup > 0 {
			_ = l.step(fmt.Sprintf("warm-up: %s at %.0f/s", s.opts.Profile.Warmup.D(), s.opts.Profile.WarmupRate), func() error {
				return s.warmup(ctx, l.srv.URL(), cr.plan)
			})
		}
	}
	if v, err := strconv.Atoi(fmt.Sprint(l.config["bcrypt-cost"])); err == nil {
		c.BcryptCost = v
	}
	srv := l.srv
	client := &http.Client{Timeout: 10 * time.Second}
	// Every replica's /metrics, merged (one server: its own).
	before, err := srv.Scrape(ctx, client)
	if err != nil {
		c.Error = err.Error()
		return
	}
	if l.out.Connections != nil { // PostgreSQL's connections under the search's load
		sampler := startConnSampler(ctx, l.spec.Backend.env.PostgresURL, l.backing.DatabaseURL, l.out.Connections)
		defer sampler.Stop()
	}
	_, lab0, _ := procstat.Stats(os.Getpid())
	db0 := l.spec.Backend.cpuSeconds()
	around := func(ctx context.Context) func(*capacity.Step) {
		b, err := srv.Scrape(ctx, client)
		return func(st *capacity.Step) {
			a, err2 := srv.Scrape(context.WithoutCancel(ctx), client)
			if err != nil || err2 != nil {
				return
			}
			n := readings.Diff(b, a)
			hit, cpu, cost := n.HitRate(), n.CPUSeconds, n.CostPer1K()
			if n.CacheLookups > 0 {
				st.CacheHitRate = &hit
			}
			st.CostPer1K, st.CPUSeconds = &cost, &cpu
		}
	}
	var res *capacity.Result
	err = l.step(fmt.Sprintf("capacity search: %s", cr.spec.Scenario), func() error {
		var err error
		res, err = capacity.Run(ctx, cr.plan, srv.URL(), cr.spec.Params, lineWriter{s}, capacity.LoadOptions{
			Logger: quiet(s.log), Registerer: s.reg, Around: around,
			RunID: fmt.Sprintf("cap-%s-r%d-%s", strings.ReplaceAll(l.spec.Backend.Name, "+", ""), l.spec.Run, randomSuffix())})
		return err
	})
	c.Search = res
	if err != nil && c.Search == nil {
		c.Error = err.Error()
		return
	}
	after, err := srv.Scrape(context.WithoutCancel(ctx), client)
	if err != nil {
		c.Error = err.Error()
		return
	}
	n := readings.Diff(before, after)
	c.Requests, c.HitRate, c.CostPer1K = n.Requests, n.HitRate(), n.CostPer1K()
	_, lab1, _ := procstat.Stats(os.Getpid())
	l.capMachine = [3]float64{lab1 - lab0, l.spec.Backend.cpuSeconds() - db0, n.Requests}
}

// countRequests adds the requests the running server counted over its
// life (its last scrape before SIGTERM) to the leg's, for the service
// demand: the CPU profile covers the same lives.
func (l *leg) countRequests() {
	cr := l.s.capacity
	if cr == nil || l.srv == nil {
		return
	}
	sc, err := l.srv.Scrape(context.Background(), &http.Client{Timeout: 10 * time.Second})
	if err != nil {
		l.s.LabError("%s: the last scrape before SIGTERM (for the service demand): %v", l.key, err)
		return
	}
	cr.mu.Lock()
	defer cr.mu.Unlock()
	c := cr.seen[l.key]
	if c == nil {
		c = &capacity.Counts{ByRoute: map[string]float64{}, SignalsByLayer: map[string]float64{}}
		cr.seen[l.key] = c
	}
	for r, v := range sc.SumBy("hal9_http_requests_total", "route", nil) {
		c.ByRoute[r] += v
	}
	for layer, v := range sc.SumBy("hal9_signals_total", "layer", nil) {
		c.SignalsByLayer[layer] += v
	}
}

// capacityDemand computes the service demand per route from the leg's
// merged CPU profile (its servers have exited: pyroscope-go flushed) and
// the requests they counted, and projects it to the fleet.
func (l *leg) capacityDemand() {
	s, cr := l.s, l.s.capacity
	c := l.out.Capacity
	if cr == nil || c == nil {
		return
	}
	cr.mu.Lock()
	counts := cr.seen[l.key]
	cr.mu.Unlock()
	if counts == nil {
		c.DemandError = "no request counts (the server was not scraped before it stopped)"
		return
	}
	d, err := capacity.ComputeDemands(s.recv.Profile(l.key, "cpu"), *counts, s.summary.Machine.Cores)
	if err != nil {
		c.DemandError = err.Error()
		return
	}
	d.Machine(l.capMachine[0], l.capMachine[1], l.capMachine[2])
	if c.Search != nil && c.Search.Knee.Found {
		d.KneeRPS = c.Search.Knee.RequestRate
	}
	if l.spec.Run > 1 {
		d.Notes = append(d.Notes, "the leg's profile and counts add up its repetitions so far")
	}
	c.Demand = d
	cost := c.BcryptCost
	if cost == 0 {
		cost = capacity.DefaultFleetSeed().BcryptCost
	}
	seed := capacity.DefaultFleetSeed()
	seed.SustainedRPS, seed.MonthlyLLMUSD = s.summary.Seed.SustainedRPS, s.summary.Seed.MonthlyLLMCostUSD
	c.Fleet = capacity.Project(d, cost, c.HitRate, c.CostPer1K, seed)
}

// cpuSeconds is the CPU the backend's local processes (PostgreSQL with
// its backends, Redis) have used; 0 when they are not local processes.
func (b *Backend) cpuSeconds() float64 {
	if b == nil || b.env == nil {
		return 0
	}
	var sum float64
	for _, p := range b.env.Processes {
		sum += procstat.TreeCPUSeconds(p.PID())
	}
	return sum
}

// quiet keeps the engine's per-step warnings (a dropped iteration) out of
// the lab's log unless it logs at debug level: the step lines say it.
func quiet(log *slog.Logger) *slog.Logger {
	if log.Enabled(context.Background(), slog.LevelDebug) {
		return log
	}
	return slog.New(slog.DiscardHandler)
}
