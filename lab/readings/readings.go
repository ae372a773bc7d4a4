// Package readings turns what the lab measured into the report's numbers:
// the difference between two scrapes of the servers' /metrics (how the
// cache hit rate is computed), the per-second series, the engine's result,
// a leg's totals, cost per 1,000 requests and the monthly projection, the
// replicas' and HAProxy's shares, the client/server cross-check. It is
// arithmetic only: nothing here reads a network or a clock.
package readings

import (
	"fmt"
	"math"
	"slices"

	"github.com/hal9-lab/hal9-lab/lab/prom"
	"github.com/hal9-lab/hal9-lab/lab/report"
)

// LLMLayers are the cache "layer" label values of LLM responses (the
// record caches use other values: user, neuron, ...).
const LLMLayers = "L1|L2|L3|L4|L5"

// Numbers is what the lab reads from two scrapes of a server.
type Numbers struct {
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

// ExpectedMetrics are the metric names the lab reads; Numbers.Missing
// lists the ones a server lacked.
var ExpectedMetrics = []string{
	"hal9_http_requests_total", "hal9_cache_requests_total", "hal9_llm_requests_total",
	"hal9_llm_tokens_total", "hal9_llm_cost_dollars_total", "hal9_signals_total",
}

// Diff computes a server's numbers over [before, after].
//
// Cache hit rate: the response cache is layered (process → redis → LLM),
// every lookup (one per forward hop of a signal) asks the first tier, so
// lookups = the process tier's requests (all results) and hits = hits
// summed over tiers plus coalesced waits; a tier's rate is its hits over
// all lookups, so the tiers add up to the overall rate. This is the
// workload's hal9_cache_hit (one sample per hop), so the two must agree.
func Diff(before, after *prom.Snapshot) Numbers {
	var n Numbers
	for _, name := range ExpectedMetrics {
		if !after.Has(name) {
			n.Missing = append(n.Missing, name)
		}
	}
	delta := func(name string, match map[string]string) float64 { return prom.Delta(before, after, name, match) }
	// HAProxy's health checks (GET /readyz) are not the load's requests.
	n.Requests = delta("hal9_http_requests_total", nil) - delta("hal9_http_requests_total", map[string]string{"route": "/readyz"})
	n.Status429 = delta("hal9_http_requests_total", map[string]string{"code": "429"})
	n.ByRoute = map[string]float64{}
	was := before.SumBy("hal9_http_requests_total", "route", nil)
	for r, v := range after.SumBy("hal9_http_requests_total", "route", nil) {
		if d := v - was[r]; d > 0 {
			n.ByRoute[r] = d
		}
	}
	n.Signals = delta("hal9_signals_total", nil)

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
			if v := delta("hal9_cache_requests_total", map[string]string{"tier": t, "layer": LLMLayers}); v > best {
				first, best = t, v
			}
		}
	}
	n.CacheLookups = delta("hal9_cache_requests_total", map[string]string{"tier": first, "layer": LLMLayers})
	n.HitsByTier = map[string]float64{}
	for t := range tiers {
		h := delta("hal9_cache_requests_total", map[string]string{"tier": t, "layer": LLMLayers, "result": "hit"})
		n.HitsByTier[t] = h
		n.CacheHits += h
	}
	// A hop that waited for an identical in-flight load missed the first
	// tier and read no other, yet was answered without its own LLM call:
	// the trace (and the client) count it as a hit, so the server must too.
	if c := delta("hal9_cache_coalesced_total", map[string]string{"layer": LLMLayers}); c > 0 {
		n.HitsByTier["coalesced"] = c
		n.CacheHits += c
	}
	n.LLMRequests = delta("hal9_llm_requests_total", nil)
	n.TokensIn = delta("hal9_llm_tokens_total", map[string]string{"direction": "in|input|prompt"})
	n.TokensOut = delta("hal9_llm_tokens_total", map[string]string{"direction": "out|output|completion"})
	n.CostUSD = delta("hal9_llm_cost_dollars_total", nil)
	n.PoolAcquires = delta("hal9_db_pool_acquires_total", nil)
	n.PoolWaits = delta("hal9_db_pool_empty_acquires_total", nil)
	n.PoolWaitS = delta("hal9_db_pool_acquire_wait_seconds_total", nil)
	n.CPUSeconds = delta("process_cpu_seconds_total", nil)
	n.RSSBytes = after.Sum("process_resident_memory_bytes", nil)
	return n
}

// HitRate is the cache hits over the lookups (0 without a lookup).
func (n Numbers) HitRate() float64 { return Rate(n.CacheHits, n.CacheLookups) }

// CostPer1K is the LLM cost of 1,000 requests.
func (n Numbers) CostPer1K() float64 { return Rate(n.CostUSD, n.Requests) * 1000 }

// FillServer turns a server's numbers into the report's: a tier's hit
// rate is its hits over all lookups (see Diff).
func FillServer(sv *report.Server, n Numbers, seed report.Seed) {
	sv.Requests, sv.Signals, sv.Status429 = n.Requests, n.Signals, n.Status429
	sv.RequestsByRoute = n.ByRoute
	sv.CacheLookups = n.CacheLookups
	sv.CacheHitRate = n.HitRate()
	sv.CacheByTier = map[string]float64{}
	for t, h := range n.HitsByTier {
		sv.CacheByTier[t] = Rate(h, n.CacheLookups)
	}
	sv.LLMRequests, sv.TokensIn, sv.TokensOut, sv.CostUSD = n.LLMRequests, n.TokensIn, n.TokensOut, n.CostUSD
	sv.PoolAcquires, sv.PoolWaits, sv.PoolWaitSeconds = n.PoolAcquires, n.PoolWaits, n.PoolWaitS
	sv.CPUSeconds, sv.PeakRSSBytes = n.CPUSeconds, n.RSSBytes
	sv.Missing = n.Missing
	FinishServer(sv, seed)
}

// AddServer accumulates a scenario's server numbers into the leg's:
// counts add up, hit rates are weighted by their lookups, peak RSS is the
// larger.
func AddServer(dst *report.Server, src report.Server) {
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
	dst.CacheHitRate = Rate(hits, dst.CacheLookups)
	dst.CacheByTier = map[string]float64{}
	for t, h := range tierHits {
		dst.CacheByTier[t] = Rate(h, dst.CacheLookups)
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

// FinishServer derives cost per 1,000 requests and the monthly projection
// at the seed's sustained rate (30 days).
func FinishServer(sv *report.Server, seed report.Seed) {
	sv.CostPer1K = Rate(sv.CostUSD, sv.Requests) * 1000
	sv.MonthlyUSD = sv.CostPer1K / 1000 * seed.SustainedRPS * 86400 * 30
}

// Point is one second of a scenario's server series: the cache hit rate
// of that second (prev to cur; -1 when it had no lookup), and cost, RSS
// and CPU since base. procRSS stands in for servers that do not export
// their RSS.
func Point(base, prev, cur *prom.Snapshot, procRSS float64) report.ServerPoint {
	step, total := Diff(prev, cur), Diff(base, cur)
	p := report.ServerPoint{T: cur.At.UnixMilli(), CacheHitRate: -1, CostUSD: total.CostUSD, RSSBytes: total.RSSBytes, CPUSeconds: total.CPUSeconds}
	if step.CacheLookups > 0 {
		p.CacheHitRate = step.HitRate()
	}
	if p.RSSBytes == 0 {
		p.RSSBytes = procRSS
	}
	return p
}

// CrossCheck compares the workload's header metrics with the server's
// /metrics difference: they count the same things, so a disagreement
// above 1 % means one side mis-measures. It returns each disagreement.
func CrossCheck(m report.Metrics, sv report.Server) []string {
	var out []string
	if m.ClientCostUSD > 0 || sv.CostUSD > 0 {
		if d := RelDiff(m.ClientCostUSD, sv.CostUSD); d > 0.01 {
			out = append(out, fmt.Sprintf("client-side LLM cost $%.6f (sum of X-HAL9-Cost-USD) and server-side $%.6f (increase of hal9_llm_cost_dollars_total) differ by %.1f%% (> 1%%)",
				m.ClientCostUSD, sv.CostUSD, d*100))
		}
	}
	if m.ClientCacheCount > 0 {
		if sv.CacheLookups == 0 {
			out = append(out, fmt.Sprintf("the workload saw %.0f cached hops but the server counted no LLM cache lookups (hal9_cache_requests_total{layer=~\"L1..L5\"})", m.ClientCacheCount))
		} else if d := m.ClientCacheHit - sv.CacheHitRate; d > 0.01 || d < -0.01 {
			out = append(out, fmt.Sprintf("client-side cache hit rate %.2f%% (hal9_cache_hit over %.0f hops) and server-side %.2f%% (over %.0f lookups) differ by %.2f points (> 1)",
				m.ClientCacheHit*100, m.ClientCacheCount, sv.CacheHitRate*100, sv.CacheLookups, d*100))
		}
	}
	return out
}

// Rate returns a/b, 0 when b is 0.
func Rate(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// RelDiff is |a−b| / max(|a|,|b|), 0 when both are 0.
func RelDiff(a, b float64) float64 {
	m := math.Max(math.Abs(a), math.Abs(b))
	if m == 0 {
		return 0
	}
	return math.Abs(a-b) / m
}
