package main

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hal9-lab/hal9-lab/lab/capacity"
)

func TestParseCapacityArgs(t *testing.T) {
	env := func(string) string { return "" }
	f, file, err := parseCapacityArgs([]string{"scenarios/mix.yaml", "--target", "http://127.0.0.1:8080", "--slo", "http_req_duration:p(99)<500",
		"--slo", "http_req_failed:rate<0.01", "--step", "10s", "--start-rate", "50"}, env)
	if err != nil {
		t.Fatal(err)
	}
	if file != "scenarios/mix.yaml" || len(f.p.SLO) != 2 || f.p.Step != 10*time.Second || f.p.StartRate != 50 || f.p.Precision != 0.05 {
		t.Errorf("parsed %+v %q", f.p, file)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"x.yaml"}, "--target is required"},
		{[]string{"--target", "http://h"}, "exactly one scenario file"},
		{[]string{"x.yaml", "--target", "h:1"}, "must be an http:// or https:// URL"},
		{[]string{"x.yaml", "--target", "http://h", "--precision", "0"}, "--precision 0"},
		{[]string{"x.yaml", "--target", "http://h", "--precision", "1.5"}, "precision 1.5"},
		{[]string{"x.yaml", "--target", "http://h", "--growth", "1"}, "growth 1"},
		{[]string{"x.yaml", "--target", "http://h", "--step", "100ms"}, "step 100ms: want at least 1s"},
		{[]string{"x.yaml", "--target", "http://h", "--step", "0"}, "--step 0s: want a judged length of at least 1s, or leave --step out"},
		{[]string{"x.yaml", "--target", "http://h", "--settle", "-2s"}, `"-2s" must not be negative`},
		{[]string{"x.yaml", "--target", "http://h", "--cooldown", "-1s"}, `"-1s" must not be negative`},
		{[]string{"x.yaml", "--target", "http://h", "--slo", "p(99)<500"}, "want METRIC:EXPRESSION"},
		{[]string{"x.yaml", "--target", "http://h", "--slo", "http_req_duration:p(99)<<5"}, "not a number"},
		{[]string{"x.yaml", "--target", "http://h", "--max-vus", "0"}, "max VUs 0"},
		{[]string{"x.yaml", "--target", "http://h", "--nope"}, "flag provided but not defined"},
	} {
		_, _, err := parseCapacityArgs(c.args, env)
		var ee *exitError
		if err == nil || !strings.Contains(err.Error(), c.want) || !errors.As(err, &ee) || ee.code != 2 {
			t.Errorf("%v: err %v, want exit 2 with %q", c.args, err, c.want)
		}
	}
}

// Without --step and --settle the search sizes its steps (capacity.StepRule);
// given, they fix them, and --settle 0 means none.
func TestParseCapacityLengths(t *testing.T) {
	env := func(string) string { return "" }
	for _, c := range []struct {
		args         []string
		step, settle time.Duration
	}{
		{nil, 0, 0},
		{[]string{"--step", "20s", "--settle", "5s"}, 20 * time.Second, 5 * time.Second},
		{[]string{"--settle", "0"}, 0, capacity.NoSettle},
		{[]string{"--step", "3s"}, 3 * time.Second, 0},
	} {
		f, _, err := parseCapacityArgs(append([]string{"x.yaml", "--target", "http://h"}, c.args...), env)
		if err != nil {
			t.Fatalf("%v: %v", c.args, err)
		}
		if f.p.Step != c.step || f.p.Settle != c.settle {
			t.Errorf("%v: step %s settle %s, want %s %s", c.args, f.p.Step, f.p.Settle, c.step, c.settle)
		}
		want := capacity.Params{StartRate: capacity.DefaultStartRate, Growth: capacity.DefaultGrowth, Ceiling: capacity.DefaultCeiling,
			Precision: capacity.DefaultPrecision, MaxSteps: capacity.DefaultMaxSteps, MaxVUs: capacity.DefaultMaxVUs, Step: c.step, Settle: c.settle}
		if got := f.p; got.SLO != nil || got.Cooldown != 0 || got.StartRate != want.StartRate || got.Growth != want.Growth || got.Ceiling != want.Ceiling ||
			got.Precision != want.Precision || got.MaxSteps != want.MaxSteps || got.MaxVUs != want.MaxVUs {
			t.Errorf("%v: params %+v, want the search's defaults %+v", c.args, got, want)
		}
	}
}

// TestWriteCapacityPrintsRating: the knee comes with the --capacity-rps to set.
func TestWriteCapacityPrintsRating(t *testing.T) {
	var b strings.Builder
	writeCapacity(&b, &capacity.Result{Knee: capacity.Knee{Found: true, Rate: 700, RequestRate: 1077.4, LimitedBy: capacity.LimitServer, Bound: 733}})
	if want := "rated capacity, if the target is one server: --capacity-rps 1070 (the knee, 1077 req/s, rounded down;"; !strings.Contains(b.String(), want) {
		t.Errorf("output lacks %q:\n%s", want, b.String())
	}
}
