package capacity

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"gopkg.in/yaml.v3"

	"github.com/hal9-lab/hal9-lab/lab/load"
	"github.com/hal9-lab/hal9-lab/lab/workload"
)

// The two executors of a step: a settle phase, whose samples are not
// judged, then the measured phase at the same rate. Both are
// constant-arrival-rate; the server's queues carry over between them.
const (
	settleScenario  = "settle"
	measureScenario = "measure"
)

// Step defaults. The lengths of a step's phases follow its SLO and rate
// (StepRule) unless given.
const (
	DefaultMaxVUs       = 2000
	DefaultPreAllocated = 20
	DefaultCooldown     = time.Second
	// NoSettle as LoadOptions.Settle or Params.Settle runs the steps
	// without a settle phase (--settle 0).
	NoSettle time.Duration = -1
	// EngineDropLimit is the share of planned iterations the engine may
	// drop before the step is the engine's failure.
	EngineDropLimit = 0.01
)

// LoadOptions configure a LoadStepper.
type LoadOptions struct {
	Plan   *load.Plan // the scenario file: its workload and thresholds
	Target string
	// SLO replaces the plan's thresholds (nil: the plan's, see SLOFrom).
	SLO []load.Threshold
	// Step fixes the measured phase of every step and Settle the unjudged
	// phase before it (NoSettle: none); 0: the StepRule's, from the SLO,
	// the rate and Precision (the search's, for the settle: default 0.05).
	Step, Settle time.Duration
	Precision    float64
	// Scale multiplies the StepRule's lengths (0: 1).
	Scale float64
	// PreAllocatedVUs and MaxVUs bound each phase's VUs (20, 2000).
	PreAllocatedVUs, MaxVUs int
	MaxWait                 time.Duration // load's maxWait (default 5 s)
	GracefulStop            time.Duration // default 10 s
	// Cooldown is the pause between steps, so a failed step's backlog
	// drains before the next one (default 1 s; the engine has already
	// waited up to GracefulStop for the iterations in flight).
	Cooldown   time.Duration
	RunID      string
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// Around, when set, is called before each step; the function it
	// returns is called after it with the step, to add server-side
	// numbers (the lab scrapes /metrics there).
	Around func(ctx context.Context) func(*Step)
}

// LoadStepper runs each step with lab/load's engine against Target.
type LoadStepper struct {
	opts    LoadOptions
	wl      load.Workload
	slo     []load.Threshold // judged on the measured phase
	names   []string         // their metrics as given, for the report
	notes   []string
	rule    StepRule
	perIter float64 // requests per iteration in the last step (0: none yet)
	n       int
}

// NewLoadStepper validates the options, builds the workload (with any
// think time dropped: the search is an open model) and the SLO.
func NewLoadStepper(opts LoadOptions) (*LoadStepper, error) {
	if opts.Plan == nil {
		return nil, errors.New("capacity: no scenario plan")
	}
	if opts.Target == "" {
		return nil, errors.New("capacity: no target URL")
	}
	if opts.Precision == 0 {
		opts.Precision = DefaultPrecision
	}
	if opts.MaxVUs == 0 {
		opts.MaxVUs = DefaultMaxVUs
	}
	if opts.PreAllocatedVUs == 0 {
		opts.PreAllocatedVUs = min(DefaultPreAllocated, opts.MaxVUs)
	}
	if opts.GracefulStop == 0 {
		opts.GracefulStop = 10 * time.Second
	}
	if opts.Cooldown == 0 {
		opts.Cooldown = DefaultCooldown
	}
	if err := checkLengths(opts.Step, opts.Settle); err != nil {
		return nil, fmt.Errorf("capacity: %w", err)
	}
	switch {
	case opts.MaxVUs < 1 || opts.MaxVUs > load.MaxVUsPerExecutor:
		return nil, fmt.Errorf("capacity: max VUs %d: want 1..%d", opts.MaxVUs, load.MaxVUsPerExecutor)
	case opts.PreAllocatedVUs < 0 || opts.PreAllocatedVUs > opts.MaxVUs:
		return nil, fmt.Errorf("capacity: pre-allocated VUs %d: want 0..max VUs (%d)", opts.PreAllocatedVUs, opts.MaxVUs)
	}
	st := &LoadStepper{opts: opts}
	spec, dropped := DropThinkTime(opts.Plan.Workload)
	if dropped != "" {
		st.notes = append(st.notes, fmt.Sprintf("the scenario's think time (%s) is dropped: the search is an open model, each iteration starts on schedule", dropped))
	}
	wl, err := workload.New(spec)
	if err != nil {
		return nil, err
	}
	st.wl = &keepVUs{Workload: wl, vus: map[int]load.VU{}}
	src := opts.SLO
	if src == nil {
		var notes []string
		src, notes = SLOFrom(opts.Plan.Thresholds)
		st.notes = append(st.notes, notes...)
	}
	if len(src) == 0 {
		return nil, errors.New("capacity: no SLO: the scenario file has no latency or error-rate threshold; give one with --slo, e.g. --slo 'http_req_duration:p(99)<500'")
	}
	if err := load.ValidateThresholds(src); err != nil {
		return nil, fmt.Errorf("capacity: SLO: %w", err)
	}
	for _, t := range src {
		if strings.Contains(t.Metric, "scenario:") {
			return nil, fmt.Errorf("capacity: SLO %s:%s selects a scenario; the search runs its own (drop the scenario: tag)", t.Metric, t.Expr)
		}
		st.names = append(st.names, t.Metric)
		t.Metric = measured(t.Metric)
		t.AbortOnFail, t.DelayAbortEval = false, 0
		st.slo = append(st.slo, t)
	}
	st.rule = NewStepRule(src, opts.Precision)
	st.rule.Scale = opts.Scale
	return st, nil
}

// checkLengths validates a fixed step and settle (0: adaptive).
func checkLengths(step, settle time.Duration) error {
	switch {
	case step != 0 && step < time.Second:
		return fmt.Errorf("step %s: want at least 1s of judged load per step, or leave it out for the length the SLO needs", step)
	case settle < 0 && settle != NoSettle:
		return fmt.Errorf("settle %s: want a positive duration, 0 on the command line for none, or leave it out for the time a queue needs to break the SLO", settle)
	}
	return nil
}

// Notes say what the stepper changed in the scenario (think time, the
// thresholds it left out of the SLO).
func (s *LoadStepper) Notes() []string { return s.notes }

// SLO returns the thresholds judged on the measured phase.
func (s *LoadStepper) SLO() []load.Threshold { return s.slo }

// Settings are the stepper's durations and bounds for the result.
func (s *LoadStepper) Settings(set *Settings) {
	settle, _, _ := s.lengths(1, false)
	set.MaxVUs, set.StepS, set.SettleS = s.opts.MaxVUs, s.opts.Step.Seconds(), settle.Seconds()
	if s.opts.Step == 0 {
		set.Samples, set.ProbeSamples, set.Rule = s.rule.Samples, s.rule.ProbeSamples, s.rule.String()
	}
}

// lengths are a step's settle and judged phase at rate: the StepRule's
// unless fixed by the options (a fixed step is always full).
func (s *LoadStepper) lengths(rate float64, probe bool) (settle, step time.Duration, full bool) {
	settle, step, full = s.rule.Lengths(rate, s.perIter, probe)
	if s.opts.Step > 0 {
		step, full = s.opts.Step, true
	}
	switch {
	case s.opts.Settle == NoSettle:
		settle = 0
	case s.opts.Settle > 0:
		settle = s.opts.Settle
	}
	return settle, step, full
}

// ParseSLO reads --slo values in the threshold syntax of scenario files,
// metric and expression joined by a colon: "http_req_duration:p(99)<500",
// "http_req_failed:rate<0.01",
// "http_req_duration{op:signal}:p(95)<800".
func ParseSLO(vals []string) ([]load.Threshold, error) {
	var out []load.Threshold
	for _, v := range vals {
		i := strings.LastIndex(v, "}:")
		if i >= 0 {
			i++
		} else {
			i = strings.Index(v, ":")
		}
		if i <= 0 || i == len(v)-1 {
			return nil, fmt.Errorf("--slo %q: want METRIC:EXPRESSION, e.g. http_req_duration:p(99)<500 or http_req_failed:rate<0.01", v)
		}
		t := load.Threshold{Metric: strings.TrimSpace(v[:i]), Expr: strings.TrimSpace(v[i+1:]), Source: "--slo"}
		if err := load.ValidateThresholds([]load.Threshold{t}); err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

// SLOFrom keeps the thresholds of a scenario file that judge latency or
// errors (trends and rates); thresholds on counts depend on a step's
// length, dropped iterations are judged by the search itself, and a
// threshold on one of the file's scenarios has no meaning in the search's
// own: those are left out, each with a note.
func SLOFrom(ts []load.Threshold) (slo []load.Threshold, notes []string) {
	for _, t := range ts {
		name, _, _ := strings.Cut(t.Metric, "{")
		agg := strings.TrimSpace(t.Expr)
		skip := ""
		switch {
		case strings.Contains(t.Metric, "scenario:"):
			skip = "it selects one of the file's scenarios, which the search replaces"
		case name == load.MetricDropped:
			skip = "the search judges dropped iterations itself (over 1 % of the planned ones is the engine's limit)"
		case name == load.MetricHTTPReqs || name == load.MetricIterations || name == load.MetricDataSent || name == load.MetricDataReceived ||
			name == load.MetricVUs || name == load.MetricVUsMax || strings.HasPrefix(agg, "count"):
			skip = "counts and gauges depend on a step's length, not on whether the SLO holds"
		}
		if skip != "" {
			notes = append(notes, fmt.Sprintf("threshold %s: %s is not part of the SLO: %s", t.Metric, t.Expr, skip))
			continue
		}
		slo = append(slo, t)
	}
	return slo, notes
}

// measured selects the measured phase in a metric key; the bare
// http_req_duration keeps its k6 meaning (expected responses only).
func measured(key string) string {
	name, rest, hasSel := strings.Cut(key, "{")
	sel := "scenario:" + measureScenario
	if name == load.MetricHTTPReqDuration || name == load.MetricHTTPReqWaiting {
		if !strings.Contains(rest, "expected_response") {
			sel += ",expected_response:true"
		}
	}
	if !hasSel {
		return name + "{" + sel + "}"
	}
	return name + "{" + strings.TrimSuffix(rest, "}") + "," + sel + "}"
}

// Step implements Stepper: one load.Run of the settle and measured
// phases at rate, judged on the measured one.
func (s *LoadStepper) Step(ctx context.Context, rate float64, probe bool) (Step, error) {
	o := s.opts
	if s.n > 0 && o.Cooldown > 0 {
		if err := load.Sleep(ctx, o.Cooldown); err != nil {
			return Step{}, err
		}
	}
	s.n++
	if rate > load.MaxRatePerSecond {
		return Step{}, fmt.Errorf("capacity: rate %.4g is over the engine's limit of %d iterations/s", rate, load.MaxRatePerSecond)
	}
	phase := func(name string, start, d time.Duration, pre int) load.Scenario {
		return load.Scenario{Name: name, Executor: load.ConstantArrivalRate, Rate: rate, TimeUnit: time.Second,
			StartTime: start, Duration: d, PreAllocatedVUs: pre, MaxVUs: o.MaxVUs, MaxWait: o.MaxWait, GracefulStop: o.GracefulStop}
	}
	settle, step, full := s.lengths(rate, probe)
	plan := &load.Plan{Name: fmt.Sprintf("capacity step %d at %.4g it/s", s.n, rate), Workload: o.Plan.Workload, Thresholds: s.slo}
	if settle > 0 {
		plan.Scenarios = append(plan.Scenarios, phase(settleScenario, 0, settle, o.PreAllocatedVUs))
	}
	// The measured phase allocates its VUs at its start, so they do not
	// pay for their first iteration's login inside the judged window.
	plan.Scenarios = append(plan.Scenarios, phase(measureScenario, settle, step, o.PreAllocatedVUs))
	var after func(*Step)
	if o.Around != nil {
		after = o.Around(ctx)
	}
	stalls := startStallMeter()
	res, err := load.Run(ctx, plan, load.Options{Target: o.Target, Workload: s.wl, Logger: o.Logger, Registerer: o.Registerer,
		RunID: o.RunID, Seed: 1})
	stall, stallShare := stalls()
	if err != nil {
		return Step{}, fmt.Errorf("capacity step at %.4g it/s: %w", rate, err)
	}
	if ctx.Err() != nil {
		return Step{}, ctx.Err()
	}
	st, err := s.measure(res, rate, step)
	if err != nil {
		return Step{}, err
	}
	st.SettleS, st.Full, st.LabStallMS, st.LabStalledShare = settle.Seconds(), full, float64(stall)/float64(time.Millisecond), stallShare
	st.Stalled = stallExplains(&st)
	if st.AchievedRate > 0 && st.RequestRate > 0 {
		s.perIter = st.RequestRate / st.AchievedRate
	}
	if after != nil {
		after(&st)
	}
	return st, nil
}

// measure reads the measured phase out of the run's summary.
func (s *LoadStepper) measure(res *load.Result, rate float64, step time.Duration) (Step, error) {
	sum := res.Summary
	sec := step.Seconds()
	get := func(key, stat string) (float64, error) {
		v, _, err := sum.Values(key)
		if err != nil {
			return 0, fmt.Errorf("capacity: read %s from the step's summary: %w", key, err)
		}
		return v[stat], nil
	}
	sel := "{scenario:" + measureScenario + "}"
	dur := "http_req_duration{scenario:" + measureScenario + ",expected_response:true}"
	st := Step{PlannedRate: rate, MaxVUs: s.opts.MaxVUs, DurationS: sec, SLOOK: res.ThresholdsOK}
	var err error
	for _, f := range []struct {
		dst       *float64
		key, stat string
	}{
		{&st.P50, dur, "med"}, {&st.P95, dur, "p(95)"}, {&st.P99, dur, "p(99)"}, {&st.MeanMS, dur, "avg"},
		{&st.IterP99, load.MetricIterResponse + sel, "p(99)"}, {&st.ErrorRate, load.MetricHTTPReqFailed + sel, "rate"},
		{&st.RequestRate, load.MetricHTTPReqs + sel, "count"},
	} {
		if *f.dst, err = get(f.key, f.stat); err != nil {
			return st, err
		}
	}
	st.Samples = st.RequestRate
	st.RequestRate /= sec
	ms := sum.Hal9Lab.Scenarios[measureScenario]
	st.Planned, st.Dropped, st.VUs = float64(ms.PlannedIterations), float64(ms.Dropped), ms.MaxVUs
	st.AchievedRate = float64(ms.Started) / sec
	st.Concurrency = st.RequestRate * st.MeanMS / 1000
	for i, t := range res.Thresholds { // in the order of s.slo
		name := t.Metric
		if i < len(s.names) {
			name = s.names[i]
		}
		st.SLO = append(st.SLO, Threshold{Metric: name, Expr: t.Expr, OK: t.OK, Observed: t.Observed})
	}
	switch {
	case st.Planned > 0 && st.Dropped/st.Planned > EngineDropLimit:
		st.Engine = fmt.Sprintf("dropped %.0f of %.0f planned iterations (%.1f%% > %.0f%%)", st.Dropped, st.Planned, 100*st.Dropped/st.Planned, 100*EngineDropLimit)
	case st.VUs >= s.opts.MaxVUs:
		st.Engine = fmt.Sprintf("all %d VUs busy: iterations waited for a VU (raise the VU bound)", s.opts.MaxVUs)
	case st.Planned > 0 && float64(ms.Started) < 0.98*st.Planned:
		st.Engine = fmt.Sprintf("started %d of %.0f planned iterations: the scheduler fell behind", ms.Started, st.Planned)
	}
	return st, nil
}

// keepVUs keeps each VU across the steps' runs: a VU logs in once per
// search, not once per step (k6 would log in again at every run; here
// that would add a login per VU to every step and move the knee).
type keepVUs struct {
	load.Workload
	mu  sync.Mutex
	vus map[int]load.VU
}

func (k *keepVUs) NewVU(id int) (load.VU, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if v, ok := k.vus[id]; ok {
		return v, nil
	}
	v, err := k.Workload.NewVU(id)
	if err == nil {
		k.vus[id] = v
	}
	return v, err
}

// DropThinkTime returns the workload section with think_time set to 0s
// and the value it had ("" when it had none or 0).
func DropThinkTime(spec load.WorkloadSpec) (load.WorkloadSpec, string) {
	if spec.Node == nil || spec.Node.Kind != yaml.MappingNode {
		return spec, ""
	}
	n := *spec.Node
	n.Content = append([]*yaml.Node(nil), spec.Node.Content...)
	old := ""
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value != "think_time" {
			continue
		}
		if v := n.Content[i+1].Value; v != "0" && v != "0s" && v != "" {
			old = v
		}
		repl := *n.Content[i+1]
		repl.Value, repl.Tag = "0s", "!!str"
		n.Content[i+1] = &repl
	}
	spec.Node = &n
	return spec, old
}

// Params are a search's knobs, as `hal9-lab capacity` flags or a
// profile's capacity: block (durations as Go durations). Zero is the
// default of each; Step and Settle then follow the SLO and the rate
// (StepRule).
type Params struct {
	StartRate float64       `yaml:"start_rate"` // iterations/s of the first step (10)
	Growth    float64       `yaml:"growth"`     // ramp factor (2)
	Ceiling   float64       `yaml:"ceiling"`    // highest rate tried (5000)
	Precision float64       `yaml:"precision"`  // bisection stops within this (0.05)
	MaxSteps  int           `yaml:"max_steps"`  // bound on steps (40)
	NoRetry   bool          `yaml:"no_retry"`   // a failing full step stands without a second one
	Step      time.Duration `yaml:"step"`       // fixed judged phase (0: the StepRule's)
	Settle    time.Duration `yaml:"settle"`     // fixed unjudged phase before it (0: the StepRule's; NoSettle: none)
	MaxVUs    int           `yaml:"max_vus"`    // VU bound per phase (2000)
	Cooldown  time.Duration `yaml:"cooldown"`   // pause between steps (1s)
	// SLO in --slo syntax (METRIC:EXPR); empty: the scenario's thresholds.
	SLO []string `yaml:"slo"`
	// Scale multiplies the StepRule's lengths (the lab's --scale).
	Scale float64 `yaml:"-"`
}

// Defaults fills the zero knobs that have a fixed default.
func (p *Params) Defaults() {
	if p.MaxVUs == 0 {
		p.MaxVUs = DefaultMaxVUs
	}
}

// Validate checks the knobs (after Defaults) with messages naming them.
func (p *Params) Validate() error {
	c := p.config(nil)
	if err := c.defaults(); err != nil {
		return err
	}
	if err := checkLengths(p.Step, p.Settle); err != nil {
		return err
	}
	switch {
	case p.Cooldown < 0:
		return fmt.Errorf("cooldown %s must not be negative", p.Cooldown)
	case p.MaxVUs < 1 || p.MaxVUs > load.MaxVUsPerExecutor:
		return fmt.Errorf("max VUs %d: want 1..%d", p.MaxVUs, load.MaxVUsPerExecutor)
	case p.Scale < 0:
		return fmt.Errorf("scale %v must not be negative", p.Scale)
	}
	_, err := ParseSLO(p.SLO)
	return err
}

func (p *Params) config(progress io.Writer) Config {
	return Config{StartRate: p.StartRate, Growth: p.Growth, Ceiling: p.Ceiling, Precision: p.Precision,
		MaxSteps: p.MaxSteps, NoRetry: p.NoRetry, Progress: progress}
}

// Run searches the knee of target under plan's workload with lab/load:
// the stepper's notes and settings go into the result. base may set the
// load options the params do not (Around, Logger, Registerer, RunID).
func Run(ctx context.Context, plan *load.Plan, target string, p Params, progress io.Writer, base LoadOptions) (*Result, error) {
	p.Defaults()
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("capacity: %w", err)
	}
	slo, err := ParseSLO(p.SLO)
	if err != nil {
		return nil, err
	}
	o := base
	o.Plan, o.Target, o.Step, o.Settle, o.MaxVUs, o.Cooldown = plan, target, p.Step, p.Settle, p.MaxVUs, p.Cooldown
	o.Precision, o.Scale = p.Precision, p.Scale
	if len(slo) > 0 {
		o.SLO = slo
	}
	st, err := NewLoadStepper(o)
	if err != nil {
		return nil, err
	}
	res, err := Search(ctx, st, p.config(progress))
	if res != nil {
		st.Settings(&res.Settings)
		res.Notes = append(res.Notes, st.Notes()...)
		if len(res.Knee.SLO) == 0 {
			for i, t := range st.SLO() {
				res.Knee.SLO = append(res.Knee.SLO, st.names[i]+":"+t.Expr)
			}
		}
	}
	return res, err
}
