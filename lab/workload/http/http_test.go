package http

import (
	"context"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/hal9-lab/hal9-lab/lab/load"
)

func TestWeightedRequests(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	seen := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen[r.Method+" "+r.URL.Path]++
		mu.Unlock()
		if r.Method == "POST" && r.Header.Get("Content-Type") != "application/json" {
			w.WriteHeader(400)
			return
		}
		if r.URL.Path == "/teapot" {
			w.WriteHeader(418)
		}
	}))
	defer srv.Close()
	p, err := load.ParseScenario("h.yaml", []byte(`name: h
workload:
  kind: http
  requests:
    - {path: /a, weight: 3}
    - {method: post, path: /b, body: '{"x":1}', weight: 1, headers: {X-Test: "1"}}
    - {path: /teapot, weight: 1, expect: 418}
scenarios:
  s: {executor: constant-arrival-rate, rate: 250, duration: 1s, preAllocatedVUs: 3}
thresholds:
  checks: ["rate==1"]
  http_reqs: ["count==250"]
`))
	if err != nil {
		t.Fatal(err)
	}
	c, err := Decode(p.Workload)
	if err != nil {
		t.Fatal(err)
	}
	w, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	res, err := load.Run(context.Background(), p, load.Options{Target: srv.URL, Workload: w})
	if err != nil {
		t.Fatal(err)
	}
	if !res.ThresholdsOK {
		t.Errorf("thresholds: %+v", res.Thresholds)
	}
	mu.Lock()
	defer mu.Unlock()
	if a := float64(seen["GET /a"]); math.Abs(a-150) > 35 {
		t.Errorf("GET /a %v times, want about 150 of 250", a)
	}
	if seen["POST /b"] == 0 || seen["GET /teapot"] == 0 {
		t.Errorf("seen %v", seen)
	}
}

func TestDecodeErrors(t *testing.T) {
	t.Parallel()
	base := "name: x\nscenarios: {a: {executor: constant-vus, vus: 1, duration: 1s}}\nworkload:\n  kind: http\n"
	for _, tt := range []struct{ yaml, want string }{
		{"", "h.yaml:4: workload.requests: at least one"},
		{"  requests: [{path: a}]\n", `h.yaml:5: workload.requests[0]: path "a" must start with /`},
		{"  requests:\n    - {path: /a}\n    - method: FOO BAR\n      path: /b\n", `h.yaml:7: workload.requests[1]: method "FOO BAR" is not an HTTP method; use one of GET, HEAD`},
		{"  requests: [{method: GTE, path: /a}]\n", `method "GTE" is not an HTTP method`},
		{"  requests: [{path: /a, wieght: 2}]\n", "h.yaml:5: workload.requests[0].wieght: unknown key"},
		{"  requests: [{path: /a, expect: 99}]\n", "expect 99 is not an HTTP status"},
	} {
		p, err := load.ParseScenario("h.yaml", []byte(base+tt.yaml))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Decode(p.Workload); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: err = %v, want %q", tt.yaml, err, tt.want)
		}
	}
}

// TestSetupProbesTarget: an unreachable target is a setup error; any
// HTTP answer (even 404) counts as reachable.
func TestSetupProbesTarget(t *testing.T) {
	t.Parallel()
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close()
	alive := httptest.NewServer(http.NotFoundHandler())
	defer alive.Close()
	p, err := load.ParseScenario("h.yaml", []byte("name: x\nscenarios: {a: {executor: constant-vus, vus: 1, duration: 1s}}\nworkload:\n  kind: http\n  requests: [{path: /a}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := Decode(p.Workload)
	if err != nil {
		t.Fatal(err)
	}
	w, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	env := &load.Env{Target: deadURL, HTTP: http.DefaultClient}
	if err := w.Setup(context.Background(), env); err == nil || !strings.Contains(err.Error(), "target unreachable: GET "+deadURL+"/") {
		t.Errorf("dead target: err = %v", err)
	}
	env.Target = alive.URL
	if err := w.Setup(context.Background(), env); err != nil {
		t.Errorf("live target answering 404: %v", err)
	}
}
