package main

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hal9-lab/hal9-lab/lab/load"
)

func writeScenario(t *testing.T, threshold string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "s.yaml")
	y := `name: cli
description: cli test
workload:
  kind: http
  requests: [{path: /}]
scenarios:
  s: {executor: constant-arrival-rate, rate: 40, duration: 1s, preAllocatedVUs: 2}
thresholds:
  http_reqs: ["` + threshold + `"]
`
	if err := os.WriteFile(p, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRunLoad(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	ctx := context.Background()
	dir := t.TempDir()

	// passing thresholds: exit 0, summary written; flags after the file work
	ok := writeScenario(t, "count==40")
	if err := runLoad(ctx, []string{ok, "--target", srv.URL, "--quiet", "--summary-export", filepath.Join(dir, "a.json")}); err != nil {
		t.Fatalf("passing run: %v", err)
	}
	if s, err := load.ReadSummary(filepath.Join(dir, "a.json")); err != nil || s.Metrics["http_reqs"].Values["count"] != 40 {
		t.Fatalf("summary: %v", err)
	}

	// failing threshold: exit code 99
	bad := writeScenario(t, "count==41")
	err := runLoad(ctx, []string{"--quiet", "--target", srv.URL, "--out", filepath.Join(dir, "out"), bad})
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != 99 {
		t.Fatalf("failing run: err = %v, want exit code 99", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "out", "summary.json")); err != nil {
		t.Fatalf("--out: %v", err)
	}

	// two segments, merged, equal the whole
	for i, seg := range []string{"1/2", "2/2"} {
		f := filepath.Join(dir, "seg"+string(rune('1'+i))+".json")
		if err := runLoad(ctx, []string{ok, "--quiet", "--target", srv.URL, "--segment", seg, "--summary-export", f}); err == nil {
			t.Fatalf("a half alone should fail count==40")
		}
	}
	if err := runLoad(ctx, []string{"merge", "--summary-export", filepath.Join(dir, "m.json"),
		filepath.Join(dir, "seg1.json"), filepath.Join(dir, "seg2.json")}); err != nil {
		t.Fatalf("merge: %v", err)
	}
	// flags after the files, as for load
	if err := runLoad(ctx, []string{"merge", filepath.Join(dir, "seg1.json"), filepath.Join(dir, "seg2.json"),
		"--summary-export", filepath.Join(dir, "m2.json")}); err != nil {
		t.Fatalf("merge, flag last: %v", err)
	}
	if s, err := load.ReadSummary(filepath.Join(dir, "m2.json")); err != nil || s.Metrics["http_reqs"].Values["count"] != 40 {
		t.Fatalf("merged summary (flag last): %v", err)
	}

	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close()
	notDir := filepath.Join(dir, "file")
	if err := os.WriteFile(notDir, nil, 0o644); err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{ok}, "--target is required"},
		{[]string{ok, "--target", "localhost:1"}, "must be an http:// or https:// URL"},
		{[]string{"--target", srv.URL}, "want exactly one scenario file"},
		{[]string{ok, "--target", srv.URL, "--segment", "3/2"}, "--segment"},
		{[]string{ok, "--target", srv.URL, "--scale", "-1"}, "--scale"},
		{[]string{filepath.Join(dir, "missing.yaml"), "--target", srv.URL}, "read scenario file"},
		{[]string{"merge"}, "give the summary files"},
		{[]string{ok, "--target", srv.URL, "--scale", "1e9"}, "--scale 1e+09 must be in (0, 100]"},
		{[]string{ok, "--target", deadURL}, "workload setup: target unreachable: GET " + deadURL + "/"},
		{[]string{ok, "--target", srv.URL, "--summary-export", filepath.Join(dir, "nonexistent", "s.json")}, "--summary-export " + filepath.Join(dir, "nonexistent", "s.json") + ": directory " + filepath.Join(dir, "nonexistent") + " does not exist"},
		{[]string{ok, "--target", srv.URL, "--summary-export", dir}, "is a directory"},
		{[]string{ok, "--target", srv.URL, "--out", filepath.Join(notDir, "sub")}, "--out " + filepath.Join(notDir, "sub") + ": cannot create the directory"},
		{[]string{"merge", filepath.Join(dir, "seg1.json"), "--summary-export", filepath.Join(dir, "nope", "m.json")}, "does not exist"},
	} {
		if err := runLoad(ctx, c.args); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: err = %v, want %q", c.args, err, c.want)
		}
	}
}

func TestRunBenchUsage(t *testing.T) {
	if err := runBench(context.Background(), nil); err == nil || !strings.Contains(err.Error(), "bench engine") {
		t.Errorf("err = %v", err)
	}
	if err := runBench(context.Background(), []string{"engine", "--duration", "10ms"}); err == nil {
		t.Error("a 10ms bench should be refused")
	}
}
