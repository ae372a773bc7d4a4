package load

import (
	"maps"
	"slices"
	"sort"
	"strings"
	"time"
)

// OpStats is one operation's requests in a test (op tag), and, when the
// operation's requests addressed several layers, one per operation ×
// layer (layer tag): the per-operation series a gate judges. Durations in
// ms with the bare http_req_duration's meaning (responses with an
// expected status); ErrorRate is http_req_failed over all its requests.
type OpStats struct {
	Op        string  `json:"op"`
	Layer     string  `json:"layer,omitempty"`
	Reqs      int64   `json:"http_reqs"`
	ErrorRate float64 `json:"error_rate"`
	P50       float64 `json:"http_req_duration_p50"`
	P95       float64 `json:"http_req_duration_p95"`
	P99       float64 `json:"http_req_duration_p99"`
}

// Series names the stats as one series name: "signal", or "signal:L3"
// for one layer of it (what baseline keys and gate tables call the op).
func (o OpStats) Series() string {
	if o.Layer == "" {
		return o.Op
	}
	return o.Op + ":" + o.Layer
}

// selector is the k6 sub-metric selector of the stats' tags, with extra
// pairs, keys sorted: {layer:L3,op:signal}.
func (o OpStats) selector(extra ...string) string {
	pairs := append([]string{"op:" + o.Op}, extra...)
	if o.Layer != "" {
		pairs = append(pairs, "layer:"+o.Layer)
	}
	sort.Strings(pairs)
	return "{" + strings.Join(pairs, ",") + "}"
}

// ops computes every operation's stats (and per layer where an operation
// used several) from the state's http_* series, in op then layer order.
func (st *state) ops() []OpStats {
	layers := map[string]map[string]bool{}
	for k := range st.series {
		if k.metric != MetricHTTPReqs || k.tags.Op == "" {
			continue
		}
		if layers[k.tags.Op] == nil {
			layers[k.tags.Op] = map[string]bool{}
		}
		if k.tags.Layer != "" {
			layers[k.tags.Op][k.tags.Layer] = true
		}
	}
	var out []OpStats
	for _, op := range slices.Sorted(maps.Keys(layers)) {
		out = append(out, st.opStats(op, ""))
		if len(layers[op]) > 1 {
			for _, l := range slices.Sorted(maps.Keys(layers[op])) {
				out = append(out, st.opStats(op, l))
			}
		}
	}
	return out
}

func (st *state) opStats(op, layer string) OpStats {
	o := OpStats{Op: op, Layer: layer}
	f := map[string]string{"op": op}
	if layer != "" {
		f["layer"] = layer
	}
	if a, m := st.selectAgg(MetricHTTPReqs, f); m != nil {
		o.Reqs = int64(a.sum)
	}
	if a, m := st.selectAgg(MetricHTTPReqFailed, f); m != nil && a.count > 0 {
		o.ErrorRate = float64(a.passes) / float64(a.count)
	}
	f["expected_response"] = "true"
	if a, m := st.selectAgg(MetricHTTPReqDuration, f); m != nil && a.count > 0 {
		o.P50, o.P95, o.P99 = pct(a, 50), pct(a, 95), pct(a, 99)
	}
	return o
}

// addOpMetrics puts each operation's sub-metrics into the k6-shaped
// metrics (k6 names: http_reqs{op:signal},
// http_req_duration{expected_response:true,op:signal},
// http_req_failed{op:signal}; {layer:L3,op:signal} for a layer), unless a
// threshold already put them there.
func (st *state) addOpMetrics(s *Summary, ops []OpStats, dur time.Duration) {
	for _, o := range ops {
		f := map[string]string{"op": o.Op}
		if o.Layer != "" {
			f["layer"] = o.Layer
		}
		for _, name := range []string{MetricHTTPReqs, MetricHTTPReqFailed, MetricHTTPReqDuration} {
			key, filter := name+o.selector(), f
			if name == MetricHTTPReqDuration {
				key = name + o.selector("expected_response:true")
				filter = maps.Clone(f)
				filter["expected_response"] = "true"
			}
			if _, ok := s.Metrics[key]; ok {
				continue
			}
			a, m := st.selectAgg(name, filter)
			if m == nil || a.count == 0 {
				continue
			}
			s.Metrics[key] = &SummaryMetric{Type: m.Type.String(), Contains: m.Contains.String(), Values: values(m, a, dur)}
		}
	}
}
