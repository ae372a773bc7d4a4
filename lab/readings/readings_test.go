package readings_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/hal9-lab/hal9-lab/lab/prom"
	"github.com/hal9-lab/hal9-lab/lab/readings"
	"github.com/hal9-lab/hal9-lab/lab/report"
)

// parse reads a text exposition as a scrape taken at at.
func parse(t *testing.T, text string, at time.Time) *prom.Snapshot {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	return &prom.Snapshot{At: at, Families: fams}
}

const exposition = `# TYPE hal9_http_requests_total counter
hal9_http_requests_total{route="/api/v1/signals",method="POST",code="200"} %d
hal9_http_requests_total{route="/api/v1/status",method="GET",code="429"} %d
# TYPE hal9_cache_requests_total counter
hal9_cache_requests_total{tier="process",layer="L2",result="hit"} %d
hal9_cache_requests_total{tier="process",layer="L2",result="miss"} %d
hal9_cache_requests_total{tier="redis",layer="L2",result="hit"} %d
hal9_cache_requests_total{tier="redis",layer="L2",result="miss"} %d
hal9_cache_requests_total{tier="process",layer="user",result="hit"} 1000
# TYPE hal9_cache_coalesced_total counter
hal9_cache_coalesced_total{layer="L2"} %d
# TYPE hal9_llm_cost_dollars_total counter
hal9_llm_cost_dollars_total{model="claude-sonnet-4-5"} %g
# TYPE hal9_llm_tokens_total counter
hal9_llm_tokens_total{model="claude-sonnet-4-5",direction="input"} %d
hal9_llm_tokens_total{model="claude-sonnet-4-5",direction="output"} %d
# TYPE hal9_http_request_duration_seconds histogram
hal9_http_request_duration_seconds_bucket{route="/x",method="GET",le="+Inf"} 7
hal9_http_request_duration_seconds_sum{route="/x",method="GET"} 1
hal9_http_request_duration_seconds_count{route="/x",method="GET"} 7
`

func TestDiff(t *testing.T) {
	t0 := time.Now()
	before := parse(t, fmt.Sprintf(exposition, 10, 0, 5, 5, 0, 5, 0, 0.5, 100, 50), t0)
	// +100 requests (4 of them 429), 100 L2 lookups: 30 process hits, 70
	// misses of which 20 hit redis, 10 coalesced; $1.5 more.
	after := parse(t, fmt.Sprintf(exposition, 106, 4, 35, 75, 20, 55, 10, 2.0, 1100, 550), t0.Add(time.Second))
	n := readings.Diff(before, after)
	if n.Requests != 100 || n.Status429 != 4 {
		t.Errorf("requests %v, 429 %v", n.Requests, n.Status429)
	}
	if n.CacheLookups != 100 || n.CacheHits != 60 || n.HitRate() != 0.6 {
		t.Errorf("lookups %v hits %v, want 100 and 60 (process 30 + redis 20 + coalesced 10)", n.CacheLookups, n.CacheHits)
	}
	if n.HitsByTier["process"] != 30 || n.HitsByTier["redis"] != 20 || n.HitsByTier["coalesced"] != 10 {
		t.Errorf("by tier %v", n.HitsByTier)
	}
	if n.CostUSD != 1.5 || n.TokensIn != 1000 || n.TokensOut != 500 || n.CostPer1K() != 15 {
		t.Errorf("cost %v tokens %v/%v", n.CostUSD, n.TokensIn, n.TokensOut)
	}
	if n.ByRoute["/api/v1/signals"] != 96 || n.ByRoute["/api/v1/status"] != 4 {
		t.Errorf("by route %v", n.ByRoute)
	}
	if !slices.Contains(n.Missing, "hal9_signals_total") || slices.Contains(n.Missing, "hal9_http_requests_total") {
		t.Errorf("missing = %v", n.Missing)
	}
	var sv report.Server
	readings.FillServer(&sv, n, report.DefaultSeed())
	if sv.CacheHitRate != 0.6 || sv.CostPer1K != 15 || sv.MonthlyUSD != 15.0/1000*1200*86400*30 || sv.CacheByTier["redis"] != 0.2 {
		t.Errorf("server numbers %+v", sv)
	}
	p := readings.Point(before, before, after, 123)
	if p.CacheHitRate != 0.6 || p.CostUSD != 1.5 || p.RSSBytes != 123 || p.T != after.At.UnixMilli() {
		t.Errorf("point %+v", p)
	}
	if p := readings.Point(before, after, after, 0); p.CacheHitRate != -1 || p.CostUSD != 1.5 {
		t.Errorf("a second without lookups: %+v, want hit rate -1 and the cost since the base", p)
	}
}

func TestAddServer(t *testing.T) {
	var leg report.Server
	readings.AddServer(&leg, report.Server{Requests: 100, CacheLookups: 100, CacheHitRate: 0.5, CacheByTier: map[string]float64{"process": 0.5},
		CostUSD: 1, PeakRSSBytes: 10, Missing: []string{"a"}})
	readings.AddServer(&leg, report.Server{Requests: 300, CacheLookups: 300, CacheHitRate: 0.9, CacheByTier: map[string]float64{"process": 0.6, "redis": 0.3},
		CostUSD: 2, PeakRSSBytes: 5, Missing: []string{"a", "b"}})
	if leg.Requests != 400 || leg.CacheLookups != 400 || leg.CacheHitRate != 0.8 || leg.CostUSD != 3 || leg.PeakRSSBytes != 10 {
		t.Errorf("leg %+v: want 400 requests, hit rate (50+270)/400 = 0.8, cost 3, peak 10", leg)
	}
	if leg.CacheByTier["process"] != 0.575 || leg.CacheByTier["redis"] != 0.225 || !slices.Equal(leg.Missing, []string{"a", "b"}) {
		t.Errorf("tiers %v, missing %v", leg.CacheByTier, leg.Missing)
	}
	readings.FinishServer(&leg, report.Seed{SustainedRPS: 1})
	if leg.CostPer1K != 7.5 || leg.MonthlyUSD != 7.5/1000*86400*30 {
		t.Errorf("cost per 1k %v, monthly %v", leg.CostPer1K, leg.MonthlyUSD)
	}
}

func TestCrossCheck(t *testing.T) {
	for _, tt := range []struct {
		name string
		m    report.Metrics
		sv   report.Server
		want []string
	}{
		{"agree", report.Metrics{ClientCostUSD: 1, ClientCacheHit: 0.5, ClientCacheCount: 10}, report.Server{CostUSD: 1.005, CacheLookups: 10, CacheHitRate: 0.505}, nil},
		{"nothing measured", report.Metrics{}, report.Server{}, nil},
		{"cost differs", report.Metrics{ClientCostUSD: 1}, report.Server{CostUSD: 1.1}, []string{"differ by 9.1% (> 1%)"}},
		{"server counted no lookups", report.Metrics{ClientCacheCount: 5}, report.Server{}, []string{"saw 5 cached hops but the server counted no LLM cache lookups"}},
		{"hit rates differ", report.Metrics{ClientCacheHit: 0.5, ClientCacheCount: 10}, report.Server{CacheLookups: 10, CacheHitRate: 0.4}, []string{"differ by 10.00 points"}},
	} {
		got := readings.CrossCheck(tt.m, tt.sv)
		if len(got) != len(tt.want) {
			t.Errorf("%s: %q, want %d problems", tt.name, got, len(tt.want))
			continue
		}
		for i, w := range tt.want {
			if !strings.Contains(got[i], w) {
				t.Errorf("%s: %q, want %q", tt.name, got[i], w)
			}
		}
	}
}

func TestRates(t *testing.T) {
	if readings.Rate(1, 0) != 0 || readings.Rate(1, 4) != 0.25 {
		t.Error("Rate")
	}
	if readings.RelDiff(0, 0) != 0 || readings.RelDiff(-1, 1) != 2 || readings.RelDiff(1, 2) != 0.5 {
		t.Error("RelDiff")
	}
}

// TestReplicas: each replica's share from merged scrapes, HAProxy's
// numbers, and their sum over two scenarios.
func TestReplicas(t *testing.T) {
	t0 := time.Now()
	one := func(signals, status, readyz, processHits, redisHits int) *prom.Snapshot {
		return parse(t, fmt.Sprintf(`# TYPE hal9_http_requests_total counter
hal9_http_requests_total{route="/api/v1/signals"} %d
hal9_http_requests_total{route="/api/v1/status"} %d
hal9_http_requests_total{route="/readyz"} %d
# TYPE hal9_cache_requests_total counter
hal9_cache_requests_total{tier="process",layer="L2",result="hit"} %d
hal9_cache_requests_total{tier="redis",layer="L3",result="hit"} %d
hal9_cache_requests_total{tier="redis",layer="user",result="hit"} 99
`, signals, status, readyz, processHits, redisHits), t0)
	}
	merged := func(r0, r1 *prom.Snapshot) *prom.Snapshot {
		m := &prom.Snapshot{}
		m.AddReplica(r0, "r0")
		m.AddReplica(r1, "r1")
		return m
	}
	before := merged(one(0, 0, 0, 0, 0), one(0, 0, 0, 0, 0))
	after := merged(one(30, 0, 50, 3, 1), one(5, 5, 50, 0, 2))
	servers := readings.ReplicaServers(before, after, []report.ReplicaServer{{Name: "r0", Addr: "a0", Restarts: 1}, {Name: "r1", Addr: "a1", Stale: true}})
	if r := servers[0]; r.Requests != 30 || r.Share != 0.75 || r.ProcessHits != 3 || r.RedisHits != 1 || r.Addr != "a0" || r.Restarts != 1 {
		t.Errorf("r0 %+v", r)
	}
	if r := servers[1]; r.Requests != 10 || r.Share != 0.25 || r.RedisHits != 2 || !r.Stale {
		t.Errorf("r1 %+v", r)
	}
	lbBefore := parse(t, `# TYPE haproxy_frontend_http_requests_total counter
haproxy_frontend_http_requests_total{proxy="hal9"} 0
haproxy_frontend_http_requests_total{proxy="prometheus"} 0
# TYPE haproxy_server_http_responses_total counter
haproxy_server_http_responses_total{server="r0",code="2xx"} 0
haproxy_server_http_responses_total{server="r1",code="5xx"} 0
`, t0)
	lbAfter := parse(t, `# TYPE haproxy_frontend_http_requests_total counter
haproxy_frontend_http_requests_total{proxy="hal9"} 40
haproxy_frontend_http_requests_total{proxy="prometheus"} 7
# TYPE haproxy_server_http_responses_total counter
haproxy_server_http_responses_total{server="r0",code="2xx"} 30
haproxy_server_http_responses_total{server="r1",code="5xx"} 2
# TYPE haproxy_server_status gauge
haproxy_server_status{server="r0",state="UP"} 1
haproxy_server_status{server="r1",state="UP"} 0
haproxy_server_status{server="r1",state="DOWN"} 1
# TYPE haproxy_server_max_queue gauge
haproxy_server_max_queue{server="r1"} 4
`, t0)
	lb := readings.HAProxyNumbers(lbBefore, lbAfter, servers)
	if lb.Requests != 40 || lb.MaxQueue != 4 || servers[0].State != "UP" || servers[1].State != "DOWN" || servers[1].LB5xx != 2 || servers[0].LBResponses != 30 {
		t.Errorf("HAProxy %+v, servers %+v", lb, servers)
	}
	var leg report.Replicas
	readings.AddReplicas(&leg, servers, lb, 6, 3)
	readings.AddReplicas(&leg, servers, lb, 4, 0)
	if leg.Requests != 80 || leg.Servers[0].Requests != 60 || leg.Servers[0].Share != 0.75 || leg.CacheHits != 10 || leg.RedisShare != 0.3 ||
		leg.HAProxy == nil || leg.HAProxy.Requests != 80 || leg.Servers[1].State != "DOWN" {
		t.Errorf("leg %+v", leg)
	}
}
