package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/hal9-lab/hal9-lab/deploy/kubernetes"
	"github.com/hal9-lab/hal9-lab/internal/durationflag"
)

const loadKubeUsage = `usage: hal9-lab load kubernetes --segments N --out DIR [flags]

Renders the distributed load test of deploy/kubernetes/loadtest for one
launch: a kustomize overlay in DIR with the agreed start time, N segments,
the scenario, the target and a run id. Apply it at once:

  kubectl apply -k DIR
  kubectl wait --for=condition=complete --timeout=1h job/hal9-loadtest-merge-RUN_ID
  kubectl logs job/hal9-loadtest-merge-RUN_ID     # the merged summary

flags:`

func runLoadKubernetes(args []string, stdout io.Writer) error {
	var f kubernetes.LoadTest
	fs := flag.NewFlagSet("load kubernetes", flag.ContinueOnError)
	fs.IntVar(&f.Segments, "segments", 0, "how many segments (pods) share the load: the Job's parallelism and completions")
	fs.StringVar(&f.Out, "out", "", "directory to write the overlay's kustomization.yaml into (created)")
	fs.StringVar(&f.Manifests, "manifests", "deploy/kubernetes/loadtest", "the load-test kustomization the overlay builds on")
	fs.StringVar(&f.Scenario, "scenario", "smoke.yaml", "scenario file name, one of the load test's generated/scenarios (scenarios/*.yaml; make manifests)")
	fs.StringVar(&f.Target, "target", "http://hal9:8080", "the server's base URL as the pods see it (the hal9 Service in the same namespace by default)")
	fs.StringVar(&f.RunID, "run-id", "", "name of this test (lower-case letters, digits, '-'; default lt-<UTC time>): object names end in it, summaries go to /results/RUN_ID")
	fs.StringVar(&f.Namespace, "namespace", "", "namespace of the objects (default: kubectl's)")
	fs.StringVar(&f.Image, "image", "", "the image, e.g. hal9-lab/hal9:v1.2.3 (default: the load test's)")
	durationflag.Var(fs, &f.StartIn, "start-in", 2*time.Minute, "start the segments this long after now: time to apply the overlay, schedule the pods and pull the image")
	fs.StringVar(&f.StartAt, "start-at", "", "start at this RFC 3339 time instead of --start-in")
	durationflag.Var(fs, &f.MergeWait, "merge-wait", 0, "how long the merge Job waits for the summaries (default: until the scenario's longest possible end + 5m)")
	fs.Float64Var(&f.Scale, "scale", 1, "multiply durations and VU/rate counts, as hal9-lab load --scale")
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
	start, kust, err := f.Overlay(now)
	if err != nil {
		return fmt.Errorf("load kubernetes: %w", err)
	}
	if err := os.MkdirAll(f.Out, 0o755); err != nil {
		return fmt.Errorf("load kubernetes: --out %s: %w", f.Out, err)
	}
	p := filepath.Join(f.Out, "kustomization.yaml")
	if err := os.WriteFile(p, kust, 0o644); err != nil {
		return fmt.Errorf("load kubernetes: %w", err)
	}
	id := f.RunID
	if id == "" {
		id = kubernetes.DefaultRunID(now)
	}
	fmt.Fprintf(stdout, "wrote %s: %d segments of %s against %s, starting at %s (in %s), run id %s\n",
		p, f.Segments, f.Scenario, f.Target, start.Format(time.RFC3339), time.Until(start).Round(time.Second), id)
	fmt.Fprintf(stdout, "apply it now:   kubectl apply -k %s\nthe verdict:    kubectl wait --for=condition=complete --timeout=1h job/hal9-loadtest-merge-%s\nmerged summary: kubectl logs job/hal9-loadtest-merge-%s\n", f.Out, id, id)
	return nil
}
