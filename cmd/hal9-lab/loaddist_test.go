package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/hal9-lab/hal9-lab/deploy/kubernetes"
	"github.com/hal9-lab/hal9-lab/lab/load"
	"github.com/hal9-lab/hal9-lab/lab/workload"
)

// TestMain lets a test start this binary as hal9-lab itself (real
// processes, each with its own environment).
func TestMain(m *testing.M) {
	if os.Getenv("HAL9_LAB_TEST_AS_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestResolveSegment(t *testing.T) {
	for _, c := range []struct {
		seg, index string
		want       load.Segment
		err        string
	}{
		{"", "", load.Segment{}, ""},
		{"2/3", "", load.Segment{Index: 2, Count: 3}, ""},
		{"auto/3", "0", load.Segment{Index: 1, Count: 3}, ""},
		{"auto/3", "2", load.Segment{Index: 3, Count: 3}, ""},
		{"auto/3", "", load.Segment{}, "JOB_COMPLETION_INDEX is not set"},
		{"auto/3", "3", load.Segment{}, "JOB_COMPLETION_INDEX=3 is out of range for 3 segments (0..2)"},
		{"auto/3", "-1", load.Segment{}, "is not an index 0..2"},
		{"auto/3", "x", load.Segment{}, "is not an index 0..2"},
		{"auto/0", "0", load.Segment{}, "want auto/n with n ≥ 1"},
		{"auto/", "0", load.Segment{}, "want auto/n"},
		{"4/3", "", load.Segment{}, "want i/n"},
	} {
		got, err := resolveSegment(c.seg, func(k string) string {
			if k == "JOB_COMPLETION_INDEX" {
				return c.index
			}
			return ""
		})
		switch {
		case c.err == "" && (err != nil || got != c.want):
			t.Errorf("%q index %q: %v, %v; want %v", c.seg, c.index, got, err, c.want)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%q index %q: err = %v, want %q", c.seg, c.index, err, c.err)
		}
	}
}

func TestCheckStartAt(t *testing.T) {
	now := time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)
	for _, c := range []struct {
		raw  string
		want time.Time
		err  string
	}{
		{"2026-01-02T15:05:00Z", time.Date(2026, 1, 2, 15, 5, 0, 0, time.UTC), ""},
		{"2026-01-02T16:05:00.5+01:00", time.Date(2026, 1, 2, 15, 5, 0, 5e8, time.UTC), ""},
		{"2026-01-02T15:04:00Z", time.Date(2026, 1, 2, 15, 4, 0, 0, time.UTC), ""}, // 5 s late: within 10 s
		{"2026-01-02T15:03:00Z", time.Time{}, "was 1m5s ago, more than --start-late-max 10s"},
		{"2026-01-05T15:03:00Z", time.Time{}, "more than 24h0m0s: check the date"},
		{"in 2 minutes", time.Time{}, "want an RFC 3339 time such as"},
		{"set-by-hal9-lab-load-kubernetes", time.Time{}, "render the Job with 'hal9-lab load kubernetes'"},
	} {
		got, err := checkStartAt(c.raw, 10*time.Second, now)
		switch {
		case c.err == "" && (err != nil || !got.Equal(c.want)):
			t.Errorf("%q: %v, %v; want %v", c.raw, got, err, c.want)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%q: err = %v, want %q", c.raw, err, c.err)
		}
	}
}

func TestParseMergeArgs(t *testing.T) {
	for _, c := range []struct {
		args []string
		err  string
	}{
		{[]string{"--dir", "d", "a.json"}, "not both"},
		{[]string{"--expect", "2"}, "give the summary files"},
		{[]string{"--dir", "d", "--expect", "-1"}, "--expect -1 must be at least 1"},
		{[]string{"--dir", "d", "--wait", "1m"}, "--wait needs --dir and --expect"},
		{[]string{"a.json", "--expect", "2", "--wait", "1m"}, "--wait needs --dir and --expect"},
		{[]string{"--dir", "d", "--expect", "2", "--wait", "-1s"}, "must not be negative"},
		{[]string{"--dir", "d", "--expect", "2", "--wait", "1m"}, ""},
		{[]string{"a.json", "b.json", "--expect", "2"}, ""},
	} {
		_, _, err := parseMergeArgs(c.args)
		switch {
		case c.err == "" && err != nil:
			t.Errorf("%v: %v", c.args, err)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%v: err = %v, want %q", c.args, err, c.err)
		}
	}
}

// hal9lab starts this test binary as hal9-lab with args and extra env.
func hal9lab(ctx context.Context, env []string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, os.Args[0], args...)
	cmd.Env = append(os.Environ(), append([]string{"HAL9_LAB_TEST_AS_MAIN=1"}, env...)...)
	return cmd
}

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// TestDistributedLoad runs what the Kubernetes load test runs, as local
// processes: N segments with --segment auto/N (JOB_COMPLETION_INDEX) and
// one --start-at, a merge waiting for their summaries in a shared
// directory; the merged counts must equal one whole run's, and the merged
// summary must report the measured start skew.
func TestDistributedLoad(t *testing.T) {
	const n = 3
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	dir := t.TempDir()
	scenario := filepath.Join(dir, "s.yaml")
	os.WriteFile(scenario, []byte(`name: dist
workload:
  kind: http
  requests: [{path: /}]
scenarios:
  s: {executor: constant-arrival-rate, rate: 30, duration: 2s, preAllocatedVUs: 3}
thresholds:
  iterations: ["count==60"]
`), 0o644)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// The whole test in one run.
	whole := filepath.Join(dir, "whole.json")
	if err := runLoad(ctx, []string{scenario, "--target", srv.URL, "--quiet", "--summary-export", whole}); err != nil {
		t.Fatalf("whole run: %v", err)
	}

	results := filepath.Join(dir, "results", "run1")
	merged := filepath.Join(dir, "merged.json")
	var mergeOut bytes.Buffer
	merge := hal9lab(ctx, nil, "load", "merge", "--dir", results, "--expect", strconv.Itoa(n), "--wait", "90s", "--summary-export", merged)
	merge.Stdout, merge.Stderr = &mergeOut, &mergeOut
	if err := merge.Start(); err != nil { // first: it waits for the segments
		t.Fatal(err)
	}
	start := time.Now().Add(3 * time.Second).UTC().Truncate(time.Millisecond)
	segs := make([]*exec.Cmd, n)
	outs := make([]bytes.Buffer, n)
	for i := range n {
		segs[i] = hal9lab(ctx, []string{"JOB_COMPLETION_INDEX=" + strconv.Itoa(i)},
			"load", scenario, "--target="+srv.URL, "--segment=auto/"+strconv.Itoa(n),
			"--start-at="+start.Format(time.RFC3339Nano), "--start-late-max=1m", "--run-id=run1",
			"--out="+filepath.Join(results, "segment-"+strconv.Itoa(i)), "--no-threshold-exit", "--quiet")
		segs[i].Stdout, segs[i].Stderr = &outs[i], &outs[i]
		if err := segs[i].Start(); err != nil {
			t.Fatal(err)
		}
	}
	for i, c := range segs {
		// Each segment fails count==60 alone; --no-threshold-exit leaves the verdict to the merge.
		if err := c.Wait(); err != nil {
			t.Fatalf("segment %d: %v\n%s", i, err, outs[i].String())
		}
	}
	if err := merge.Wait(); err != nil {
		t.Fatalf("merge: exit %d: %v\n%s", exitCode(err), err, mergeOut.String())
	}

	w, err := load.ReadSummary(whole)
	if err != nil {
		t.Fatal(err)
	}
	m, err := load.ReadSummary(merged)
	if err != nil {
		t.Fatal(err)
	}
	for _, metric := range []string{"iterations", "http_reqs"} {
		if got, want := m.Metrics[metric].Values["count"], w.Metrics[metric].Values["count"]; got != want || want != 60 {
			t.Errorf("%s: merged %v, one whole run %v (want 60)", metric, got, want)
		}
	}
	if !m.Hal9Lab.ThresholdsOK || m.Hal9Lab.Segments != n {
		t.Errorf("merged: thresholds ok %v, %d segments; want true, %d", m.Hal9Lab.ThresholdsOK, m.Hal9Lab.Segments, n)
	}
	// The skew is what the segments measured, latest − earliest start.
	var first, last time.Time
	for i := range n {
		s, err := load.ReadSummary(filepath.Join(results, "segment-"+strconv.Itoa(i), "summary.json"))
		if err != nil {
			t.Fatal(err)
		}
		h := s.Hal9Lab
		if h.Segment != fmt.Sprintf("%d/%d", i+1, n) || h.StartAt == nil || !h.StartAt.Equal(start) || h.Started.Before(start) {
			t.Errorf("segment %d: segment %q, start_at %v, started %v; want %d/%d, %v, not before it", i, h.Segment, h.StartAt, h.Started, i+1, n, start)
		}
		if first.IsZero() || h.Started.Before(first) {
			first = h.Started
		}
		if h.Started.After(last) {
			last = h.Started
		}
	}
	wantSkew := float64(last.Sub(first)) / float64(time.Millisecond)
	if m.Hal9Lab.StartSkewMs == nil || *m.Hal9Lab.StartSkewMs != wantSkew || len(m.Hal9Lab.SegmentStarts) != n {
		t.Errorf("merged start skew %v ms over %d starts, want %v ms over %d", m.Hal9Lab.StartSkewMs, len(m.Hal9Lab.SegmentStarts), wantSkew, n)
	}
	if m.Hal9Lab.StartAt == nil || !m.Hal9Lab.StartAt.Equal(start) {
		t.Errorf("merged start_at %v, want %v", m.Hal9Lab.StartAt, start)
	}
	if !strings.Contains(mergeOut.String(), fmt.Sprintf("start skew %.1f ms across %d segments", wantSkew, n)) {
		t.Errorf("the merge's text summary does not report the skew:\n%s", mergeOut.String())
	}

	// Judged on the merged result: two of the three segments fail count==60 (exit 99).
	two := []string{"load", "merge", filepath.Join(results, "segment-0", "summary.json"), filepath.Join(results, "segment-1", "summary.json")}
	if out, err := hal9lab(ctx, nil, two...).CombinedOutput(); exitCode(err) != 99 {
		t.Errorf("merge of 2 of 3 segments: exit %d, want 99\n%s", exitCode(err), out)
	}
	// A segment merged twice would count its load twice.
	seg0 := filepath.Join(results, "segment-0", "summary.json")
	if err := runLoad(ctx, []string{"merge", seg0, seg0}); err == nil || !strings.Contains(err.Error(), "both segment 1/3") {
		t.Errorf("merge of a segment twice: %v", err)
	}
	// --expect refuses an incomplete or a larger set.
	if err := runLoad(ctx, []string{"merge", "--dir", results, "--expect", "4"}); err == nil || !strings.Contains(err.Error(), "3 of 4 summaries") {
		t.Errorf("--expect 4 of 3: %v", err)
	}
	if err := runLoad(ctx, []string{"merge", "--dir", results, "--expect", "2"}); err == nil || !strings.Contains(err.Error(), "3 summaries in") {
		t.Errorf("--expect 2 of 3: %v", err)
	}
}

var varRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// expand does the kubelet's $(VAR) expansion of a container's arguments.
func expand(t *testing.T, args []string, env map[string]string) []string {
	t.Helper()
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = varRef.ReplaceAllStringFunc(a, func(ref string) string {
			v, ok := env[ref[2:len(ref)-1]]
			if !ok {
				t.Errorf("argument %q: %s is not in the container's environment (the kubelet would pass it literally)", a, ref)
				return ref
			}
			return v
		})
	}
	return out
}

// TestKubernetesLoadtestParses renders the load test the way a user
// launches it and parses the Jobs' command lines with hal9-lab's own flags,
// for every completion index.
func TestKubernetesLoadtestParses(t *testing.T) {
	const n = 3
	out := t.TempDir()
	var stdout bytes.Buffer
	if err := runLoadKubernetes([]string{"--segments", strconv.Itoa(n), "--out", out, "--manifests", "../../deploy/kubernetes/loadtest",
		"--scenario", "smoke.yaml", "--start-in", "90s", "--run-id", "lt-test", "--namespace", "hal9", "--image", "hal9-lab/hal9:v9"}, &stdout); err != nil {
		t.Fatal(err)
	}
	objs, err := kubernetes.Render(out)
	if err != nil {
		t.Fatal(err)
	}
	cms := map[string]*corev1.ConfigMap{}
	jobs := map[string]*batchv1.Job{}
	for _, o := range objs {
		switch o.Kind {
		case "ConfigMap":
			var cm corev1.ConfigMap
			if err := kubernetes.DecodeStrict(o, &cm); err != nil {
				t.Fatal(err)
			}
			cms[cm.Name] = &cm
		case "Job":
			var j batchv1.Job
			if err := kubernetes.DecodeStrict(o, &j); err != nil {
				t.Fatal(err)
			}
			jobs[j.Name] = &j
		}
	}
	seg, merge := jobs["hal9-loadtest-lt-test"], jobs["hal9-loadtest-merge-lt-test"]
	if seg == nil || merge == nil {
		t.Fatalf("jobs %v: want hal9-loadtest-lt-test and hal9-loadtest-merge-lt-test", jobs)
	}
	if seg.Namespace != "hal9" || *seg.Spec.Parallelism != n || *seg.Spec.Completions != n || *seg.Spec.CompletionMode != batchv1.IndexedCompletion {
		t.Errorf("segments Job: namespace %q, parallelism %d, completions %d, mode %s; want hal9, %d, %d, Indexed",
			seg.Namespace, *seg.Spec.Parallelism, *seg.Spec.Completions, *seg.Spec.CompletionMode, n, n)
	}
	podEnv := func(c corev1.Container) map[string]string {
		env := map[string]string{}
		for _, ef := range c.EnvFrom {
			cm := cms[ef.ConfigMapRef.Name]
			if cm == nil {
				t.Fatalf("container %s: ConfigMap %s not rendered", c.Name, ef.ConfigMapRef.Name)
			}
			for k, v := range cm.Data {
				env[k] = v
			}
		}
		return env
	}
	mounts := func(spec corev1.PodSpec) map[string]string { // mount path → ConfigMap name or claim
		m := map[string]string{}
		for _, v := range spec.Volumes {
			for _, vm := range spec.Containers[0].VolumeMounts {
				if vm.Name != v.Name {
					continue
				}
				switch {
				case v.ConfigMap != nil:
					m[vm.MountPath] = v.ConfigMap.Name
				case v.PersistentVolumeClaim != nil:
					m[vm.MountPath] = "claim:" + v.PersistentVolumeClaim.ClaimName
				}
			}
		}
		return m
	}
	sc := seg.Spec.Template.Spec.Containers[0]
	if sc.Image != "hal9-lab/hal9:v9" || sc.Command[0] != "/usr/local/bin/hal9-lab" || sc.Args[0] != "load" {
		t.Fatalf("segment container: image %q, command %q, args %q", sc.Image, sc.Command, sc.Args)
	}
	segMounts := mounts(seg.Spec.Template.Spec)
	var start time.Time
	for k := range n {
		env := podEnv(sc)
		env["JOB_COMPLETION_INDEX"] = strconv.Itoa(k) // set by the Job controller
		args := expand(t, sc.Args, env)
		if start.IsZero() {
			if start, err = time.Parse(time.RFC3339Nano, env["HAL9_START_AT"]); err != nil {
				t.Fatal(err)
			}
		}
		getenv := func(key string) string { return env[key] }
		a, err := parseLoadArgs(args[1:], getenv, start.Add(-time.Second))
		if err != nil {
			t.Fatalf("index %d: %v (args %q)", k, err, args)
		}
		if a.seg != (load.Segment{Index: k + 1, Count: n}) || !a.start.Equal(start) || !a.noThresholdExit ||
			a.out != "/results/lt-test/segment-"+strconv.Itoa(k) || a.target != "http://hal9:8080" {
			t.Errorf("index %d: segment %v, start %v, no-threshold-exit %v, out %q, target %q", k, a.seg, a.start, a.noThresholdExit, a.out, a.target)
		}
		// The scenario file, from the ConfigMap mounted where the argument points.
		cm := cms[segMounts[filepath.Dir(a.file)]]
		if cm == nil {
			t.Fatalf("%s: no ConfigMap mounted at %s", a.file, filepath.Dir(a.file))
		}
		local := filepath.Join(t.TempDir(), filepath.Base(a.file))
		os.WriteFile(local, []byte(cm.Data[filepath.Base(a.file)]), 0o644)
		if _, _, err := workload.Load(local); err != nil {
			t.Errorf("scenario %s from ConfigMap %s: %v", a.file, cm.Name, err)
		}
		// Too late is refused before any load.
		if _, err := parseLoadArgs(args[1:], getenv, start.Add(time.Minute)); err == nil || !strings.Contains(err.Error(), "launch the test again") {
			t.Errorf("a segment starting 1 min late: %v", err)
		}
	}
	mc := merge.Spec.Template.Spec.Containers[0]
	margs := expand(t, mc.Args, podEnv(mc))
	if len(margs) < 2 || margs[0] != "load" || margs[1] != "merge" {
		t.Fatalf("merge args %q", margs)
	}
	f, files, err := parseMergeArgs(margs[2:])
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 0 || f.dir != "/results/lt-test" || f.expect != n || f.wait < 90*time.Second {
		t.Errorf("merge: dir %q, expect %d, wait %s; want /results/lt-test (the segments' --out parent), %d, ≥ 90s", f.dir, f.expect, f.wait, n)
	}
	if a, b := segMounts["/results"], mounts(merge.Spec.Template.Spec)["/results"]; a == "" || a != b {
		t.Errorf("/results: segments mount %q, merge mounts %q: want the same claim", a, b)
	}
}
