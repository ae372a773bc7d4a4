package lab

import (
	"fmt"
	"time"

	"github.com/hal9-lab/hal9-lab/lab/faults"
	"github.com/hal9-lab/hal9-lab/lab/load"
)

// parseFaults reads the profile's `faults:` (validated against each
// scenario in NewSession).
func (p *Profile) parseFaults() error {
	if p.Faults.Kind == 0 {
		return nil
	}
	specs, err := faults.Parse(p.file, &p.Faults)
	if err != nil {
		return err
	}
	p.faults = specs
	return nil
}

// planFaults is a scenario's timeline: the profile's faults and the
// scenario file's, scaled like the scenario, checked against its length
// and against every backend the run may use.
func planFaults(p *Profile, plan *load.Plan, scale float64, backends []string, infraMode string) ([]faults.Spec, error) {
	specs := append([]faults.Spec(nil), p.faults...)
	if plan.Faults != nil {
		own, err := faults.Parse(plan.File, plan.Faults)
		if err != nil {
			return nil, err
		}
		specs = append(specs, own...)
	}
	if len(specs) == 0 {
		return nil, nil
	}
	specs = faults.Scaled(specs, scale)
	end := loadEnd(plan, scale)
	for _, b := range backends {
		h := faults.Have{Redis: b == PostgresRedis, Postgres: b == Postgres || b == PostgresRedis, Started: true, Replicas: 1,
			Processes: infraMode == "" || infraMode == "auto" || infraMode == string("process")}
		if err := faults.Validate(specs, end, h); err != nil {
			return nil, fmt.Errorf("%s on the %s leg: %w", plan.File, b, err)
		}
	}
	return specs, nil
}

// loadEnd is when the scaled plan's last executor stops starting
// iterations, from the start of the load.
func loadEnd(plan *load.Plan, scale float64) time.Duration {
	var end time.Duration
	for _, sc := range plan.Scenarios {
		s := sc.Scaled(scale)
		end = max(end, s.StartTime+s.ActiveDuration())
	}
	return end
}

// needsProcesses: a fault kills, stops or pauses PostgreSQL or Redis.
func needsProcesses(plans []scenarioPlan) bool {
	for _, sp := range plans {
		for _, f := range sp.faults {
			if f.Target == faults.Redis || f.Target == faults.Postgres {
				return true
			}
		}
	}
	return false
}

// hasFaults: some scenario of the session has a timeline.
func hasFaults(plans []scenarioPlan) bool {
	for _, sp := range plans {
		if len(sp.faults) > 0 {
			return true
		}
	}
	return false
}
