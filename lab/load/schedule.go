package load

import (
	"math"
	"time"
)

// Stage is one leg of a ramp: the value (VUs or iterations per timeUnit)
// moves linearly from where the previous stage ended to Target over
// Duration. k6 calls these `stages: [{duration, target}]`.
type Stage struct {
	Duration time.Duration
	Target   float64
}

// RateSchedule is the open-model plan of a ramping-arrival-rate or
// constant-arrival-rate executor: a piecewise-linear rate r(t), in
// iterations per second, starting at Start and following Stages.
//
// The number of iterations due by time t is the integral
//
//	F(t) = ∫₀ᵗ r(u) du
//
// and iteration i (i = 0, 1, 2, …) is scheduled at the time tᵢ that solves
//
//	F(tᵢ) = i
//
// so iteration 0 starts at t = 0 when the rate there is positive, and a
// constant rate r over D seconds schedules exactly ⌈r·D⌉ iterations, at
// 0, 1/r, 2/r, … (k6's constant-arrival-rate does the same). The schedule
// depends only on the plan, never on when earlier iterations finished,
// which is what makes the model open.
//
// Within a stage of length d that goes from rate a to rate b, with s the
// time since the stage began and k = (b−a)/d the slope,
//
//	r(s) = a + k·s
//	F(s) = C + a·s + k·s²/2      (C: iterations due before the stage)
//
// and solving C + a·s + k·s²/2 = i for s, with x = i − C, gives
//
//	s = 2x / (a + √(a² + 2kx))
//
// the cancellation-free form of the quadratic root, which also covers the
// flat stage (k = 0: s = x/a) and a ramp from zero (a = 0: s = √(2x/k)).
type RateSchedule struct {
	Start  float64 // iterations per second at t = 0
	Stages []Stage // Target in iterations per second

	cum []float64 // cum[k]: F at the start of stage k; cum[len] = total
}

// NewRateSchedule builds the schedule; rates are per second.
func NewRateSchedule(start float64, stages []Stage) *RateSchedule {
	s := &RateSchedule{Start: start, Stages: stages}
	s.cum = make([]float64, len(stages)+1)
	a := start
	for k, st := range stages {
		s.cum[k+1] = s.cum[k] + (a+st.Target)/2*st.Duration.Seconds()
		a = st.Target
	}
	return s
}

// Duration is the length of the schedule.
func (s *RateSchedule) Duration() time.Duration {
	var d time.Duration
	for _, st := range s.Stages {
		d += st.Duration
	}
	return d
}

// Total is F(Duration): the (fractional) number of iterations due.
func (s *RateSchedule) Total() float64 { return s.cum[len(s.Stages)] }

// Count is the number of iterations the schedule starts: the i with
// F(tᵢ) = i and tᵢ < Duration, that is ⌈Total⌉ (up to float rounding).
func (s *RateSchedule) Count() int64 {
	t := s.Total()
	n := int64(math.Ceil(t - 1e-9))
	if n < 0 {
		return 0
	}
	return n
}

// CountBefore is the number of iterations scheduled strictly before t:
// ⌈F(t)⌉.
func (s *RateSchedule) CountBefore(t time.Duration) int64 {
	return int64(math.Ceil(s.Integral(t) - 1e-9))
}

// Integral is F(t).
func (s *RateSchedule) Integral(t time.Duration) float64 {
	if t <= 0 {
		return 0
	}
	a := s.Start
	var off time.Duration
	for k, st := range s.Stages {
		if t < off+st.Duration {
			x := (t - off).Seconds()
			slope := (st.Target - a) / st.Duration.Seconds()
			return s.cum[k] + a*x + slope*x*x/2
		}
		off += st.Duration
		a = st.Target
	}
	return s.Total()
}

// RateAt is r(t) in iterations per second.
func (s *RateSchedule) RateAt(t time.Duration) float64 {
	a := s.Start
	var off time.Duration
	for _, st := range s.Stages {
		if t < off+st.Duration {
			return a + (st.Target-a)*float64(t-off)/float64(st.Duration)
		}
		off += st.Duration
		a = st.Target
	}
	return a
}

// At is tᵢ, the scheduled start of iteration i (0-based), and false when
// the schedule ends before it.
func (s *RateSchedule) At(i int64) (time.Duration, bool) {
	x := float64(i)
	a := s.Start
	var off time.Duration
	for k, st := range s.Stages {
		if x < s.cum[k+1] {
			d := st.Duration.Seconds()
			slope := (st.Target - a) / d
			rem := x - s.cum[k]
			disc := a*a + 2*slope*rem
			if disc < 0 {
				disc = 0
			}
			den := a + math.Sqrt(disc)
			var sec float64
			if den > 0 {
				sec = 2 * rem / den
			}
			if sec > d {
				sec = d
			}
			return off + time.Duration(sec*float64(time.Second)), true
		}
		off += st.Duration
		a = st.Target
	}
	return 0, false
}

// VUSchedule is the closed-model plan of a ramping-vus executor: the
// number of active VUs follows the line v(t), moving linearly from Start
// through Stages. While v rises the count is ⌊v(t)⌋, so the VU with
// 0-based index j starts the moment v reaches j+1; while v falls it is
// ⌈v(t)⌉, so VU j stops the moment v falls to j. At integer targets both
// agree, so the count is continuous across stage boundaries. A segment owns
// the VUs whose global index it owns, so segments add up to the whole.
type VUSchedule struct {
	Start  float64
	Stages []Stage
}

// Duration is the length of the schedule.
func (s VUSchedule) Duration() time.Duration {
	var d time.Duration
	for _, st := range s.Stages {
		d += st.Duration
	}
	return d
}

// At is the number of VUs planned at time t.
func (s VUSchedule) At(t time.Duration) int {
	a := s.Start
	var off time.Duration
	for _, st := range s.Stages {
		if t < off+st.Duration {
			v := a + (st.Target-a)*float64(t-off)/float64(st.Duration)
			if st.Target < a {
				return int(math.Ceil(v - 1e-9))
			}
			return int(math.Floor(v + 1e-9))
		}
		off += st.Duration
		a = st.Target
	}
	return int(math.Floor(a + 1e-9))
}

// Max is the largest number of VUs the schedule asks for.
func (s VUSchedule) Max() int {
	m := s.Start
	for _, st := range s.Stages {
		m = math.Max(m, st.Target)
	}
	return int(math.Ceil(m - 1e-9))
}

// Changes returns the times in (0, Duration] at which At changes, in
// order, so a controller sleeps until the next one instead of polling.
func (s VUSchedule) Changes() []time.Duration {
	var out []time.Duration
	a := s.Start
	var off time.Duration
	for _, st := range s.Stages {
		b := st.Target
		switch {
		case b > a: // VU count becomes n when v reaches n
			for n := math.Floor(a+1e-9) + 1; n <= b+1e-9; n++ {
				out = append(out, off+time.Duration((n-a)/(b-a)*float64(st.Duration)))
			}
		case b < a: // VU count becomes m when v falls to m
			for m := math.Ceil(a-1e-9) - 1; m >= b-1e-9 && m >= 0; m-- {
				out = append(out, off+time.Duration((a-m)/(a-b)*float64(st.Duration)))
			}
		}
		off += st.Duration
		a = b
	}
	return out
}
