package history

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/hal9-lab/hal9-lab/internal/browsertest"
	"github.com/hal9-lab/hal9-lab/lab/baseline"
)

// trendResult is a check of three series: an aggregate latency with a
// regression in its window and an old improvement, a login op's error
// rate, and ratios to moving references (shown, not checked).
func trendResult() Result {
	x := steps(21, 40, 12, 0.01, -0.10)
	for i := 36; i < 40; i++ {
		x[i] *= 1.12
	}
	agg := seriesOf(baseline.ReqDurationP95, x)
	login := seriesOf(baseline.ErrorRate, make([]float64, 40))
	login.Op = "login"
	moving := seriesOf(baseline.ReqDurationP99, steps(22, 10, 0, 0.02, 0))
	moving.Kind, moving.Group, moving.Judged = Ratio, MovingReference, false
	return Check([]Series{agg, login, moving}, testOptions())
}

func TestTrendRendersInChromium(t *testing.T) {
	bin := browsertest.Chromium(t)
	res := trendResult()
	if len(res.ChangePoints) != 2 || len(res.Regressions()) != 1 {
		t.Fatalf("the fixture's check found %d change points, %d regressions; want 2, 1", len(res.ChangePoints), len(res.Regressions()))
	}
	p, err := WriteTrend(t.TempDir(), res, "sqlite://reports/history.db")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := os.ReadFile(p)
	if m := regexp.MustCompile(`(?i)(src|href)\s*=\s*"(https?:)?//|<link|@import`).FindString(string(page)); m != "" {
		t.Errorf("trend.html loads something from elsewhere (%s): it must be self-contained", m)
	}
	dom := browsertest.DumpDOM(t, bin, p)
	n, ok := browsertest.Rendered(dom)
	if !ok {
		t.Fatalf("no data-rendered marker: the script did not finish\n%s", browsertest.Head(dom, 3000))
	}
	if n != len(res.Series) {
		t.Errorf("rendered %d charts, want %d (one per series)", n, len(res.Series))
	}
	if errs, clean := browsertest.Errors(dom); !clean || errs != "" {
		t.Errorf("script errors: %q", errs)
	}
	for _, name := range []string{"http_req_duration_p95_ms · synthetic", "error_rate · synthetic", "http_req_duration_p99_ms · ratio to moving reference (shown, not checked)",
		"profile trial", "sqlite · mix", "op: all operations", "op: login", "1 regression(s) in the window"} {
		if !strings.Contains(dom, name) {
			t.Errorf("the rendered page lacks %q", name)
		}
	}
	if bands := strings.Count(dom, `class="commit-range"`); bands != len(res.ChangePoints) {
		t.Errorf("%d commit ranges shaded, want %d (one per change point)", bands, len(res.ChangePoints))
	}
	if shot := os.Getenv("HAL9_REPORT_SCREENSHOT"); shot != "" {
		browsertest.Screenshot(t, bin, p, strings.TrimSuffix(shot, ".png")+"-trend.png")
	}
}

func TestTrendEmpty(t *testing.T) {
	bin := browsertest.Chromium(t)
	p, err := WriteTrend(filepath.Join(t.TempDir(), "out"), Result{Window: 5}, "x")
	if err != nil {
		t.Fatal(err)
	}
	dom := browsertest.DumpDOM(t, bin, p)
	if n, ok := browsertest.Rendered(dom); !ok || n != 0 || !strings.Contains(dom, "holds no series yet") {
		t.Errorf("an empty history's page: rendered %d (%v)\n%s", n, ok, browsertest.Head(dom, 2000))
	}
}
