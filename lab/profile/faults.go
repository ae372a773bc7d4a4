package profile

import (
	"fmt"

	"github.com/hal9-lab/hal9-lab/lab/faults"
	"github.com/hal9-lab/hal9-lab/lab/load"
)

// parseFaults reads the profile's `faults:` (checked against each
// scenario by ScenarioFaults).
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

// ScenarioFaults is a scenario's timeline: the profile's faults and the
// scenario file's, scaled like the scenario, checked against its length
// and against every backend the run may use (infraMode is --infra: ""
// or auto may give local processes, which faults can kill).
func (p *Profile) ScenarioFaults(plan *load.Plan, scale float64, backends []string, infraMode string) ([]faults.Spec, error) {
	specs, end, err := faults.ForPlan(plan, p.faults, scale)
	if err != nil || len(specs) == 0 {
		return nil, err
	}
	for _, b := range backends {
		h := faults.Have{Redis: b == PostgresRedis, Postgres: b == Postgres || b == PostgresRedis, Started: true, Replicas: 1,
			Processes: infraMode == "" || infraMode == "auto" || infraMode == "process"}
		if err := faults.Validate(specs, end, h); err != nil {
			return nil, fmt.Errorf("%s on the %s leg: %w", plan.File, b, err)
		}
	}
	return specs, nil
}
