package main

import (
	"strings"
	"testing"

	"github.com/hal9-lab/hal9-lab/lab"
	"github.com/hal9-lab/hal9-lab/lab/baseline"
	"github.com/hal9-lab/hal9-lab/lab/profile"
)

// TestGateOptionsMinEffect: --min-effect names a metric of every op, or
// one op's metric as OP/METRIC (the end of Key.String()).
func TestGateOptionsMinEffect(t *testing.T) {
	o := lab.Options{Profile: &profile.Profile{Name: "smoke"}}
	g, err := gateOptions(o, 4, []string{"signal/http_req_duration_p50_ms=20%", "*_ms=15%"}, baseline.Alpha)
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[baseline.Key]float64{
		{Op: "signal", Metric: baseline.ReqDurationP50}: 0.20,
		{Op: "status", Metric: baseline.ReqDurationP50}: 0.15,
		{Metric: baseline.ReqDurationP50}:               0.15,
	} {
		if r := g.Rules.ForKey(k); r.MinEffect != want {
			t.Errorf("%s: min effect %v, want %v", k.Name(), r.MinEffect, want)
		}
	}
	if _, err := gateOptions(o, 4, []string{"sqlite/smoke/signal/http_req_duration_p50_ms=20%"}, baseline.Alpha); err == nil || !strings.Contains(err.Error(), "OP/METRIC") {
		t.Errorf("a leg/scenario pattern: %v, want it to say what to write", err)
	}
}
