package faults

import (
	"time"

	"github.com/hal9-lab/hal9-lab/lab/load"
)

// ForPlan is a scenario's timeline: extra (a profile's faults) then the
// scenario file's own, scaled like the load; end is when the scaled load's
// last executor stops starting iterations, from the start of the load (a
// timeline must be healed by then: Validate).
func ForPlan(plan *load.Plan, extra []Spec, scale float64) (specs []Spec, end time.Duration, err error) {
	specs = append([]Spec(nil), extra...)
	if plan.Faults != nil {
		own, err := Parse(plan.File, plan.Faults)
		if err != nil {
			return nil, 0, err
		}
		specs = append(specs, own...)
	}
	for _, sc := range plan.Scenarios {
		s := sc.Scaled(scale)
		end = max(end, s.StartTime+s.ActiveDuration())
	}
	if len(specs) == 0 {
		return nil, end, nil
	}
	return Scaled(specs, scale), end, nil
}
