package load

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// fakeWorkload runs fn as each iteration.
type fakeWorkload struct {
	fn    func(ctx context.Context, it *Iter) error
	setup func(env *Env) error
	mu    sync.Mutex
	ids   map[int]bool
}

func (w *fakeWorkload) Setup(_ context.Context, env *Env) error {
	if w.setup != nil {
		return w.setup(env)
	}
	return nil
}

func (w *fakeWorkload) NewVU(id int) (VU, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ids == nil {
		w.ids = map[int]bool{}
	}
	if w.ids[id] {
		return nil, fmt.Errorf("VU id %d created twice", id)
	}
	w.ids[id] = true
	return IterationFunc(w.fn), nil
}

var _ Workload = (*fakeWorkload)(nil)

func sleepIter(d time.Duration) func(context.Context, *Iter) error {
	return func(ctx context.Context, _ *Iter) error { return Sleep(ctx, d) }
}

func counterOf(t *testing.T, s *Summary, name string) float64 {
	t.Helper()
	m := s.Metrics[name]
	if m == nil {
		return 0
	}
	return m.Values["count"]
}

func TestExecutorsIterationCounts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		sc   Scenario
		want float64 // iterations (open model: exact)
		tol  float64
	}{
		{"constant-arrival-rate", Scenario{Name: "car", Executor: ConstantArrivalRate, Rate: 200, Duration: 2 * time.Second, PreAllocatedVUs: 5, MaxVUs: 40}, 400, 0},
		{"ramping-arrival-rate", Scenario{Name: "rar", Executor: RampingArrivalRate, StartRate: 0, PreAllocatedVUs: 2, MaxVUs: 20,
			Stages: []Stage{{time.Second, 200}, {time.Second, 200}, {500 * time.Millisecond, 0}}}, 100 + 200 + 50, 0},
		{"timeUnit", Scenario{Name: "tu", Executor: ConstantArrivalRate, Rate: 30, TimeUnit: 100 * time.Millisecond, Duration: time.Second, PreAllocatedVUs: 4, MaxVUs: 40}, 300, 0},
		// closed model: the count depends on the iterations' speed; the
		// concurrency is what the plan fixes (checked below)
		{"constant-vus", Scenario{Name: "cv", Executor: ConstantVUs, VUs: 4, Duration: 1500 * time.Millisecond}, 0, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			wl := &fakeWorkload{fn: sleepIter(10 * time.Millisecond)}
			if tt.sc.openModel() {
				wl.fn = sleepIter(time.Millisecond)
			}
			res, err := Run(context.Background(), &Plan{Name: tt.name, Scenarios: []Scenario{tt.sc}}, Options{Workload: wl})
			if err != nil {
				t.Fatal(err)
			}
			got := counterOf(t, res.Summary, MetricIterations)
			if tt.tol == 0 {
				if got != tt.want {
					t.Fatalf("iterations = %v, want exactly %v (dropped %v)", got, tt.want, counterOf(t, res.Summary, MetricDropped))
				}
				st := res.Summary.Hal9Lab.Scenarios[tt.sc.Name]
				if st.PlannedIterations != int64(tt.want) {
					t.Errorf("planned = %d", st.PlannedIterations)
				}
			} else if got < 4 || len(wl.ids) != 4 || res.Summary.Metrics[MetricVUs].Values["max"] != 4 {
				t.Fatalf("iterations = %v with %d VUs (vus max %v), want 4 VUs working", got, len(wl.ids), res.Summary.Metrics[MetricVUs].Values["max"])
			}
		})
	}
}

func TestRampingVUsFollowsStages(t *testing.T) {
	t.Parallel()
	var cur, peak atomic.Int64
	wl := &fakeWorkload{fn: func(ctx context.Context, it *Iter) error {
		n := cur.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		defer cur.Add(-1)
		return Sleep(ctx, 5*time.Millisecond)
	}}
	sc := Scenario{Name: "ramp", Executor: RampingVUs, StartVUs: 1, GracefulRampDown: 100 * time.Millisecond,
		Stages: []Stage{{500 * time.Millisecond, 6}, {500 * time.Millisecond, 6}, {500 * time.Millisecond, 0}}}
	res, err := Run(context.Background(), &Plan{Name: "ramp", Scenarios: []Scenario{sc}}, Options{Workload: wl})
	if err != nil {
		t.Fatal(err)
	}
	if p := peak.Load(); p != 6 {
		t.Errorf("peak concurrency %d, want 6", p)
	}
	vm := res.Summary.Metrics[MetricVUsMax]
	if vm == nil || vm.Values["max"] != 6 {
		t.Errorf("vus_max = %+v", vm)
	}
	if it := counterOf(t, res.Summary, MetricIterations); it < 10 {
		t.Errorf("iterations = %v", it)
	}
	if len(wl.ids) != 6 {
		t.Errorf("%d VUs created, want 6", len(wl.ids))
	}
}

func TestGracefulRampDownInterrupts(t *testing.T) {
	t.Parallel()
	// 2 VUs whose iterations take 2 s; the ramp drops to 0 after 200 ms and
	// gracefulRampDown is 100 ms: both iterations are interrupted, none
	// completes, and the test ends long before 2 s.
	wl := &fakeWorkload{fn: sleepIter(2 * time.Second)}
	sc := Scenario{Name: "down", Executor: RampingVUs, StartVUs: 2, GracefulRampDown: 100 * time.Millisecond,
		GracefulStop: 100 * time.Millisecond, Stages: []Stage{{200 * time.Millisecond, 2}, {time.Millisecond, 0}}}
	start := time.Now()
	res, err := Run(context.Background(), &Plan{Name: "down", Scenarios: []Scenario{sc}}, Options{Workload: wl})
	if err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el > 1500*time.Millisecond {
		t.Errorf("took %v: ramp-down did not interrupt", el)
	}
	st := res.Summary.Hal9Lab.Scenarios["down"]
	if st.Interrupted != 2 || st.Completed != 0 {
		t.Errorf("interrupted %d completed %d, want 2 and 0", st.Interrupted, st.Completed)
	}
}

func TestDroppedIterationsWhenVUsRunOut(t *testing.T) {
	t.Parallel()
	// 1 VU, 100 ms iterations, 50/s planned, maxWait 100 ms: the VU can do
	// ~10/s, so most iterations are dropped and the summary warns.
	wl := &fakeWorkload{fn: sleepIter(100 * time.Millisecond)}
	sc := Scenario{Name: "over", Executor: ConstantArrivalRate, Rate: 50, Duration: time.Second,
		PreAllocatedVUs: 1, MaxVUs: 1, MaxWait: 100 * time.Millisecond, GracefulStop: time.Second}
	res, err := Run(context.Background(), &Plan{Name: "over", Scenarios: []Scenario{sc}}, Options{Workload: wl})
	if err != nil {
		t.Fatal(err)
	}
	it, dr := counterOf(t, res.Summary, MetricIterations), counterOf(t, res.Summary, MetricDropped)
	if it+dr != 50 {
		t.Errorf("iterations %v + dropped %v != 50 planned", it, dr)
	}
	if dr < 30 {
		t.Errorf("dropped %v, want most of 50", dr)
	}
	if !strings.Contains(strings.Join(res.Warnings, "\n"), "not held") {
		t.Errorf("no warning about the planned rate: %q", res.Warnings)
	}
	// the waits count: iteration_response_time well above iteration_duration
	irt := res.Summary.Metrics[MetricIterResponse].Values["max"]
	dur := res.Summary.Metrics[MetricIterDuration].Values["max"]
	if irt <= dur {
		t.Errorf("iteration_response_time max %v ≤ iteration_duration max %v", irt, dur)
	}
}

func TestSegmentsMergeToTheWhole(t *testing.T) {
	t.Parallel()
	plan := func() *Plan {
		return &Plan{Name: "seg", Scenarios: []Scenario{
			{Name: "open", Executor: RampingArrivalRate, StartRate: 50, PreAllocatedVUs: 3, MaxVUs: 40,
				Stages: []Stage{{time.Second, 150}, {500 * time.Millisecond, 150}}},
			{Name: "fixed", Executor: ConstantArrivalRate, Rate: 101, Duration: time.Second, PreAllocatedVUs: 3, MaxVUs: 40},
		}, Thresholds: []Threshold{{Metric: "iterations", Expr: "count==276"}, {Metric: "iterations{scenario:fixed}", Expr: "count==101"}}}
	}
	checks := func(ctx context.Context, it *Iter) error {
		it.Check("even", it.VU%2 == 0)
		return Sleep(ctx, time.Millisecond)
	}
	var whole, s1, s2 *Result
	var wg sync.WaitGroup
	for i, dst := range []**Result{&whole, &s1, &s2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			opts := Options{Workload: &fakeWorkload{fn: checks}, RunID: "seg"}
			if i > 0 {
				opts.Segment = Segment{Index: i, Count: 2}
			}
			r, err := Run(context.Background(), plan(), opts)
			if err != nil {
				t.Error(err)
				return
			}
			*dst = r
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	// a summary survives JSON (what crosses process boundaries)
	roundTrip := func(s *Summary) *Summary {
		b, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		var out Summary
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatal(err)
		}
		return &out
	}
	merged, err := MergeSummaries(roundTrip(s1.Summary), roundTrip(s2.Summary))
	if err != nil {
		t.Fatal(err)
	}
	// (100 + 150)/2·1 + 150·0.5 = 175 ramping + 101 constant... computed by the schedule:
	want := float64(NewRateSchedule(50, plan().Scenarios[0].Stages).Count() + 101)
	for _, s := range []*Summary{whole.Summary, merged} {
		if got := counterOf(t, s, MetricIterations); got != want {
			t.Errorf("iterations = %v, want %v", got, want)
		}
	}
	if a, b := counterOf(t, s1.Summary, MetricIterations), counterOf(t, s2.Summary, MetricIterations); a+b != want || math.Abs(a-b) > 2 {
		t.Errorf("segments did %v and %v iterations", a, b)
	}
	// trends merge exactly: the merged count equals the sum
	mc := merged.Hal9Lab.Raw
	_ = mc
	for _, name := range []string{MetricIterDuration, MetricIterResponse} {
		if merged.Metrics[name] == nil {
			t.Fatalf("merged summary lacks %s", name)
		}
	}
	if len(merged.RootGroup.Checks) != 1 || merged.RootGroup.Checks[0].Passes+merged.RootGroup.Checks[0].Fails != int64(want) {
		t.Errorf("merged checks = %+v", merged.RootGroup.Checks)
	}
	if !merged.Hal9Lab.ThresholdsOK || !whole.ThresholdsOK {
		t.Errorf("thresholds: merged %v (%+v), whole %v", merged.Hal9Lab.ThresholdsOK, merged.Hal9Lab.Thresholds, whole.ThresholdsOK)
	}
	if s1.ThresholdsOK {
		t.Errorf("a half alone should not reach count==%v", want)
	}
	if st := merged.Hal9Lab.Scenarios["fixed"]; st.PlannedIterations != 101 || st.Started != 101 {
		t.Errorf("merged scenario stats = %+v", st)
	}
}

func TestAbortOnFail(t *testing.T) {
	t.Parallel()
	wl := &fakeWorkload{fn: func(ctx context.Context, it *Iter) error {
		it.Check("always fails", false)
		return Sleep(ctx, 5*time.Millisecond)
	}}
	plan := &Plan{Name: "abort", Scenarios: []Scenario{{Name: "s", Executor: ConstantVUs, VUs: 2, Duration: 30 * time.Second}},
		Thresholds: []Threshold{{Metric: "checks", Expr: "rate>0.9", AbortOnFail: true}}}
	start := time.Now()
	res, err := Run(context.Background(), plan, Options{Workload: wl})
	if err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("abortOnFail took %v to stop the test", el)
	}
	if !res.Aborted || res.ThresholdsOK || res.ExitCode() != 99 {
		t.Errorf("aborted %v ok %v exit %d", res.Aborted, res.ThresholdsOK, res.ExitCode())
	}
}

func TestCancelStillSummarises(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	wl := &fakeWorkload{fn: sleepIter(10 * time.Millisecond)}
	plan := &Plan{Name: "c", Scenarios: []Scenario{{Name: "s", Executor: ConstantVUs, VUs: 2, Duration: time.Minute}}}
	res, err := Run(ctx, plan, Options{Workload: wl})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Aborted || counterOf(t, res.Summary, MetricIterations) == 0 {
		t.Errorf("aborted %v, iterations %v", res.Aborted, counterOf(t, res.Summary, MetricIterations))
	}
}

func TestRunErrors(t *testing.T) {
	t.Parallel()
	wl := &fakeWorkload{fn: sleepIter(0)}
	ok := []Scenario{{Name: "s", Executor: ConstantVUs, VUs: 1, Duration: time.Second}}
	tests := []struct {
		name string
		plan *Plan
		opts Options
		want string
	}{
		{"unknown metric", &Plan{Scenarios: ok, Thresholds: []Threshold{{Metric: "nope", Expr: "count>0"}}}, Options{Workload: wl}, `no metric "nope"`},
		{"wrong aggregation", &Plan{Scenarios: ok, Thresholds: []Threshold{{Metric: "http_reqs", Expr: "p(95)<1"}}}, Options{Workload: wl}, "p(95) is not an aggregation of counter metrics"},
		{"no workload", &Plan{Scenarios: ok}, Options{}, "no workload"},
		{"bad executor", &Plan{Scenarios: []Scenario{{Name: "x", Executor: "per-vu-iterations"}}}, Options{Workload: wl}, "unknown executor"},
		{"no vus", &Plan{Scenarios: []Scenario{{Name: "x", Executor: ConstantVUs, Duration: time.Second}}}, Options{Workload: wl}, "vus must be at least 1"},
		{"too many vus in Go", &Plan{Scenarios: []Scenario{{Name: "x", Executor: ConstantVUs, VUs: 100_000_000, Duration: time.Second}}}, Options{Workload: wl}, "vus: 100000000 VUs is over the limit of 100000 per executor"},
		{"scale too large", &Plan{Scenarios: ok}, Options{Workload: wl, Scale: 1e9}, "scale 1e+09 must be in (0, 100]"},
		{"scale over the VU limit", &Plan{Scenarios: []Scenario{{Name: "x", Executor: ConstantVUs, VUs: 50_000, Duration: time.Second}}}, Options{Workload: wl, Scale: 4}, `scenario "x" at scale 4: vus: 200000 VUs is over the limit`},
		{"setup fails", &Plan{Scenarios: ok}, Options{Workload: &fakeWorkload{setup: func(*Env) error { return fmt.Errorf("boom") }}}, "workload setup: boom"},
	}
	for _, tt := range tests {
		_, err := Run(context.Background(), tt.plan, tt.opts)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want it to mention %q", tt.name, err, tt.want)
		}
	}
}

// TestHTTPSummaryShape drives a loopback server and checks the k6 summary
// shape, the http metrics, custom metrics and the Prometheus metrics.
func TestHTTPSummaryShape(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/missing" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte(`{"ok":true}`))
	}))
	defer srv.Close()
	var cost *Metric
	var n atomic.Int64
	wl := &fakeWorkload{
		setup: func(env *Env) (err error) {
			cost, err = env.Metrics.New("hal9_llm_cost_usd", Counter, Default)
			return err
		},
		fn: func(ctx context.Context, it *Iter) error {
			res, err := it.HTTP.Do(ctx, &Request{Method: "GET", Path: "/ok", Op: "ok"})
			if err != nil {
				return err
			}
			it.Check("status is 200", res.Status == 200)
			it.Check("body", string(res.Body) == `{"ok":true}`)
			it.Add(cost, 0.5)
			if n.Add(1)%4 == 0 {
				_, err = it.HTTP.Do(ctx, &Request{Method: "GET", Path: "/missing", Op: "missing"})
			}
			return err
		},
	}
	reg := prometheus.NewRegistry()
	plan := &Plan{Name: "shape", Scenarios: []Scenario{{Name: "main", Executor: ConstantArrivalRate, Rate: 100, Duration: time.Second, PreAllocatedVUs: 2}},
		Thresholds: []Threshold{
			{Metric: "http_req_duration", Expr: "p(95)<1000"},
			{Metric: "http_req_duration{op:ok}", Expr: "max<5000"},
			{Metric: "http_reqs{status:404}", Expr: "count==25"},
			{Metric: "http_req_failed", Expr: "rate<0.01"}, // fails: 25/125
			{Metric: "checks", Expr: "rate==1"},
			{Metric: "hal9_llm_cost_usd", Expr: "count==50"},
		}}
	res, err := Run(context.Background(), plan, Options{Workload: wl, Target: srv.URL, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	s := res.Summary
	b, _ := json.Marshal(s)
	var generic map[string]any
	if err := json.Unmarshal(b, &generic); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"root_group", "options", "state", "metrics", "hal9lab"} {
		if generic[k] == nil {
			t.Errorf("summary lacks %q", k)
		}
	}
	if s.State.TestRunDurationMs < 1000 {
		t.Errorf("testRunDurationMs = %v", s.State.TestRunDurationMs)
	}
	d := s.Metrics["http_req_duration"]
	if d == nil || d.Type != "trend" || d.Contains != "time" {
		t.Fatalf("http_req_duration = %+v", d)
	}
	for _, k := range []string{"avg", "min", "med", "max", "p(90)", "p(95)", "p(99)", "p(99.9)"} {
		if _, ok := d.Values[k]; !ok {
			t.Errorf("http_req_duration lacks %s", k)
		}
	}
	if v := d.Values; !(v["min"] <= v["med"] && v["med"] <= v["p(95)"] && v["p(95)"] <= v["max"]) {
		t.Errorf("trend values out of order: %v", v)
	}
	if v := s.Metrics["http_reqs"].Values; v["count"] != 125 || v["rate"] <= 0 {
		t.Errorf("http_reqs = %v", v)
	}
	if v := s.Metrics["http_req_failed"].Values; v["passes"] != 25 || v["fails"] != 100 {
		t.Errorf("http_req_failed = %v (k6: passes are the failed requests)", v)
	}
	if s.Metrics["data_received"].Values["count"] <= 0 || s.Metrics["data_sent"].Values["count"] <= 0 {
		t.Errorf("data_* = %v %v", s.Metrics["data_received"], s.Metrics["data_sent"])
	}
	if s.Metrics["http_reqs{status:404}"] == nil || !s.Metrics["http_reqs{status:404}"].Thresholds["count==25"].OK {
		t.Errorf("sub-metric = %+v", s.Metrics["http_reqs{status:404}"])
	}
	if s.Metrics["http_req_failed"].Thresholds["rate<0.01"].OK || res.ThresholdsOK {
		t.Error("http_req_failed rate<0.01 should fail")
	}
	if !s.Metrics["hal9_llm_cost_usd"].Thresholds["count==50"].OK {
		t.Errorf("custom counter = %+v", s.Metrics["hal9_llm_cost_usd"])
	}
	if len(s.RootGroup.Checks) != 2 || s.RootGroup.Checks[1].Name != "status is 200" || s.RootGroup.Checks[1].Passes != 100 ||
		s.RootGroup.Checks[1].Path != "::status is 200" {
		t.Errorf("checks = %+v", s.RootGroup.Checks)
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP hal9lab_http_reqs_total HTTP requests sent by the load engine, by response status (0: no response).
# TYPE hal9lab_http_reqs_total counter
hal9lab_http_reqs_total{op="missing",scenario="main",status="404"} 25
hal9lab_http_reqs_total{op="ok",scenario="main",status="200"} 100
`), "hal9lab_http_reqs_total"); err != nil {
		t.Errorf("hal9lab_http_reqs_total: %v", err)
	}
	if n, err := testutil.GatherAndCount(reg, "hal9lab_http_req_duration_seconds", "hal9lab_iteration_response_time_seconds",
		"hal9lab_iterations_total", "hal9lab_checks_total", "hal9lab_vus", "hal9lab_vus_max", "hal9lab_http_req_failed_total"); err != nil || n < 7 {
		t.Errorf("hal9lab metrics: %d series, %v", n, err)
	}
	if len(res.TimeSeries) == 0 || res.TimeSeries[0].Custom["hal9_llm_cost_usd"] <= 0 {
		t.Errorf("time series = %+v", res.TimeSeries)
	}
}

// TestRateBeyondCapacityEndsOnTime: at the highest rate allowed, with one
// VU that cannot keep up, the scheduler falls behind; past the deadline
// the rest of the plan is counted as dropped at once, and every planned
// iteration is either started or dropped.
func TestRateBeyondCapacityEndsOnTime(t *testing.T) {
	t.Parallel()
	wl := &fakeWorkload{fn: sleepIter(time.Millisecond)}
	plan := &Plan{Name: "fast", Scenarios: []Scenario{{Name: "s", Executor: ConstantArrivalRate, Rate: MaxRatePerSecond,
		Duration: time.Second, PreAllocatedVUs: 1, MaxVUs: 1, MaxWait: 10 * time.Millisecond, GracefulStop: time.Second}}}
	start := time.Now()
	res, err := Run(context.Background(), plan, Options{Workload: wl})
	if err != nil {
		t.Fatal(err)
	}
	// generous: the point is not minutes (walking 10⁹ iterations did that)
	if el := time.Since(start); el > 30*time.Second {
		t.Errorf("run took %v", el)
	}
	sc := res.Summary.Hal9Lab.Scenarios["s"]
	if sc.PlannedIterations != MaxRatePerSecond || sc.Started+sc.Dropped != sc.PlannedIterations || sc.Dropped == 0 {
		t.Errorf("planned %d, started %d, dropped %d: want started+dropped = planned", sc.PlannedIterations, sc.Started, sc.Dropped)
	}
	if d := counterOf(t, res.Summary, MetricDropped); int64(d) != sc.Dropped {
		t.Errorf("dropped_iterations = %v, scenario dropped %d", d, sc.Dropped)
	}
}
