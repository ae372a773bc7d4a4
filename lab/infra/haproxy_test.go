package infra

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// fakeReplica answers /readyz (200, or 503 when down) and counts the other
// requests, remembering the last X-Forwarded-For.
type fakeReplica struct {
	srv   *httptest.Server
	down  atomic.Bool
	hits  atomic.Int64
	mu    sync.Mutex
	xff   string
	peers map[string]bool
}

func newFakeReplica(t *testing.T) *fakeReplica {
	f := &fakeReplica{peers: map[string]bool{}}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/readyz" {
			if f.down.Load() {
				w.WriteHeader(http.StatusServiceUnavailable)
			}
			return
		}
		f.hits.Add(1)
		f.mu.Lock()
		f.xff = strings.Join(r.Header.Values("X-Forwarded-For"), ", ") // HAProxy adds a header line of its own
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		f.peers[host] = true
		f.mu.Unlock()
		io.WriteString(w, "ok")
	}))
	t.Cleanup(f.srv.Close)
	return f
}

// serverStates reads haproxy_server_status from the exporter: server ->
// its state (UP, DOWN, …) and the check failures counted so far.
func serverStates(t *testing.T, metricsURL string) (map[string]string, map[string]float64) {
	t.Helper()
	res, err := http.Get(metricsURL)
	if err != nil {
		t.Fatalf("scrape HAProxy: %v", err)
	}
	defer res.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(res.Body)
	if err != nil {
		t.Fatalf("HAProxy's exporter does not speak the text format: %v", err)
	}
	states, fails := map[string]string{}, map[string]float64{}
	for _, m := range fams["haproxy_server_status"].GetMetric() {
		var server, state string
		for _, l := range m.GetLabel() {
			switch l.GetName() {
			case "server":
				server = l.GetValue()
			case "state":
				state = l.GetValue()
			}
		}
		if m.GetGauge().GetValue() == 1 {
			states[server] = state
		}
	}
	for _, m := range fams["haproxy_server_check_failures_total"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "server" {
				fails[l.GetValue()] = m.GetCounter().GetValue() + m.GetUntyped().GetValue() + m.GetGauge().GetValue()
			}
		}
	}
	return states, fails
}

// TestHAProxyLifecycle: HAProxy from lab/infra balances round robin over
// two health-checked servers, adds X-Forwarded-For, takes a server that
// fails its checks out of the rotation and puts it back, exports its
// numbers for Prometheus, and leaves nothing behind.
func TestHAProxyLifecycle(t *testing.T) {
	needProcess(t, "haproxy")
	ctx := context.Background()
	a, b := newFakeReplica(t), newFakeReplica(t)
	lb, err := StartHAProxy(ctx, HAProxyOptions{Servers: []string{a.srv.Listener.Addr().String(), b.srv.Listener.Addr().String()},
		CheckInterval: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer lb.Stop(ctx)
	if lb.Mode != ModeProcess || !strings.HasPrefix(lb.URL, "http://127.0.0.1:") || !strings.HasSuffix(lb.MetricsURL, "/metrics") {
		t.Fatalf("balancer %+v", lb)
	}
	cfg, err := os.ReadFile(lb.ConfigPath)
	if err != nil || !strings.Contains(string(cfg), "option httpchk GET /readyz") || !strings.Contains(string(cfg), "balance roundrobin") {
		t.Fatalf("generated config (%v):\n%s", err, cfg)
	}
	eventually(t, "both servers UP in HAProxy", func() bool {
		st, _ := serverStates(t, lb.MetricsURL)
		return st["r0"] == "UP" && st["r1"] == "UP"
	})

	get := func() int {
		req, _ := http.NewRequest(http.MethodGet, lb.URL+"/api/v1/status", nil)
		req.Header.Set("X-Forwarded-For", "198.51.100.7")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("through HAProxy: %v", err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res.StatusCode
	}
	for i := 0; i < 10; i++ {
		if c := get(); c != 200 {
			t.Fatalf("request %d through HAProxy: %d", i, c)
		}
	}
	if a.hits.Load() != 5 || b.hits.Load() != 5 {
		t.Fatalf("round robin over 10 requests: %d and %d, want 5 and 5", a.hits.Load(), b.hits.Load())
	}
	a.mu.Lock()
	xff, peers := a.xff, a.peers
	a.mu.Unlock()
	if xff != "198.51.100.7, 127.0.0.1" {
		t.Errorf("X-Forwarded-For at the server = %q, want the client's value and HAProxy's peer appended", xff)
	}
	if len(peers) != 1 || !peers["127.0.0.1"] {
		t.Errorf("the server's peers %v, want HAProxy's 127.0.0.1 only", peers)
	}

	// A server whose readiness fails leaves the rotation.
	a.down.Store(true)
	eventually(t, "r0 DOWN after failed checks", func() bool {
		st, _ := serverStates(t, lb.MetricsURL)
		return st["r0"] == "DOWN" && st["r1"] == "UP"
	})
	before := a.hits.Load()
	for i := 0; i < 6; i++ {
		if c := get(); c != 200 {
			t.Fatalf("with r0 down: %d", c)
		}
	}
	if a.hits.Load() != before {
		t.Errorf("r0 got %d requests while DOWN", a.hits.Load()-before)
	}
	if _, fails := serverStates(t, lb.MetricsURL); fails["r0"] < 2 {
		t.Errorf("check failures of r0 = %v, want at least fall (2)", fails["r0"])
	}
	a.down.Store(false)
	eventually(t, "r0 UP again", func() bool {
		st, _ := serverStates(t, lb.MetricsURL)
		return st["r0"] == "UP"
	})

	pid, dir, reaper := lb.Process.PID(), lb.Process.Dir(), lb.Process.ReaperPID()
	if err := lb.Stop(ctx); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if !gone(pid) {
		t.Fatalf("haproxy pid %d alive after Stop", pid)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("dir %s left behind", dir)
	}
	eventually(t, "reaper exited", func() bool { return gone(reaper) })
	if err := lb.Stop(ctx); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
}

func TestHAProxyErrors(t *testing.T) {
	needProcess(t, "haproxy")
	ctx := context.Background()
	if _, err := StartHAProxy(ctx, HAProxyOptions{}); err == nil || !strings.Contains(err.Error(), "no servers") {
		t.Errorf("no servers: %v", err)
	}
	if _, err := StartHAProxy(ctx, HAProxyOptions{Servers: []string{"localhost"}}); err == nil || !strings.Contains(err.Error(), "not host:port") {
		t.Errorf("bad server: %v", err)
	}
	if _, err := StartHAProxy(ctx, HAProxyOptions{Servers: []string{"127.0.0.1:1"}, Bin: "/nonexistent/haproxy"}); err == nil || !strings.Contains(err.Error(), "apt-get install haproxy") {
		t.Errorf("missing binary: %v", err)
	}
	t.Setenv(EnvHAProxyURL, "http://127.0.0.1:1")
	t.Setenv(EnvHAProxyServers, "")
	if _, err := StartBalancer(ctx, HAProxyOptions{Servers: []string{"127.0.0.1:2"}}); err == nil || !strings.Contains(err.Error(), EnvHAProxyServers) {
		t.Errorf("external without servers: %v", err)
	}
	t.Setenv(EnvHAProxyServers, "127.0.0.1:3")
	if _, err := StartBalancer(ctx, HAProxyOptions{Servers: []string{"127.0.0.1:2"}}); err == nil || !strings.Contains(err.Error(), "start them on the addresses") {
		t.Errorf("external with other servers: %v", err)
	}
	if _, err := StartBalancer(ctx, HAProxyOptions{Servers: []string{"127.0.0.1:3"}}); err == nil || !strings.Contains(err.Error(), "does not answer") {
		t.Errorf("external that does not answer: %v", err)
	}
}
