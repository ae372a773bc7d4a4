package lab_test

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hal9-lab/hal9-lab/internal/browsertest"
	"github.com/hal9-lab/hal9-lab/lab"
	"github.com/hal9-lab/hal9-lab/lab/baseline"
	"github.com/hal9-lab/hal9-lab/lab/build/buildtest"
	"github.com/hal9-lab/hal9-lab/lab/profile"
	"github.com/hal9-lab/hal9-lab/lab/readings"
	"github.com/hal9-lab/hal9-lab/lab/report"
)

// root is the repository root (tests run in lab/).
func root(t testing.TB) string {
	t.Helper()
	r, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestMain(m *testing.M) { buildtest.Main(m) }

// serverBin builds ./cmd/hal9 once per test binary.
func serverBin(t testing.TB) string { return buildtest.Server(t, root(t)) }

func requireInfra() bool { return os.Getenv("HAL9_REQUIRE_INFRA") == "1" }

// TestCapacityRun is a capacity profile end to end on SQLite: two short
// steps up to a ceiling, the service demand from the server's labelled
// CPU profile, the projection, the departures from production.
func TestCapacityRun(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: starts a real server")
	}
	sum, out := runTestProfile(t, "capacity-profile.yaml", lab.Options{})
	if len(sum.Legs) == 0 && len(sum.Skipped) > 0 {
		t.Skipf("no PostgreSQL: %s", sum.Skipped[0].Reason)
	}
	if len(sum.Legs) != 1 || sum.Legs[0].Capacity == nil || sum.Legs[0].Capacity.Search == nil {
		t.Fatalf("no capacity result: %+v", sum.Legs)
	}
	c := sum.Legs[0].Capacity
	k := c.Search.Knee
	if !k.Found || k.LimitedBy != "ceiling" || k.Rate != 20 || len(c.Search.Steps) != 2 || k.RequestRate <= 0 {
		t.Errorf("knee %+v over %d steps, want 20 it/s at the ceiling in 2 steps", k, len(c.Search.Steps))
	}
	for _, st := range c.Search.Steps {
		if st.CacheHitRate == nil || st.CostPer1K == nil || st.CPUSeconds == nil || *st.CPUSeconds <= 0 {
			t.Errorf("step at %.0f it/s lacks its server-side numbers: %+v", st.PlannedRate, st)
		}
	}
	if c.BcryptCost != 4 {
		t.Errorf("bcrypt cost %d, want the profile's 4", c.BcryptCost)
	}
	if conns := sum.Legs[0].Connections; conns == nil || conns.Samples == 0 || conns.PeakInUse < 1 {
		t.Errorf("PostgreSQL connections not sampled during the search: %+v", conns)
	}
	d := c.Demand
	if d == nil {
		t.Fatalf("no service demand: %s", c.DemandError)
	}
	names := map[string]bool{}
	for _, r := range d.Routes {
		names[r.Name] = true
		if r.DemandMS <= 0 || r.Requests <= 0 {
			t.Errorf("route %+v", r)
		}
	}
	for _, want := range []string{"register", "login"} { // cheap routes may get no 10 ms sample in a short run
		if !names[want] {
			t.Errorf("no demand for %s among %v", want, names)
		}
	}
	if d.MixDemandMS <= 0 || d.ServerMaxRPS <= 0 || d.LoadGenMS <= 0 {
		t.Errorf("demand %+v", d)
	}
	if c.Fleet == nil || c.Fleet.PodsSustained < 1 || c.Fleet.ProductionDemandMS <= c.Fleet.MixDemandMS {
		t.Errorf("fleet %+v: production bcrypt cost must raise the demand", c.Fleet)
	}
	var texts []string
	for _, dp := range sum.Departures {
		texts = append(texts, dp.Text)
	}
	all := strings.Join(texts, "\n")
	for _, want := range []string{"bcrypt cost 4 instead of 10", "API rate limit off", "simulated LLM provider"} {
		if !strings.Contains(all, want) {
			t.Errorf("departures lack %q:\n%s", want, all)
		}
	}
	md, _ := os.ReadFile(filepath.Join(out, "report.md"))
	for _, want := range []string{"**Not production:**", "## Capacity: the knee", "service demand per route", "Projected to the fleet"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("report.md lacks %q", want)
		}
	}
}

// TestRunEndToEnd is the short lab run of `make test`: SQLite and the real
// PostgreSQL and PostgreSQL + Redis legs through lab/infra at a tiny
// scale, then the report files and their numbers checked against each
// other.
func TestRunEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the end-to-end lab run starts real servers")
	}
	// --prometheus too when Debian's prometheus is installed (CI has it).
	_, perr := exec.LookPath("prometheus")
	withProm := perr == nil || requireInfra()
	sum, out := runTestProfile(t, "tiny-profile.yaml", lab.Options{Prometheus: withProm})
	for _, sk := range sum.Skipped {
		t.Logf("skipped %s: %s", sk.Leg, sk.Reason)
	}
	if len(sum.LabErrors) > 0 {
		t.Errorf("lab errors: %v", sum.LabErrors)
	}
	if sum.Verdict() != "pass" {
		t.Errorf("verdict %q, want pass", sum.Verdict())
	}
	legs := map[string]report.Leg{}
	for _, l := range sum.Legs {
		legs[l.Name] = l
		if l.Error != "" {
			t.Errorf("leg %s: %s", l.Name, l.Error)
		}
		if l.Server.ExitCode == nil || *l.Server.ExitCode != 0 {
			t.Errorf("leg %s: server exit code %v, want 0", l.Name, l.Server.ExitCode)
		}
		// Every acknowledged write of the leg is in its database.
		if v := l.Ledger; v == nil || !v.OK() || v.Acknowledged == 0 || v.Found != v.Acknowledged || v.Checks != "durability" {
			t.Errorf("leg %s: ledger %+v", l.Name, v)
		}
	}
	if _, ok := legs[profile.SQLite]; !ok {
		t.Fatalf("the sqlite leg did not run")
	}
	// The rate-limit check ran on the first leg and passed.
	var rl *report.Scenario
	for i, sc := range legs[profile.SQLite].Scenarios {
		if sc.Name == "ratelimit" {
			rl = &legs[profile.SQLite].Scenarios[i]
		}
	}
	if rl == nil || !rl.Passed {
		t.Errorf("rate-limit check missing or failed: %+v", rl)
	}
	// Files.
	files := []string{report.SummaryFile, report.MarkdownFile, report.HTMLFile, report.JUnitFile, "profiles/sqlite-cpu.pb.gz",
		"profiles/sqlite-cpu.html", "profiles/sqlite-heap.html"}
	if _, ok := legs[profile.Postgres]; ok { // compared with the run's first leg
		files = append(files, "profiles/postgres-cpu-diff.html")
	}
	for _, f := range files {
		if st, err := os.Stat(filepath.Join(out, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
	// The flame graph opens from the report in a browser, without a server,
	// and draws the server's own frames.
	if page, _ := os.ReadFile(filepath.Join(out, report.HTMLFile)); !strings.Contains(string(page), `<a href="profiles/sqlite-cpu.html">`) {
		t.Errorf("report.html does not link the sqlite leg's CPU flame graph")
	}
	dom := browsertest.DumpDOM(t, browsertest.Chromium(t), filepath.Join(out, "profiles", "sqlite-cpu.html"))
	if !regexp.MustCompile(`<div class="boxtext"[^>]*>[^<]*ServeHTTP`).MatchString(dom) {
		t.Errorf("the sqlite leg's CPU flame graph drew no ServeHTTP frame in Chromium")
	}
	// summary.json's http_reqs total equals report.md's.
	raw, _ := os.ReadFile(filepath.Join(out, report.SummaryFile))
	var js report.RunSummary
	if err := json.Unmarshal(raw, &js); err != nil {
		t.Fatal(err)
	}
	var total float64
	for _, l := range js.Legs {
		for _, sc := range l.Scenarios {
			total += sc.Metrics.HTTPReqs
			var k6 struct {
				Metrics map[string]struct{ Values map[string]float64 } `json:"metrics"`
			}
			if err := json.Unmarshal(sc.K6, &k6); err != nil {
				t.Errorf("%s/%s: k6 summary: %v", l.Name, sc.Name, err)
			} else if k6.Metrics["http_reqs"].Values["count"] != sc.Metrics.HTTPReqs {
				t.Errorf("%s/%s: k6 http_reqs %v != %v", l.Name, sc.Name, k6.Metrics["http_reqs"].Values["count"], sc.Metrics.HTTPReqs)
			}
			if sc.Name == "ratelimit" {
				continue
			}
			// Server and client saw the same requests, cost and cache hits
			// (the workload's setup probes GET /health unrecorded).
			if got := sc.Server.Requests - sc.Server.RequestsByRoute["/health"]; got != sc.Metrics.HTTPReqs {
				t.Errorf("%s/%s: server counted %v requests (%v), client %v", l.Name, sc.Name, got, sc.Server.RequestsByRoute, sc.Metrics.HTTPReqs)
			}
			if sc.Server.CostUSD <= 0 || readings.RelDiff(sc.Server.CostUSD, sc.Metrics.ClientCostUSD) > 0.01 {
				t.Errorf("%s/%s: server cost %v, client %v", l.Name, sc.Name, sc.Server.CostUSD, sc.Metrics.ClientCostUSD)
			}
			var seriesReqs float64
			for _, p := range sc.Series {
				seriesReqs += p.Reqs
			}
			if seriesReqs != sc.Metrics.HTTPReqs {
				t.Errorf("%s/%s: time series holds %v requests, summary %v", l.Name, sc.Name, seriesReqs, sc.Metrics.HTTPReqs)
			}
		}
	}
	md, _ := os.ReadFile(filepath.Join(out, report.MarkdownFile))
	m := regexp.MustCompile(`Total http_reqs: (\d+)\.`).FindSubmatch(md)
	if m == nil {
		t.Fatalf("report.md has no total:\n%s", md)
	}
	if mdTotal, _ := strconv.ParseFloat(string(m[1]), 64); mdTotal != total || total == 0 {
		t.Errorf("report.md total %v, summary.json %v", mdTotal, total)
	}
	var ju struct {
		Tests    int `xml:"tests,attr"`
		Failures int `xml:"failures,attr"`
	}
	jraw, _ := os.ReadFile(filepath.Join(out, report.JUnitFile))
	if err := xml.Unmarshal(jraw, &ju); err != nil || ju.Tests == 0 || ju.Failures != 0 {
		t.Errorf("junit.xml: %+v %v", ju, err)
	}
	if withProm {
		if sum.PrometheusChecked == 0 {
			t.Errorf("--prometheus evaluated no dashboard or rule query")
		}
		for _, nd := range sum.NoData {
			t.Logf("no data: %s: %s (%s)", nd.Source, nd.Expr, nd.Reason)
		}
	}
	if requireInfra() && len(legs) != 3 {
		t.Errorf("HAL9_REQUIRE_INFRA=1 but only %d legs ran", len(legs))
	}
	// Re-rendering from summary.json gives the same Markdown.
	if _, err := report.Render(out); err != nil {
		t.Fatal(err)
	}
	if md2, _ := os.ReadFile(filepath.Join(out, report.MarkdownFile)); string(md2) != string(md) {
		t.Errorf("report re-rendered from summary.json differs")
	}
}

// TestInterrupt: Ctrl-C during load stops load, server and infra, writes
// the partial report and leaves no server behind.
func TestInterrupt(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	bin := serverBin(t)
	r := root(t)
	p, err := profile.Load(r, filepath.Join(r, "lab", "testdata", "tiny-profile.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pw := &pidWatcher{cancelOn: "load: tiny", cancel: cancel}
	sum, err := lab.Run(ctx, lab.Options{Root: r, Profile: p, Backends: []string{profile.SQLite}, OutDir: out, HalBin: bin, Command: "run", Progress: pw})
	if err != nil {
		t.Fatal(err)
	}
	if !sum.Interrupted || sum.Verdict() != "interrupted" {
		t.Errorf("interrupted = %v, verdict %q", sum.Interrupted, sum.Verdict())
	}
	if _, err := os.Stat(filepath.Join(out, report.MarkdownFile)); err != nil {
		t.Errorf("no partial report: %v", err)
	}
	for _, l := range sum.Legs {
		if l.Server.ExitCode == nil || *l.Server.ExitCode != 0 {
			t.Errorf("server not stopped cleanly: %v", l.Server.ExitCode)
		}
	}
	// No hal9 process of this test survives.
	out2, _ := exec.Command("pgrep", "-f", bin).Output()
	if pids := strings.Fields(string(out2)); len(pids) > 0 {
		for _, pid := range pids {
			n, _ := strconv.Atoi(pid)
			_ = syscall.Kill(n, syscall.SIGKILL)
		}
		t.Errorf("server processes left behind: %v", pids)
	}
}

// pidWatcher cancels the run when a progress line contains cancelOn.
type pidWatcher struct {
	mu       sync.Mutex
	cancelOn string
	cancel   func()
	fired    bool
}

func (p *pidWatcher) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.fired && strings.Contains(string(b), p.cancelOn) {
		p.fired = true
		go func() { time.Sleep(1500 * time.Millisecond); p.cancel() }()
	}
	return len(b), nil
}

type syncWriter struct {
	mu sync.Mutex
	w  *strings.Builder
}

func (s *syncWriter) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(b)
}

// gateProfile loads the gate tests' profile: sqlite, 3 s of signals
// (HAL9_GATE_PROFILE names another, for TestGateTrials).
func gateProfile(t testing.TB) *profile.Profile {
	r := root(t)
	path := filepath.Join(r, "lab", "testdata", "gate-profile.yaml")
	if p := os.Getenv("HAL9_GATE_PROFILE"); p != "" {
		path = p
		if !filepath.IsAbs(p) {
			path = filepath.Join(r, p) // relative to the repository root
		}
	}
	p, err := profile.Load(r, path)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// gateLatencyScale shortens the simulated LLM calls of the gate tests
// (both sides) so each leg-run takes a few seconds.
const gateLatencyScale = 1

// runGate runs a gate with the same binary on both sides; slowdown > 0
// sets HAL9_LLM_LATENCY_SCALE for the candidate only; nil rules are the
// defaults.
func runGate(t testing.TB, runs int, slowdown float64, rules baseline.Rules) *report.RunSummary {
	t.Helper()
	bin := serverBin(t)
	g := lab.GateOptions{Options: lab.Options{Root: root(t), Profile: gateProfile(t), OutDir: t.TempDir(), HalBin: bin, Command: "gate",
		ServerEnv: map[string]string{"HAL9_LLM_LATENCY_SCALE": strconv.FormatFloat(gateLatencyScale, 'f', -1, 64),
			"HAL9_BCRYPT_COST": "4"}}, Runs: runs, ReferenceBin: bin, Rules: rules}
	if slowdown > 0 {
		g.CandidateEnv = map[string]string{"HAL9_LLM_LATENCY_SCALE": strconv.FormatFloat(gateLatencyScale*slowdown, 'f', -1, 64)}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	sum, err := lab.Gate(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Gate == nil {
		t.Fatal("no gate verdict")
	}
	return sum
}

// mechanicsRules widen the latency effect for the gate's own tests in make
// test: they run beside other packages' tests on 2 cores, and that noise
// moved an A/A P99 by +26 %. The A/A and 3x-slowdown checks test the gate's
// mechanics; its default effects are measured by TestGateTrials.
func mechanicsRules(t testing.TB) baseline.Rules {
	r, err := baseline.DefaultRules().Override("*_ms", "50%")
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestGateAA: the same binary on both sides passes.
func TestGateAA(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	sum := runGate(t, 4, 0, mechanicsRules(t))
	if sum.Gate.ExitCode != lab.ExitPass {
		for _, r := range sum.Gate.Comparison.Results {
			if r.Verdict == baseline.Regressed {
				t.Logf("false alarm: %s %s", r.Key, r.Reason)
			}
		}
		t.Errorf("A/A gate: %s (exit %d), want pass", sum.Gate.Verdict, sum.Gate.ExitCode)
	}
	// A gate with a reference build draws each candidate leg's CPU against
	// the reference's leg of the same backend.
	var diffs []string
	for _, ls := range sum.Profiles {
		for _, f := range ls.Flames {
			if f.Against == "the reference build" && f.Type == "cpu" {
				diffs = append(diffs, f.File)
			}
		}
	}
	if len(diffs) == 0 {
		t.Errorf("no differential CPU flame graph against the reference build among %+v", sum.Profiles)
	}
}

// TestGateCatchesSlowdown: an LLM 3× slower on the candidate regresses.
func TestGateCatchesSlowdown(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	sum := runGate(t, 4, 3, mechanicsRules(t))
	if sum.Gate.ExitCode != lab.ExitRegressed {
		t.Errorf("slowed candidate: %s (exit %d), want regressed", sum.Gate.Verdict, sum.Gate.ExitCode)
	}
	var latency bool
	for _, r := range sum.Gate.Comparison.Results {
		if r.Verdict == baseline.Regressed && strings.HasSuffix(r.Metric, "_ms") {
			latency = true
		}
	}
	if !latency || t.Failed() {
		for _, r := range sum.Gate.Comparison.Results {
			t.Logf("%s: %s: base %v cand %v (%s)", r.Metric, r.Verdict, r.Baseline, r.Candidate, r.Reason)
		}
		t.Errorf("no latency metric regressed")
	}
}

// TestGateTrials measures how often the gate raises a false alarm (A/A)
// and how often it catches an injected LLM slowdown, over repeated gates,
// each with its Wilson 95 % interval. It fails when the A/A rate exceeds
// maxFalseAlarms or the catch rate of a slowdown of at least
// caughtSlowdown falls below minCaught; smaller slowdowns are only logged.
// It is slow and skipped unless HAL9_GATE_TRIALS=N is set (`make
// gate-trials`):
//
//	HAL9_GATE_TRIALS=40 HAL9_GATE_SLOWDOWNS=1.1,1.25 go test -run TestGateTrials -v -timeout 24h ./lab/
func TestGateTrials(t *testing.T) {
	const (
		maxFalseAlarms = 0.05 // A/A gates that alarm (the aim is 1 %)
		minCaught      = 0.95 // gates that catch a slowdown ≥ caughtSlowdown
		caughtSlowdown = 1.25 // LLM latency ×1.25
	)
	n, _ := strconv.Atoi(os.Getenv("HAL9_GATE_TRIALS"))
	if n <= 0 {
		t.Skip("set HAL9_GATE_TRIALS=N to measure the gate's false-alarm and miss rates")
	}
	runs := 4
	if r, _ := strconv.Atoi(os.Getenv("HAL9_GATE_RUNS")); r > 0 {
		runs = r
	}
	slowdowns := []float64{0, 2}
	if s := os.Getenv("HAL9_GATE_SLOWDOWNS"); s != "" {
		slowdowns = []float64{0}
		for _, f := range strings.Split(s, ",") {
			v, err := strconv.ParseFloat(f, 64)
			if err != nil {
				t.Fatal(err)
			}
			slowdowns = append(slowdowns, v)
		}
	}
	for _, sd := range slowdowns {
		alarms := 0
		byMetric := map[string]int{}
		for i := 0; i < n; i++ {
			sum := runGate(t, runs, sd, nil)
			if sum.Gate.ExitCode == lab.ExitRegressed {
				alarms++
			}
			for _, r := range sum.Gate.Comparison.Results {
				if r.Verdict == baseline.Regressed {
					byMetric[r.Metric]++
				}
			}
			var p95 []string
			for _, l := range sum.Legs {
				for _, sc := range l.Scenarios {
					p95 = append(p95, fmt.Sprintf("%s%d:%.0f", l.Role[:1], l.Run, sc.Metrics.ReqP95))
				}
			}
			t.Logf("slowdown %.3g trial %d: %s; p95 in run order %v", sd, i+1, sum.Gate.Verdict, p95)
		}
		lo, hi := wilson(alarms, n)
		what := fmt.Sprintf("caught (LLM %.3g× slower)", sd)
		if sd == 0 {
			what = "false alarms (A/A)"
		}
		t.Logf("RESULT runs=%d slowdown=%.3g: %s %.1f%% [%.1f–%.1f %%, 95 %% Wilson] (%d of %d gates); regressed metrics: %v",
			runs, sd, what, 100*float64(alarms)/float64(n), 100*lo, 100*hi, alarms, n, byMetric)
		switch rate := float64(alarms) / float64(n); {
		case sd == 0 && rate > maxFalseAlarms:
			t.Errorf("A/A: %d false alarms in %d gates (%.1f%%), want at most %.0f%%", alarms, n, 100*rate, 100*maxFalseAlarms)
		case sd >= caughtSlowdown && rate < minCaught:
			t.Errorf("LLM %.3g× slower: caught %d of %d gates (%.1f%%), want at least %.0f%%", sd, alarms, n, 100*rate, 100*minCaught)
		}
	}
}

// wilson is the Wilson score interval (95 %) of k successes in n trials:
// unlike k/n ± 1.96·SE it stays inside [0, 1] and is honest at k = 0.
func wilson(k, n int) (lo, hi float64) {
	const z = 1.959964
	p, fn := float64(k)/float64(n), float64(n)
	centre := (p + z*z/(2*fn)) / (1 + z*z/fn)
	half := z / (1 + z*z/fn) * math.Sqrt(p*(1-p)/fn+z*z/(4*fn*fn))
	return math.Max(0, centre-half), math.Min(1, centre+half)
}

// runTestProfile runs lab/testdata/NAME end to end: opts' Root, Profile,
// OutDir, Command and Progress are filled in here, HalBin when empty, and
// RequireAll when HAL9_REQUIRE_INFRA is set. The progress lines are logged;
// an error of the run fails the test. It returns the summary and the
// report folder.
func runTestProfile(t *testing.T, name string, opts lab.Options) (*report.RunSummary, string) {
	t.Helper()
	r := root(t)
	p, err := profile.Load(r, filepath.Join(r, "lab", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	opts.Root, opts.Profile, opts.OutDir, opts.Command = r, p, t.TempDir(), "run"
	if opts.HalBin == "" {
		opts.HalBin = serverBin(t)
	}
	opts.RequireAll = opts.RequireAll || requireInfra()
	var progress strings.Builder
	opts.Progress = &syncWriter{w: &progress}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	sum, err := lab.Run(ctx, opts)
	t.Logf("progress:\n%s", progress.String())
	if err != nil {
		t.Fatalf("lab run: %v", err)
	}
	return sum, opts.OutDir
}

// TestWilson: the interval of the trials' rates, against the closed form
// evaluated independently (0 of 10 gives the well-known 0–27.8 %).
func TestWilson(t *testing.T) {
	for _, c := range []struct {
		k, n   int
		lo, hi float64
	}{
		{0, 10, 0, 0.2775},
		{5, 10, 0.2366, 0.7634},
		{2, 40, 0.0138, 0.1650},
		{38, 40, 0.8350, 0.9862},
	} {
		lo, hi := wilson(c.k, c.n)
		if math.Abs(lo-c.lo) > 5e-4 || math.Abs(hi-c.hi) > 5e-4 {
			t.Errorf("wilson(%d, %d) = [%.4f, %.4f], want [%.4f, %.4f]", c.k, c.n, lo, hi, c.lo, c.hi)
		}
	}
}
