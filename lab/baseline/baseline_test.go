package baseline

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// noisy returns n values around center with ±spread uniform noise, seeded.
func noisy(seed uint64, n int, center, spread float64) []float64 {
	r := rand.New(rand.NewPCG(seed, 1))
	out := make([]float64, n)
	for i := range out {
		out[i] = center + (r.Float64()*2-1)*spread
	}
	return out
}

func TestCompare(t *testing.T) {
	lat := Key{Leg: "sqlite", Scenario: "smoke", Metric: ReqDurationP95}
	hit := Key{Leg: "postgres+redis", Scenario: "smoke", Metric: CacheHitRate}
	rps := Key{Leg: "sqlite", Scenario: "smoke", Metric: AchievedRate}
	cost := Key{Leg: "sqlite", Scenario: "smoke", Metric: CostPer1K}
	rules := DefaultRules()
	tests := []struct {
		name       string
		key        Key
		base, cand []float64
		want       Verdict
		reason     string
	}{
		{"A/A latency passes", lat, noisy(1, 6, 100, 5), noisy(2, 6, 100, 5), Pass, ""},
		{"clear latency shift regresses", lat, noisy(3, 6, 100, 3), noisy(4, 6, 130, 3), Regressed, "beyond the minimum effect +10%"},
		{"significant shift below the effect size passes", lat, noisy(5, 6, 100, 1), noisy(6, 6, 105, 1), Pass, "within the minimum effect"},
		{"latency drop is an improvement", lat, noisy(7, 6, 100, 3), noisy(8, 6, 70, 3), Improved, "better"},
		{"n=1 is inconclusive", lat, []float64{100}, []float64{200}, Inconclusive, "too few runs"},
		{"3+3 is inconclusive and says so", lat, noisy(9, 3, 100, 1), noisy(10, 3, 200, 1), Inconclusive, "at least 4 runs"},
		{"5+3 can decide", lat, noisy(11, 5, 100, 1), noisy(12, 3, 200, 1), Regressed, ""},
		{"no baseline values", lat, nil, []float64{1, 2}, Inconclusive, "no baseline"},
		{"cache hit falling 10 points regresses (higher is better)", hit, noisy(13, 6, 0.80, 0.01), noisy(14, 6, 0.70, 0.01), Regressed, "pt"},
		{"cache hit falling 2 points passes", hit, noisy(15, 6, 0.80, 0.003), noisy(16, 6, 0.78, 0.003), Pass, "within"},
		{"cache hit rising is an improvement", hit, noisy(17, 6, 0.70, 0.01), noisy(18, 6, 0.80, 0.01), Improved, ""},
		{"achieved rate dropping regresses", rps, noisy(19, 6, 100, 2), noisy(20, 6, 60, 2), Regressed, ""},
		{"achieved rate rising improves", rps, noisy(21, 6, 100, 2), noisy(22, 6, 150, 2), Improved, ""},
		{"cost +8 % regresses (min 5 %)", cost, noisy(23, 6, 1.00, 0.01), noisy(24, 6, 1.08, 0.01), Regressed, ""},
		{"identical constant values pass", cost, []float64{1, 1, 1, 1}, []float64{1, 1, 1, 1}, Pass, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Compare(tt.key, tt.base, tt.cand, rules.For(tt.key.Metric), Alpha)
			if r.Verdict != tt.want {
				t.Fatalf("verdict = %s (%s), want %s; base %v cand %v", r.Verdict, r.Reason, tt.want, r.Baseline, r.Candidate)
			}
			if !strings.Contains(r.Reason, tt.reason) {
				t.Errorf("reason %q lacks %q", r.Reason, tt.reason)
			}
		})
	}
}

func TestMinRuns(t *testing.T) {
	if n := MinRuns(0.05); n != 4 {
		t.Errorf("MinRuns(0.05) = %d, want 4 (benchmath: need >= 4 samples)", n)
	}
	if p := MinPossibleP(5, 3); p > 0.05 {
		t.Errorf("MinPossibleP(5,3) = %v, want < 0.05", p)
	}
}

func TestRulesOverride(t *testing.T) {
	tests := []struct {
		pattern, effect string
		metric          string
		wantEff         float64
		wantAbs         bool
		wantDir         Direction
		wantErr         string
	}{
		{"http_req_duration_p99_ms", "20%", "http_req_duration_p99_ms", 0.20, false, LowerIsBetter, ""},
		{"cache_hit_rate", "3pt", "cache_hit_rate", 0.03, true, HigherIsBetter, ""},
		{"*_ms", "+15%", "iteration_response_time_p50_ms", 0.15, false, LowerIsBetter, ""},
		{"dropped_iterations", "5", "dropped_iterations", 5, true, LowerIsBetter, ""},
		{"x", "lots", "", 0, false, 0, "want a percentage"},
		{"[", "5%", "", 0, false, 0, "pattern"},
	}
	for _, tt := range tests {
		t.Run(tt.pattern+"="+tt.effect, func(t *testing.T) {
			rs, err := DefaultRules().Override(tt.pattern, tt.effect)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			r := rs.For(tt.metric)
			if r.MinEffect != tt.wantEff || r.Absolute != tt.wantAbs || r.Direction != tt.wantDir {
				t.Errorf("rule = %+v", r)
			}
		})
	}
	// Other metrics keep their defaults.
	rs, _ := DefaultRules().Override(ReqDurationP99, "20%")
	if r := rs.For(ReqDurationP50); r.MinEffect != 0.10 {
		t.Errorf("p50 rule = %+v, want the default 10%%", r)
	}
}

func TestFileRoundTrip(t *testing.T) {
	s := Samples{}
	s.Add(Key{Leg: "sqlite", Scenario: "smoke", Metric: ReqDurationP95}, 12)
	s.Add(Key{Leg: "sqlite", Scenario: "smoke", Metric: ReqDurationP95}, 13)
	s.Add(Key{Leg: "postgres", Scenario: "smoke", Metric: CacheHitRate}, 0.8)
	f := New("smoke", "abc123", 2, s, Unit)
	if f.Machine.Cores == 0 || f.Machine.GoVersion == "" {
		t.Errorf("machine = %+v", f.Machine)
	}
	path := Path(t.TempDir(), "smoke")
	if err := f.Save(path); err != nil {
		t.Fatal(err)
	}
	g, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if g.Series[0].Leg != "postgres" || len(g.Samples()[Key{Leg: "sqlite", Scenario: "smoke", Metric: ReqDurationP95}]) != 2 || g.Series[1].Unit != "ms" {
		t.Errorf("round trip: %+v", g.Series)
	}
	c := CompareFile(g, s, DefaultRules(), Alpha)
	if len(c.Results) != 2 || c.Regressed() {
		t.Errorf("self comparison: %+v", c)
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Load(filepath.Join(dir, "none.json")); err == nil || !strings.Contains(err.Error(), "baseline update") {
		t.Errorf("missing file: %v", err)
	}
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`{"version":2,"bogus":true}`), 0o644)
	if _, err := Load(bad); err == nil || !strings.Contains(err.Error(), "bogus") {
		t.Errorf("unknown field: %v", err)
	}
	old := filepath.Join(dir, "old.json")
	os.WriteFile(old, []byte(`{"version":0}`), 0o644)
	if _, err := Load(old); err == nil || !strings.Contains(err.Error(), "format version") {
		t.Errorf("old version: %v", err)
	}
	// A version 1 file (no ops) names the exact command that rewrites it.
	v1 := filepath.Join(dir, "nightly.json")
	os.WriteFile(v1, []byte(`{"version":1,"profile":"nightly","runs":5,"series":[{"leg":"sqlite","scenario":"mix","metric":"error_rate","values":[0]}]}`), 0o644)
	want := "`hal9-lab baseline update --profile nightly --runs 5 --file " + v1 + "`"
	if _, err := Load(v1); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("version 1: %v, want it to say %s", err, want)
	}
}

func TestCompareSamplesWarnsOnMissing(t *testing.T) {
	a := Samples{{Leg: "sqlite", Scenario: "s", Metric: ErrorRate}: {0, 0, 0, 0}, {Leg: "postgres", Scenario: "s", Metric: ErrorRate}: {0, 0, 0, 0}}
	b := Samples{{Leg: "sqlite", Scenario: "s", Metric: ErrorRate}: {0, 0, 0, 0}, {Leg: "redis", Scenario: "s", Metric: ErrorRate}: {0}}
	c := CompareSamples(a, b, DefaultRules(), Alpha)
	if len(c.Results) != 1 || len(c.Warnings) != 2 {
		t.Errorf("got %+v", c)
	}
}

// TestMissingWarningsOnePerLeg: a skipped leg is one line, however many
// series it had; a leg measured in part lists what it lacks per scenario.
func TestMissingWarningsOnePerLeg(t *testing.T) {
	base, cand := Samples{}, Samples{}
	for _, m := range []string{ReqDurationP50, ReqDurationP95, ErrorRate} {
		for _, op := range []string{"", "signal", "status"} {
			base.Add(Key{Leg: "postgres", Scenario: "s", Op: op, Metric: m}, 1)
			base.Add(Key{Leg: "sqlite", Scenario: "s", Op: op, Metric: m}, 1)
			if op != "status" {
				cand.Add(Key{Leg: "sqlite", Scenario: "s", Op: op, Metric: m}, 1)
			}
		}
	}
	c := CompareSamples(base, cand, DefaultRules(), Alpha)
	want := []string{
		"leg postgres: in the baseline but not measured now (leg skipped?) (9 series)",
		"sqlite/s: in the baseline but not measured now (leg skipped?): status/error_rate, status/http_req_duration_p50_ms, status/http_req_duration_p95_ms",
	}
	if !slices.Equal(c.Warnings, want) {
		t.Errorf("warnings:\n%s\nwant\n%s", strings.Join(c.Warnings, "\n"), strings.Join(want, "\n"))
	}
}

func TestCPUModel(t *testing.T) {
	p := filepath.Join(t.TempDir(), "cpuinfo")
	os.WriteFile(p, []byte("processor\t: 0\nmodel name\t: Test CPU @ 2.00GHz\n"), 0o644)
	if got := cpuModel(p); got != "Test CPU @ 2.00GHz" {
		t.Errorf("cpuModel = %q", got)
	}
}

func TestKernelRelease(t *testing.T) {
	p := filepath.Join(t.TempDir(), "osrelease")
	os.WriteFile(p, []byte("6.1.0-28-cloud-amd64\n"), 0o644)
	if got := kernelRelease(p); got != "6.1.0-28-cloud-amd64" {
		t.Errorf("kernelRelease = %q", got)
	}
	if got := kernelRelease(filepath.Join(t.TempDir(), "missing")); got != "" {
		t.Errorf("kernelRelease of a missing file = %q, want empty", got)
	}
}

func TestSameMachineKernel(t *testing.T) {
	a := Machine{CPUModel: "X", Cores: 2, GoVersion: "go1.26", Kernel: "6.1.0"}
	tests := []struct {
		b    Machine
		same bool
		why  string
	}{
		{a, true, ""},
		{Machine{CPUModel: "X", Cores: 2, GoVersion: "go1.26", Kernel: "6.8.0"}, false, "kernel 6.1.0 vs 6.8.0"},
		{Machine{CPUModel: "X", Cores: 2, GoVersion: "go1.26"}, true, ""}, // an old file without the kernel
	}
	for _, tt := range tests {
		if same, why := SameMachine(a, tt.b); same != tt.same || why != tt.why {
			t.Errorf("SameMachine(%+v) = %v %q, want %v %q", tt.b, same, why, tt.same, tt.why)
		}
	}
}
