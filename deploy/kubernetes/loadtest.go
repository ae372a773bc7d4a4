package kubernetes

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	labworkload "github.com/hal9-lab/hal9-lab/lab/workload"
	"gopkg.in/yaml.v3"
)

// LoadTest is one launch of the distributed load test (LoadtestDir's
// kustomization): what `hal9-lab load kubernetes` renders. Its fields are
// that command's flags, and its errors name them.
type LoadTest struct {
	Segments int // pods sharing the load: the Job's parallelism and completions
	// Out is where the overlay goes; Manifests the load test's
	// kustomization it builds on (referred to relative to Out).
	Out, Manifests string
	// Scenario is a file name among the load test's generated scenarios.
	Scenario  string
	Target    string // the server's base URL as the pods see it
	RunID     string // "": lt-<UTC time>
	Image     string // NAME[:TAG]; "": the load test's
	Namespace string
	// StartIn puts the agreed start this long after now, unless StartAt
	// (RFC 3339) gives it.
	StartIn time.Duration
	StartAt string
	// MergeWait is how long the merge Job waits for the summaries (0:
	// the scenario's longest possible end + 5m).
	MergeWait time.Duration
	Scale     float64
}

// MaxSegments bounds Segments (one pod each).
const MaxSegments = 1000

var runIDPattern = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// DefaultRunID is the run id of a launch at now.
func DefaultRunID(now time.Time) string { return "lt-" + now.UTC().Format("20060102-150405") }

// Overlay checks the launch and returns the agreed start and the
// overlay's kustomization.yaml: the ConfigMap the load test's pods read
// (scenario, target, segments, start, run id, scale, the merge's wait),
// the Job's parallelism and completions, the image.
func (f LoadTest) Overlay(now time.Time) (time.Time, []byte, error) {
	switch {
	case f.Out == "":
		return time.Time{}, nil, errors.New("--out DIR is required (where the overlay is written)")
	case f.Segments < 1 || f.Segments > MaxSegments:
		return time.Time{}, nil, fmt.Errorf("--segments %d must be 1..%d (one pod each)", f.Segments, MaxSegments)
	case !strings.HasPrefix(f.Target, "http://") && !strings.HasPrefix(f.Target, "https://"):
		return time.Time{}, nil, fmt.Errorf("--target %q must be an http:// or https:// URL", f.Target)
	case f.Scenario != filepath.Base(f.Scenario) || !strings.HasSuffix(f.Scenario, ".yaml"):
		return time.Time{}, nil, fmt.Errorf("--scenario %q: give a file name such as mix.yaml (one of scenarios/*.yaml)", f.Scenario)
	case f.MergeWait < 0:
		return time.Time{}, nil, fmt.Errorf("--merge-wait %s must not be negative", f.MergeWait)
	}
	if f.RunID == "" {
		f.RunID = DefaultRunID(now)
	}
	if len(f.RunID) > 30 || !runIDPattern.MatchString(f.RunID) {
		return time.Time{}, nil, fmt.Errorf("--run-id %q: use at most 30 lower-case letters, digits and '-' (it ends object names)", f.RunID)
	}
	if fi, err := os.Stat(filepath.Join(f.Manifests, "kustomization.yaml")); err != nil || fi.IsDir() {
		return time.Time{}, nil, fmt.Errorf("--manifests %s has no kustomization.yaml; run from the repository's root or point it at deploy/kubernetes/loadtest", f.Manifests)
	}
	scenarioFile := filepath.Join(f.Manifests, "generated", "scenarios", f.Scenario)
	plan, _, err := labworkload.Load(scenarioFile)
	if err != nil {
		return time.Time{}, nil, fmt.Errorf("--scenario %s (the load test has the scenarios of scenarios/*.yaml as of the last make manifests): %w", f.Scenario, err)
	}
	if !(f.Scale > 0 && f.Scale <= 100) {
		return time.Time{}, nil, fmt.Errorf("--scale %v must be in (0, 100]", f.Scale)
	}
	start := now.Add(f.StartIn).Truncate(time.Second)
	if f.StartAt != "" {
		if start, err = time.Parse(time.RFC3339Nano, f.StartAt); err != nil {
			return time.Time{}, nil, fmt.Errorf("--start-at %q: want an RFC 3339 time such as %s", f.StartAt, now.Add(2*time.Minute).Format(time.RFC3339))
		}
		start = start.UTC()
	} else if f.StartIn <= 0 {
		return time.Time{}, nil, fmt.Errorf("--start-in %s must be positive: the pods need time to start", f.StartIn)
	}
	if !start.After(now) {
		return time.Time{}, nil, fmt.Errorf("the start %s is not in the future", start.Format(time.RFC3339))
	}
	if f.MergeWait == 0 {
		var longest time.Duration
		for _, s := range plan.Scenarios {
			sc := s.Scaled(f.Scale)
			longest = max(longest, sc.MaxDuration())
		}
		f.MergeWait = (start.Sub(now) + longest + 5*time.Minute).Round(time.Second)
	}
	abs := func(p string) (string, error) { return filepath.Abs(p) }
	outAbs, err := abs(f.Out)
	if err != nil {
		return time.Time{}, nil, err
	}
	manAbs, err := abs(f.Manifests)
	if err != nil {
		return time.Time{}, nil, err
	}
	rel, err := filepath.Rel(outAbs, manAbs)
	if err != nil {
		return time.Time{}, nil, fmt.Errorf("%w", err)
	}

	type image struct {
		Name    string `yaml:"name"`
		NewName string `yaml:"newName,omitempty"`
		NewTag  string `yaml:"newTag,omitempty"`
	}
	type generator struct {
		Name     string   `yaml:"name"`
		Behavior string   `yaml:"behavior"`
		Literals []string `yaml:"literals"`
	}
	type target struct {
		Kind string `yaml:"kind"`
		Name string `yaml:"name"`
	}
	type patch struct {
		Target target `yaml:"target"`
		Patch  string `yaml:"patch"`
	}
	k := struct {
		APIVersion         string      `yaml:"apiVersion"`
		Kind               string      `yaml:"kind"`
		Namespace          string      `yaml:"namespace,omitempty"`
		NameSuffix         string      `yaml:"nameSuffix"`
		Resources          []string    `yaml:"resources"`
		Images             []image     `yaml:"images,omitempty"`
		ConfigMapGenerator []generator `yaml:"configMapGenerator"`
		Patches            []patch     `yaml:"patches"`
	}{
		APIVersion: "kustomize.config.k8s.io/v1beta1", Kind: "Kustomization",
		Namespace: f.Namespace, NameSuffix: "-" + f.RunID,
		Resources: []string{filepath.ToSlash(rel)},
		ConfigMapGenerator: []generator{{Name: "hal9-loadtest", Behavior: "merge", Literals: []string{
			"HAL9_SCENARIO=" + f.Scenario,
			"HAL9_TARGET=" + f.Target,
			"HAL9_SEGMENTS=" + strconv.Itoa(f.Segments),
			"HAL9_START_AT=" + start.Format(time.RFC3339Nano),
			"HAL9_RUN_ID=" + f.RunID,
			"HAL9_SCALE=" + strconv.FormatFloat(f.Scale, 'f', -1, 64),
			"HAL9_MERGE_WAIT=" + f.MergeWait.String(),
		}}},
		Patches: []patch{{
			Target: target{Kind: "Job", Name: "hal9-loadtest"},
			Patch: fmt.Sprintf(`[{"op": "replace", "path": "/spec/parallelism", "value": %d}, {"op": "replace", "path": "/spec/completions", "value": %d}]`,
				f.Segments, f.Segments),
		}},
	}
	if f.Image != "" {
		name, tag, _ := strings.Cut(f.Image, ":")
		if name == "" || strings.ContainsAny(f.Image, " \t@") {
			return time.Time{}, nil, fmt.Errorf("--image %q: want NAME[:TAG], e.g. hal9-lab/hal9:v1.2.3", f.Image)
		}
		k.Images = []image{{Name: "hal9-lab/hal9", NewName: name, NewTag: tag}}
	}
	b, err := yaml.Marshal(k)
	if err != nil {
		return time.Time{}, nil, err
	}
	head := fmt.Sprintf("# Rendered by hal9-lab load kubernetes at %s: %d segments of %s against %s,\n# starting at %s. Apply it at once: kubectl apply -k %s\n",
		now.Format(time.RFC3339), f.Segments, f.Scenario, f.Target, start.Format(time.RFC3339Nano), f.Out)
	return start, append([]byte(head), b...), nil
}
