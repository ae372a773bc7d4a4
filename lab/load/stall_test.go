package load

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestStallAccuracy is the coordinated-omission test. A server stalls
// every request that arrives in the window [2 s, 3 s) of each 5 s cycle
// until the window ends; the engine drives it at a constant 100/s with
// only 2 VUs for 10 s.
//
// Queueing theory for this open workload: an iteration due at u seconds
// into the window cannot finish before the window ends, so it waits 1−u;
// with arrivals uniform over time, 20 % of the iterations wait a time
// uniform on (0, 1 s] and the rest almost nothing. The q-th percentile of
// iteration_response_time, q ≥ 80, is therefore (q−80)/20 seconds: p(90)
// ≈ 500 ms, p(95) ≈ 750 ms, p(99) ≈ 950 ms.
//
// http_req_duration, measured from the actual send, sees only the 2
// requests per window the 2 VUs had in flight (0.4 % of them): its p(99)
// stays at loopback speed. That gap is what coordinated omission hides.
func TestStallAccuracy(t *testing.T) {
	if testing.Short() {
		t.Skip("10 s")
	}
	t.Parallel()
	const cycle, from, to = 5 * time.Second, 2 * time.Second, 3 * time.Second
	start := time.Now()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		phase := time.Since(start) % cycle
		if phase >= from && phase < to {
			time.Sleep(to - phase)
		}
		w.Write([]byte("ok"))
	}))
	defer srv.Close()
	wl := &fakeWorkload{fn: func(ctx context.Context, it *Iter) error {
		_, err := it.HTTP.Do(ctx, &Request{Method: "GET", Path: "/", Op: "get"})
		return err
	}}
	plan := &Plan{Name: "stall", Scenarios: []Scenario{{Name: "open", Executor: ConstantArrivalRate,
		Rate: 100, Duration: 10 * time.Second, PreAllocatedVUs: 2, MaxVUs: 2}}}
	res, err := Run(context.Background(), plan, Options{Workload: wl, Target: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	m := res.Summary.Metrics
	if d := m[MetricDropped]; d != nil && d.Values["count"] > 0 {
		t.Fatalf("%v iterations dropped; maxWait should cover a 1 s stall", d.Values["count"])
	}
	if n := m[MetricIterations].Values["count"]; n != 1000 {
		t.Fatalf("iterations = %v, want 1000", n)
	}
	irt, dur := m[MetricIterResponse].Values, m[MetricHTTPReqDuration].Values
	t.Logf("iteration_response_time p90 %.0f p95 %.0f p99 %.0f ms; http_req_duration med %.2f p90 %.2f p99 %.1f max %.0f ms; iteration_duration p90 %.2f",
		irt["p(90)"], irt["p(95)"], irt["p(99)"], dur["med"], dur["p(90)"], dur["p(99)"], dur["max"], m[MetricIterDuration].Values["p(90)"])
	// The theory assumes the backlog left by a stall drains at once. With
	// 2 VUs it takes (100 iterations / 2 VUs) × the request time (its p90
	// here, to be safe), which a loaded machine stretches: allow for it
	// above, not below.
	drain := 50 * dur["p(90)"]
	for _, c := range []struct {
		stat      string
		want, tol float64
	}{{"p(90)", 500, 200}, {"p(95)", 750, 200}, {"p(99)", 950, 200}} {
		if got := irt[c.stat]; got < c.want-c.tol || got > c.want+c.tol+drain {
			t.Errorf("iteration_response_time %s = %.0f ms, queueing theory says %.0f, −%.0f/+%.0f (+%.0f ms to drain the backlog at a p90 request time of %.1f ms)",
				c.stat, got, c.want, c.tol, c.tol+drain, drain, dur["p(90)"])
		}
	}
	if dur["p(99)"] > 100 {
		t.Errorf("http_req_duration p(99) = %.0f ms: it should not show the stall (only 0.4%% of requests were in flight)", dur["p(99)"])
	}
	if dur["max"] < 800 {
		t.Errorf("http_req_duration max = %.0f ms: the requests in flight during the stall should show it", dur["max"])
	}
}
