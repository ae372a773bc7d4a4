// Package workload builds the workload a scenario file names: kind hal9
// (lab/workload/hal9, the HAL9 traffic mix) or kind http
// (lab/workload/http, weighted plain requests).
package workload

import (
	"fmt"

	"github.com/hal9-lab/hal9-lab/lab/load"
	"github.com/hal9-lab/hal9-lab/lab/workload/hal9"
	whttp "github.com/hal9-lab/hal9-lab/lab/workload/http"
)

// Kinds are the workload kinds a scenario file may name.
var Kinds = []string{"hal9", "http"}

// New decodes and validates the workload section of a plan and builds it.
func New(spec load.WorkloadSpec) (load.Workload, error) {
	switch spec.Kind {
	case "hal9":
		c, err := hal9.Decode(spec)
		if err != nil {
			return nil, err
		}
		return hal9.New(c)
	case "http":
		c, err := whttp.Decode(spec)
		if err != nil {
			return nil, err
		}
		return whttp.New(c)
	}
	return nil, fmt.Errorf("%s: workload.kind %q: use hal9 (the HAL9 traffic mix) or http (weighted plain requests)", spec.File, spec.Kind)
}

// Load reads a scenario file and builds its workload: everything a run
// needs, with every error in the file reported before any load starts.
func Load(path string) (*load.Plan, load.Workload, error) {
	p, err := load.ReadScenarioFile(path)
	if err != nil {
		return nil, nil, err
	}
	w, err := New(p.Workload)
	if err != nil {
		return nil, nil, err
	}
	return p, w, nil
}
