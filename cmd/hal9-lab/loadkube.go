package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/hal9-lab/hal9-lab/internal/durationflag"
	"github.com/hal9-lab/hal9-lab/lab/workload"
)

const loadKubeUsage = `usage: hal9-lab load kubernetes --segments N --out DIR [flags]

Renders the distributed load test of deploy/kubernetes/loadtest for one
launch: a kustomize overlay in DIR with the agreed start time, N segments,
the scenario, the target and a run id. Apply it at once:

  kubectl apply -k DIR
  kubectl wait --for=condition=complete --timeout=1h job/hal9-loadtest-merge-RUN_ID
  kubectl logs job/hal9-loadtest-merge-RUN_ID     # the merged summary

flags:`

// maxSegments bounds --segments (one pod each).
const maxSegments = 1000

var runIDPattern = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

type kubeFlags struct {
	segments                                       int
	out, manifests, scenario, target, runID, image string
	namespace, startAtRaw                          string
	startIn, mergeWait                             time.Duration
	scale                                          float64
}

func runLoadKubernetes(args []string, stdout io.Writer) error {
	var f kubeFlags
	fs := flag.NewFlagSet("load kubernetes", flag.ContinueOnError)
	fs.IntVar(&f.segments, "segments", 0, "how many segments (pods) share the load: the Job's parallelism and completions")
	fs.StringVar(&f.out, "out", "", "directory to write the overlay's kustomization.yaml into (created)")
	fs.StringVar(&f.manifests, "manifests", "deploy/kubernetes/loadtest", "the load-test kustomization the overlay builds on")
	fs.StringVar(&f.scenario, "scenario", "smoke.yaml", "scenario file name, one of the load test's generated/scenarios (scenarios/*.yaml; make manifests)")
	fs.StringVar(&f.target, "target", "http://hal9:8080", "the server's base URL as the pods see it (the hal9 Service in the same namespace by default)")
	fs.StringVar(&f.runID, "run-id", "", "name of this test (lower-case letters, digits, '-'; default lt-<UTC time>): object names end in it, summaries go to /results/RUN_ID")
	fs.StringVar(&f.namespace, "namespace", "", "namespace of the objects (default: kubectl's)")
	fs.StringVar(&f.image, "image", "", "the image, e.g. hal9-lab/hal9:v1.2.3 (default: the load test's)")
	durationflag.Var(fs, &f.startIn, "start-in", 2*time.Minute, "start the segments this long after now: time to apply the overlay, schedule the pods and pull the image")
	fs.StringVar(&f.startAtRaw, "start-at", "", "start at this RFC 3339 time instead of --start-in")
	durationflag.Var(fs, &f.mergeWait, "merge-wait", 0, "how long the merge Job waits for the summaries (default: until the scenario's longest possible end + 5m)")
	fs.Float64Var(&f.scale, "scale", 1, "multiply durations and VU/rate counts, as hal9-lab load --scale")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), loadKubeUsage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("load kubernetes: unexpected argument %q; the scenario is --scenario NAME", fs.Arg(0))
	}
	now := time.Now().UTC()
	start, kust, err := renderLoadKube(f, now)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(f.out, 0o755); err != nil {
		return fmt.Errorf("load kubernetes: --out %s: %w", f.out, err)
	}
	p := filepath.Join(f.out, "kustomization.yaml")
	if err := os.WriteFile(p, kust, 0o644); err != nil {
		return fmt.Errorf("load kubernetes: %w", err)
	}
	id := f.runID
	if id == "" {
		id = defaultRunID(now)
	}
	fmt.Fprintf(stdout, "wrote %s: %d segments of %s against %s, starting at %s (in %s), run id %s\n",
		p, f.segments, f.scenario, f.target, start.Format(time.RFC3339), time.Until(start).Round(time.Second), id)
	fmt.Fprintf(stdout, "apply it now:   kubectl apply -k %s\nthe verdict:    kubectl wait --for=condition=complete --timeout=1h job/hal9-loadtest-merge-%s\nmerged summary: kubectl logs job/hal9-loadtest-merge-%s\n", f.out, id, id)
	return nil
}

func defaultRunID(now time.Time) string { return "lt-" + now.UTC().Format("20060102-150405") }

// renderLoadKube checks the flags and returns the agreed start and the
// overlay's kustomization.yaml.
func renderLoadKube(f kubeFlags, now time.Time) (time.Time, []byte, error) {
	switch {
	case f.out == "":
		return time.Time{}, nil, errors.New("load kubernetes: --out DIR is required (where the overlay is written)")
	case f.segments < 1 || f.segments > maxSegments:
		return time.Time{}, nil, fmt.Errorf("load kubernetes: --segments %d must be 1..%d (one pod each)", f.segments, maxSegments)
	case !strings.HasPrefix(f.target, "http://") && !strings.HasPrefix(f.target, "https://"):
		return time.Time{}, nil, fmt.Errorf("load kubernetes: --target %q must be an http:// or https:// URL", f.target)
	case f.scenario != filepath.Base(f.scenario) || !strings.HasSuffix(f.scenario, ".yaml"):
		return time.Time{}, nil, fmt.Errorf("load kubernetes: --scenario %q: give a file name such as mix.yaml (one of scenarios/*.yaml)", f.scenario)
	case f.mergeWait < 0:
		return time.Time{}, nil, fmt.Errorf("load kubernetes: --merge-wait %s must not be negative", f.mergeWait)
	}
	if f.runID == "" {
		f.runID = defaultRunID(now)
	}
	if len(f.runID) > 30 || !runIDPattern.MatchString(f.runID) {
		return time.Time{}, nil, fmt.Errorf("load kubernetes: --run-id %q: use at most 30 lower-case letters, digits and '-' (it ends object names)", f.runID)
	}
	if fi, err := os.Stat(filepath.Join(f.manifests, "kustomization.yaml")); err != nil || fi.IsDir() {
		return time.Time{}, nil, fmt.Errorf("load kubernetes: --manifests %s has no kustomization.yaml; run from the repository's root or point it at deploy/kubernetes/loadtest", f.manifests)
	}
	scenarioFile := filepath.Join(f.manifests, "generated", "scenarios", f.scenario)
	plan, _, err := workload.Load(scenarioFile)
	if err != nil {
		return time.Time{}, nil, fmt.Errorf("load kubernetes: --scenario %s (the load test has the scenarios of scenarios/*.yaml as of the last make manifests): %w", f.scenario, err)
	}
	if !(f.scale > 0 && f.scale <= 100) {
		return time.Time{}, nil, fmt.Errorf("load kubernetes: --scale %v must be in (0, 100]", f.scale)
	}
	start := now.Add(f.startIn).Truncate(time.Second)
	if f.startAtRaw != "" {
		if start, err = time.Parse(time.RFC3339Nano, f.startAtRaw); err != nil {
			return time.Time{}, nil, fmt.Errorf("load kubernetes: --start-at %q: want an RFC 3339 time such as %s", f.startAtRaw, now.Add(2*time.Minute).Format(time.RFC3339))
		}
		start = start.UTC()
	} else if f.startIn <= 0 {
		return time.Time{}, nil, fmt.Errorf("load kubernetes: --start-in %s must be positive: the pods need time to start", f.startIn)
	}
	if !start.After(now) {
		return time.Time{}, nil, fmt.Errorf("load kubernetes: the start %s is not in the future", start.Format(time.RFC3339))
	}
	if f.mergeWait == 0 {
		var longest time.Duration
		for _, s := range plan.Scenarios {
			sc := s.Scaled(f.scale)
			longest = max(longest, sc.MaxDuration())
		}
		f.mergeWait = (start.Sub(now) + longest + 5*time.Minute).Round(time.Second)
	}
	abs := func(p string) (string, error) { return filepath.Abs(p) }
	outAbs, err := abs(f.out)
	if err != nil {
		return time.Time{}, nil, err
	}
	manAbs, err := abs(f.manifests)
	if err != nil {
		return time.Time{}, nil, err
	}
	rel, err := filepath.Rel(outAbs, manAbs)
	if err != nil {
		return time.Time{}, nil, fmt.Errorf("load kubernetes: %w", err)
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
		Namespace: f.namespace, NameSuffix: "-" + f.runID,
		Resources: []string{filepath.ToSlash(rel)},
		ConfigMapGenerator: []generator{{Name: "hal9-loadtest", Behavior: "merge", Literals: []string{
			"HAL9_SCENARIO=" + f.scenario,
			"HAL9_TARGET=" + f.target,
			"HAL9_SEGMENTS=" + strconv.Itoa(f.segments),
			"HAL9_START_AT=" + start.Format(time.RFC3339Nano),
			"HAL9_RUN_ID=" + f.runID,
			"HAL9_SCALE=" + strconv.FormatFloat(f.scale, 'f', -1, 64),
			"HAL9_MERGE_WAIT=" + f.mergeWait.String(),
		}}},
		Patches: []patch{{
			Target: target{Kind: "Job", Name: "hal9-loadtest"},
			Patch: fmt.Sprintf(`[{"op": "replace", "path": "/spec/parallelism", "value": %d}, {"op": "replace", "path": "/spec/completions", "value": %d}]`,
				f.segments, f.segments),
		}},
	}
	if f.image != "" {
		name, tag, _ := strings.Cut(f.image, ":")
		if name == "" || strings.ContainsAny(f.image, " \t@") {
			return time.Time{}, nil, fmt.Errorf("load kubernetes: --image %q: want NAME[:TAG], e.g. hal9-lab/hal9:v1.2.3", f.image)
		}
		k.Images = []image{{Name: "hal9-lab/hal9", NewName: name, NewTag: tag}}
	}
	b, err := yaml.Marshal(k)
	if err != nil {
		return time.Time{}, nil, err
	}
	head := fmt.Sprintf("# Rendered by hal9-lab load kubernetes at %s: %d segments of %s against %s,\n# starting at %s. Apply it at once: kubectl apply -k %s\n",
		now.Format(time.RFC3339), f.segments, f.scenario, f.target, start.Format(time.RFC3339Nano), f.out)
	return start, append([]byte(head), b...), nil
}
