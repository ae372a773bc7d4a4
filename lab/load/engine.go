package load

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Options configure one Run.
type Options struct {
	Target   string   // base URL of the system under test
	Workload Workload // what each VU does
	// Scale multiplies durations and VU/rate counts (0 means 1); see
	// Scenario.Scaled.
	Scale   float64
	Segment Segment // the share of the test this process runs
	// Progress receives live progress: bars when it is a terminal, a log
	// line every 5 s otherwise; nil for none.
	Progress io.Writer
	// Registerer gets the hal9lab_* metrics (nil: not exported).
	Registerer prometheus.Registerer
	Logger     *slog.Logger
	// RunID names the test (unique user names in workloads); random when
	// empty. Seed makes workloads' random choices reproducible (0: from
	// the RunID).
	RunID string
	Seed  int64
	// Transport, when set, carries every VU's requests instead of the VUs'
	// own connections (the fault legs record each request through one).
	Transport http.RoundTripper
	// TLS configures connections to an https target (nil: the system's
	// roots); the VUs speak HTTP/1.1 whatever its NextProtos.
	TLS *tls.Config
}

// Result is what a run measured.
type Result struct {
	Summary      *Summary // k6's handleSummary shape, plus "hal9lab"
	ThresholdsOK bool
	Thresholds   []ThresholdResult
	TimeSeries   []Point
	Aborted      bool // a threshold with abortOnFail failed, or ctx ended
	Warnings     []string
}

// ExitThresholdsFailed is the exit status of a test whose thresholds
// failed (k6's).
const ExitThresholdsFailed = 99

// ExitCode is k6's: ExitThresholdsFailed when a threshold failed, 0
// otherwise.
func (r *Result) ExitCode() int {
	if !r.ThresholdsOK {
		return ExitThresholdsFailed
	}
	return 0
}

// engine is one Run: the plan's executors (runs) side by side, the
// sink every VU records into, the target the VUs' connections go to (or
// the transport given in Options), the VU counts of the vus and vus_max
// gauges, and the abort reason.
type engine struct {
	opts    Options
	log     *slog.Logger
	sink    *sink
	tgt     *target
	rt      http.RoundTripper // Options.Transport; nil: each VU its own connection
	start   time.Time
	active  atomic.Int64 // VUs running iterations (vus)
	alloc   atomic.Int64 // VUs created (vus_max)
	runs    []*scenarioRun
	abortMu sync.Mutex
	abort   string
	// closeSetup closes the setup requests' idle connections.
	closeSetup func()
}

// Run executes the plan and returns its summary. It returns an error only
// when the run could not start (bad plan, bad thresholds, a failing
// workload setup); failed thresholds are in the result (ExitCode 99).
// Cancelling ctx stops the test at once and still returns the summary of
// what ran, marked aborted.
func Run(ctx context.Context, plan *Plan, opts Options) (*Result, error) {
	e, ths, err := prepare(ctx, plan, opts)
	if err != nil {
		return nil, err
	}
	defer e.closeSetup()
	return e.run(ctx, plan, ths), nil
}

// Iterate runs n iterations of one VU of opts.Workload back to back, as
// the executors run them (setup, the VU's client, its checks and
// samples), and returns their summary: the workloads' benchmarks measure
// what an iteration costs with it.
func Iterate(ctx context.Context, opts Options, n int) (*Summary, error) {
	plan := &Plan{Name: "iterate", Scenarios: []Scenario{{Name: "iterate", Executor: ConstantVUs, VUs: 1, Duration: time.Second}}}
	e, ths, err := prepare(ctx, plan, opts)
	if err != nil {
		return nil, err
	}
	defer e.closeSetup()
	r := e.runs[0]
	v, err := r.newVU(0)
	if err != nil {
		return nil, err
	}
	defer v.client.close()
	e.start = time.Now()
	e.sink.started = e.start
	for i := 0; i < n && ctx.Err() == nil; i++ {
		v.iterate(ctx, time.Time{})
	}
	lab := &Hal9Lab{Name: plan.Name, Target: opts.Target, Scale: 1, Started: e.start.UTC(),
		Scenarios: map[string]ScenarioStats{r.cfg.Name: r.stats()}, Warnings: []string{}}
	return build(e.sink.snapshot(), ths, time.Since(e.start), lab), nil
}

// prepare checks the plan and options, runs the workload's setup and
// builds the engine; the caller runs it, then calls closeSetup.
func prepare(ctx context.Context, plan *Plan, opts Options) (*engine, []*compiled, error) {
	if plan == nil {
		return nil, nil, errors.New("run: no plan")
	}
	if opts.Workload == nil {
		return nil, nil, errors.New("run: no workload (build one with lab/workload.New)")
	}
	if err := plan.Validate(); err != nil {
		return nil, nil, err
	}
	if opts.Scale == 0 {
		opts.Scale = 1
	}
	if opts.Scale < 0 || opts.Scale > MaxScale || math.IsNaN(opts.Scale) || math.IsInf(opts.Scale, 0) {
		return nil, nil, fmt.Errorf("run: scale %v must be in (0, %d]", opts.Scale, MaxScale)
	}
	if opts.Segment.Count > 1 && (opts.Segment.Index < 1 || opts.Segment.Index > opts.Segment.Count) {
		return nil, nil, fmt.Errorf("run: segment %d/%d is not valid", opts.Segment.Index, opts.Segment.Count)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.RunID == "" {
		var b [4]byte
		_, _ = rand.Read(b[:])
		opts.RunID = hex.EncodeToString(b[:])
	}
	if opts.Seed == 0 {
		for _, c := range opts.RunID {
			opts.Seed = opts.Seed*31 + int64(c)
		}
	}
	e := &engine{opts: opts, log: opts.Logger, closeSetup: func() {}}
	offset, maxConns := 0, 0
	for _, s := range plan.Scenarios {
		s = s.Scaled(opts.Scale)
		if key, msg := s.checkLimits(); key != "" {
			return nil, nil, fmt.Errorf("run: scenario %q at scale %g: %s: %s; use a smaller --scale", s.Name, opts.Scale, key, msg)
		}
		e.runs = append(e.runs, &scenarioRun{cfg: s, idOffset: offset, e: e})
		offset += s.MaxVUCount()
		maxConns += opts.Segment.share(s.MaxVUCount())
	}
	e.tgt, e.rt = parseTarget(opts.Target, opts.TLS), opts.Transport
	setupRT := e.rt
	if setupRT == nil {
		tr := NewTransport(min(maxConns, 64))
		tr.TLSClientConfig = opts.TLS
		e.closeSetup = tr.CloseIdleConnections
		setupRT = tr
	}
	reg := NewRegistry()
	env := &Env{
		Target: opts.Target, Metrics: reg, Logger: opts.Logger, RunID: opts.RunID, Seed: opts.Seed,
		HTTP: &http.Client{Transport: setupRT, Timeout: requestTimeout},
	}
	fail := func(err error) (*engine, []*compiled, error) {
		e.closeSetup()
		return nil, nil, err
	}
	if err := opts.Workload.Setup(ctx, env); err != nil {
		return fail(fmt.Errorf("workload setup: %w", err))
	}
	prom, err := newPromMetrics(opts.Registerer)
	if err != nil {
		return fail(fmt.Errorf("register hal9lab metrics: %w", err))
	}
	e.sink = newSink(reg, prom)
	ths, err := compileAll(plan.Thresholds, e.sink.byName)
	if err != nil {
		return fail(err)
	}
	for _, r := range e.runs {
		r.rec = e.sink.recorder(r.cfg.Name)
		if r.cfg.openModel() {
			r.rs = r.cfg.RateSchedule()
			r.planned = segmentCount(r.rs.Count(), opts.Segment)
		}
	}
	return e, ths, nil
}

// segmentCount is how many of n global iterations the segment owns.
func segmentCount(n int64, g Segment) int64 {
	if g.whole() {
		return n
	}
	k := int64(g.Index - 1)
	if n <= k {
		return 0
	}
	return (n-k-1)/int64(g.Count) + 1
}

func (e *engine) run(parent context.Context, plan *Plan, ths []*compiled) *Result {
	ctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)
	e.start = time.Now()
	e.sink.started = e.start

	var series []Point
	var smu sync.Mutex
	prog := newProgress(e, plan)
	done := make(chan struct{})
	var bg sync.WaitGroup
	bg.Add(1)
	go func() { // the per-second time series, progress and abortOnFail
		defer bg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case now := <-t.C:
				p := e.point(now)
				smu.Lock()
				series = append(series, p)
				smu.Unlock()
				prog.update(p)
				if p.T%2 == 0 { // k6 evaluates thresholds every 2 s
					if reason := e.checkAbort(ths); reason != "" {
						e.setAbort(reason)
						cancel(errors.New(reason))
					}
				}
			}
		}
	}()

	var wg sync.WaitGroup
	for _, r := range e.runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.run(ctx)
		}()
	}
	wg.Wait()
	end := time.Now()
	close(done)
	bg.Wait()
	last := e.point(end)
	if n := len(series); n > 0 && last.T <= series[n-1].T {
		last.T = series[n-1].T + 1 // the partial last second
	}
	if last.Reqs+last.Iterations+last.Dropped > 0 {
		series = append(series, last)
	}
	prog.finish()
	if parent.Err() != nil && e.abortReason() == "" {
		e.setAbort("interrupted: " + context.Cause(parent).Error())
	}

	dur := end.Sub(e.start)
	e.sink.gauge(e.sink.byName[MetricVUs], Tags{}, 0)
	lab := &Hal9Lab{
		Name: plan.Name, Target: e.opts.Target, Segment: e.opts.Segment.String(), Scale: e.opts.Scale,
		Started: e.start.UTC(), Scenarios: map[string]ScenarioStats{}, TimeSeries: series, Warnings: []string{},
	}
	if r := e.abortReason(); r != "" {
		lab.Aborted, lab.AbortReason = true, r
		lab.Warnings = append(lab.Warnings, "test aborted: "+r)
	}
	for _, r := range e.runs {
		st := r.stats()
		lab.Scenarios[r.cfg.Name] = st
		lab.Warnings = append(lab.Warnings, r.warnings(st)...)
	}
	sum := build(e.sink.snapshot(), ths, dur, lab)
	sum.State.IsStdOutTTY, sum.State.IsStdErrTTY = IsTerminal(os.Stdout), IsTerminal(os.Stderr)
	for _, w := range lab.Warnings {
		e.log.Warn("load test", "warning", w)
	}
	return &Result{
		Summary: sum, ThresholdsOK: lab.ThresholdsOK, Thresholds: lab.Thresholds,
		TimeSeries: series, Aborted: lab.Aborted, Warnings: lab.Warnings,
	}
}

func (e *engine) setAbort(r string) {
	e.abortMu.Lock()
	if e.abort == "" {
		e.abort = r
	}
	e.abortMu.Unlock()
}

func (e *engine) abortReason() string {
	e.abortMu.Lock()
	defer e.abortMu.Unlock()
	return e.abort
}

// point closes the current second of the time series.
func (e *engine) point(now time.Time) Point {
	vus := int(e.active.Load())
	e.sink.gauge(e.sink.byName[MetricVUs], Tags{}, float64(vus))
	e.sink.gauge(e.sink.byName[MetricVUsMax], Tags{}, float64(e.alloc.Load()))
	e.sink.prom.vus.Set(float64(vus))
	e.sink.prom.vusMax.Set(float64(e.alloc.Load()))
	p := e.sink.tick(now, vus)
	for _, r := range e.runs {
		if r.rs == nil {
			continue
		}
		el := now.Sub(e.start) - r.cfg.StartTime
		n := r.rs.CountBefore(max(el, 0))
		if g := e.opts.Segment; !g.whole() {
			n = segmentCount(n, g)
		}
		p.Planned += float64(n - r.lastPlan)
		r.lastPlan = n
	}
	return p
}

// checkAbort evaluates the abortOnFail thresholds on the data so far.
func (e *engine) checkAbort(ths []*compiled) string {
	var st *state
	el := time.Since(e.start)
	for _, c := range ths {
		if !c.AbortOnFail || el < c.DelayAbortEval {
			continue
		}
		if st == nil {
			st = e.sink.snapshot()
		}
		if r := c.evaluate(st, el); !r.OK && r.Message == "" { // no samples yet is no reason to abort
			return fmt.Sprintf("threshold %s: %s failed (observed %.4g) and has abortOnFail", r.Metric, r.Expr, r.Observed)
		}
	}
	return ""
}
