package readings

import (
	"encoding/json"

	"github.com/hal9-lab/hal9-lab/lab/load"
	"github.com/hal9-lab/hal9-lab/lab/report"
)

// FromLoad copies the engine's result into the report's scenario: the
// client's numbers, thresholds, checks, warnings, the per-second series
// and the k6 summary (without the raw histograms).
func FromLoad(sc *report.Scenario, res *load.Result) {
	sum := res.Summary
	v := func(metric, stat string) float64 {
		if sum == nil || sum.Metrics[metric] == nil {
			return 0
		}
		return sum.Metrics[metric].Values[stat]
	}
	m := &sc.Metrics
	m.HTTPReqs = v("http_reqs", "count")
	m.Iterations = v("iterations", "count")
	if sum != nil {
		m.DurationS = sum.State.TestRunDurationMs / 1000
	}
	m.AchievedRPS = v("http_reqs", "rate")
	m.ErrorRate = v("http_req_failed", "rate")
	m.Dropped = v("dropped_iterations", "count")
	m.ChecksRate = v("checks", "rate")
	m.ReqP50, m.ReqP95, m.ReqP99 = v("http_req_duration", "med"), v("http_req_duration", "p(95)"), v("http_req_duration", "p(99)")
	m.IterP50, m.IterP95, m.IterP99 = v("iteration_response_time", "med"), v("iteration_response_time", "p(95)"), v("iteration_response_time", "p(99)")
	m.VUsMax = v("vus_max", "max")
	if m.VUsMax == 0 {
		m.VUsMax = v("vus_max", "value")
	}
	m.ClientCacheHit = v("hal9_cache_hit", "rate")
	m.ClientCacheCount = v("hal9_cache_hit", "passes") + v("hal9_cache_hit", "fails")
	m.ClientCostUSD = v("hal9_llm_cost_usd", "count")
	m.ClientTokens = v("hal9_llm_tokens", "count")
	if sum != nil && sum.Hal9Lab != nil {
		for _, st := range sum.Hal9Lab.Scenarios {
			m.PlannedRPS += st.PlannedRate
		}
		for _, o := range sum.Hal9Lab.Ops {
			m.Ops = append(m.Ops, report.OpMetrics{Op: o.Series(), HTTPReqs: float64(o.Reqs), ErrorRate: o.ErrorRate, ReqP50: o.P50, ReqP95: o.P95, ReqP99: o.P99})
		}
	}
	sc.Passed = res.ThresholdsOK && !res.Aborted
	for _, t := range res.Thresholds {
		sc.Thresholds = append(sc.Thresholds, report.Threshold{Metric: t.Metric, Expr: t.Expr, OK: t.OK})
	}
	if sum != nil {
		for _, c := range sum.RootGroup.Checks {
			sc.Checks = append(sc.Checks, report.Check{Name: c.Name, Passes: float64(c.Passes), Fails: float64(c.Fails)})
		}
	}
	sc.Warnings = append(sc.Warnings, res.Warnings...)
	for _, p := range res.TimeSeries {
		sc.Series = append(sc.Series, report.Point{T: p.TS, Reqs: float64(p.Reqs), Iters: float64(p.Iterations), Errors: float64(p.Errors),
			P50: p.P50, P95: p.P95, P99: p.P99, VUs: float64(p.VUs), Planned: p.Planned, Dropped: float64(p.Dropped)})
	}
	if sum != nil { // the k6 summary without the raw histograms and the series (kept above)
		cp := *sum
		if sum.Hal9Lab != nil {
			h := *sum.Hal9Lab
			h.Raw, h.TimeSeries = nil, nil
			cp.Hal9Lab = &h
		}
		if b, err := json.Marshal(&cp); err == nil {
			sc.K6 = b
		}
	}
}
