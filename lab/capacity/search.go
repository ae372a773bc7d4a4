package capacity

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"time"
)

// What limited the knee (Knee.LimitedBy, Step.LimitedBy).
const (
	LimitServer  = "server"  // a step at the next rate broke the SLO
	LimitEngine  = "engine"  // the load generator could not hold the next rate
	LimitCeiling = "ceiling" // no step failed up to the ceiling
)

// Threshold is one SLO threshold's outcome on a step.
type Threshold struct {
	Metric   string  `json:"metric"`
	Expr     string  `json:"expr"`
	OK       bool    `json:"ok"`
	Observed float64 `json:"observed"`
}

// Phases of a step (Step.Phase).
const (
	PhaseRamp    = "ramp"    // a probe: the rate grows by Growth until a step fails
	PhaseBisect  = "bisect"  // a full step between the last good and the first bad rate
	PhaseConfirm = "confirm" // a full step again at a probe's rate that bounds the knee
)

// Step is one constant-arrival-rate step as measured over its judged
// window (after the settle). Times in milliseconds, rates per second.
type Step struct {
	Phase        string  `json:"phase"`         // ramp, bisect or confirm
	PlannedRate  float64 `json:"planned_rate"`  // iterations/s asked for
	AchievedRate float64 `json:"achieved_rate"` // iterations/s started
	RequestRate  float64 `json:"request_rate"`  // http_reqs/s
	P50          float64 `json:"p50_ms"`        // http_req_duration
	P95          float64 `json:"p95_ms"`
	P99          float64 `json:"p99_ms"`
	MeanMS       float64 `json:"mean_ms"`
	IterP99      float64 `json:"iteration_response_time_p99_ms"`
	ErrorRate    float64 `json:"error_rate"`
	Dropped      float64 `json:"dropped"`
	Planned      float64 `json:"planned_iterations"`
	VUs          int     `json:"vus"`                // VUs allocated
	MaxVUs       int     `json:"max_vus"`            // the bound
	DurationS    float64 `json:"duration_s"`         // the judged phase
	SettleS      float64 `json:"settle_s,omitempty"` // the unjudged phase before it
	Samples      float64 `json:"samples"`            // requests in the judged phase
	// Full: the step had the sample count of a bisection step (or as long
	// as one gets, or a fixed --step). A probe that is not full is
	// confirmed by a full step before it may bound the knee.
	Full bool `json:"full"`
	// Concurrency is Little's law: requests in flight at the server on
	// average = RequestRate × mean response time.
	Concurrency float64     `json:"concurrency"`
	SLO         []Threshold `json:"slo"`
	SLOOK       bool        `json:"slo_ok"`
	// LabStallMS is the longest the lab process went without running
	// during the step (how much longer a 5 ms sleep took): on a shared machine a
	// stall longer than the SLO's latency bound breaks it by itself.
	LabStallMS float64 `json:"lab_stall_ms"`
	// LabStalledShare is the share of the step's time the lab process was
	// late by a millisecond or more (those overshoots, summed).
	LabStalledShare float64 `json:"lab_stalled_share"`
	// Stalled: the step failed, and the lab's stall alone explains it (a
	// stall of S ms breaks a latency bound L for the requests of S − L
	// ms, so the stall is at least L plus the failing tail's share of the
	// judged phase): the search runs the rate again (up to MaxExcused).
	Stalled bool `json:"stalled,omitempty"`
	// Engine says why the load generator did not hold the planned rate
	// ("" when it did): dropped iterations over 1 %, VUs exhausted.
	Engine    string `json:"engine,omitempty"`
	Pass      bool   `json:"pass"`
	LimitedBy string `json:"limited_by,omitempty"` // failed steps: server or engine
	// Server-side numbers of the step when the stepper reads /metrics.
	CacheHitRate *float64 `json:"cache_hit_rate,omitempty"`
	CostPer1K    *float64 `json:"cost_per_1k_usd,omitempty"`
	CPUSeconds   *float64 `json:"server_cpu_seconds,omitempty"`
}

// judge sets Pass and LimitedBy. A broken SLO is the server's even when
// the engine also struggled: the server broke it under less load than
// planned. An engine that could not hold the rate while the SLO held
// fails the step as the lab's limit, never as the server's knee.
func (s *Step) judge() {
	switch {
	case !s.SLOOK:
		s.Pass, s.LimitedBy = false, LimitServer
	case s.Engine != "":
		s.Pass, s.LimitedBy = false, LimitEngine
	default:
		s.Pass, s.LimitedBy = true, ""
	}
}

// Stepper runs one constant-arrival-rate step at rate iterations/s and
// measures it (SLO verdicts and engine state included). A probe may be
// shorter than a full step; the step says whether it was Full.
type Stepper interface {
	Step(ctx context.Context, rate float64, probe bool) (Step, error)
}

// StepperFunc adapts a function to a Stepper.
type StepperFunc func(ctx context.Context, rate float64, probe bool) (Step, error)

// Step calls f.
func (f StepperFunc) Step(ctx context.Context, rate float64, probe bool) (Step, error) {
	return f(ctx, rate, probe)
}

var _ Stepper = StepperFunc(nil)

// The search's defaults (also the flags' of hal9-lab capacity).
const (
	DefaultStartRate = 10
	DefaultGrowth    = 2
	DefaultCeiling   = 5000
	DefaultPrecision = 0.05
	DefaultMaxSteps  = 40
)

// Config is the search's plan.
type Config struct {
	StartRate float64 // first step, iterations/s (default 10)
	Growth    float64 // ramp factor between steps (default 2)
	Ceiling   float64 // highest rate tried (default 5000)
	Precision float64 // stop when bad/good − 1 ≤ Precision (default 0.05)
	MaxSteps  int     // bound on steps (default 40)
	// NoRetry: a failing full step stands without a second one (for a
	// server whose occasional breaches count; noise then lowers the knee).
	NoRetry bool
	// Progress gets one line per step; nil: none.
	Progress io.Writer
}

func (c *Config) defaults() error {
	if c.StartRate == 0 {
		c.StartRate = DefaultStartRate
	}
	if c.Growth == 0 {
		c.Growth = DefaultGrowth
	}
	if c.Ceiling == 0 {
		c.Ceiling = DefaultCeiling
	}
	if c.Precision == 0 {
		c.Precision = DefaultPrecision
	}
	if c.MaxSteps == 0 {
		c.MaxSteps = DefaultMaxSteps
	}
	switch {
	case !(c.StartRate > 0) || math.IsInf(c.StartRate, 0):
		return fmt.Errorf("start rate %v: want a positive rate (iterations/s)", c.StartRate)
	case !(c.Growth > 1) || math.IsInf(c.Growth, 0):
		return fmt.Errorf("growth %v: want a factor above 1 (2 doubles the rate each ramp step)", c.Growth)
	case !(c.Ceiling >= c.StartRate):
		return fmt.Errorf("ceiling %v: want at least the start rate %v", c.Ceiling, c.StartRate)
	case !(c.Precision > 0 && c.Precision < 1):
		return fmt.Errorf("precision %v: want a fraction in (0, 1), e.g. 0.05 for 5 %%", c.Precision)
	case c.MaxSteps < 2:
		return fmt.Errorf("max steps %d: want at least 2", c.MaxSteps)
	}
	return nil
}

// Knee is the search's answer: the highest rate at which the SLO held
// (Rate, iterations/s; RequestRate, the requests/s achieved there) and
// what stopped the search above it.
type Knee struct {
	Found       bool     `json:"found"` // false: even the start rate failed
	Rate        float64  `json:"rate"`
	RequestRate float64  `json:"request_rate"`
	SLO         []string `json:"slo"`
	LimitedBy   string   `json:"limited_by"`
	// Bound is the lowest failing rate (0 when none failed): the knee
	// lies in [Rate, Bound).
	Bound float64 `json:"bound,omitempty"`
	P99   float64 `json:"p99_ms"` // at the knee's step
}

// Result is what Search returns and `hal9-lab capacity` writes.
type Result struct {
	Knee     Knee     `json:"knee"`
	Steps    []Step   `json:"steps"`
	Fit      *USL     `json:"fit,omitempty"`
	FitError string   `json:"fit_error,omitempty"`
	Settings Settings `json:"settings"`
	Notes    []string `json:"notes,omitempty"`
	Took     float64  `json:"took_s"`
}

// Settings record how the search ran.
type Settings struct {
	StartRate float64 `json:"start_rate"`
	Growth    float64 `json:"growth"`
	Ceiling   float64 `json:"ceiling"`
	Precision float64 `json:"precision"`
	NoRetry   bool    `json:"no_retry,omitempty"`
	StepS     float64 `json:"step_s,omitempty"` // a fixed judged phase (0: the StepRule's)
	SettleS   float64 `json:"settle_s"`         // the settle phase
	MaxVUs    int     `json:"max_vus,omitempty"`
	// The StepRule's sample counts of a full step and of a probe, and the
	// rule in words (when the step is not fixed).
	Samples      int    `json:"samples,omitempty"`
	ProbeSamples int    `json:"probe_samples,omitempty"`
	Rule         string `json:"step_rule,omitempty"`
}

// ErrNoStep is returned when the context ended before any step ran.
var ErrNoStep = errors.New("capacity search: no step ran")

// Search finds the knee with a small state machine over the steps it has
// run (next says what to run, update what a step changed):
//
//   - ramp: probes from StartRate, the rate times Growth each, until one
//     fails or the Ceiling passes. A probe is short at low rates (a
//     quarter of a full step's samples, see StepRule).
//   - confirm: a failing step is run again at once as a full step, and
//     its rate is bad only if that fails too (with NoRetry, a failing
//     full step stands at once; a probe is always confirmed). On a shared
//     machine latency noise is one-sided — a stall of the machine or of
//     the load generator only adds latency — so a pass is believed and a
//     failure is checked. A probe that passed but was not full is
//     confirmed too when it ends up as the knee. A failure that a stall
//     of the lab process explains by itself (Step.Stalled) is run again
//     without counting, up to MaxExcused times in a row.
//   - bisect: full steps at the geometric mean of the last good and the
//     first bad rate, until bad/good − 1 ≤ Precision. A confirmed failure
//     at or below the good end moves it down to the highest pass below;
//     a pass at or above the bad end resumes the ramp above it.
//
// The knee is the good end: a full step's rate unless MaxSteps or ctx cut
// the search short (then a lower bound, also when ctx is cancelled).
func Search(ctx context.Context, st Stepper, cfg Config) (*Result, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	begin := time.Now()
	res := &Result{Settings: Settings{StartRate: cfg.StartRate, Growth: cfg.Growth, Ceiling: cfg.Ceiling, Precision: cfg.Precision, NoRetry: cfg.NoRetry}}
	var b bracket
	for len(res.Steps) < cfg.MaxSteps && ctx.Err() == nil {
		phase, rate, ok := b.next(cfg)
		if !ok {
			break
		}
		s, err := st.Step(ctx, rate, phase == PhaseRamp)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			return nil, err
		}
		s.Phase, s.PlannedRate = phase, rate
		s.judge()
		res.Steps = append(res.Steps, s)
		progress(cfg.Progress, len(res.Steps), &s)
		b.update(res.Steps, cfg.NoRetry)
	}
	res.Took = time.Since(begin).Seconds()
	if len(res.Steps) == 0 {
		return res, ErrNoStep
	}
	fillKnee(res, b.good, b.bad)
	noteStalls(res)
	fitSteps(res)
	return res, nil
}

// StalledNote is the share of time late from which the lab's own stalls
// near the knee get a note in the result.
const StalledNote = 0.02

// noteStalls says so when the lab process was late a noticeable share of
// the time in the steps at the knee and at its bound: its bursts then
// queue at a server loaded above about 1 − that share by themselves, and
// the knee is partly the machine's.
func noteStalls(res *Result) {
	k := res.Knee
	share, worst := 0.0, 0.0
	for _, s := range res.Steps {
		if s.PlannedRate == k.Rate || s.PlannedRate == k.Bound {
			share, worst = max(share, s.LabStalledShare), max(worst, s.LabStallMS)
		}
	}
	if share >= StalledNote {
		res.Notes = append(res.Notes, fmt.Sprintf("the lab process was late %.1f%% of the time in the steps at the knee and its bound (longest stall %.0f ms): "+
			"the iterations due meanwhile went out in bursts, which queue by themselves at a server loaded above about %.0f%% of its capacity; "+
			"on a shared machine the knee is partly the machine's (measure again on a quiet one)", 100*share, worst, 100*(1-share)))
	}
}

// bracket is the search's state: the highest passing rate below the
// lowest failing one (copies of their steps; nil: none yet), and a
// failure waiting for its confirmation.
type bracket struct{ good, bad, failed *Step }

// next is the step to run, or ok false when the search is done.
func (b *bracket) next(cfg Config) (phase string, rate float64, ok bool) {
	g, x := b.good, b.bad
	switch {
	case b.failed != nil:
		return PhaseConfirm, b.failed.PlannedRate, true
	case g == nil && x == nil:
		return PhaseRamp, cfg.StartRate, true
	case x == nil && g.PlannedRate < cfg.Ceiling:
		return PhaseRamp, math.Min(g.PlannedRate*cfg.Growth, cfg.Ceiling), true
	case x == nil: // at the ceiling
		return confirm(g)
	case g == nil: // the lowest rate failed
		return confirm(x)
	case x.PlannedRate/g.PlannedRate-1 > cfg.Precision:
		return PhaseBisect, math.Sqrt(g.PlannedRate * x.PlannedRate), true
	case !x.Full:
		return confirm(x)
	}
	return confirm(g)
}

// confirm runs s's rate again as a full step unless s was full.
func confirm(s *Step) (string, float64, bool) {
	if s.Full {
		return "", 0, false
	}
	return PhaseConfirm, s.PlannedRate, true
}

// update takes the last of steps into the bracket. A pass at or above the
// bad end clears it (the ramp resumes). A failure is first held for its
// confirmation (unless noRetry and it was full, or it confirms the
// failure before it); a confirmed failure at or below the good end moves
// that down to the highest pass below it.
func (b *bracket) update(steps []Step, noRetry bool) {
	s := steps[len(steps)-1]
	b.failed = nil
	if s.Pass {
		b.good = &s
		if b.bad != nil && b.bad.PlannedRate <= s.PlannedRate {
			b.bad = nil
		}
		return
	}
	if !failureStands(steps, noRetry) {
		b.failed = &s
		return
	}
	b.bad = &s
	if b.good == nil || b.good.PlannedRate < s.PlannedRate {
		return
	}
	b.good = nil
	for i := range steps[:len(steps)-1] {
		if p := steps[i]; p.Pass && p.PlannedRate < s.PlannedRate && (b.good == nil || p.PlannedRate > b.good.PlannedRate) {
			b.good = &p
		}
	}
}

// MaxExcused is how many failures in a row at a rate the lab's own stalls
// may excuse (Step.Stalled) before they count like any other.
const MaxExcused = 2

// failureStands says whether the failures in a row at the last step's
// rate make it bad: two that count (one with noRetry), at least one of
// them a full step. A failure the lab's stall explains does not count,
// up to MaxExcused of them.
func failureStands(steps []Step, noRetry bool) bool {
	rate := steps[len(steps)-1].PlannedRate
	counted, excused, full := 0, 0, false
	for i := len(steps) - 1; i >= 0 && steps[i].PlannedRate == rate && !steps[i].Pass; i-- {
		if steps[i].Stalled && excused < MaxExcused {
			excused++
			continue
		}
		counted++
		full = full || steps[i].Full
	}
	need := 2
	if noRetry {
		need = 1
	}
	return counted >= need && full
}

func fillKnee(res *Result, good, bad *Step) {
	k := &res.Knee
	if len(res.Steps) > 0 {
		for _, t := range res.Steps[0].SLO {
			k.SLO = append(k.SLO, t.Metric+":"+t.Expr)
		}
	}
	if bad != nil {
		k.Bound = bad.PlannedRate
		k.LimitedBy = bad.LimitedBy
	} else {
		k.LimitedBy = LimitCeiling
	}
	if good == nil {
		return
	}
	k.Found = true
	k.Rate, k.RequestRate, k.P99 = good.PlannedRate, good.RequestRate, good.P99
}

func progress(w io.Writer, n int, s *Step) {
	if w == nil {
		return
	}
	verdict := "pass"
	if !s.Pass {
		verdict = "FAIL (" + s.LimitedBy + ")"
	}
	line := fmt.Sprintf("capacity step %d (%s): %.1f it/s planned, %.1f achieved, %.1f req/s, p50 %.1f ms, p99 %.1f ms, errors %.2f%%, dropped %.0f, VUs %d/%d: %s",
		n, s.Phase, s.PlannedRate, s.AchievedRate, s.RequestRate, s.P50, s.P99, s.ErrorRate*100, s.Dropped, s.VUs, s.MaxVUs, verdict)
	for _, t := range s.SLO {
		if !t.OK {
			line += fmt.Sprintf("; %s %s observed %.4g", t.Metric, t.Expr, t.Observed)
		}
	}
	if s.Engine != "" {
		line += "; engine: " + s.Engine
	}
	if s.LabStallMS >= 20 {
		line += fmt.Sprintf("; the lab stalled %.0f ms (late %.1f%% of the time)", s.LabStallMS, 100*s.LabStalledShare)
	}
	if s.Stalled {
		line += ", which alone breaks the SLO: run again"
	}
	fmt.Fprintln(w, line) // one write: the lab turns writes into progress lines
}

// fitSteps fits the USL to the steps that carried load (throughput in
// requests/s against Little's-law concurrency).
func fitSteps(res *Result) {
	var n, x []float64
	for _, s := range res.Steps {
		if s.Concurrency > 0 && s.RequestRate > 0 {
			n = append(n, s.Concurrency)
			x = append(x, s.RequestRate)
		}
	}
	f, err := FitUSL(n, x)
	if err != nil {
		res.FitError = err.Error()
		return
	}
	res.Fit = &f
}

// Curve returns the steps ordered by achieved request rate: the
// latency-against-throughput curve.
func (r *Result) Curve() []Step {
	out := append([]Step(nil), r.Steps...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].RequestRate < out[j].RequestRate })
	return out
}

// ExitCode is 0 when a knee was found, ExitSLOAtStart (99, k6's threshold
// code) when even the start rate broke the SLO on the server, 1 when the
// lab could not measure (the engine failed at the start rate, no step).
func (r *Result) ExitCode() int {
	switch {
	case r.Knee.Found:
		return 0
	case r.Knee.LimitedBy == LimitServer:
		return ExitSLOAtStart
	}
	return 1
}

// ExitSLOAtStart is load.ExitThresholdsFailed (k6's 99).
const ExitSLOAtStart = 99
