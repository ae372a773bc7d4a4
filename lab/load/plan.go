package load

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// Plan is a test: what the VUs do (Workload), how many run when
// (Scenarios, k6's options) and the pass/fail criteria (Thresholds).
// ReadScenarioFile reads one from YAML; code may also build one.
type Plan struct {
	Name        string
	Description string
	File        string
	Workload    WorkloadSpec
	Scenarios   []Scenario
	Thresholds  []Threshold
	// Faults is the file's `faults:` timeline, raw: lab/faults decodes it.
	Faults *yaml.Node
}

// WorkloadSpec is the scenario file's workload section: its kind and the
// raw YAML the workload package decodes (with DecodeStrict) itself.
type WorkloadSpec struct {
	Kind string
	File string
	Node *yaml.Node // the whole workload mapping, kind included
}

// Validate checks the plan's scenarios and the syntax of its thresholds.
func (p *Plan) Validate() error {
	if len(p.Scenarios) == 0 {
		return errors.New("plan has no scenarios")
	}
	names := map[string]bool{}
	for i := range p.Scenarios {
		s := &p.Scenarios[i]
		if s.Name == "" {
			return fmt.Errorf("scenario %d has no name", i+1)
		}
		if names[s.Name] {
			return fmt.Errorf("scenario %q appears twice", s.Name)
		}
		names[s.Name] = true
		s.applyDefaults()
		if err := s.Validate(); err != nil {
			return err
		}
	}
	return ValidateThresholds(p.Thresholds)
}

// ReadScenarioFile reads and validates a scenario file (YAML):
//
//	name: smoke
//	description: …
//	workload: {kind: hal9, …}       # or kind: http; decoded by lab/workload
//	scenarios:
//	  NAME: {executor: constant-vus, vus: 5, duration: 30s, …}   # k6 options
//	thresholds:
//	  http_req_duration: ["p(95)<500"]
//	  http_req_failed: [{threshold: rate<0.01, abortOnFail: true, delayAbortEval: 10s}]
//
// Every error names the file, the line and the key; unknown keys are
// errors.
func ReadScenarioFile(path string) (*Plan, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read scenario file: %w", err)
	}
	return ParseScenario(path, b)
}

// ParseScenario parses a scenario file's content; file names it in errors.
func ParseScenario(file string, data []byte) (*Plan, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	root := resolve(&doc)
	if root == nil {
		return nil, &FileError{File: file, Msg: "empty file; see docs/load.md for the format"}
	}
	p := &Plan{File: file}
	var haveWorkload, haveScenarios bool
	err := mapping(file, root, "", func(key string, k, v *yaml.Node) error {
		var err error
		switch key {
		case "name":
			p.Name, err = scalarString(file, v, key)
		case "description":
			p.Description, err = scalarString(file, v, key)
		case "workload":
			haveWorkload = true
			err = parseWorkload(file, v, p)
		case "scenarios":
			haveScenarios = true
			err = mapping(file, v, key, func(name string, k, v *yaml.Node) error {
				s, err := parseScenarioOptions(file, name, v)
				if err != nil {
					return err
				}
				s.Name = name
				p.Scenarios = append(p.Scenarios, s)
				return nil
			})
		case "thresholds":
			err = mapping(file, v, key, func(metric string, k, v *yaml.Node) error {
				ts, err := parseThresholds(file, metric, k, v)
				p.Thresholds = append(p.Thresholds, ts...)
				return err
			})
		case "faults":
			p.Faults = v // decoded and validated by lab/faults
		default:
			err = nodeErr(file, k, key, "unknown key (known keys: name, description, workload, scenarios, thresholds, faults)")
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	switch {
	case p.Name == "":
		return nil, nodeErr(file, root, "name", "missing: every scenario file needs a name")
	case !haveWorkload:
		return nil, nodeErr(file, root, "workload", "missing: add workload: {kind: hal9} or {kind: http, requests: […]}")
	case !haveScenarios || len(p.Scenarios) == 0:
		return nil, nodeErr(file, root, "scenarios", "missing: add at least one scenario, e.g. scenarios: {main: {executor: constant-vus, vus: 5, duration: 30s}}")
	}
	for i := range p.Scenarios {
		s := &p.Scenarios[i]
		s.applyDefaults()
		if err := s.Validate(); err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
	}
	return p, nil
}

func parseWorkload(file string, n *yaml.Node, p *Plan) error {
	p.Workload = WorkloadSpec{File: file, Node: n}
	err := mapping(file, n, "workload", func(key string, k, v *yaml.Node) error {
		if key == "kind" {
			s, err := scalarString(file, v, "workload.kind")
			p.Workload.Kind = s
			return err
		}
		return nil
	})
	if err != nil {
		return err
	}
	if p.Workload.Kind == "" {
		return nodeErr(file, n, "workload.kind", "missing: hal9 (the HAL9 traffic mix) or http (weighted plain requests)")
	}
	return nil
}

// scenario option keys by executor
var (
	commonKeys   = []string{"executor", "startTime", "gracefulStop"}
	executorKeys = map[string][]string{
		ConstantVUs:         {"vus", "duration"},
		RampingVUs:          {"startVUs", "stages", "gracefulRampDown"},
		ConstantArrivalRate: {"rate", "timeUnit", "duration", "preAllocatedVUs", "maxVUs", "maxWait"},
		RampingArrivalRate:  {"startRate", "timeUnit", "stages", "preAllocatedVUs", "maxVUs", "maxWait"},
	}
)

func parseScenarioOptions(file, name string, n *yaml.Node) (Scenario, error) {
	s := Scenario{Name: name}
	path := "scenarios." + name
	n = resolve(n)
	// the executor first: it decides which keys are allowed
	var exNode *yaml.Node
	if err := mapping(file, n, path, func(key string, k, v *yaml.Node) error {
		if key == "executor" {
			exNode = v
		}
		return nil
	}); err != nil {
		return s, err
	}
	if exNode == nil {
		return s, nodeErr(file, n, path+".executor", "missing: one of %s", strings.Join(executors, ", "))
	}
	ex, err := scalarString(file, exNode, path+".executor")
	if err != nil {
		return s, err
	}
	allowed, ok := executorKeys[ex]
	if !ok {
		return s, nodeErr(file, exNode, path+".executor", "unknown executor %q; use one of %s", ex, strings.Join(executors, ", "))
	}
	s.Executor = ex
	nodes := map[string]*yaml.Node{} // value nodes by key, for limit errors
	ok2 := map[string]bool{}
	for _, k := range append(append([]string{}, commonKeys...), allowed...) {
		ok2[k] = true
	}
	err = mapping(file, n, path, func(key string, k, v *yaml.Node) error {
		p := path + "." + key
		if !ok2[key] {
			all := append(append([]string{}, commonKeys...), allowed...)
			sort.Strings(all)
			return nodeErr(file, k, p, "unknown key for executor %s (its keys: %s)", ex, strings.Join(all, ", "))
		}
		nodes[key] = v
		var err error
		switch key {
		case "executor":
		case "startTime":
			s.StartTime, err = scalarDuration(file, v, p)
		case "gracefulStop":
			s.GracefulStop, err = scalarDuration(file, v, p)
		case "vus":
			s.VUs, err = scalarInt(file, v, p)
		case "duration":
			s.Duration, err = scalarDuration(file, v, p)
		case "startVUs":
			s.StartVUs, err = scalarInt(file, v, p)
		case "gracefulRampDown":
			s.GracefulRampDown, err = scalarDuration(file, v, p)
		case "rate":
			s.Rate, err = scalarFloat(file, v, p)
		case "startRate":
			s.StartRate, err = scalarFloat(file, v, p)
		case "timeUnit":
			s.TimeUnit, err = scalarDuration(file, v, p)
		case "preAllocatedVUs":
			s.PreAllocatedVUs, err = scalarInt(file, v, p)
		case "maxVUs":
			s.MaxVUs, err = scalarInt(file, v, p)
		case "maxWait":
			s.MaxWait, err = scalarDuration(file, v, p)
		case "stages":
			s.Stages, err = parseStages(file, v, p)
		}
		return err
	})
	if err != nil {
		return s, err
	}
	if key, msg := s.checkLimits(); key != "" {
		n := nodes[key]
		if i := strings.Index(key, "["); i > 0 { // stages[i].target: the stage's line
			var idx int
			fmt.Sscanf(key[i:], "[%d]", &idx)
			if st := nodes["stages"]; st != nil && idx < len(st.Content) {
				n = st.Content[idx]
			}
		}
		return s, nodeErr(file, n, path+"."+key, "%s", msg)
	}
	return s, nil
}

func parseStages(file string, n *yaml.Node, path string) ([]Stage, error) {
	if n.Kind != yaml.SequenceNode {
		return nil, nodeErr(file, n, path, "want a list of {duration, target}, got %s", kindName(n))
	}
	var out []Stage
	for i, c := range n.Content {
		p := fmt.Sprintf("%s[%d]", path, i)
		var st Stage
		var haveD, haveT bool
		err := mapping(file, c, p, func(key string, k, v *yaml.Node) error {
			var err error
			switch key {
			case "duration":
				haveD = true
				st.Duration, err = scalarDuration(file, v, p+".duration")
			case "target":
				haveT = true
				st.Target, err = scalarFloat(file, v, p+".target")
			default:
				err = nodeErr(file, k, p+"."+key, "unknown key (a stage has duration and target)")
			}
			return err
		})
		if err != nil {
			return nil, err
		}
		if !haveD || !haveT {
			return nil, nodeErr(file, c, p, "a stage needs both duration and target")
		}
		if st.Duration <= 0 {
			return nil, nodeErr(file, c, p+".duration", "must be positive")
		}
		out = append(out, st)
	}
	return out, nil
}

func parseThresholds(file, metric string, k, n *yaml.Node) ([]Threshold, error) {
	path := "thresholds." + metric
	if _, _, err := parseMetricKey(metric); err != nil {
		return nil, nodeErr(file, k, path, "%v", err)
	}
	items := []*yaml.Node{n}
	if n.Kind == yaml.SequenceNode {
		items = n.Content
	}
	var out []Threshold
	for i, it := range items {
		it = resolve(it)
		p := fmt.Sprintf("%s[%d]", path, i)
		t := Threshold{Metric: metric, Source: fmt.Sprintf("%s:%d", file, it.Line)}
		switch it.Kind {
		case yaml.ScalarNode:
			t.Expr = it.Value
		case yaml.MappingNode:
			err := mapping(file, it, p, func(key string, k, v *yaml.Node) error {
				var err error
				switch key {
				case "threshold":
					t.Expr, err = scalarString(file, v, p+".threshold")
				case "abortOnFail":
					t.AbortOnFail, err = scalarBool(file, v, p+".abortOnFail")
				case "delayAbortEval":
					t.DelayAbortEval, err = scalarDuration(file, v, p+".delayAbortEval")
				default:
					err = nodeErr(file, k, p+"."+key, "unknown key (known: threshold, abortOnFail, delayAbortEval)")
				}
				return err
			})
			if err != nil {
				return nil, err
			}
			if t.Expr == "" {
				return nil, nodeErr(file, it, p+".threshold", "missing: the expression, e.g. p(95)<500")
			}
		default:
			return nil, nodeErr(file, it, p, "want an expression like \"p(95)<500\" or {threshold, abortOnFail, delayAbortEval}, got %s", kindName(it))
		}
		if _, err := t.compile(nil); err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}
