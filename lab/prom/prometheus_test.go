package prom

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// needPrometheus skips without the binary, but fails in CI (HAL9_REQUIRE_INFRA=1).
func needPrometheus(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("prometheus"); err != nil {
		if os.Getenv("HAL9_REQUIRE_INFRA") == "1" {
			t.Fatalf("prometheus binary not on PATH and HAL9_REQUIRE_INFRA=1: %v", err)
		}
		t.Skipf("prometheus binary not on PATH (apt-get install prometheus): %v", err)
	}
}

func TestStartScrapeAndCheck(t *testing.T) {
	needPrometheus(t)
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hal9_http_requests_total", Help: "test"}, []string{"route", "code"})
	reg.MustRegister(c)
	c.WithLabelValues("/api/v1/signals", "200").Add(5)
	ts := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer ts.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	srv, err := Start(ctx, Options{Targets: []Target{{Job: "hal9", Addr: strings.TrimPrefix(ts.URL, "http://")}}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		dir := srv.Dir()
		if err := srv.Stop(context.Background()); err != nil {
			t.Error(err)
		}
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("temp dir %s still there after Stop (err %v)", dir, err)
		}
		if err := srv.Stop(context.Background()); err != nil { // idempotent
			t.Error(err)
		}
	}()
	start := time.Now().Add(-time.Second)
	waitCtx, waitCancel := context.WithTimeout(ctx, 20*time.Second)
	defer waitCancel()
	c.WithLabelValues("/api/v1/signals", "200").Add(5)
	if err := srv.WaitForScrapes(waitCtx, []string{"hal9"}, 3); err != nil {
		t.Fatal(err)
	}
	end := time.Now()

	got, err := srv.EvalRange(ctx, `hal9_http_requests_total{job="hal9"}`, start, end, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Labels["route"] != "/api/v1/signals" || len(got[0].Points) == 0 {
		t.Fatalf("range query: got %+v, want one series with points", got)
	}
	if v := got[0].Points[len(got[0].Points)-1].V; v != 10 {
		t.Errorf("last value %v, want 10", v)
	}

	exprs := []Expr{
		{Source: "has data", Kind: KindPanel, Expr: `sum(rate(hal9_http_requests_total{job=~"$job"}[$__rate_interval]))`},
		{Source: "no data", Kind: KindPanel, Expr: `hal9_never_exported_total`},
		{Source: "alert", Kind: KindAlert, Expr: `sum(hal9_http_requests_total) > 1e9`},
		{Source: "bad", Kind: KindPanel, Expr: `sum(`},
	}
	res := srv.CheckExpressions(ctx, exprs, start, end, CheckOptions{Vars: map[string]string{"__rate_interval": "4s", "job": "hal9"}})
	want := []struct {
		noData, err bool
	}{{false, false}, {true, false}, {false, false}, {false, true}}
	for i, r := range res {
		if r.NoData() != want[i].noData || (r.Err != nil) != want[i].err {
			t.Errorf("%s: noData=%v err=%v (evaluated %q), want noData=%v err=%v", r.Source, r.NoData(), r.Err, r.Evaluated, want[i].noData, want[i].err)
		}
	}
	if !strings.Contains(res[0].Evaluated, "[4s]") || !strings.Contains(res[0].Evaluated, `"hal9"`) {
		t.Errorf("variables not substituted: %q", res[0].Evaluated)
	}
}

func TestStartErrors(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"no targets", Options{}, "no scrape targets"},
		{"no job", Options{Targets: []Target{{Addr: "127.0.0.1:1"}}}, "no job name"},
		{"bad addr", Options{Targets: []Target{{Job: "x", Addr: "nope"}}}, "not host:port"},
		{"no binary", Options{Binary: "prometheus-does-not-exist", Targets: []Target{{Job: "x", Addr: "127.0.0.1:1"}}}, "not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Start(ctx, tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}

func TestStartFailsOnBadRules(t *testing.T) {
	needPrometheus(t)
	bad := t.TempDir() + "/bad.rules.yml"
	if err := os.WriteFile(bad, []byte("groups:\n- name: x\n  rules:\n  - record: y\n    expr: sum(\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := Start(ctx, Options{Targets: []Target{{Job: "x", Addr: "127.0.0.1:1"}}, RuleFiles: []string{bad}, ReadyTimeout: 15 * time.Second})
	if err == nil {
		t.Fatal("Start with a broken rule file succeeded")
	}
}

func TestConfigYAML(t *testing.T) {
	b, err := configYAML(Options{ScrapeInterval: time.Second, Targets: []Target{
		{Job: "hal9", Addr: "127.0.0.1:9091"}, {Job: "hal9", Addr: "127.0.0.1:9092"}, {Job: "hal9lab", Addr: "127.0.0.1:9100", MetricsPath: "/m"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, want := range []string{"job_name: hal9\n", "- 127.0.0.1:9091\n", "- 127.0.0.1:9092\n", "metrics_path: /m", "scrape_interval: 1s"} {
		if !strings.Contains(s, want) {
			t.Errorf("config lacks %q:\n%s", want, s)
		}
	}
	if _, err := configYAML(Options{Targets: []Target{{Job: "a", Addr: "h:1"}, {Job: "a", Addr: "h:2", MetricsPath: "/x"}}}); err == nil {
		t.Error("same job with two metrics paths accepted")
	}
}

func TestEvalRangeErrors(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		w.Write([]byte(`{"status":"error","errorType":"bad_data","error":"parse error"}`))
	}))
	defer ts.Close()
	c := &Client{BaseURL: ts.URL}
	now := time.Now()
	if _, err := c.EvalRange(context.Background(), "x", now.Add(-time.Minute), now, 0); err == nil || !strings.Contains(err.Error(), "parse error") {
		t.Errorf("API error not surfaced: %v", err)
	}
	if _, err := c.EvalRange(context.Background(), "x", now, now, 0); err == nil {
		t.Error("empty range accepted")
	}
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	c = &Client{BaseURL: "http://" + addr}
	if _, err := c.EvalRange(context.Background(), "x", now.Add(-time.Minute), now, 0); err == nil {
		t.Error("connection refused not surfaced")
	}
}
