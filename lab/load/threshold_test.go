package load

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
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
		r.httpSample(httpKey{op: "signal", name: "/s", method: "POST", status: 200}, time.Duration(i)*time.Millisecond, 0, 10, 20)
	}
	for i := 0; i < 10; i++ {
		st := 200
		if i < 5 {
			st = 500
		}
		r.httpSample(httpKey{op: "status", name: "/st", method: "GET", status: st, failed: st != 200}, time.Second, 0, 10, 20)
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

// TestDeadTargetFailsThresholds: requests that got no response add no
// http_req_duration/http_req_waiting samples, so a latency threshold
// against a dead target has no samples and fails with a message instead
// of passing on a made-up 40 µs; so does one on a misspelt tag.
func TestDeadTargetFailsThresholds(t *testing.T) {
	t.Parallel()
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close()
	wl := &fakeWorkload{fn: func(ctx context.Context, it *Iter) error {
		_, err := it.HTTP.Do(ctx, &Request{Method: "GET", Path: "/x", Op: "get"})
		if err == nil {
			return errors.New("a dead target answered")
		}
		return Sleep(ctx, 20*time.Millisecond)
	}}
	plan := &Plan{Name: "dead", Scenarios: []Scenario{{Name: "s", Executor: ConstantVUs, VUs: 2, Duration: time.Second}},
		Thresholds: []Threshold{
			{Metric: "http_req_duration", Expr: "p(95)<500", AbortOnFail: true}, // no samples yet must not abort
			{Metric: "http_req_waiting", Expr: "avg<500"},
			{Metric: "http_req_duration{op:nosuch}", Expr: "p(95)<500"},
			{Metric: "http_reqs", Expr: "count>0"},
		}}
	res, err := Run(context.Background(), plan, Options{Target: deadURL, Workload: wl})
	if err != nil {
		t.Fatal(err)
	}
	if res.ThresholdsOK || res.ExitCode() != 99 || res.Aborted {
		t.Errorf("ok %v exit %d aborted %v, want a failed, unaborted run", res.ThresholdsOK, res.ExitCode(), res.Aborted)
	}
	want := map[string]string{
		"http_req_duration":            "no samples for http_req_duration: the threshold cannot be evaluated",
		"http_req_waiting":             "no samples for http_req_waiting: the threshold cannot be evaluated",
		"http_req_duration{op:nosuch}": "no samples for http_req_duration{op:nosuch}: the threshold cannot be evaluated",
		"http_reqs":                    "",
	}
	for _, r := range res.Thresholds {
		if r.Message != want[r.Metric] || r.OK != (want[r.Metric] == "") {
			t.Errorf("%s %s: ok %v message %q, want %q", r.Metric, r.Expr, r.OK, r.Message, want[r.Metric])
		}
	}
	if f := res.Summary.Metrics[MetricHTTPReqFailed]; f == nil || f.Values["rate"] != 1 {
		t.Errorf("http_req_failed = %+v, want rate 1", f)
	}
	var b strings.Builder
	if err := WriteText(&b, res.Summary); err != nil || !strings.Contains(b.String(), "✗ http_req_duration{op:nosuch} p(95)<500: no samples") {
		t.Errorf("text summary does not say why:\n%s", b.String())
	}
}

// TestExpectedResponseTag: the bare http_req_duration is k6's
// http_req_duration{expected_response:true}; failed responses stay
// selectable under expected_response:false.
func TestExpectedResponseTag(t *testing.T) {
	t.Parallel()
	s := newSink(NewRegistry(), mustProm())
	r := s.recorder("main")
	for i := 0; i < 10; i++ {
		r.httpSample(httpKey{op: "a", status: 200}, 100*time.Millisecond, 50*time.Millisecond, 1, 1)
		r.httpSample(httpKey{op: "a", status: 500, failed: true}, time.Millisecond, time.Millisecond, 1, 1)
		r.httpSample(httpKey{op: "a", status: 0, failed: true}, 40*time.Microsecond, 0, 0, 0)
	}
	st := s.snapshot()
	for _, tt := range []struct {
		metric, expr string
		ok           bool
	}{
		{"http_req_duration", "min==100", true},
		{"http_req_duration{expected_response:true}", "min==100", true},
		{"http_req_duration{expected_response:false}", "max==1", true}, // the 500s; no-response requests have no duration
		{"http_req_duration{op:a}", "min==1", true},                    // a sub-metric by other tags holds every response
		{"http_req_waiting", "min==1", true},                           // not 0: no-response requests have no waiting time
		{"http_reqs", "count==30", true},
		{"http_reqs{expected_response:false}", "count==20", true},
		{"http_req_failed", "rate<0.67", true},
		{"http_req_failed", "rate<0.66", false},
	} {
		c, err := Threshold{Metric: tt.metric, Expr: tt.expr}.compile(st.metrics)
		if err != nil {
			t.Fatalf("%s %s: %v", tt.metric, tt.expr, err)
		}
		if r := c.evaluate(st, time.Second); r.OK != tt.ok {
			t.Errorf("%s %s = %v (observed %v, %s), want %v", tt.metric, tt.expr, r.OK, r.Observed, r.Message, tt.ok)
		}
	}
}
