package baseline

import (
	"math"
	"slices"
	"strings"
	"testing"
)

// TestBenjaminiHochberg on fixed p lists whose answers are worked by hand.
func TestBenjaminiHochberg(t *testing.T) {
	tests := []struct {
		name string
		ps   []float64
		q    float64
		want []bool
	}{
		// m=5, thresholds 0.01 0.02 0.03 0.04 0.05: rank 2 (0.024 > 0.02)
		// fails its own threshold, but rank 4 (0.039 ≤ 0.04) passes, and
		// step-up rejects every p up to the largest passing rank.
		{"step-up", []float64{0.039, 0.001, 0.3, 0.026, 0.024}, 0.05, []bool{true, true, false, true, true}},
		{"none", []float64{0.2, 0.06, 0.9}, 0.05, []bool{false, false, false}},
		// The gate's case: 4+4 runs, smallest p 0.029; two of three
		// quantiles at it pass (0.029 ≤ 2/3·0.05 = 0.033), one does not
		// (0.029 > 1/3·0.05 = 0.0167).
		{"two of three at the floor", []float64{0.029, 0.029, 0.486}, 0.05, []bool{true, true, false}},
		{"one of three at the floor", []float64{0.029, 0.343, 0.486}, 0.05, []bool{false, false, false}},
		// 40 series of a gate with 12 at the floor: 0.029 > 12/40·0.05 = 0.015.
		{"a dozen of forty", append(slices.Repeat([]float64{0.029}, 12), slices.Repeat([]float64{0.6}, 28)...), 0.05, make([]bool, 40)},
		{"single", []float64{0.04}, 0.05, []bool{true}},
		{"empty", nil, 0.05, []bool{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := BenjaminiHochberg(tt.ps, tt.q); !slices.Equal(got, tt.want) {
				t.Errorf("BH(%v) = %v, want %v", tt.ps, got, tt.want)
			}
		})
	}
}

// TestCalibrate: the minimum effect is max(rule, 2 × the baseline's range).
func TestCalibrate(t *testing.T) {
	rel := Rule{Pattern: "*_ms", MinEffect: 0.10}
	abs := Rule{Pattern: ErrorRate, MinEffect: 0.01, Absolute: true}
	tests := []struct {
		name string
		rule Rule
		base []float64
		want float64
	}{
		{"steady series keeps the rule", rel, []float64{100, 101, 102, 103}, 0.10},  // range 3/101.5 → 5.9 % < 10 %
		{"noisy series widens", rel, []float64{100, 110, 120, 130}, 2 * 30.0 / 115}, // range 30 / median 115 → 52 %
		{"absolute rate", abs, []float64{0, 0.01, 0.02, 0}, 0.04},                   // 2 × 2 points
		{"absolute steady", abs, []float64{0, 0, 0, 0}, 0.01},                       // no spread
		{"zero median keeps the rule", rel, []float64{0, 0, 0, 5}, 0.10},            // relative range undefined
		{"one value keeps the rule", rel, []float64{100}, 0.10},                     // no spread
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Calibrate(tt.rule, tt.base)
			if math.Abs(got.MinEffect-tt.want) > 1e-12 || got.Direction != tt.rule.Direction || got.Absolute != tt.rule.Absolute {
				t.Errorf("Calibrate = %+v, want min effect %v", got, tt.want)
			}
		})
	}
}

// TestCalibratedCompare: a +15 % shift regresses a steady series and
// passes a noisy one (whose own runs differ by more), with the same p.
func TestCalibratedCompare(t *testing.T) {
	k := Key{Leg: "sqlite", Scenario: "s", Op: "signal", Metric: ReqDurationP50}
	steady, noisy := []float64{100, 101, 102, 103}, []float64{90, 100, 105, 110}
	for _, tt := range []struct {
		base []float64
		want Verdict
	}{{steady, Regressed}, {noisy, Pass}} {
		cand := []float64{130, 131, 132, 133}
		c := CompareSamples(Samples{k: tt.base}, Samples{k: cand}, DefaultRules(), Alpha)
		if r := c.Results[0]; r.Verdict != tt.want || r.Calibrated != (tt.want == Pass) {
			t.Errorf("base %v: %s (%s), calibrated %v; want %s", tt.base, r.Verdict, r.Reason, r.Calibrated, tt.want)
		}
	}
}

// TestFamiliesAdjust: one quantile of an op at the U test's floor does not
// regress alone; two of its three do; another op's series are another
// family.
func TestFamiliesAdjust(t *testing.T) {
	base := []float64{100, 101, 102, 103}
	up := []float64{150, 151, 152, 153}
	same := []float64{100.5, 101.5, 102.5, 99}
	key := func(op, m string) Key { return Key{Leg: "sqlite", Scenario: "s", Op: op, Metric: m} }
	b, c := Samples{}, Samples{}
	for _, m := range []string{ReqDurationP50, ReqDurationP95, ReqDurationP99} {
		b[key("signal", m)], b[key("status", m)] = base, base
		c[key("signal", m)], c[key("status", m)] = same, same
	}
	c[key("signal", ReqDurationP50)], c[key("signal", ReqDurationP95)] = up, up // two of three
	c[key("status", ReqDurationP99)] = up                                       // one of three
	cmp := CompareSamples(b, c, DefaultRules(), Alpha)
	got := map[string]Verdict{}
	for _, r := range cmp.Results {
		got[r.Name()] = r.Verdict
		if r.FamilySize != 3 {
			t.Errorf("%s: family %s of %d, want 3", r.Key, r.Family, r.FamilySize)
		}
	}
	want := map[string]Verdict{
		"signal/" + ReqDurationP50: Regressed, "signal/" + ReqDurationP95: Regressed, "signal/" + ReqDurationP99: Pass,
		"status/" + ReqDurationP50: Pass, "status/" + ReqDurationP95: Pass, "status/" + ReqDurationP99: Pass,
	}
	for n, v := range want {
		if got[n] != v {
			t.Errorf("%s: %s, want %s", n, got[n], v)
		}
	}
	for _, r := range cmp.Results {
		if r.Name() == "status/"+ReqDurationP99 && !strings.Contains(r.Reason, "Benjamini–Hochberg") {
			t.Errorf("status p99 reason %q does not say why it passes", r.Reason)
		}
	}
}

func TestFamily(t *testing.T) {
	for k, want := range map[Key]string{
		{Leg: "sqlite", Scenario: "s", Op: "signal", Metric: ReqDurationP99}: "sqlite/s/signal/http_req_duration_ms",
		{Leg: "sqlite", Scenario: "s", Metric: IterRespP50}:                  "sqlite/s/(all)/iteration_response_time_ms",
		{Leg: "sqlite", Scenario: "s", Op: "signal:L3", Metric: ErrorRate}:   "sqlite/s/signal:L3/error_rate",
	} {
		if got := Family(k); got != want {
			t.Errorf("Family(%s) = %s, want %s", k, got, want)
		}
	}
}

// TestRulesForKey: per-op patterns name op/metric, plain ones the metric
// of every op.
func TestRulesForKey(t *testing.T) {
	rs, err := DefaultRules().Override("signal/"+ReqDurationP99, "25%")
	if err != nil {
		t.Fatal(err)
	}
	if rs, err = rs.Override("signal:*/*_ms", "30%"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		key  Key
		want float64
	}{
		{Key{Op: "signal", Metric: ReqDurationP99}, 0.25},
		{Key{Op: "signal", Metric: ReqDurationP50}, 0.10},
		{Key{Op: "signal:L3", Metric: ReqDurationP50}, 0.30},
		{Key{Metric: ReqDurationP99}, 0.10},
		{Key{Op: "status", Metric: ReqDurationP99}, 0.10},
	}
	for _, tt := range tests {
		if r := rs.ForKey(tt.key); r.MinEffect != tt.want || r.Direction != LowerIsBetter {
			t.Errorf("ForKey(%s) = %+v, want %v", tt.key.Name(), r, tt.want)
		}
	}
	if _, err := DefaultRules().Override("sqlite/s/signal/"+ReqDurationP99, "25%"); err == nil {
		t.Error("a leg/scenario pattern was accepted")
	}
	if k := (Key{Leg: "sqlite", Scenario: "mix", Op: "signal", Metric: ReqDurationP99}); k.String() != "sqlite/mix/signal/http_req_duration_p99_ms" {
		t.Errorf("String = %s", k)
	}
}

func TestRunsNeeded(t *testing.T) {
	for _, tt := range []struct{ other, want int }{{4, 4}, {5, 3}, {3, 5}, {6, 3}, {10, 2}} {
		if got := RunsNeeded(tt.other, Alpha); got != tt.want {
			t.Errorf("RunsNeeded(%d) = %d, want %d", tt.other, got, tt.want)
		}
	}
	if p := MinPossibleP(4, 3); math.Abs(p-2.0/35) > 1e-12 {
		t.Errorf("MinPossibleP(4,3) = %v, want 2/35", p)
	}
}
