package readings

import (
	"github.com/hal9-lab/hal9-lab/lab/prom"
	"github.com/hal9-lab/hal9-lab/lab/report"
)

// ReplicaServers fills each replica's share of the work (servers holds
// their names, addresses, restarts and staleness) from two merged scrapes:
// API requests (health checks left out) and LLM cache hits by tier.
func ReplicaServers(before, after *prom.Snapshot, servers []report.ReplicaServer) []report.ReplicaServer {
	out := append([]report.ReplicaServer(nil), servers...)
	var total float64
	for i := range out {
		r := &out[i]
		m := map[string]string{prom.ReplicaLabel: r.Name}
		req := prom.Delta(before, after, "hal9_http_requests_total", m)
		for _, probe := range []string{"/readyz", "/health"} {
			req -= prom.Delta(before, after, "hal9_http_requests_total", map[string]string{prom.ReplicaLabel: r.Name, "route": probe})
		}
		hits := func(tier string) float64 {
			return prom.Delta(before, after, "hal9_cache_requests_total", map[string]string{prom.ReplicaLabel: r.Name, "tier": tier, "layer": LLMLayers, "result": "hit"})
		}
		r.Requests, r.ProcessHits, r.RedisHits = max(req, 0), hits("process"), hits("redis")
		total += r.Requests
	}
	for i := range out {
		out[i].Share = Rate(out[i].Requests, total)
	}
	return out
}

// HAProxyNumbers turns two scrapes of HAProxy's exporter into the report's
// per-server (into servers) and total numbers.
func HAProxyNumbers(before, after *prom.Snapshot, servers []report.ReplicaServer) *report.HAProxyNumbers {
	delta := func(name string, match map[string]string) float64 { return prom.Delta(before, after, name, match) }
	h := &report.HAProxyNumbers{
		Requests:      delta("haproxy_frontend_http_requests_total", map[string]string{"proxy": "!prometheus"}),
		Responses5xx:  delta("haproxy_frontend_http_responses_total", map[string]string{"proxy": "!prometheus", "code": "5xx"}),
		Retries:       delta("haproxy_server_retry_warnings_total", nil),
		Redispatches:  delta("haproxy_server_redispatch_warnings_total", nil),
		CheckFailures: delta("haproxy_server_check_failures_total", nil),
	}
	for i := range servers {
		sv := &servers[i]
		m := map[string]string{"server": sv.Name}
		sv.LBResponses = delta("haproxy_server_http_responses_total", m)
		sv.LB5xx = delta("haproxy_server_http_responses_total", map[string]string{"server": sv.Name, "code": "5xx"})
		sv.CheckFailures = delta("haproxy_server_check_failures_total", m)
		sv.UpDown = delta("haproxy_server_check_up_down_total", m)
		sv.MaxQueue = after.Sum("haproxy_server_max_queue", m)
		h.MaxQueue = max(h.MaxQueue, sv.MaxQueue)
		for _, st := range []string{"UP", "DOWN", "MAINT", "DRAIN", "NOLB"} {
			if after.Sum("haproxy_server_status", map[string]string{"server": sv.Name, "state": st}) == 1 {
				sv.State = st
			}
		}
	}
	return h
}

// AddReplicas accumulates one scenario's replica numbers into the leg's.
func AddReplicas(dst *report.Replicas, servers []report.ReplicaServer, lb *report.HAProxyNumbers, cacheHits, redisHits float64) {
	if len(dst.Servers) == 0 {
		dst.Servers = make([]report.ReplicaServer, len(servers))
		for i, s := range servers {
			dst.Servers[i] = report.ReplicaServer{Name: s.Name, Addr: s.Addr}
		}
	}
	for i, s := range servers {
		if i >= len(dst.Servers) {
			break
		}
		d := &dst.Servers[i]
		d.Requests += s.Requests
		d.ProcessHits += s.ProcessHits
		d.RedisHits += s.RedisHits
		d.LBResponses += s.LBResponses
		d.LB5xx += s.LB5xx
		d.CheckFailures += s.CheckFailures
		d.UpDown += s.UpDown
		d.MaxQueue = max(d.MaxQueue, s.MaxQueue)
		d.State, d.Stale, d.Restarts = s.State, s.Stale, max(d.Restarts, s.Restarts)
	}
	dst.Requests = 0
	for _, d := range dst.Servers {
		dst.Requests += d.Requests
	}
	for i := range dst.Servers {
		dst.Servers[i].Share = Rate(dst.Servers[i].Requests, dst.Requests)
	}
	dst.CacheHits += cacheHits
	dst.RedisHits += redisHits
	dst.RedisShare = Rate(dst.RedisHits, dst.CacheHits)
	if lb != nil {
		if dst.HAProxy == nil {
			dst.HAProxy = &report.HAProxyNumbers{MetricsURL: lb.MetricsURL}
		}
		h := dst.HAProxy
		h.Requests += lb.Requests
		h.Responses5xx += lb.Responses5xx
		h.Retries += lb.Retries
		h.Redispatches += lb.Redispatches
		h.CheckFailures += lb.CheckFailures
		h.MaxQueue = max(h.MaxQueue, lb.MaxQueue)
	}
}
