package load

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Executor names, k6's.
const (
	ConstantVUs         = "constant-vus"
	RampingVUs          = "ramping-vus"
	ConstantArrivalRate = "constant-arrival-rate"
	RampingArrivalRate  = "ramping-arrival-rate"
)

// Defaults, k6's where k6 has one.
const (
	DefaultGracefulStop     = 30 * time.Second
	DefaultGracefulRampDown = 30 * time.Second
	DefaultTimeUnit         = time.Second
	// DefaultMaxWait bounds how long an arrival-rate iteration may wait
	// for a free VU before it is dropped. k6 drops at once, which hides
	// the cost of a stall; we let the iteration wait and count the wait
	// in iteration_response_time, so a stall of up to a few seconds (a
	// GC pause, a stalled server, a database fail-over) is measured as
	// latency, which is what users felt. Past 5 s the server is simply
	// overloaded: waiting longer would only build a backlog that keeps
	// hammering it after the plan has moved on (and that gracefulStop
	// would cut off anyway), so the iteration is dropped and the summary
	// warns that the planned rate was not held.
	DefaultMaxWait = 5 * time.Second
)

// Limits on what one executor may ask for: past them a typo (vus:
// 100000000, rate: 1e9) would exhaust memory or spin the scheduler long
// after the deadline instead of failing with an error.
const (
	MaxVUsPerExecutor = 100_000   // vus, startVUs, preAllocatedVUs, maxVUs, ramping-vus targets
	MaxRatePerSecond  = 1_000_000 // rate, startRate, arrival-rate targets, per second
	MaxScale          = 100       // --scale / Options.Scale
)

// checkLimits reports the first option of s over MaxVUsPerExecutor or
// MaxRatePerSecond as (key, message); key is "" when all are within.
func (s *Scenario) checkLimits() (key, msg string) {
	vus := func(k string, n int) bool {
		if n > MaxVUsPerExecutor {
			key, msg = k, fmt.Sprintf("%d VUs is over the limit of %d per executor", n, MaxVUsPerExecutor)
			return true
		}
		return false
	}
	unit := s.TimeUnit
	if unit <= 0 {
		unit = DefaultTimeUnit
	}
	rate := func(k string, r float64) bool {
		if ps := r / unit.Seconds(); ps > MaxRatePerSecond {
			key, msg = k, fmt.Sprintf("%.4g iterations/s is over the limit of %d per executor", ps, MaxRatePerSecond)
			return true
		}
		return false
	}
	if vus("vus", s.VUs) || vus("startVUs", s.StartVUs) || vus("preAllocatedVUs", s.PreAllocatedVUs) || vus("maxVUs", s.MaxVUs) {
		return key, msg
	}
	if s.Executor == ConstantArrivalRate || s.Executor == RampingArrivalRate {
		if rate("rate", s.Rate) || rate("startRate", s.StartRate) {
			return key, msg
		}
	}
	for i, st := range s.Stages {
		k := fmt.Sprintf("stages[%d].target", i)
		switch s.Executor {
		case RampingVUs:
			if st.Target > MaxVUsPerExecutor && vus(k, int(math.Min(st.Target, math.MaxInt32))) {
				return key, msg
			}
		case RampingArrivalRate:
			if rate(k, st.Target) {
				return key, msg
			}
		}
	}
	return "", ""
}

// Scenario is one named k6 scenario: an executor and its options. Only
// the options of its executor may be set (the file loader enforces it).
type Scenario struct {
	Name     string
	Executor string

	StartTime    time.Duration // startTime: delay from the test's start
	GracefulStop time.Duration // gracefulStop: time running iterations get at the end

	// constant-vus
	VUs      int
	Duration time.Duration // constant-vus, constant-arrival-rate

	// ramping-vus
	StartVUs         int
	GracefulRampDown time.Duration

	// arrival-rate executors: Rate, StartRate and stage targets are
	// iterations per TimeUnit.
	Rate            float64
	StartRate       float64
	TimeUnit        time.Duration
	PreAllocatedVUs int
	MaxVUs          int
	MaxWait         time.Duration // ours: see DefaultMaxWait

	Stages []Stage // ramping-vus (VUs), ramping-arrival-rate (rate)
}

func (s *Scenario) applyDefaults() {
	if s.GracefulStop == 0 {
		s.GracefulStop = DefaultGracefulStop
	}
	if s.Executor == RampingVUs && s.GracefulRampDown == 0 {
		s.GracefulRampDown = DefaultGracefulRampDown
	}
	if s.Executor == ConstantArrivalRate || s.Executor == RampingArrivalRate {
		if s.TimeUnit == 0 {
			s.TimeUnit = DefaultTimeUnit
		}
		if s.MaxWait == 0 {
			s.MaxWait = DefaultMaxWait
		}
		if s.MaxVUs < s.PreAllocatedVUs {
			s.MaxVUs = s.PreAllocatedVUs
		}
	}
}

// Validate checks the options of the scenario's executor.
func (s *Scenario) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("scenario %q (%s): %s", s.Name, s.Executor, fmt.Sprintf(format, a...))
	}
	if s.StartTime < 0 || s.GracefulStop < 0 || s.GracefulRampDown < 0 || s.MaxWait < 0 {
		return bad("startTime, gracefulStop, gracefulRampDown and maxWait must not be negative")
	}
	stages := func(what string) error {
		if len(s.Stages) == 0 {
			return bad("stages: at least one {duration, target} is required")
		}
		for i, st := range s.Stages {
			if st.Duration <= 0 {
				return bad("stages[%d].duration must be positive, got %s", i, st.Duration)
			}
			if st.Target < 0 || math.IsNaN(st.Target) || math.IsInf(st.Target, 0) {
				return bad("stages[%d].target must be a %s ≥ 0, got %v", i, what, st.Target)
			}
		}
		return nil
	}
	if key, msg := s.checkLimits(); key != "" {
		return bad("%s: %s", key, msg)
	}
	switch s.Executor {
	case ConstantVUs:
		if s.VUs < 1 {
			return bad("vus must be at least 1, got %d", s.VUs)
		}
		if s.Duration <= 0 {
			return bad("duration must be positive (e.g. 30s)")
		}
	case RampingVUs:
		if s.StartVUs < 0 {
			return bad("startVUs must not be negative")
		}
		if err := stages("number of VUs"); err != nil {
			return err
		}
	case ConstantArrivalRate, RampingArrivalRate:
		if s.TimeUnit <= 0 {
			return bad("timeUnit must be positive (e.g. 1s)")
		}
		if s.PreAllocatedVUs < 0 {
			return bad("preAllocatedVUs must not be negative")
		}
		if s.MaxVUs < 1 {
			return bad("preAllocatedVUs or maxVUs must be at least 1")
		}
		if s.Executor == ConstantArrivalRate {
			if s.Rate <= 0 {
				return bad("rate must be positive (iterations per timeUnit)")
			}
			if s.Duration <= 0 {
				return bad("duration must be positive (e.g. 30s)")
			}
		} else {
			if s.StartRate < 0 {
				return bad("startRate must not be negative")
			}
			if err := stages("rate"); err != nil {
				return err
			}
		}
	case "":
		return bad("executor is required: one of %s", strings.Join(executors, ", "))
	default:
		return bad("unknown executor; use one of %s", strings.Join(executors, ", "))
	}
	return nil
}

var executors = []string{ConstantVUs, RampingVUs, ConstantArrivalRate, RampingArrivalRate}

// openModel reports whether the executor starts iterations on a schedule.
func (s *Scenario) openModel() bool {
	return s.Executor == ConstantArrivalRate || s.Executor == RampingArrivalRate
}

// ActiveDuration is how long the executor starts iterations (without
// startTime and gracefulStop).
func (s *Scenario) ActiveDuration() time.Duration {
	switch s.Executor {
	case ConstantVUs, ConstantArrivalRate:
		return s.Duration
	}
	var d time.Duration
	for _, st := range s.Stages {
		d += st.Duration
	}
	return d
}

// MaxDuration is the longest the scenario can run, from the test's start.
func (s *Scenario) MaxDuration() time.Duration {
	d := s.StartTime + s.ActiveDuration() + s.GracefulStop
	if s.Executor == RampingVUs {
		d += s.GracefulRampDown
	}
	return d
}

// RateSchedule is the open-model schedule in iterations per second (nil
// for closed-model executors).
func (s *Scenario) RateSchedule() *RateSchedule {
	perSec := float64(time.Second) / float64(s.TimeUnit)
	switch s.Executor {
	case ConstantArrivalRate:
		r := s.Rate * perSec
		return NewRateSchedule(r, []Stage{{Duration: s.Duration, Target: r}})
	case RampingArrivalRate:
		st := make([]Stage, len(s.Stages))
		for i, x := range s.Stages {
			st[i] = Stage{Duration: x.Duration, Target: x.Target * perSec}
		}
		return NewRateSchedule(s.StartRate*perSec, st)
	}
	return nil
}

// VUSchedule is the closed-model schedule of ramping-vus and constant-vus.
func (s *Scenario) VUSchedule() VUSchedule {
	if s.Executor == ConstantVUs {
		return VUSchedule{Start: float64(s.VUs), Stages: []Stage{{Duration: s.Duration, Target: float64(s.VUs)}}}
	}
	return VUSchedule{Start: float64(s.StartVUs), Stages: s.Stages}
}

// MaxVUCount is the most VUs the scenario may use (for sizing the
// connection pool and VU ids).
func (s *Scenario) MaxVUCount() int {
	switch s.Executor {
	case ConstantVUs:
		return s.VUs
	case RampingVUs:
		return s.VUSchedule().Max()
	}
	return max(s.MaxVUs, s.PreAllocatedVUs)
}

// Scaled returns a copy with durations and VU/rate counts multiplied by
// f (--scale): a non-zero duration stays at least 1 s and a non-zero VU
// count at least 1, so a scaled-down plan still runs every stage. Zero
// targets stay zero; timeUnit, gracefulStop, gracefulRampDown and maxWait
// are not scaled (they are tolerances, not plan).
func (s Scenario) Scaled(f float64) Scenario {
	if f == 1 || f <= 0 {
		return s
	}
	dur := func(d time.Duration) time.Duration {
		if d <= 0 {
			return d
		}
		return max(time.Duration(float64(d)*f).Round(time.Millisecond), time.Second)
	}
	vus := func(n int) int {
		if n <= 0 {
			return n
		}
		return max(int(math.Round(float64(n)*f)), 1)
	}
	s.StartTime = func() time.Duration {
		if s.StartTime <= 0 {
			return 0
		}
		return time.Duration(float64(s.StartTime) * f).Round(time.Millisecond)
	}()
	s.Duration = dur(s.Duration)
	s.VUs = vus(s.VUs)
	s.StartVUs = vus(s.StartVUs)
	s.PreAllocatedVUs = vus(s.PreAllocatedVUs)
	s.MaxVUs = vus(s.MaxVUs)
	s.Rate *= f
	s.StartRate *= f
	st := make([]Stage, len(s.Stages))
	for i, x := range s.Stages {
		t := x.Target * f
		if s.Executor == RampingVUs && x.Target > 0 {
			t = math.Max(math.Round(t), 1)
		}
		st[i] = Stage{Duration: dur(x.Duration), Target: t}
	}
	s.Stages = st
	return s
}

// Segment is a share of a test for running it on several machines or
// processes: segment Index of Count (1-based). The zero value is the whole
// test. Work is striped: global VU j and global arrival-rate iteration j
// belong to segment (j mod Count)+1, so the n segments partition every
// executor's VUs and iterations exactly and their union is the full plan
// (k6's execution segments with an evenly striped sequence).
type Segment struct {
	Index, Count int
}

// ParseSegment reads "i/n" (1 ≤ i ≤ n); "" is the whole test.
func ParseSegment(s string) (Segment, error) {
	if s == "" {
		return Segment{}, nil
	}
	a, b, ok := strings.Cut(s, "/")
	i, err1 := strconv.Atoi(strings.TrimSpace(a))
	n, err2 := strconv.Atoi(strings.TrimSpace(b))
	if !ok || err1 != nil || err2 != nil || n < 1 || i < 1 || i > n {
		return Segment{}, fmt.Errorf("segment %q: want i/n with 1 ≤ i ≤ n, e.g. 1/2", s)
	}
	return Segment{Index: i, Count: n}, nil
}

func (g Segment) String() string {
	if g.whole() {
		return ""
	}
	return fmt.Sprintf("%d/%d", g.Index, g.Count)
}

func (g Segment) whole() bool { return g.Count <= 1 }

// owns reports whether global index j belongs to the segment.
func (g Segment) owns(j int64) bool {
	return g.whole() || j%int64(g.Count) == int64(g.Index-1)
}

// share is how many of the first n global indices the segment owns.
func (g Segment) share(n int) int {
	if g.whole() || n <= 0 {
		return n
	}
	k := g.Index - 1
	if n <= k {
		return 0
	}
	return (n-k-1)/g.Count + 1
}

// global maps the segment's local index l back to the global index.
func (g Segment) global(l int) int {
	if g.whole() {
		return l
	}
	return l*g.Count + g.Index - 1
}

var errStopped = errors.New("stopped")
