package readings

import (
	"testing"

	"github.com/hal9-lab/hal9-lab/lab/baseline"
	"github.com/hal9-lab/hal9-lab/lab/report"
)

// TestLegSamplesOps: an op's quantiles enter the gate only with enough
// requests per run for them (p50 20, p95 200, p99 1,000; rates 100).
func TestLegSamplesOps(t *testing.T) {
	l := report.Leg{Name: "sqlite", Scenarios: []report.Scenario{{Name: "smoke", Metrics: report.Metrics{HTTPReqs: 2000, Ops: []report.OpMetrics{
		{Op: "signal", HTTPReqs: 1200, ReqP50: 200, ReqP95: 400, ReqP99: 600},
		{Op: "signal:L3", HTTPReqs: 300, ReqP50: 210, ReqP95: 420, ReqP99: 610},
		{Op: "status", HTTPReqs: 150, ReqP50: 2, ReqP95: 5, ReqP99: 9},
		{Op: "setup", HTTPReqs: 20, ReqP50: 50, ReqP95: 80, ReqP99: 90},
		{Op: "api_key", HTTPReqs: 8, ReqP50: 60},
	}}}}}
	got := map[string]bool{}
	for k := range LegSamples(l) {
		if k.Op != "" {
			got[k.Name()] = true
		}
	}
	want := map[string]bool{
		"signal/http_req_duration_p50_ms": true, "signal/http_req_duration_p95_ms": true, "signal/http_req_duration_p99_ms": true,
		"signal/error_rate": true, "signal/http_reqs": true,
		"signal:L3/http_req_duration_p50_ms": true, "signal:L3/http_req_duration_p95_ms": true, "signal:L3/error_rate": true, "signal:L3/http_reqs": true,
		"status/http_req_duration_p50_ms": true, "status/error_rate": true, "status/http_reqs": true,
		"setup/http_req_duration_p50_ms": true,
	}
	for n := range want {
		if !got[n] {
			t.Errorf("missing %s", n)
		}
	}
	for n := range got {
		if !want[n] {
			t.Errorf("unexpected %s (below its minimum count)", n)
		}
	}
}

func TestDropPartialOps(t *testing.T) {
	s := baseline.Samples{
		{Leg: "sqlite", Scenario: "s", Metric: baseline.ErrorRate}:                  {0, 0, 0},
		{Leg: "sqlite", Scenario: "s", Op: "signal", Metric: baseline.ErrorRate}:    {0, 0, 0, 0},
		{Leg: "sqlite", Scenario: "s", Op: "signal:L2", Metric: baseline.ErrorRate}: {0, 0, 0},
	}
	dropped := DropPartialOps(s, 4)
	if len(dropped) != 1 || dropped[0].Op != "signal:L2" || len(s) != 2 {
		t.Errorf("dropped %v, left %v: want only the op series with fewer values than runs gone", dropped, s.Keys())
	}
}

func TestBound(t *testing.T) {
	for k, want := range map[baseline.Key]string{
		{Op: "signal:L3", Metric: baseline.ReqDurationP50}: "llm",
		{Op: "auth", Metric: baseline.ReqDurationP95}:      "cpu (bcrypt)",
		{Op: "status", Metric: baseline.ReqDurationP95}:    "cpu",
		{Metric: baseline.ReqDurationP99}:                  "mixed",
		{Op: "signal", Metric: baseline.ErrorRate}:         "",
	} {
		if got := Bound(k); got != want {
			t.Errorf("Bound(%s) = %q, want %q", k, got, want)
		}
	}
}
