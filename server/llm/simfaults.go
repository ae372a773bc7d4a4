package llm

import (
	"fmt"
	"math"

	"golang.org/x/time/rate"
)

// SimFaults are the simulated provider's failure settings. They start
// from SimOptions and can be changed while the server runs (the admin
// listener's PUT /admin/llm/faults), so the lab can inject an LLM outage,
// a slowdown or a 429 storm under load and take it away again.
type SimFaults struct {
	// ErrorRate is the probability (0..1) of a 5xx API error per call.
	ErrorRate float64 `json:"error_rate"`
	// LatencyScale multiplies every simulated latency (0: none).
	LatencyScale float64 `json:"latency_scale"`
	// RateLimitRPM is the calls per minute before 429s; 0 is unlimited.
	RateLimitRPM int `json:"rate_limit_rpm"`
}

// MaxLatencyScale bounds LatencyScale: past it a typo (1000 for 10)
// would hang every call until its timeout.
const MaxLatencyScale = 100

// Validate names what is wrong and the accepted range.
func (f SimFaults) Validate() error {
	switch {
	case math.IsNaN(f.ErrorRate) || f.ErrorRate < 0 || f.ErrorRate > 1:
		return fmt.Errorf("error_rate %v: must be within [0, 1]", f.ErrorRate)
	case math.IsNaN(f.LatencyScale) || f.LatencyScale < 0 || f.LatencyScale > MaxLatencyScale:
		return fmt.Errorf("latency_scale %v: must be within [0, %d] (1 is the normal latency)", f.LatencyScale, MaxLatencyScale)
	case f.RateLimitRPM < 0:
		return fmt.Errorf("rate_limit_rpm %d: must be 0 (unlimited) or more", f.RateLimitRPM)
	}
	return nil
}

// simState is one immutable set of settings; Complete loads it once per
// call, so a change never tears a call's view.
type simState struct {
	f       SimFaults
	limiter *rate.Limiter // nil: unlimited
}

func newSimState(f SimFaults) *simState {
	st := &simState{f: f}
	if f.RateLimitRPM > 0 {
		st.limiter = rate.NewLimiter(rate.Limit(float64(f.RateLimitRPM)/60), max(1, f.RateLimitRPM/60))
	}
	return st
}

// Faults returns the current settings.
func (s *Simulated) Faults() SimFaults { return s.state.Load().f }

// SetFaults replaces the settings for every call that starts after it;
// safe while calls run. A changed rate limit starts with a full burst.
func (s *Simulated) SetFaults(f SimFaults) error {
	if err := f.Validate(); err != nil {
		return err
	}
	cur := s.state.Load()
	next := newSimState(f)
	if cur.f.RateLimitRPM == f.RateLimitRPM {
		next.limiter = cur.limiter // keep the bucket: only the other settings changed
	}
	s.state.Store(next)
	return nil
}
