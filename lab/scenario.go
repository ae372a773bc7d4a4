package lab

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/hal9-lab/hal9-lab/lab/load"
	"github.com/hal9-lab/hal9-lab/lab/prom"
	"github.com/hal9-lab/hal9-lab/lab/readings"
	"github.com/hal9-lab/hal9-lab/lab/report"
	"github.com/hal9-lab/hal9-lab/lab/workload"
)

// runScenarios runs the profile's scenarios in order against one server,
// started before the first (then warmed up) and again whenever a scenario
// wants another --rate-limit. Its error is a server that did not start.
func (l *leg) runScenarios(ctx context.Context, fx *legFaults) error {
	for i, sp := range l.s.plans {
		if ctx.Err() != nil {
			break
		}
		if err := l.serverAt(ctx, sp.rateLimit, i == 0, sp.plan); err != nil {
			return err
		}
		sc := l.runScenario(ctx, sp, fx)
		l.out.Scenarios = append(l.out.Scenarios, sc)
		readings.AddServer(&l.out.Server, sc.Server)
	}
	return nil
}

// serverAt makes sure the leg's servers run with --rate-limit limit,
// (re)starting them when not; a fresh start is warmed up with plan's
// workload when warm and the profile has a warm-up.
func (l *leg) serverAt(ctx context.Context, limit float64, warm bool, plan *load.Plan) error {
	if l.srv != nil && l.limit == limit {
		return nil
	}
	l.stopServer()
	if err := l.step("start server", func() error { return l.startServer(ctx, limit) }); err != nil {
		return err
	}
	if p := l.s.opts.Profile; warm && p.Warmup > 0 {
		_ = l.step(fmt.Sprintf("warm-up: %s at %.0f/s", p.Warmup.D(), p.WarmupRate), func() error { return l.warmup(ctx, plan) })
	}
	return nil
}

// warmup runs a short constant arrival rate of p's workload against the
// leg's servers; nothing of it is recorded.
func (l *leg) warmup(ctx context.Context, p *load.Plan) error {
	prof := l.s.opts.Profile
	d := max(time.Duration(float64(prof.Warmup.D())*l.s.opts.Scale), time.Second)
	plan := &load.Plan{Name: "warmup", Workload: p.Workload, Scenarios: []load.Scenario{{
		Name: "warmup", Executor: load.ConstantArrivalRate, Rate: prof.WarmupRate, TimeUnit: time.Second, Duration: d,
		PreAllocatedVUs: 5, MaxVUs: 50, GracefulStop: 10 * time.Second}}}
	w, err := workload.New(p.Workload)
	if err != nil {
		return err
	}
	_, err = load.Run(ctx, plan, load.Options{Target: l.srv.URL(), Workload: w, Logger: l.s.log, RunID: "warmup-" + randomSuffix(), Seed: 1})
	return err
}

// runScenario runs one scenario file against the leg's servers and
// collects both sides: the engine's result, and the servers' /metrics
// before and after (and every second in between).
func (l *leg) runScenario(ctx context.Context, sp scenarioPlan, fx *legFaults) report.Scenario {
	s, srv := l.s, l.srv
	sc := report.Scenario{Name: sp.plan.Name, File: sp.file}
	if sc.Name == "" {
		sc.Name = strings.TrimSuffix(filepath.Base(sp.file), filepath.Ext(sp.file))
	}
	client := &http.Client{Timeout: 10 * time.Second}
	scrape := func(ctx context.Context) (*prom.Snapshot, error) { return srv.Scrape(ctx, client) }
	before, err := scrape(ctx)
	if err != nil {
		sc.Error = err.Error()
		return sc
	}
	_, cpu0, _ := srv.Stats()
	lbBefore := l.scrapeBalancer(ctx, client)
	if l.out.Connections != nil {
		sampler := l.spec.backend.SampleConnections(ctx, l.db.DatabaseURL, l.out.Connections)
		defer sampler.Stop()
	}
	w, err := workload.New(sp.plan.Workload)
	if err != nil {
		sc.Error = err.Error()
		return sc
	}
	sf := fx.beginScenario(ctx, sp, w) // the ledger on the workload; the timeline
	// Scrape the servers every second while the load runs: cache hit rate
	// and cost over time for the charts.
	stopSeries := make(chan struct{})
	var seriesWG sync.WaitGroup
	seriesWG.Go(func() {
		scrapeSeries(ctx, scrape, before, func() float64 { rss, _, _ := srv.Stats(); return rss }, &sc.Server.Series, stopSeries)
	})
	var res *load.Result
	err = l.step(fmt.Sprintf("load: %s (scale %.3g)", sc.Name, sp.scale), func() error {
		var err error
		res, err = load.Run(ctx, sp.plan, load.Options{Target: srv.URL(), Workload: sf.workload(), Transport: sf.transport(), Scale: sp.scale, Progress: s.opts.Progress,
			Registerer: s.side.reg, Logger: s.log, RunID: fmt.Sprintf("%s-%s-r%d-%s", strings.ReplaceAll(l.spec.backend.Name, "+", ""), sc.Name, l.spec.run, randomSuffix()), Seed: 1})
		return err
	})
	close(stopSeries)
	seriesWG.Wait()
	fx.endScenario(ctx, sf, &sc)
	if err != nil {
		sc.Error = err.Error()
		return sc
	}
	after, err := scrape(context.WithoutCancel(ctx))
	if err != nil {
		sc.Error = err.Error()
	}
	lbAfter := l.scrapeBalancer(context.WithoutCancel(ctx), client)
	readings.FromLoad(&sc, res)
	n := readings.Diff(before, after)
	l.addReplicaScenario(before, after, lbBefore, lbAfter, n)
	rss, cpu1, procOK := srv.Stats()
	readings.FillServer(&sc.Server, n, s.summary.Seed)
	if procOK {
		sc.Server.PeakRSSBytes = max(rss, sc.Server.PeakRSSBytes)
		if n.CPUSeconds == 0 {
			sc.Server.CPUSeconds = cpu1 - cpu0
		}
	}
	if !res.Aborted && !sf.faulty() { // faults make the two sides differ on purpose
		for _, p := range readings.CrossCheck(sc.Metrics, sc.Server) {
			s.labError("%s run %d, scenario %s: %s", l.spec.backend.Name, l.spec.run, sc.Name, p)
		}
	}
	return sc
}

// scrapeSeries appends one point per second to out until stop (see
// readings.Point): scrape reads the servers' /metrics; procRSS is their
// RSS from /proc.
func scrapeSeries(ctx context.Context, scrape func(context.Context) (*prom.Snapshot, error), base *prom.Snapshot, procRSS func() float64, out *[]report.ServerPoint, stop <-chan struct{}) {
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
		cur, err := scrape(ctx)
		if err != nil {
			continue
		}
		*out = append(*out, readings.Point(base, prev, cur, procRSS()))
		prev = cur
	}
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
		l.s.prog.step("HAProxy's metrics: %v", err)
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
