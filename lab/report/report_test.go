package report

import (
	"encoding/xml"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hal9-lab/hal9-lab/lab/baseline"
	"github.com/hal9-lab/hal9-lab/lab/capacity"
	"github.com/hal9-lab/hal9-lab/lab/ledger"
	"github.com/hal9-lab/hal9-lab/lab/profiles"
)

// fakeSummary is a plausible three-leg gate run with 40 s of series.
func fakeSummary(withGate bool) *RunSummary {
	start := time.Date(2026, 5, 1, 3, 0, 0, 0, time.UTC)
	s := &RunSummary{Version: Version, Command: "run", Profile: "smoke", StartedAt: start, EndedAt: start.Add(4 * time.Minute),
		Commit: "0123456789abcdef0123", Machine: baseline.Machine{CPUModel: "Test CPU", Cores: 2, GoVersion: "go1.26"}, Seed: DefaultSeed()}
	zero := 0
	for li, name := range []string{"sqlite", "postgres", "postgres+redis"} {
		l := Leg{Name: name, Run: 1, Infra: "process", Redis: name == "postgres+redis"}
		t0 := start.Add(time.Duration(li) * time.Minute).UnixMilli()
		for si, scName := range []string{"smoke", "ratelimit"} {
			sc := Scenario{Name: scName, Passed: !(li == 1 && si == 0)}
			base := 8.0 + 4*float64(li)
			for i := 0; i < 40; i++ {
				t := t0 + int64(si*45+i)*1000
				wave := math.Sin(float64(i) / 6)
				sc.Series = append(sc.Series, Point{T: t, Reqs: 40 + 10*wave, Iters: 20 + 5*wave, Planned: 20, Errors: float64(i % 13 / 12), VUs: 5 + float64(i/8),
					P50: base + wave, P95: base*2.5 + 2*wave, P99: base*4 + 3*wave})
				sc.Server.Series = append(sc.Server.Series, ServerPoint{T: t, CacheHitRate: 0.5 + 0.3*float64(i)/40, CostUSD: 0.002 * float64(i), RSSBytes: 60 << 20, CPUSeconds: float64(i) * 0.3})
			}
			sc.Metrics = Metrics{HTTPReqs: 1600, Iterations: 800, DurationS: 40, AchievedRPS: 40, PlannedRPS: 20, ErrorRate: 0.002,
				ReqP50: base, ReqP95: base * 2.5, ReqP99: base * 4, IterP50: base + 1, IterP95: base * 3, IterP99: base * 5, ClientCacheHit: 0.62, ClientCostUSD: 0.08}
			sc.Thresholds = []Threshold{{Metric: "http_req_duration", Expr: "p(95)<500", OK: true}, {Metric: "http_req_failed", Expr: "rate<0.01", OK: sc.Passed}}
			sc.Server.CacheHitRate, sc.Server.CostUSD, sc.Server.CostPer1K, sc.Server.Requests = 0.62, 0.08, 0.05, 1600
			l.Scenarios = append(l.Scenarios, sc)
		}
		if name == "postgres+redis" {
			rec := 1200.0
			l.Faults = []FaultResult{
				{Name: "redis kill at 5s for 10s", Target: "redis", Kind: "kill", Start: t0 + 5000, Healed: t0 + 15000, Tried: 400, CacheHitBefore: 0.6, CacheHitDuring: 0.4,
					CostPer1KBefore: 0.05, CostPer1KDuring: 0.07, CostChange: 0.4, RecoverMS: new(float64), Checks: []FaultCheck{{Name: "no 5xx while Redis was away", OK: true}}},
				{Name: "postgres crash at 20s for 5s", Target: "postgres", Kind: "crash", Start: t0 + 20000, Healed: t0 + 25000, Tried: 200, Failed: 80,
					FailedByStatus: map[string]float64{"503": 80}, RecoverMS: &rec, CacheHitBefore: -1, CacheHitDuring: -1,
					Checks: []FaultCheck{{Name: "every failure a 503 with Retry-After", OK: true}}, Alerts: &FaultAlerts{Meant: []string{"HAL9StoreUnavailable"}}},
			}
			l.Ledger = &ledger.Verdict{Source: "database", Checks: "durability", Acknowledged: 900, Found: 900, ByKind: map[string]ledger.Counts{"signal": {Acknowledged: 900, Found: 900}}}
		}
		if li == 0 {
			l.Capacity = fakeCapacity()
		}
		l.Server = Server{Requests: 3200, CacheHitRate: 0.62, CacheByTier: map[string]float64{"process": 0.5, "redis": 0.12}, TokensIn: 120000, TokensOut: 30000,
			CostUSD: 0.16, CostPer1K: 0.05, MonthlyUSD: 155520, PeakRSSBytes: 80 << 20, CPUSeconds: 12.5, ExitCode: &zero, ShutdownMS: 310}
		s.Legs = append(s.Legs, l)
	}
	s.Skipped = []Skipped{{Leg: "mysql", Reason: "no such backend"}}
	s.Departures = []Departure{{Text: "bcrypt cost 4 instead of 10", Legs: []string{"sqlite", "postgres", "postgres+redis"}},
		{Text: "PostgreSQL durability off (fsync=off)", Legs: []string{"postgres"}}}
	s.NoData = []NoData{{Source: "dashboards/overview.json", Name: "DB pool", Expr: "hal9_db_pool_acquire_wait_seconds_total", Reason: "sqlite leg has no pool"}}
	s.PrometheusChecked = 42
	s.Profiles = []profiles.LegSummary{{Leg: "sqlite", TopCPU: []profiles.FuncShare{{Name: "github.com/x/y/server.(*Server).handle", Share: 0.21}, {Name: "runtime.mallocgc", Share: 0.12}},
		TopAlloc: []profiles.FuncShare{{Name: "encoding/json.Marshal", Share: 0.3}}, GrewCPU: []profiles.FuncDelta{{Name: "compress/flate.deflate", BaseShare: 0.01, Share: 0.06, Delta: 0.05}},
		Flames: []profiles.Flame{{Type: "cpu", Sample: "cpu", File: "sqlite-cpu.html"}, {Type: "cpu", Sample: "cpu", File: "sqlite-cpu-diff.html", Against: "the baseline"}, {Type: "heap", Sample: "inuse_space", File: "sqlite-heap.html"}}}}
	if withGate {
		s.Command = "gate"
		c := baseline.Comparison{Warnings: []string{"baseline smoke was measured on another machine"}}
		k := baseline.Key{Leg: "sqlite", Scenario: "smoke", Metric: baseline.ReqDurationP95}
		c.Results = append(c.Results, baseline.Compare(k, []float64{20, 21, 19, 20, 22}, []float64{30, 31, 29, 33, 30}, baseline.DefaultRules().For(k.Metric), baseline.Alpha))
		k2 := baseline.Key{Leg: "postgres", Scenario: "smoke", Metric: baseline.CacheHitRate}
		c.Results = append(c.Results, baseline.Compare(k2, []float64{0.6, 0.61, 0.62, 0.6, 0.61}, []float64{0.61, 0.6, 0.62, 0.6, 0.61}, baseline.DefaultRules().For(k2.Metric), baseline.Alpha))
		k4 := baseline.Key{Leg: "sqlite", Scenario: "smoke", Op: "signal", Metric: baseline.ReqDurationP50}
		r4 := baseline.Compare(k4, []float64{200, 205, 210, 212}, []float64{300, 310, 305, 320}, baseline.DefaultRules().ForKey(k4), baseline.Alpha)
		r4.Bound = "llm"
		c.Results = append(c.Results, r4)
		k3 := baseline.Key{Leg: "postgres", Scenario: "smoke", Metric: baseline.AchievedRate}
		c.Results = append(c.Results, baseline.Compare(k3, []float64{40}, []float64{41}, baseline.DefaultRules().For(k3.Metric), baseline.Alpha))
		s.Gate = &Gate{Mode: "against", Against: "origin/main", Runs: 5, Comparison: c, Verdict: "regressed", ExitCode: 99}
	}
	return s
}

// fakeCapacity is a plausible knee search with its demand and projection.
func fakeCapacity() *Capacity {
	res := &capacity.Result{Knee: capacity.Knee{Found: true, Rate: 400, RequestRate: 600, SLO: []string{"http_req_duration:p(99)<500"}, LimitedBy: capacity.LimitServer, Bound: 420, P99: 380},
		Fit: &capacity.USL{Sigma: 0.02, Kappa: 0.0001, Lambda: 40, PeakN: 99, PeakX: 1300, R2: 0.93, Points: 5}}
	for i, r := range []float64{100, 200, 400, 800, 566, 420} {
		hit, cost := 0.3+0.05*float64(i), 1.2-0.1*float64(i)
		p99 := 300 + r/10
		if r > 400 {
			p99 = 900 + r
		}
		res.Steps = append(res.Steps, capacity.Step{Phase: "ramp", PlannedRate: r, AchievedRate: r, RequestRate: 1.5 * r, P50: 2, P95: p99 / 2, P99: p99, MeanMS: 20,
			Concurrency: 1.5 * r * 0.02, Pass: r <= 400, LimitedBy: map[bool]string{true: "", false: "server"}[r <= 400], CacheHitRate: &hit, CostPer1K: &cost})
	}
	d := &capacity.Demands{Routes: []capacity.RouteDemand{{Name: "register", Route: "/api/v1/auth/register", Requests: 100, Share: 0.15, CPUSeconds: 0.13, BcryptS: 0.1, DemandMS: 1.3, ContributionMS: 0.195},
		{Name: "signal L3", Route: "/api/v1/signals", Layer: "L3", Requests: 100, Share: 0.15, CPUSeconds: 0.1, DemandMS: 1, ContributionMS: 0.15}},
		Requests: 666, CPUSeconds: 0.5, MixDemandMS: 0.8, BcryptMS: 0.3, Bottleneck: "register", BottleShare: 0.24, Cores: 2, ServerMaxRPS: 2500, MachineMaxRPS: 1700}
	return &Capacity{Scenario: "scenarios/mix.yaml", Search: res, BcryptCost: 4, HitRate: 0.5, CostPer1K: 0.9, Requests: 5000, Demand: d,
		Fleet: capacity.Project(d, 4, 0.5, 0.9, capacity.DefaultFleetSeed())}
}

func TestWriteAllAndRender(t *testing.T) {
	dir := t.TempDir()
	s := fakeSummary(true)
	paths, err := WriteAll(dir, s)
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) != 4 {
		t.Fatalf("paths = %v", paths)
	}
	md, _ := os.ReadFile(filepath.Join(dir, MarkdownFile))
	m := string(md)
	// Groups with a regression first, the op's before the aggregate's,
	// then the inconclusive one's, then the passing one's.
	if a, b, c := strings.Index(m, "**sqlite · smoke · signal**"), strings.Index(m, "**sqlite · smoke · all requests**"), strings.Index(m, "**postgres · smoke · all requests**"); a < 0 || b < a || c < b {
		t.Errorf("groups out of order: signal at %d, all requests at %d, postgres at %d", a, b, c)
	}
	// The verdict table comes first: before the results table.
	gi, ri := strings.Index(m, "## Gate: REGRESSED"), strings.Index(m, "## Results")
	if gi < 0 || ri < 0 || gi > ri {
		t.Errorf("gate table must precede results (gate at %d, results at %d):\n%s", gi, ri, m)
	}
	for _, want := range []string{"# HAL9 lab · smoke: REGRESSED", "| **sqlite · smoke · signal** | | | | | | | | | |\n| ❌ regressed | http_req_duration_p50_ms | LLM (any machine) | 208 ms | 308 ms | +48.2% | 0.029 | +10% | 200 · 205 · 210 · 212 | 300 · 305 · 310 · 320 |",
		"| **sqlite · smoke · all requests** | | | | | | | | | |\n| ❌ regressed | http_req_duration_p95_ms |", "Total http_reqs: 9600.", "| postgres crash at 20s for 5s | ✔️ pass | 200 | 80 (503×80) |", "nothing lost: 900 acknowledged",
		"**mysql**: no such backend", "postgres+redis", "monthly projection", "`server.(*Server).handle` 21.0%", "❔ inconclusive",
		"**Not production:**", "- PostgreSQL durability off (fsync=off) (postgres)\n", "- bcrypt cost 4 instead of 10\n",
		"## Capacity: the knee", "| sqlite | 400 it/s = 600 req/s | 380 ms | the server (SLO broken at 420 it/s)", "peak at N*=99",
		"The bottleneck is **register**", "**2500 req/s**", "pods for 1200 req/s sustained",
		"### The value to set: `--capacity-rps`", "| sqlite | `--capacity-rps 600` | the knee, 600 req/s, rounded down |", "bcrypt cost 4 instead of production's 10",

		"flame graphs: [cpu](profiles/sqlite-cpu.html), [cpu vs the baseline](profiles/sqlite-cpu-diff.html), [heap (in use)](profiles/sqlite-heap.html)"} {
		if !strings.Contains(m, want) {
			t.Errorf("report.md lacks %q", want)
		}
	}

	var ju junitSuites
	raw, _ := os.ReadFile(filepath.Join(dir, JUnitFile))
	if err := xml.Unmarshal(raw, &ju); err != nil {
		t.Fatalf("junit.xml does not parse: %v", err)
	}
	// 3 legs × 2 scenarios × 2 thresholds + 3 server exits + 4 gate + 2 departures + 1 knee + 1 skipped leg + 0 lab errors
	// + the postgres+redis leg's ledger and its 2 faults' checks
	if ju.Tests != 12+3+4+2+1+1+3 || ju.Failures != 1+2 || ju.Skipped != 1+1 {
		t.Errorf("junit totals tests=%d failures=%d skipped=%d", ju.Tests, ju.Failures, ju.Skipped)
	}

	// Re-render from summary.json gives the same Markdown.
	os.Remove(filepath.Join(dir, MarkdownFile))
	if _, err := Render(dir); err != nil {
		t.Fatal(err)
	}
	md2, _ := os.ReadFile(filepath.Join(dir, MarkdownFile))
	if string(md2) != m {
		t.Errorf("re-rendered report.md differs")
	}
	html, _ := os.ReadFile(filepath.Join(dir, HTMLFile))
	if !strings.Contains(string(html), "<code>--capacity-rps 600</code>") {
		t.Errorf("report.html does not print the value to set")
	}
	if !strings.Contains(string(raw), "rated capacity per server: --capacity-rps 600") {
		t.Errorf("junit.xml does not print the value to set")
	}
	if !strings.Contains(string(raw), `name="sqlite/smoke/signal/http_req_duration_p50_ms"`) {
		t.Errorf("junit.xml does not name the op's gate case")
	}
	for _, want := range []string{`<th colspan="11" style="text-align:left">sqlite · smoke · signal</th>`, `data-strip="sqlite|smoke|signal|http_req_duration_p50_ms"`, `<td class="runs">200 · 205 · 210 · 212</td>`} {
		if !strings.Contains(string(html), want) {
			t.Errorf("report.html lacks %s", want)
		}
	}
	for _, want := range []string{`<a href="profiles/sqlite-cpu.html">cpu</a>`, `<a href="profiles/sqlite-cpu-diff.html">cpu vs the baseline</a>`, `<a href="profiles/sqlite-heap.html">heap (in use)</a>`} {
		if !strings.Contains(string(html), want) {
			t.Errorf("report.html lacks the flame graph link %s", want)
		}
	}
	for _, bad := range []string{"http://", "https://"} {
		if i := strings.Index(string(html), bad); i >= 0 && !strings.Contains(string(html[i:i+40]), "www.w3.org/2000/svg") {
			t.Errorf("report.html references the network: %q", html[i:i+60])
		}
	}
}

func TestRatingOf(t *testing.T) {
	knee := func(found bool, rps float64, limit string) *Capacity {
		return &Capacity{Search: &capacity.Result{Knee: capacity.Knee{Found: found, RequestRate: rps, LimitedBy: limit}}}
	}
	tests := []struct {
		name string
		leg  Leg
		want float64
		why  string
	}{
		{"server-limited, rounded down", Leg{Capacity: knee(true, 2343.7, capacity.LimitServer)}, 2340, "the knee, 2344 req/s, rounded down"},
		{"small", Leg{Capacity: knee(true, 27.86, capacity.LimitServer)}, 27.8, "rounded down"},
		{"tiny", Leg{Capacity: knee(true, 0.3, capacity.LimitServer)}, 0.3, "rounded down"},
		{"engine-limited", Leg{Capacity: knee(true, 1077, capacity.LimitEngine)}, 1070, "a lower bound: the load generator"},
		{"ceiling", Leg{Capacity: knee(true, 5000, capacity.LimitCeiling)}, 5000, "no step failed"},
		{"replicas share the knee", Leg{Capacity: knee(true, 1000, capacity.LimitServer), Replicas: &Replicas{Count: 3}}, 333, "of 3 servers behind HAProxy, divided by 3"},
		{"no knee", Leg{Capacity: knee(false, 0, capacity.LimitServer)}, 0, "none: even the start rate broke the SLO"},
		{"search failed", Leg{Capacity: &Capacity{Error: "server did not start"}}, 0, "none: the search failed (server did not start)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := RatingOf(tt.leg)
			if r.RPS != tt.want || !strings.Contains(r.Why, tt.why) {
				t.Errorf("RatingOf = %v (%q), want %v (%q)", r.RPS, r.Why, tt.want, tt.why)
			}
			if tt.want > 0 && RatingFlag(r) != "--capacity-rps "+strconv.FormatFloat(tt.want, 'f', -1, 64) {
				t.Errorf("flag %q", RatingFlag(r))
			}
		})
	}
}

func TestVerdict(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*RunSummary)
		want string
	}{
		{"regressed gate", func(s *RunSummary) {}, "regressed"},
		{"failed threshold", func(s *RunSummary) { s.Gate = nil }, "failed"},
		{"pass", func(s *RunSummary) {
			s.Gate = nil
			s.Legs[1].Scenarios[0].Passed = true
		}, "pass"},
		{"lab error", func(s *RunSummary) {
			s.Gate = nil
			s.Legs[1].Scenarios[0].Passed = true
			s.LabErrors = []string{"client and server cost disagree"}
		}, "lab error"},
		{"interrupted", func(s *RunSummary) { s.Gate = nil; s.Interrupted = true }, "interrupted"},
		{"nothing", func(s *RunSummary) { s.Gate = nil; s.Legs = nil }, "nothing ran"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := fakeSummary(true)
			tt.mod(s)
			if got := s.Verdict(); got != tt.want {
				t.Errorf("Verdict() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Render(dir); err == nil || !strings.Contains(err.Error(), "read run summary") {
		t.Errorf("missing summary: %v", err)
	}
	os.WriteFile(filepath.Join(dir, SummaryFile), []byte(`{"version": 7}`), 0o644)
	if _, err := Render(dir); err == nil || !strings.Contains(err.Error(), "version 7") {
		t.Errorf("bad version: %v", err)
	}
}

// TestInconclusiveGate: a gate that judged nothing is not a pass, in the
// title, the gate section and the run's verdict.
func TestInconclusiveGate(t *testing.T) {
	s := fakeSummary(false)
	s.Command = "gate"
	k := baseline.Key{Leg: "sqlite", Scenario: "smoke", Metric: baseline.ReqDurationP95}
	c := baseline.Comparison{Results: []baseline.Result{baseline.Compare(k, []float64{20, 21, 19}, []float64{30, 31, 29}, baseline.DefaultRules().For(k.Metric), baseline.Alpha)}}
	if c.Judged() {
		t.Fatalf("3+3 runs judged: %+v", c.Results)
	}
	s.Gate = &Gate{Mode: "baseline", Baseline: "B.json", Runs: 3, Comparison: c, Verdict: string(baseline.Inconclusive), ExitCode: 3}
	for _, l := range s.Legs { // passing legs: only the gate decides
		for i := range l.Scenarios {
			l.Scenarios[i].Passed = true
		}
	}
	if v := s.Verdict(); v != "inconclusive" {
		t.Errorf("Verdict = %s, want inconclusive", v)
	}
	m := Markdown(s)
	for _, want := range []string{"## Gate: INCONCLUSIVE", "this gate does not pass", "Exit code 3."} {
		if !strings.Contains(m, want) {
			t.Errorf("report.md lacks %q", want)
		}
	}
}
