package load

import (
	"math"
	"testing"
	"time"
)

// TestOps: per-op stats, per-layer stats only for an op with several
// layers, and the k6 sub-metrics of each.
func TestOps(t *testing.T) {
	reg := NewRegistry()
	s := newSink(reg, mustProm())
	r := s.recorder("main")
	for i := 1; i <= 100; i++ { // signal: L2 1..50 ms, L3 51..100 ms
		layer := "L2"
		if i > 50 {
			layer = "L3"
		}
		r.httpSample(httpKey{op: "signal", layer: layer, name: "/s", method: "POST", status: 200}, time.Duration(i)*time.Millisecond, 0, 1, 1)
	}
	for i := 0; i < 10; i++ { // async: one layer only; status: 2 of 10 fail
		r.httpSample(httpKey{op: "async", layer: "L4", name: "/a", method: "POST", status: 202}, 5*time.Millisecond, 0, 1, 1)
		st := 200
		if i < 2 {
			st = 500
		}
		r.httpSample(httpKey{op: "status", name: "/st", method: "GET", status: st, failed: st != 200}, time.Second, 0, 1, 1)
	}
	st := s.snapshot()
	ops := st.ops()
	want := []struct {
		series    string
		reqs      int64
		errorRate float64
		p50       float64
	}{
		{"async", 10, 0, 5},
		{"signal", 100, 0, 50},
		{"signal:L2", 50, 0, 25},
		{"signal:L3", 50, 0, 75},
		{"status", 10, 0.2, 1000},
	}
	if len(ops) != len(want) {
		t.Fatalf("ops = %+v, want %d entries", ops, len(want))
	}
	for i, w := range want {
		o := ops[i]
		if o.Series() != w.series || o.Reqs != w.reqs || o.ErrorRate != w.errorRate || math.Abs(o.P50-w.p50) > w.p50*0.01 {
			t.Errorf("ops[%d] = %+v (%s), want %+v", i, o, o.Series(), w)
		}
	}
	sum := &Summary{Metrics: map[string]*SummaryMetric{}}
	st.addOpMetrics(sum, ops, 10*time.Second)
	for key, check := range map[string]func(map[string]float64) bool{
		"http_reqs{op:signal}":                                         func(v map[string]float64) bool { return v["count"] == 100 },
		"http_req_failed{op:status}":                                   func(v map[string]float64) bool { return v["rate"] == 0.2 },
		"http_req_duration{expected_response:true,layer:L3,op:signal}": func(v map[string]float64) bool { return v["med"] > 70 && v["med"] < 80 },
	} {
		m := sum.Metrics[key]
		if m == nil || !check(m.Values) {
			t.Errorf("sub-metric %s = %+v", key, m)
		}
	}
	if _, ok := sum.Metrics["http_reqs{layer:L4,op:async}"]; ok {
		t.Error("a one-layer op got per-layer sub-metrics")
	}
}
