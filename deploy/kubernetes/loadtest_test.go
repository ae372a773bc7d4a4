package kubernetes_test

import (
	"strings"
	"testing"
	"time"

	"github.com/hal9-lab/hal9-lab/deploy/kubernetes"
)

func TestLoadTestOverlayErrors(t *testing.T) {
	now := time.Now()
	base := kubernetes.LoadTest{Segments: 2, Out: t.TempDir(), Manifests: "loadtest", Scenario: "smoke.yaml",
		Target: "http://hal9:8080", StartIn: time.Minute, Scale: 1}
	for _, c := range []struct {
		edit func(*kubernetes.LoadTest)
		err  string
	}{
		{func(f *kubernetes.LoadTest) {}, ""},
		{func(f *kubernetes.LoadTest) { f.Out = "" }, "--out DIR is required"},
		{func(f *kubernetes.LoadTest) { f.Segments = 0 }, "--segments 0 must be 1..1000"},
		{func(f *kubernetes.LoadTest) { f.Target = "hal9:8080" }, "must be an http:// or https:// URL"},
		{func(f *kubernetes.LoadTest) { f.Scenario = "../smoke.yaml" }, "give a file name"},
		{func(f *kubernetes.LoadTest) { f.Scenario = "nope.yaml" }, "--scenario nope.yaml"},
		{func(f *kubernetes.LoadTest) { f.RunID = "Run_1" }, "--run-id \"Run_1\""},
		{func(f *kubernetes.LoadTest) { f.Manifests = t.TempDir() }, "has no kustomization.yaml"},
		{func(f *kubernetes.LoadTest) { f.StartIn = 0 }, "--start-in 0s must be positive"},
		{func(f *kubernetes.LoadTest) { f.StartAt = "2001-01-01T00:00:00Z" }, "is not in the future"},
		{func(f *kubernetes.LoadTest) { f.StartAt = "soon" }, "want an RFC 3339 time"},
		{func(f *kubernetes.LoadTest) { f.Image = "a b" }, "--image"},
		{func(f *kubernetes.LoadTest) { f.Scale = 0 }, "--scale 0"},
	} {
		f := base
		c.edit(&f)
		_, _, err := f.Overlay(now)
		switch {
		case c.err == "" && err != nil:
			t.Errorf("valid flags: %v", err)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("err = %v, want %q", err, c.err)
		}
	}
}

// TestLoadTestOverlay: the overlay is a kustomization in kustomize's own
// spelling (kustomize reads APIVersion too, kubectl's strict mode does
// not), with the ConfigMap contract the load test's pods read.
func TestLoadTestOverlay(t *testing.T) {
	now := time.Date(2026, 5, 1, 3, 0, 0, 0, time.UTC)
	lt := kubernetes.LoadTest{Segments: 3, Out: t.TempDir(), Manifests: "loadtest", Scenario: "smoke.yaml", Target: "http://hal9:8080",
		StartIn: time.Minute, Scale: 0.5, Image: "hal9-lab/hal9:v9"}
	start, b, err := lt.Overlay(now)
	if err != nil {
		t.Fatal(err)
	}
	if !start.Equal(now.Add(time.Minute)) {
		t.Errorf("start %v", start)
	}
	for _, want := range []string{"apiVersion: kustomize.config.k8s.io/v1beta1\n", "kind: Kustomization\n", "nameSuffix: -lt-20260501-030000\n",
		"HAL9_SEGMENTS=3", "HAL9_START_AT=2026-05-01T03:01:00Z", "HAL9_RUN_ID=lt-20260501-030000", "HAL9_SCALE=0.5", "HAL9_MERGE_WAIT=",
		`"value": 3}`, "newTag: v9"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("overlay lacks %q:\n%s", want, b)
		}
	}
}
