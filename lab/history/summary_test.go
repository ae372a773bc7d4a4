package history

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/hal9-lab/hal9-lab/lab/baseline"
	"github.com/hal9-lab/hal9-lab/lab/report"
)

// legSamples stands in for the gate's readings.LegSamples (this package may
// not import lab): P95 and error rate per scenario.
func legSamples(l report.Leg) map[baseline.Key]float64 {
	out := map[baseline.Key]float64{}
	for _, sc := range l.Scenarios {
		out[baseline.Key{Leg: l.Name, Scenario: sc.Name, Metric: baseline.ReqDurationP95}] = sc.Metrics.ReqP95
		out[baseline.Key{Leg: l.Name, Scenario: sc.Name, Metric: baseline.ErrorRate}] = sc.Metrics.ErrorRate
	}
	return out
}

func leg(name, role string, run int, p95, errRate float64) report.Leg {
	return report.Leg{Name: name, Role: role, Run: run, Scenarios: []report.Scenario{{Name: "mix", Metrics: report.Metrics{ReqP95: p95, ErrorRate: errRate}}}}
}

func gateSummary() *report.RunSummary {
	return &report.RunSummary{Version: report.Version, Command: "gate", Profile: "nightly",
		StartedAt: time.Date(2026, 5, 1, 3, 0, 0, 0, time.UTC), Commit: "cand",
		Machine: baseline.Machine{CPUModel: "Test CPU", Cores: 2, GoVersion: "go1.26", OS: "linux", Kernel: "6.1"},
		Gate:    &report.Gate{Mode: "against", Against: "HEAD~1", Runs: 2},
		Legs: []report.Leg{ // A B A B …
			leg("sqlite", "candidate", 1, 330, 0.01), leg("sqlite", "reference", 1, 300, 0),
			leg("sqlite", "candidate", 2, 320, 0), leg("sqlite", "reference", 2, 320, 0.02),
		}}
}

func TestFromSummaryGateAgainst(t *testing.T) {
	r, err := FromSummary(gateSummary(), legSamples, "reports/runs/x/summary.json", "ref")
	if err != nil {
		t.Fatal(err)
	}
	if r.Reference != "ref" || r.Commit != "cand" || r.Profile != "nightly" || r.Command != "gate" || r.Machine != "Test CPU · 2 cores · go1.26 · linux 6.1" {
		t.Errorf("run %+v", r)
	}
	got := map[string]float64{}
	for _, v := range r.Values {
		got[string(v.Kind)+" "+v.Metric+" "+string(rune('0'+v.Repetition))] = v.Value
	}
	want := map[string]float64{
		"absolute http_req_duration_p95_ms 1": 330, "absolute http_req_duration_p95_ms 2": 320,
		"absolute error_rate 1": 0.01, "absolute error_rate 2": 0,
		"ratio http_req_duration_p95_ms 1": 1.1, "ratio http_req_duration_p95_ms 2": 1,
		"ratio error_rate 2": 0, // run 1's reference had no errors: no ratio
	}
	if len(got) != len(want) {
		t.Errorf("values %v, want %v", got, want)
	}
	for k, w := range want {
		if g, ok := got[k]; !ok || math.Abs(g-w) > 1e-12 {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, w)
		}
	}
	again, _ := FromSummary(gateSummary(), legSamples, "elsewhere/summary.json", "ref")
	if again.ID != r.ID {
		t.Error("the same summary from another path got another id")
	}
}

func TestFromSummaryRun(t *testing.T) {
	s := gateSummary()
	s.Gate, s.Command = nil, "run"
	s.Legs = []report.Leg{leg("sqlite", "", 1, 300, 0), leg("postgres", "", 1, 280, 0)}
	r, err := FromSummary(s, legSamples, "x", "ignored")
	if err != nil {
		t.Fatal(err)
	}
	if r.Reference != "" || len(r.Values) != 4 {
		t.Fatalf("run %+v", r)
	}
	for _, v := range r.Values {
		if v.Kind != Absolute {
			t.Errorf("a run without --against gave %s values", v.Kind)
		}
	}
}

func TestFromSummaryRefuses(t *testing.T) {
	cases := []struct {
		name string
		edit func(*report.RunSummary)
		want string
	}{
		{"interrupted", func(s *report.RunSummary) { s.Interrupted = true }, "interrupted"},
		{"lab errors", func(s *report.RunSummary) { s.LabErrors = []string{"sqlite run 1 failed"} }, "lab errors"},
		{"no time", func(s *report.RunSummary) { s.StartedAt = time.Time{} }, "not a hal9-lab summary"},
		{"odd role", func(s *report.RunSummary) { s.Legs[0].Role = "control" }, `role "control"`},
		{"nothing measured", func(s *report.RunSummary) { s.Legs = nil }, "no leg produced measurements"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := gateSummary()
			c.edit(s)
			if _, err := FromSummary(s, legSamples, "x/summary.json", ""); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("err = %v, want %q", err, c.want)
			}
		})
	}
}

func TestKeyOf(t *testing.T) {
	k := keyOf(baseline.Key{Leg: "sqlite", Scenario: "mix", Metric: "m"})
	if k != (Key{Leg: "sqlite", Scenario: "mix", Metric: "m"}) || k.String() != "sqlite/mix/m" {
		t.Errorf("keyOf = %+v (%s)", k, k)
	}
	if s := (Key{Leg: "a", Scenario: "b", Op: "login", Metric: "m"}).String(); s != "a/b/login/m" {
		t.Errorf("String with op = %s", s)
	}
	bk := baseline.Key{Leg: "sqlite", Scenario: "mix", Op: "signal:L3", Metric: "m"}
	if k := keyOf(bk); k.Op != "signal:L3" || k.String() != bk.String() {
		t.Errorf("keyOf(%s) = %+v (%s): the op and the key's string must carry over", bk, k, k)
	}
}
