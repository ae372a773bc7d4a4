package load

import (
	"strings"
	"testing"
	"time"
)

// testState builds a state: http_req_duration samples 1..100 ms for
// op:signal and 1000 ms ×10 for op:status; 5 failures in 110 requests.
func testState() *state {
	reg := NewRegistry()
	s := newSink(reg, mustProm())
	r := s.recorder("main")
	for i := 1; i <= 100; i++ {
		r.httpSample(Tags{Scenario: "main", Op: "signal", Name: "/s", Method: "POST", Status: "200"}, time.Duration(i)*time.Millisecond, 0, false, 10, 20)
	}
	for i := 0; i < 10; i++ {
		st := "200"
		if i < 5 {
			st = "500"
		}
		r.httpSample(Tags{Scenario: "main", Op: "status", Name: "/st", Method: "GET", Status: st}, time.Second, 0, st != "200", 10, 20)
	}
	s.gauge(s.byName[MetricVUs], Tags{}, 7)
	return s.snapshot()
}

func mustProm() *promMetrics {
	p, err := newPromMetrics(nil)
	if err != nil {
		panic(err)
	}
	return p
}

func TestThresholdEvaluation(t *testing.T) {
	st := testState()
	dur := 10 * time.Second
	tests := []struct {
		metric, expr string
		ok           bool
	}{
		{"http_req_duration{op:signal}", "p(95)<100", true},
		{"http_req_duration{op:signal}", "p(95)<90", false},
		{"http_req_duration{op:signal}", "p(50) <= 51", true},
		{"http_req_duration{op:signal}", "med>=50", true},
		{"http_req_duration{op:signal}", "avg==50.5", true},
		{"http_req_duration{op:signal}", "min==1", true},
		{"http_req_duration{op:signal}", "max===100", true},
		{"http_req_duration", "max<1000", false},
		{"http_req_duration", "p(99.9) > 999", true},
		{"http_req_duration{op:status,status:500}", "avg == 1000", true},
		{"http_reqs", "count==110", true},
		{"http_reqs", "rate==11", true},
		{"http_reqs{status:500}", "count!=5", false},
		{"http_reqs{scenario:other}", "count==0", true},
		{"http_req_failed", "rate<0.05", true},
		{"http_req_failed", "rate<0.04", false},
		{"http_req_failed{op:status}", "rate==0.5", true},
		{"vus", "value==7", true},
		{"vus", "max>7", false},
		{"data_received", "count==2200", true},
	}
	for _, tt := range tests {
		c, err := Threshold{Metric: tt.metric, Expr: tt.expr}.compile(st.metrics)
		if err != nil {
			t.Errorf("%s %s: %v", tt.metric, tt.expr, err)
			continue
		}
		r := c.evaluate(st, dur)
		if r.OK != tt.ok {
			t.Errorf("%s %s = %v (observed %v), want %v", tt.metric, tt.expr, r.OK, r.Observed, tt.ok)
		}
	}
}

func TestThresholdErrors(t *testing.T) {
	metrics := NewRegistry().byName
	tests := []struct {
		metric, expr, want string
	}{
		{"http_req_duration", "p(95)", "no comparison operator"},
		{"http_req_duration", "p(95)<abc", `"abc" is not a number`},
		{"http_req_duration", "p(101)<5", "want p(N) with 0 ≤ N ≤ 100"},
		{"http_req_duration", "p95<5", `unknown aggregation "p95"`},
		{"http_req_duration", "<5", "missing aggregation"},
		{"http_req_duration", "", "empty expression"},
		{"http_req_duration", "rate<5", "rate is not an aggregation of trend metrics; use avg, min, max, med, p(N)"},
		{"http_req_failed", "avg<0.1", "avg is not an aggregation of rate metrics; use rate"},
		{"http_reqs", "value>1", "value is not an aggregation of counter metrics; use count, rate"},
		{"vus", "count>1", "use value, min, max"},
		{"http_req_durations", "p(95)<1", `no metric "http_req_durations"`},
		{"http_req_duration{op}", "p(95)<1", "want tag:value pairs"},
		{"http_req_duration{url:/x}", "p(95)<1", `unknown tag "url"`},
		{"http_req_duration{op:signal", "p(95)<1", "must end with }"},
		{"9bad", "count>1", "is not valid"},
	}
	for _, tt := range tests {
		_, err := Threshold{Metric: tt.metric, Expr: tt.expr, Source: "x.yaml:3"}.compile(metrics)
		if err == nil {
			t.Errorf("%s %q: no error", tt.metric, tt.expr)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "x.yaml:3") || !strings.Contains(err.Error(), tt.expr) {
			t.Errorf("%s %q: error %q, want it to name the source, the expression and %q", tt.metric, tt.expr, err, tt.want)
		}
	}
}
