package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/hal9-lab/hal9-lab/lab/load"
	"github.com/hal9-lab/hal9-lab/lab/report"
)

// Scrape is one read of a server's /metrics.
type Scrape struct {
	At       time.Time
	Families map[string]*dto.MetricFamily
}

// ScrapeMetrics reads url (the admin listener's /metrics) in the text format.
func ScrapeMetrics(ctx context.Context, client *http.Client, url string) (*Scrape, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("scrape %s: status %d: %s", url, resp.StatusCode, b)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: parse the text format: %w", url, err)
	}
	return &Scrape{At: time.Now(), Families: fams}, nil
}

// Has tells whether the scrape holds a metric family.
func (s *Scrape) Has(name string) bool {
	if s == nil {
		return false
	}
	_, ok := s.Families[name]
	return ok
}

// Sum adds the values of every series of name whose labels match all of
// match (a label value "" matches any; "!x" matches anything but x).
// Counters, gauges and untyped series give their value; histograms and
// summaries their sample count.
func (s *Scrape) Sum(name string, match map[string]string) float64 {
	if s == nil {
		return 0
	}
	f := s.Families[name]
	if f == nil {
		return 0
	}
	var sum float64
	for _, m := range f.GetMetric() {
		if !labelsMatch(m.GetLabel(), match) {
			continue
		}
		switch {
		case m.Counter != nil:
			sum += m.GetCounter().GetValue()
		case m.Gauge != nil:
			sum += m.GetGauge().GetValue()
		case m.Untyped != nil:
			sum += m.GetUntyped().GetValue()
		case m.Histogram != nil:
			sum += float64(m.GetHistogram().GetSampleCount())
		case m.Summary != nil:
			sum += float64(m.GetSummary().GetSampleCount())
		}
	}
	return sum
}

// SumBy groups Sum by one label's values.
func (s *Scrape) SumBy(name, label string, match map[string]string) map[string]float64 {
	out := map[string]float64{}
	if s == nil || s.Families[name] == nil {
		return out
	}
	for _, m := range s.Families[name].GetMetric() {
		if !labelsMatch(m.GetLabel(), match) {
			continue
		}
		var key string
		for _, l := range m.GetLabel() {
			if l.GetName() == label {
				key = l.GetValue()
			}
		}
		one := &Scrape{Families: map[string]*dto.MetricFamily{name: {Type: s.Families[name].Type, Metric: []*dto.Metric{m}}}}
		out[key] += one.Sum(name, nil)
	}
	return out
}

func labelsMatch(labels []*dto.LabelPair, match map[string]string) bool {
	for k, want := range match {
		var got string
		for _, l := range labels {
			if l.GetName() == k {
				got = l.GetValue()
			}
		}
		switch {
		case want == "":
		case strings.HasPrefix(want, "!"):
			if got == want[1:] {
				return false
			}
		case strings.Contains(want, "|"):
			if !slices.Contains(strings.Split(want, "|"), got) {
				return false
			}
		default:
			if got != want {
				return false
			}
		}
	}
	return true
}

// Delta is after − before of Sum; a counter reset (server restart) gives
// after's value. On scrapes of several replicas (ReplicaSet.Scrape) it is
// taken per replica and added up, so one restarted replica resets only
// its own share.
func Delta(before, after *Scrape, name string, match map[string]string) float64 {
	if _, one := match["replica"]; !one {
		if reps := after.SumBy(name, "replica", nil); len(reps) > 1 {
			var sum float64
			for r := range reps {
				m := map[string]string{"replica": r}
				for k, v := range match {
					m[k] = v
				}
				sum += Delta(before, after, name, m)
			}
			return sum
		}
	}
	a, b := after.Sum(name, match), before.Sum(name, match)
	if a < b {
		return a
	}
	return a - b
}

// llmLayers are the cache "layer" label values of LLM responses (the
// record caches use other values: user, neuron, ...).
const llmLayers = "L1|L2|L3|L4|L5"

// serverNumbers is what the lab reads from two scrapes.
type serverNumbers struct {
	Requests, Status429                float64
	ByRoute                            map[string]float64
	Signals                            float64
	CacheLookups, CacheHits            float64
	HitsByTier                         map[string]float64
	LLMRequests, TokensIn, TokensOut   float64
	CostUSD                            float64
	PoolAcquires, PoolWaits, PoolWaitS float64
	CPUSeconds, RSSBytes               float64
	Missing                            []string
}

// Metric names the lab reads; Missing lists the ones the server lacked.
var expectedMetrics = []string{
	"hal9_http_requests_total", "hal9_cache_requests_total", "hal9_llm_requests_total",
	"hal9_llm_tokens_total", "hal9_llm_cost_dollars_total", "hal9_signals_total",
}

// diffServer computes the server-side numbers over [before, after].
//
// Cache hit rate: the response cache is layered (process → redis → LLM),
// every lookup (one per forward hop of a signal) asks the first tier, so
// lookups = the process tier's requests (all results) and hits = hits
// summed over tiers plus coalesced waits; a tier's rate is its hits over
// all lookups, so the tiers add up to the overall rate. This is the
// workload's hal9_cache_hit (one sample per hop), so the two must agree.
func diffServer(before, after *Scrape) serverNumbers {
	var n serverNumbers
	for _, name := range expectedMetrics {
		if !after.Has(name) {
			n.Missing = append(n.Missing, name)
		}
	}
	// HAProxy's health checks (GET /readyz) are not the load's requests.
	n.Requests = Delta(before, after, "hal9_http_requests_total", nil) - Delta(before, after, "hal9_http_requests_total", map[string]string{"route": "/readyz"})
	n.Status429 = Delta(before, after, "hal9_http_requests_total", map[string]string{"code": "429"})
	n.ByRoute = map[string]float64{}
	for r, v := range after.SumBy("hal9_http_requests_total", "route", nil) {
		if d := v - before.SumBy("hal9_http_requests_total", "route", nil)[r]; d > 0 {
			n.ByRoute[r] = d
		}
	}
	n.Signals = Delta(before, after, "hal9_signals_total", nil)

	tiers := map[string]bool{}
	if after != nil && after.Families["hal9_cache_requests_total"] != nil {
		for _, m := range after.Families["hal9_cache_requests_total"].GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "tier" {
					tiers[l.GetValue()] = true
				}
			}
		}
	}
	first := "process"
	if !tiers[first] {
		// One tier only (or unknown names): take the busiest as the first.
		best := -1.0
		for t := range tiers {
			if v := Delta(before, after, "hal9_cache_requests_total", map[string]string{"tier": t, "layer": llmLayers}); v > best {
				first, best = t, v
			}
		}
	}
	n.CacheLookups = Delta(before, after, "hal9_cache_requests_total", map[string]string{"tier": first, "layer": llmLayers})
	n.HitsByTier = map[string]float64{}
	for t := range tiers {
		h := Delta(before, after, "hal9_cache_requests_total", map[string]string{"tier": t, "layer": llmLayers, "result": "hit"})
		n.HitsByTier[t] = h
		n.CacheHits += h
	}
	// A hop that waited for an identical in-flight load missed the first
	// tier and read no other, yet was answered without its own LLM call:
	// the trace (and the client) count it as a hit, so the server must too.
	if c := Delta(before, after, "hal9_cache_coalesced_total", map[string]string{"layer": llmLayers}); c > 0 {
		n.HitsByTier["coalesced"] = c
		n.CacheHits += c
	}
	n.LLMRequests = Delta(before, after, "hal9_llm_requests_total", nil)
	n.TokensIn = Delta(before, after, "hal9_llm_tokens_total", map[string]string{"direction": "in|input|prompt"})
	n.TokensOut = Delta(before, after, "hal9_llm_tokens_total", map[string]string{"direction": "out|output|completion"})
	n.CostUSD = Delta(before, after, "hal9_llm_cost_dollars_total", nil)
	n.PoolAcquires = Delta(before, after, "hal9_db_pool_acquires_total", nil)
	n.PoolWaits = Delta(before, after, "hal9_db_pool_empty_acquires_total", nil)
	n.PoolWaitS = Delta(before, after, "hal9_db_pool_acquire_wait_seconds_total", nil)
	n.CPUSeconds = Delta(before, after, "process_cpu_seconds_total", nil)
	n.RSSBytes = after.Sum("process_resident_memory_bytes", nil)
	return n
}

// fillServer turns a /metrics difference into the report's numbers: a
// tier's hit rate is its hits over all lookups (see diffServer).
func fillServer(sv *report.Server, n serverNumbers, seed report.Seed) {
	sv.Requests, sv.Signals, sv.Status429 = n.Requests, n.Signals, n.Status429
	sv.RequestsByRoute = n.ByRoute
	sv.CacheLookups = n.CacheLookups
	sv.CacheHitRate = rate(n.CacheHits, n.CacheLookups)
	sv.CacheByTier = map[string]float64{}
	for t, h := range n.HitsByTier {
		sv.CacheByTier[t] = rate(h, n.CacheLookups)
	}
	sv.LLMRequests, sv.TokensIn, sv.TokensOut, sv.CostUSD = n.LLMRequests, n.TokensIn, n.TokensOut, n.CostUSD
	sv.PoolAcquires, sv.PoolWaits, sv.PoolWaitSeconds = n.PoolAcquires, n.PoolWaits, n.PoolWaitS
	sv.CPUSeconds, sv.PeakRSSBytes = n.CPUSeconds, n.RSSBytes
	sv.Missing = n.Missing
	finishServer(sv, seed)
}

// addServer accumulates a scenario's server numbers into the leg's:
// counts add up, hit rates are weighted by their lookups, peak RSS is the
// larger.
func addServer(dst *report.Server, src report.Server) {
	hits := dst.CacheHitRate*dst.CacheLookups + src.CacheHitRate*src.CacheLookups
	tierHits := map[string]float64{}
	for t, r := range dst.CacheByTier {
		tierHits[t] += r * dst.CacheLookups
	}
	for t, r := range src.CacheByTier {
		tierHits[t] += r * src.CacheLookups
	}
	dst.Requests += src.Requests
	dst.Signals += src.Signals
	dst.Status429 += src.Status429
	dst.CacheLookups += src.CacheLookups
	dst.CacheHitRate = rate(hits, dst.CacheLookups)
	dst.CacheByTier = map[string]float64{}
	for t, h := range tierHits {
		dst.CacheByTier[t] = rate(h, dst.CacheLookups)
	}
	dst.LLMRequests += src.LLMRequests
	dst.TokensIn += src.TokensIn
	dst.TokensOut += src.TokensOut
	dst.CostUSD += src.CostUSD
	dst.PoolAcquires += src.PoolAcquires
	dst.PoolWaits += src.PoolWaits
	dst.PoolWaitSeconds += src.PoolWaitSeconds
	dst.CPUSeconds += src.CPUSeconds
	dst.PeakRSSBytes = max(dst.PeakRSSBytes, src.PeakRSSBytes)
	for _, m := range src.Missing {
		if !slices.Contains(dst.Missing, m) {
			dst.Missing = append(dst.Missing, m)
		}
	}
}

// finishServer derives cost per 1,000 requests and the monthly projection
// at the seed's sustained rate (30 days).
func finishServer(sv *report.Server, seed report.Seed) {
	sv.CostPer1K = rate(sv.CostUSD, sv.Requests) * 1000
	sv.MonthlyUSD = sv.CostPer1K / 1000 * seed.SustainedRPS * 86400 * 30
}

// scrapeSeries appends one ServerPoint per second until stop: the cache
// hit rate of that second (-1 when it had no lookup), and cost, RSS and
// CPU since base. scrape reads the servers' /metrics; procRSS is their RSS
// from /proc, for servers that do not export it.
func scrapeSeries(ctx context.Context, scrape func(context.Context) (*Scrape, error), base *Scrape, procRSS func() float64, out *[]report.ServerPoint, stop <-chan struct{}) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	prev := base
	for {
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cur, err := scrape(ctx)
		if err != nil {
			continue
		}
		step, total := diffServer(prev, cur), diffServer(base, cur)
		p := report.ServerPoint{T: cur.At.UnixMilli(), CacheHitRate: -1, CostUSD: total.CostUSD, RSSBytes: total.RSSBytes, CPUSeconds: total.CPUSeconds}
		if step.CacheLookups > 0 {
			p.CacheHitRate = rate(step.CacheHits, step.CacheLookups)
		}
		if p.RSSBytes == 0 {
			p.RSSBytes = procRSS()
		}
		*out = append(*out, p)
		prev = cur
	}
}

// fillFromLoad copies the engine's result into the report's scenario.
func fillFromLoad(sc *report.Scenario, res *load.Result) {
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

// rate returns a/b, 0 when b is 0.
func rate(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// relDiff is |a−b| / max(|a|,|b|), 0 when both are 0.
func relDiff(a, b float64) float64 {
	m := math.Max(math.Abs(a), math.Abs(b))
	if m == 0 {
		return 0
	}
	return math.Abs(a-b) / m
}
