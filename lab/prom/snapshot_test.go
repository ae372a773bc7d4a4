package prom_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"

	"github.com/hal9-lab/hal9-lab/lab/prom"
)

// fetchText serves body as a text exposition and fetches it.
func fetchText(t *testing.T, body string) *prom.Snapshot {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		_, _ = w.Write([]byte(body))
	}))
	defer srv.Close()
	s, err := prom.Fetch(context.Background(), srv.Client(), srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSnapshotSums(t *testing.T) {
	s := fetchText(t, `# TYPE req_total counter
req_total{route="/a",code="200"} 5
req_total{route="/a",code="429"} 2
req_total{route="/b",code="200"} 3
# TYPE lat_seconds histogram
lat_seconds_bucket{le="+Inf"} 7
lat_seconds_sum 1
lat_seconds_count 7
# TYPE up gauge
up 1
`)
	for _, tt := range []struct {
		name  string
		match map[string]string
		want  float64
	}{
		{"req_total", nil, 10},
		{"req_total", map[string]string{"route": "/a"}, 7},
		{"req_total", map[string]string{"code": "!429"}, 8},
		{"req_total", map[string]string{"code": "200|429", "route": "/b"}, 3},
		{"req_total", map[string]string{"route": ""}, 10},
		{"lat_seconds", nil, 7}, // a histogram counts its samples
		{"up", nil, 1},
		{"missing_total", nil, 0},
	} {
		if got := s.Sum(tt.name, tt.match); got != tt.want {
			t.Errorf("Sum(%s, %v) = %v, want %v", tt.name, tt.match, got, tt.want)
		}
	}
	if by := s.SumBy("req_total", "route", map[string]string{"code": "200"}); by["/a"] != 5 || by["/b"] != 3 || len(by) != 2 {
		t.Errorf("SumBy route = %v", by)
	}
	if !s.Has("up") || s.Has("down") {
		t.Error("Has")
	}
	var none *prom.Snapshot
	if none.Has("up") || none.Sum("up", nil) != 0 || len(none.SumBy("up", "x", nil)) != 0 {
		t.Error("a nil snapshot holds something")
	}
}

func TestFetchErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/bad" {
			_, _ = w.Write([]byte("not { a metric\n"))
			return
		}
		http.Error(w, "nope", http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	if _, err := prom.Fetch(context.Background(), srv.Client(), srv.URL+"/x"); err == nil || !strings.Contains(err.Error(), "status 503") {
		t.Errorf("503: %v", err)
	}
	if _, err := prom.Fetch(context.Background(), srv.Client(), srv.URL+"/bad"); err == nil || !strings.Contains(err.Error(), "parse the text format") {
		t.Errorf("garbage: %v", err)
	}
}

// TestDeltaPerReplica: over merged snapshots a restarted replica (its
// counter back near 0) resets only its own share of a difference.
func TestDeltaPerReplica(t *testing.T) {
	merged := func(r0, r1 float64) *prom.Snapshot {
		m := &prom.Snapshot{}
		for name, v := range map[string]float64{"r0": r0, "r1": r1} {
			typ := dto.MetricType_COUNTER
			fam, code, ok := "hal9_http_requests_total", "code", "200"
			one := &prom.Snapshot{Families: map[string]*dto.MetricFamily{fam: {Name: &fam, Type: &typ, Metric: []*dto.Metric{{
				Label: []*dto.LabelPair{{Name: &code, Value: &ok}}, Counter: &dto.Counter{Value: &v}}}}}}
			m.AddReplica(one, name)
		}
		return m
	}
	before, after := merged(100, 100), merged(150, 30) // r1 restarted and served 30 since
	if got := prom.Delta(before, after, "hal9_http_requests_total", nil); got != 50+30 {
		t.Errorf("Delta over replicas = %v, want 80 (50 from r0, 30 from the restarted r1)", got)
	}
	if got := prom.Delta(before, after, "hal9_http_requests_total", map[string]string{"replica": "r0"}); got != 50 {
		t.Errorf("Delta of r0 = %v, want 50", got)
	}
	if got := prom.Delta(before, after, "hal9_http_requests_total", map[string]string{"code": "200"}); got != 80 {
		t.Errorf("Delta with a match = %v, want 80", got)
	}
	if got := prom.Delta(after, before, "hal9_http_requests_total", map[string]string{"replica": "r0"}); got != 100 {
		t.Errorf("a counter reset: Delta = %v, want the new value 100", got)
	}
}
