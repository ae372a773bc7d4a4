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
	scrape := func(ctx context.Context) (*prom.Snapshot, error) { return srv.Scrape(ctx, client) }
	before, err := scrape(ctx)
	if err != nil {
		sc.Error = err.Error()
		return sc
	}
	_, cpu0, _ := srv.Stats()
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
		scrapeSeries(ctx, scrape, before, func() float64 { rss, _, _ := srv.Stats(); return rss }, &sc.Server.Series, stopSeries)
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
	if !res.Aborted && len(fx.specs) == 0 {
		l.crossCheck(&sc)
	}
	return sc
}

// crossCheck records each disagreement of the client's and the server's
// counts of the same things as a lab error (readings.CrossCheck).
func (l *leg) crossCheck(sc *report.Scenario) {
	for _, p := range readings.CrossCheck(sc.Metrics, sc.Server) {
		l.s.LabError("%s run %d, scenario %s: %s", l.spec.Backend.Name, l.spec.Run, sc.Name, p)
	}
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
