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
// infrastructure starts); nil without a capacity: block.
func loadCapacity(o Options) (*capacityRun, error) {
	spec := o.Profile.Capacity
	if spec == nil {
		return nil, nil
	}
	plan, err := load.ReadScenarioFile(profile.Resolve(o.Root, spec.Scenario))
	if err != nil {
		return nil, fmt.Errorf("capacity.scenario: %w", err)
	}
	if o.Scale != 1 { // a fixed step and settle, else the step rule's lengths
		scale := func(d time.Duration) time.Duration { return max(time.Duration(float64(d)*o.Scale), time.Second) }
		if spec.Params.Step > 0 {
			spec.Params.Step = scale(spec.Params.Step)
		}
		if spec.Params.Settle > 0 {
			spec.Params.Settle = scale(spec.Params.Settle)
		}
		spec.Params.Scale = o.Scale
	}
	return &capacityRun{spec: spec, plan: plan, seen: map[string]*capacity.Counts{}}, nil
}

// count adds the requests the running servers counted over their lives
// (their last scrape before SIGTERM) to leg key's, for the service
// demand: the CPU profile covers the same lives.
func (cr *capacityRun) count(key string, rs *serve.ReplicaSet) error {
	sc, err := rs.Scrape(context.Background(), &http.Client{Timeout: 10 * time.Second})
	if err != nil {
		return fmt.Errorf("%s: the last scrape before SIGTERM (for the service demand): %w", key, err)
	}
	cr.mu.Lock()
	defer cr.mu.Unlock()
	c := cr.seen[key]
	if c == nil {
		c = &capacity.Counts{ByRoute: map[string]float64{}, SignalsByLayer: map[string]float64{}}
		cr.seen[key] = c
	}
	for r, v := range sc.SumBy("hal9_http_requests_total", "route", nil) {
		c.ByRoute[r] += v
	}
	for layer, v := range sc.SumBy("hal9_signals_total", "layer", nil) {
		c.SignalsByLayer[layer] += v
	}
	return nil
}

// capacityLeg is a leg's knee search and what it measured beside: CPU
// seconds of the lab and of the local databases during the search, and
// the requests the servers counted there.
type capacityLeg struct {
	l       *leg
	c       *report.Capacity
	machine [3]float64
}

// capacitySearch runs the knee search against the leg's servers (started
// with the leg's default rate limit, warmed up when restarted), each
// step's server side read from /metrics, and what the lab and the local
// databases spent in CPU meanwhile.
func (l *leg) capacitySearch(ctx context.Context) *capacityLeg {
	s, cr := l.s, l.s.capacity
	k := &capacityLeg{l: l, c: &report.Capacity{Scenario: cr.spec.Scenario}}
	c := k.c
	l.out.Capacity = c
	limit := 0.0
	if st := s.opts.Profile.Server; st != nil && st.RateLimit != nil {
		limit = *st.RateLimit
	}
	if err := l.serverAt(ctx, limit, true, cr.plan); err != nil {
		c.Error = err.Error()
		return k
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
		return k
	}
	if l.out.Connections != nil { // PostgreSQL's connections under the search's load
		sampler := l.spec.backend.SampleConnections(ctx, l.db.DatabaseURL, l.out.Connections)
		defer sampler.Stop()
	}
	_, lab0, _ := procstat.Stats(os.Getpid())
	db0 := l.spec.backend.CPUSeconds()
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
		res, err = capacity.Run(ctx, cr.plan, srv.URL(), cr.spec.Params, lineWriter{s.prog}, capacity.LoadOptions{
			Logger: quiet(s.log), Registerer: s.side.reg, Around: around,
			RunID: fmt.Sprintf("cap-%s-r%d-%s", strings.ReplaceAll(l.spec.backend.Name, "+", ""), l.spec.run, randomSuffix())})
		return err
	})
	c.Search = res
	if err != nil && c.Search == nil {
		c.Error = err.Error()
		return k
	}
	after, err := srv.Scrape(context.WithoutCancel(ctx), client)
	if err != nil {
		c.Error = err.Error()
		return k
	}
	n := readings.Diff(before, after)
	c.Requests, c.HitRate, c.CostPer1K = n.Requests, n.HitRate(), n.CostPer1K()
	_, lab1, _ := procstat.Stats(os.Getpid())
	k.machine = [3]float64{lab1 - lab0, l.spec.backend.CPUSeconds() - db0, n.Requests}
	return k
}

// serviceDemand computes the service demand per route from the leg's
// merged CPU profile (its servers have exited: pyroscope-go flushed) and
// the requests they counted, and projects it to the fleet. Nothing
// without a search.
func (k *capacityLeg) serviceDemand() {
	if k == nil {
		return
	}
	l, c := k.l, k.c
	s, cr := l.s, l.s.capacity
	cr.mu.Lock()
	counts := cr.seen[l.key]
	cr.mu.Unlock()
	if counts == nil {
		c.DemandError = "no request counts (the server was not scraped before it stopped)"
		return
	}
	d, err := capacity.ComputeDemands(s.side.recv.Profile(l.key, "cpu"), *counts, s.summary.Machine.Cores)
	if err != nil {
		c.DemandError = err.Error()
		return
	}
	d.Machine(k.machine[0], k.machine[1], k.machine[2])
	if c.Search != nil && c.Search.Knee.Found {
		d.KneeRPS = c.Search.Knee.RequestRate
	}
	if l.spec.run > 1 {
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

// lineWriter turns the search's progress lines into the lab's.
type lineWriter struct{ p *progress }

func (w lineWriter) Write(b []byte) (int, error) {
	for _, line := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		w.p.step("%s", line)
	}
	return len(b), nil
}

var _ io.Writer = lineWriter{}

// quiet keeps the engine's per-step warnings (a dropped iteration) out of
// the lab's log unless it logs at debug level: the step lines say it.
func quiet(log *slog.Logger) *slog.Logger {
	if log.Enabled(context.Background(), slog.LevelDebug) {
		return log
	}
	return slog.New(slog.DiscardHandler)
}
