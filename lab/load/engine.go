package load

import (
	"context"
	"crypto/rand"
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
	// Transport overrides the shared HTTP transport (tests).
	Transport http.RoundTripper
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

type engine struct {
	opts    Options
	log     *slog.Logger
	sink    *sink
	rt      http.RoundTripper
	start   time.Time
	active  atomic.Int64 // VUs running iterations (vus)
	alloc   atomic.Int64 // VUs created (vus_max)
	runs    []*scenarioRun
	abortMu sync.Mutex
	abort   string
}

type scenarioRun struct {
	cfg      Scenario
	idOffset int // global VU id offset of this scenario
	e        *engine
	rec      *recorder // for the scheduler's drops
	rs       *RateSchedule
	planned  int64
	lastPlan int64

	started, completed, dropped, interrupted, errors atomic.Int64
	vus                                              atomic.Int64
	logged                                           atomic.Int64
}

// Run executes the plan and returns its summary. It returns an error only
// when the run could not start (bad plan, bad thresholds, a failing
// workload setup); failed thresholds are in the result (ExitCode 99).
// Cancelling ctx stops the test at once and still returns the summary of
// what ran, marked aborted.
func Run(ctx context.Context, plan *Plan, opts Options) (*Result, error) {
	if plan == nil {
		return nil, errors.New("run: no plan")
	}
	if opts.Workload == nil {
		return nil, errors.New("run: no workload (build one with lab/workload.New)")
	}
	if err := plan.Validate(); err != nil {
		return nil, err
	}
	if opts.Scale == 0 {
		opts.Scale = 1
	}
	if opts.Scale < 0 || opts.Scale > MaxScale || math.IsNaN(opts.Scale) || math.IsInf(opts.Scale, 0) {
		return nil, fmt.Errorf("run: scale %v must be in (0, %d]", opts.Scale, MaxScale)
	}
	if opts.Segment.Count > 1 && (opts.Segment.Index < 1 || opts.Segment.Index > opts.Segment.Count) {
		return nil, fmt.Errorf("run: segment %d/%d is not valid", opts.Segment.Index, opts.Segment.Count)
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
	e := &engine{opts: opts, log: opts.Logger}
	offset, maxConns := 0, 0
	for _, s := range plan.Scenarios {
		s = s.Scaled(opts.Scale)
		if key, msg := s.checkLimits(); key != "" {
			return nil, fmt.Errorf("run: scenario %q at scale %g: %s: %s; use a smaller --scale", s.Name, opts.Scale, key, msg)
		}
		e.runs = append(e.runs, &scenarioRun{cfg: s, idOffset: offset, e: e})
		offset += s.MaxVUCount()
		maxConns += opts.Segment.share(s.MaxVUCount())
	}
	e.rt = opts.Transport
	if e.rt == nil {
		tr := NewTransport(maxConns)
		defer tr.CloseIdleConnections()
		e.rt = tr
	}
	reg := NewRegistry()
	env := &Env{
		Target: opts.Target, Metrics: reg, Logger: opts.Logger, RunID: opts.RunID, Seed: opts.Seed,
		HTTP: &http.Client{Transport: e.rt, Timeout: 60 * time.Second},
	}
	if err := opts.Workload.Setup(ctx, env); err != nil {
		return nil, fmt.Errorf("workload setup: %w", err)
	}
	prom, err := newPromMetrics(opts.Registerer)
	if err != nil {
		return nil, fmt.Errorf("register hal9lab metrics: %w", err)
	}
	e.sink = newSink(reg, prom)
	ths, err := compileAll(plan.Thresholds, e.sink.byName)
	if err != nil {
		return nil, err
	}
	for _, r := range e.runs {
		r.rec = e.sink.recorder(r.cfg.Name)
		if r.cfg.openModel() {
			r.rs = r.cfg.RateSchedule()
			r.planned = segmentCount(r.rs.Count(), opts.Segment)
		}
	}
	return e.run(ctx, plan, ths), nil
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

func (r *scenarioRun) stats() ScenarioStats {
	d := r.cfg.ActiveDuration()
	st := ScenarioStats{
		Executor: r.cfg.Executor, DurationMs: ms(d),
		Started: r.started.Load(), Completed: r.completed.Load(), Dropped: r.dropped.Load(),
		Interrupted: r.interrupted.Load(), Errors: r.errors.Load(), MaxVUs: int(r.vus.Load()),
	}
	if d > 0 {
		st.AchievedRate = float64(st.Started) / d.Seconds()
	}
	if r.rs != nil {
		st.PlannedIterations = r.planned
		if d > 0 {
			st.PlannedRate = float64(r.planned) / d.Seconds()
		}
	}
	return st
}

func (r *scenarioRun) warnings(st ScenarioStats) []string {
	var w []string
	if st.Dropped > 0 {
		w = append(w, fmt.Sprintf("scenario %s: %d of %d planned iterations were dropped (no free VU within maxWait %s, maxVUs %d): the planned rate of %.4g/s was not held (started %.4g/s)",
			r.cfg.Name, st.Dropped, st.PlannedIterations, r.cfg.MaxWait, r.cfg.MaxVUs, st.PlannedRate, st.AchievedRate))
	} else if r.rs != nil && st.PlannedIterations > 0 && float64(st.Started) < 0.99*float64(st.PlannedIterations) && r.e.abortReason() == "" {
		w = append(w, fmt.Sprintf("scenario %s: started %d of %d planned iterations: the planned rate was not held",
			r.cfg.Name, st.Started, st.PlannedIterations))
	}
	if st.Errors > 0 {
		w = append(w, fmt.Sprintf("scenario %s: %d iterations returned an error (see the log)", r.cfg.Name, st.Errors))
	}
	return w
}

// vuRunner is one VU with its recorder and HTTP client.
type vuRunner struct {
	sc     *scenarioRun
	vu     VU
	client *Client
	it     Iter
}

func (r *scenarioRun) newVU(local int) (*vuRunner, error) {
	e := r.e
	id := r.idOffset + e.opts.Segment.global(local) + 1
	vu, err := e.opts.Workload.NewVU(id)
	if err != nil {
		return nil, fmt.Errorf("scenario %s: new VU %d: %w", r.cfg.Name, id, err)
	}
	rec := e.sink.recorder(r.cfg.Name)
	v := &vuRunner{sc: r, vu: vu}
	v.client = newClient(e.opts.Target, e.rt, rec)
	v.it = Iter{VU: id, Scenario: r.cfg.Name, HTTP: v.client, rec: rec}
	e.alloc.Add(1)
	r.vus.Add(1)
	return v, nil
}

// iterate runs one iteration due at sched; ctx is the engine's context
// for it (cancelled when the test or the VU must stop).
func (v *vuRunner) iterate(ctx context.Context, sched time.Time) {
	sc := v.sc
	sc.started.Add(1)
	v.client.ectx = ctx
	start := time.Now()
	if sched.IsZero() {
		sched = start
	}
	v.it.Scheduled = sched
	err := v.vu.Iteration(ctx, &v.it)
	v.it.Iteration++
	end := time.Now()
	if ctx.Err() != nil {
		sc.interrupted.Add(1)
		return
	}
	if err != nil {
		sc.errors.Add(1)
		if sc.logged.Add(1) <= 5 {
			sc.e.log.Warn("iteration failed", "scenario", sc.cfg.Name, "vu", v.it.VU, "err", err)
		}
	}
	sc.completed.Add(1)
	v.client.rec.iteration(end.Sub(start), end.Sub(sched))
}

func (r *scenarioRun) run(ctx context.Context) {
	if r.cfg.StartTime > 0 {
		t := time.NewTimer(time.Until(r.e.start.Add(r.cfg.StartTime)))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
	start := time.Now()
	active := r.cfg.ActiveDuration()
	schedCtx, cancel1 := context.WithDeadline(ctx, start.Add(active))
	defer cancel1()
	hard := active + r.cfg.GracefulStop
	if r.cfg.Executor == RampingVUs {
		hard += r.cfg.GracefulRampDown
	}
	hardCtx, cancel2 := context.WithDeadline(ctx, start.Add(hard))
	defer cancel2()
	var err error
	if r.cfg.openModel() {
		err = r.runOpen(ctx, schedCtx, hardCtx, start)
	} else {
		err = r.runClosed(schedCtx, hardCtx, start)
	}
	if err != nil {
		r.e.log.Error("scenario failed", "scenario", r.cfg.Name, "err", err)
		r.e.setAbort(err.Error())
	}
}

// runClosed runs constant-vus and ramping-vus: VU j (global index) runs
// iterations back to back while the schedule has more than j VUs. When
// the schedule drops below j+1, the VU finishes its iteration, or is
// interrupted after gracefulRampDown.
func (r *scenarioRun) runClosed(schedCtx, hardCtx context.Context, start time.Time) error {
	g := r.e.opts.Segment
	sched := r.cfg.VUSchedule()
	n := g.share(sched.Max())
	vus := make([]*vuRunner, n)
	for l := range vus {
		v, err := r.newVU(l)
		if err != nil {
			return err
		}
		vus[l] = v
	}
	var target atomic.Int64
	target.Store(int64(sched.At(0)))
	var mu sync.Mutex
	wake := make(chan struct{})
	type ctl struct {
		mu     sync.Mutex
		cancel context.CancelFunc
		gen    uint64
	}
	ctls := make([]ctl, n)
	ramping := r.cfg.Executor == RampingVUs

	var wg sync.WaitGroup
	for l, v := range vus {
		j := int64(g.global(l))
		wg.Add(1)
		go func() {
			defer wg.Done()
			running := false
			defer func() {
				if running {
					r.e.active.Add(-1)
				}
			}()
			for schedCtx.Err() == nil {
				if j >= target.Load() {
					if running {
						running = false
						r.e.active.Add(-1)
					}
					mu.Lock()
					w := wake
					mu.Unlock()
					if j >= target.Load() {
						select {
						case <-w:
						case <-schedCtx.Done():
						}
					}
					continue
				}
				if !running {
					running = true
					r.e.active.Add(1)
				}
				if !ramping {
					v.iterate(hardCtx, time.Time{})
					continue
				}
				ictx, cancel := context.WithCancel(hardCtx)
				c := &ctls[l]
				c.mu.Lock()
				c.cancel = cancel
				c.mu.Unlock()
				v.iterate(ictx, time.Time{})
				c.mu.Lock()
				c.cancel = nil
				c.mu.Unlock()
				cancel()
			}
		}()
	}

	// the controller: move the target at each change of the schedule
	for _, at := range sched.Changes() {
		t := time.NewTimer(time.Until(start.Add(at)))
		select {
		case <-schedCtx.Done():
			t.Stop()
		case <-t.C:
		}
		if schedCtx.Err() != nil {
			break
		}
		nt := int64(sched.At(at + time.Microsecond))
		old := target.Swap(nt)
		if nt < old {
			for l := range ctls {
				j := int64(g.global(l))
				if j < nt || j >= old {
					continue
				}
				c := &ctls[l]
				c.mu.Lock()
				c.gen++
				gen := c.gen
				c.mu.Unlock()
				time.AfterFunc(r.cfg.GracefulRampDown, func() {
					c.mu.Lock()
					defer c.mu.Unlock()
					if c.gen == gen && c.cancel != nil && j >= target.Load() {
						c.cancel()
					}
				})
			}
		}
		mu.Lock()
		close(wake)
		wake = make(chan struct{})
		mu.Unlock()
	}
	<-schedCtx.Done()
	wg.Wait()
	return nil
}

type job struct {
	due time.Time
}

// runOpen runs the arrival-rate executors: a scheduler starts iteration j
// at its planned time tⱼ (RateSchedule) whatever earlier iterations are
// doing, handing it to a free VU; with none free it allocates one up to
// maxVUs, and otherwise the iteration queues. A queued iteration that no
// VU picks up within maxWait is dropped (dropped_iterations); the wait of
// those that do run counts in iteration_response_time.
//
// The scheduler stops early only when the test is aborted (ctx), never
// because the deadline passed while it was catching up: every iteration
// of the plan is either started or counted as dropped.
func (r *scenarioRun) runOpen(ctx, schedCtx, hardCtx context.Context, start time.Time) error {
	g := r.e.opts.Segment
	maxVUs := g.share(r.cfg.MaxVUs)
	pre := g.share(r.cfg.PreAllocatedVUs)
	if r.planned > 0 {
		maxVUs = max(maxVUs, 1)
	}
	peak := r.rs.Start
	for _, s := range r.rs.Stages {
		peak = math.Max(peak, s.Target)
	}
	qcap := int(math.Min(math.Max(peak*r.cfg.MaxWait.Seconds()*1.5/float64(max(g.Count, 1)), 1024), 1<<20))
	queue := make(chan job, qcap)
	var idle atomic.Int64
	var wg sync.WaitGroup
	allocated := 0
	spawn := func() error {
		v, err := r.newVU(allocated)
		if err != nil {
			return err
		}
		allocated++
		idle.Add(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range queue {
				idle.Add(-1)
				if hardCtx.Err() != nil {
					v.client.rec.droppedIteration(1)
					r.dropped.Add(1)
					continue
				}
				if time.Since(j.due) > r.cfg.MaxWait {
					v.client.rec.droppedIteration(1)
					r.dropped.Add(1)
					idle.Add(1)
					continue
				}
				r.e.active.Add(1)
				v.iterate(hardCtx, j.due)
				r.e.active.Add(-1)
				idle.Add(1)
			}
		}()
		return nil
	}
	var err error
	for range pre {
		if err = spawn(); err != nil {
			break
		}
	}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	step := int64(1)
	first := int64(0)
	if !g.whole() {
		step, first = int64(g.Count), int64(g.Index-1)
	}
	for j := first; err == nil; j += step {
		at, ok := r.rs.At(j)
		if !ok {
			break
		}
		due := start.Add(at)
		if wait := time.Until(due); wait > 0 {
			timer.Reset(wait)
			select {
			case <-ctx.Done():
				timer.Stop()
			case <-timer.C:
			}
		}
		if ctx.Err() != nil {
			break
		}
		if schedCtx.Err() != nil {
			// Past the scenario's end (the scheduler fell behind a rate it
			// cannot keep up with): the rest of the plan can only be
			// dropped, so count it in one step instead of walking it.
			if n := (r.rs.Count() - j + step - 1) / step; n > 0 {
				r.rec.droppedIteration(n)
				r.dropped.Add(n)
			}
			break
		}
		if idle.Load() <= 0 && allocated < maxVUs {
			err = spawn()
		}
		select {
		case queue <- job{due: due}:
		default:
			r.rec.droppedIteration(1)
			r.dropped.Add(1)
		}
	}
	if err == nil {
		<-schedCtx.Done() // the scenario lasts its duration, like k6's
	}
	close(queue)
	wg.Wait()
	return err
}
