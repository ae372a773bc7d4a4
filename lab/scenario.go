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
	"github.com/hal9-lab/hal9-lab/lab/report"
	"github.com/hal9-lab/hal9-lab/lab/workload"
)

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

// runScenario runs one scenario file against the leg's server and
// collects both sides: the engine's result, and the server's /metrics
// before and after (and every second in between).
func (l *leg) runScenario(ctx context.Context, sp scenarioPlan) report.Scenario {
	s, srv := l.s, l.srv
	sc := report.Scenario{Name: sp.plan.Name, File: sp.file}
	if sc.Name == "" {
		sc.Name = strings.TrimSuffix(filepath.Base(sp.file), filepath.Ext(sp.file))
	}
	client := &http.Client{Timeout: 10 * time.Second}
	scrape := func(ctx context.Context) (*Scrape, error) { return srv.Scrape(ctx, client) }
	before, err := scrape(ctx)
	if err != nil {
		sc.Error = err.Error()
		return sc
	}
	_, cpu0, _ := srv.ProcStats()
	lbBefore := l.scrapeBalancer(ctx, client)
	if l.out.Connections != nil {
		sampler := startConnSampler(ctx, l.spec.Backend.env.PostgresURL, l.backing.DatabaseURL, l.out.Connections)
		defer sampler.Stop()
	}
	w, err := workload.New(sp.plan.Workload)
	if err != nil {
		sc.Error = err.Error()
		return sc
	}
	fx := l.beginScenario(ctx, sp, w) // the ledger; the faults' timeline (faultleg.go)
	// Scrape the server every second while the load runs: cache hit rate
	// and cost over time for the charts.
	stopSeries := make(chan struct{})
	var seriesWG sync.WaitGroup
	seriesWG.Add(1)
	go func() {
		defer seriesWG.Done()
		scrapeSeries(ctx, scrape, before, func() float64 { rss, _, _ := srv.ProcStats(); return rss }, &sc.Server.Series, stopSeries)
	}()
	var res *load.Result
	err = l.step(fmt.Sprintf("load: %s (scale %.3g)", sc.Name, sp.scale), func() error {
		var err error
		res, err = load.Run(ctx, sp.plan, load.Options{Target: srv.URL(), Workload: fx.workload, Transport: fx.roundTripper(), Scale: sp.scale, Progress: s.opts.Progress,
			Registerer: s.reg, Logger: s.log, RunID: fmt.Sprintf("%s-%s-r%d-%s", strings.ReplaceAll(l.spec.Backend.Name, "+", ""), sc.Name, l.spec.Run, randomSuffix()), Seed: 1})
		return err
	})
	close(stopSeries)
	seriesWG.Wait()
	l.endScenario(ctx, fx, &sc)
	if err != nil {
		sc.Error = err.Error()
		return sc
	}
	after, err := scrape(context.WithoutCancel(ctx))
	if err != nil {
		sc.Error = err.Error()
	}
	lbAfter := l.scrapeBalancer(context.WithoutCancel(ctx), client)
	fillFromLoad(&sc, res)
	n := diffServer(before, after)
	l.addReplicaScenario(before, after, lbBefore, lbAfter, n)
	rss, cpu1, procOK := srv.ProcStats()
	fillServer(&sc.Server, n, s.summary.Seed)
	if procOK {
		sc.Server.PeakRSSBytes = max(rss, sc.Server.PeakRSSBytes)
		if n.CPUSeconds == 0 {
			sc.Server.CPUSeconds = cpu1 - cpu0
		}
	}
	if !res.Aborted && len(fx.specs) == 0 {
		l.crossCheck(&sc)
	}
	return sc
}

// crossCheck compares the workload's header metrics with the server's
// /metrics difference: they count the same things, so a disagreement
// above 1 % means one side mis-measures.
func (l *leg) crossCheck(sc *report.Scenario) {
	s := l.s
	m, sv := sc.Metrics, sc.Server
	where := fmt.Sprintf("%s run %d, scenario %s", l.spec.Backend.Name, l.spec.Run, sc.Name)
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
