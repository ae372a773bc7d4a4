package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/hal9-lab/hal9-lab/lab/infra/infratest"
	"github.com/hal9-lab/hal9-lab/server/app"
)

type serveConfig = app.Config

func TestMain(m *testing.M) { infratest.Main(m) }

// freeAddr returns a loopback address that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// instance is `hal9 serve` running in-process through run().
type instance struct {
	api, admin string
	stderr     *syncBuffer
	exit       chan int
	cancel     context.CancelFunc
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func startServe(t *testing.T, env map[string]string, args ...string) *instance {
	t.Helper()
	in := &instance{api: freeAddr(t), admin: freeAddr(t), stderr: &syncBuffer{}, exit: make(chan int, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	in.cancel = cancel
	all := append([]string{"serve", "--addr", in.api, "--admin-addr", in.admin, "--data-dir", t.TempDir(),
		"--jwt-secret", strings.Repeat("j", 32), "--bcrypt-cost", "4", "--log-level", "warn"}, args...)
	go func() { in.exit <- run(ctx, all, io.Discard, in.stderr, envFrom(env)) }()
	t.Cleanup(func() { in.stop(t) })
	for i := 0; ; i++ { // bounded wait for readiness
		if r, err := http.Get("http://" + in.admin + "/readyz"); err == nil {
			r.Body.Close()
			if r.StatusCode == 200 {
				break
			}
		}
		select {
		case code := <-in.exit:
			t.Fatalf("hal9 serve exited %d: %s", code, in.stderr.String())
		default:
		}
		if i > 600 {
			t.Fatalf("hal9 serve not ready after 30s: %s", in.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return in
}

// stop sends the equivalent of SIGTERM and checks the exit code is 0.
func (in *instance) stop(t *testing.T) {
	if in.cancel == nil {
		return
	}
	in.cancel()
	in.cancel = nil
	select {
	case code := <-in.exit:
		if code != 0 {
			t.Errorf("hal9 serve exit code %d: %s", code, in.stderr.String())
		}
	case <-time.After(70 * time.Second):
		t.Error("hal9 serve did not stop")
	}
}

type answer struct {
	status int
	header http.Header
	json   map[string]any
}

func call(t *testing.T, method, url, tok string, body any) answer {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, url, rd)
	req.Header.Set("Content-Type", "application/json")
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	a := answer{status: res.StatusCode, header: res.Header}
	b, _ := io.ReadAll(res.Body)
	json.Unmarshal(b, &a.json)
	return a
}

func login(t *testing.T, api, name string) string {
	t.Helper()
	r := call(t, "POST", "http://"+api+"/api/v1/auth/register", "", map[string]string{"username": name, "email": name + "@example.com", "password": "password-" + name})
	if r.status != 201 {
		t.Fatalf("register %d %v", r.status, r.json)
	}
	r = call(t, "POST", "http://"+api+"/api/v1/auth/login", "", map[string]string{"username": name, "password": "password-" + name})
	tok, _ := r.json["access_token"].(string)
	if r.status != 200 || tok == "" {
		t.Fatalf("login %d %v", r.status, r.json)
	}
	return tok
}

func scrape(t *testing.T, admin string) map[string]float64 {
	t.Helper()
	res, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	// flatten: name{k="v",...} → value (counters and gauges), name → 1 for presence
	out := map[string]float64{}
	for name, mf := range mfs {
		out[name] = 1
		for _, m := range mf.GetMetric() {
			var parts []string
			for _, l := range m.GetLabel() {
				parts = append(parts, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			key := name + "{" + strings.Join(parts, ",") + "}"
			switch {
			case m.Counter != nil:
				out[key] = m.GetCounter().GetValue()
			case m.Gauge != nil:
				out[key] = m.GetGauge().GetValue()
			}
		}
	}
	return out
}

func sumMatching(m map[string]float64, name string, contains ...string) float64 {
	total := 0.0
next:
	for k, v := range m {
		if !strings.HasPrefix(k, name+"{") {
			continue
		}
		for _, c := range contains {
			if !strings.Contains(k, c) {
				continue next
			}
		}
		total += v
	}
	return total
}

// TestServeSQLite: the default backend end to end, stopped like SIGTERM.
func TestServeSQLite(t *testing.T) {
	in := startServe(t, map[string]string{"HAL9_LLM_LATENCY_SCALE": "0"})
	tok := login(t, in.api, "sqliteuser")
	r := call(t, "POST", "http://"+in.api+"/api/v1/signals", tok, map[string]string{"content": "hello", "layer": "L2"})
	if r.status != 200 || r.header.Get("X-HAL9-Cache") != "miss" {
		t.Fatalf("signal %d %v", r.status, r.json)
	}
	if r := call(t, "GET", "http://"+in.api+"/metrics", "", nil); r.status != 404 {
		t.Fatalf("/metrics on the API listener: %d", r.status)
	}
	if m := scrape(t, in.admin); m["hal9_signals_total"] == 0 || m["hal9_db_pool_max_conns"] == 0 {
		t.Fatalf("admin metrics missing: %v", len(m))
	}
	in.stop(t)
}

// TestServePostgresRedis proves `hal9 serve --database-url postgres://…
// --redis-url redis://…`: two instances share PostgreSQL and Redis; a
// signal answered by the first is a Redis hit on the second (whose
// process tier is empty), and either reads the other's signals.
func TestServePostgresRedis(t *testing.T) {
	pg := infratest.PostgresURL(t)
	rd := infratest.RedisURL(t)
	env := map[string]string{"HAL9_LLM_LATENCY_SCALE": "0", "HAL9_DATABASE_URL": pg, "HAL9_REDIS_URL": rd}
	a := startServe(t, env, "--db-max-conns", "8", "--db-min-conns", "1", "--redis-pool-size", "4")
	b := startServe(t, env, "--db-max-conns", "8", "--db-min-conns", "1", "--cache-strategy", "through")

	tok := login(t, a.api, "pguser")
	sig := map[string]string{"content": "shared across instances", "layer": "L3"}
	first := call(t, "POST", "http://"+a.api+"/api/v1/signals", tok, sig)
	if first.status != 200 || first.header.Get("X-HAL9-Cache") != "miss" {
		t.Fatalf("first %d %v", first.status, first.json)
	}
	second := call(t, "POST", "http://"+b.api+"/api/v1/signals", tok, sig)
	if second.status != 200 || second.header.Get("X-HAL9-Cache") != "hit" || second.header.Get("X-HAL9-Cost-USD") != "0" {
		t.Fatalf("second (other instance) %d %v %v", second.status, second.header, second.json)
	}
	for _, h := range second.json["trace"].([]any) {
		if tier := h.(map[string]any)["tier"]; tier != "redis" {
			t.Errorf("hop tier %v, want redis", tier)
		}
	}
	mb := scrape(t, b.admin)
	if n := sumMatching(mb, "hal9_cache_requests_total", `tier="redis"`, `result="hit"`); n < 3 {
		t.Fatalf("redis hits on the second instance = %v", n)
	}
	if n := sumMatching(mb, "hal9_db_pool_max_conns"); n != 8 {
		t.Errorf("hal9_db_pool_max_conns = %v, want 8", n)
	}
	// A third time on the second instance: now a process-tier hit.
	third := call(t, "POST", "http://"+b.api+"/api/v1/signals", tok, sig)
	if tier := third.json["trace"].([]any)[0].(map[string]any)["tier"]; tier != "process" {
		t.Errorf("third: tier %v, want process", tier)
	}
	// Shared database: the signal of A is readable on B, search works on PostgreSQL.
	id := first.json["signal_id"].(string)
	if g := call(t, "GET", "http://"+b.api+"/api/v1/signals/"+id, tok, nil); g.status != 200 || g.json["status"] != "processed" {
		t.Fatalf("get on B: %d %v", g.status, g.json)
	}
	if s := call(t, "GET", "http://"+a.api+"/api/v1/memories/search?q=shared", tok, nil); s.status != 200 || s.json["count"].(float64) < 1 {
		t.Fatalf("search: %d %v", s.status, s.json)
	}
	if r := call(t, "GET", "http://"+a.admin+"/readyz", "", nil); r.json["status"] != "ready" {
		t.Fatalf("readyz %v", r.json)
	}
	a.stop(t)
	b.stop(t)
}

// TestServeBackendOutages: with its own PostgreSQL and Redis stopped and
// restarted under it, the server answers 503 + Retry-After for writes and
// readiness while the database is down, keeps serving (degraded) while
// Redis is down, and recovers from both by itself.
func TestServeBackendOutages(t *testing.T) {
	pg := infratest.PostgresProcess(t)
	rp := infratest.RedisProcess(t)
	in := startServe(t, map[string]string{"HAL9_LLM_LATENCY_SCALE": "0"},
		"--database-url", pg.URL(), "--redis-url", rp.URL(), "--db-max-conns", "4", "--db-min-conns", "0")
	tok := login(t, in.api, "outage")
	post := func(content string) answer {
		return call(t, "POST", "http://"+in.api+"/api/v1/signals", tok, map[string]string{"content": content, "layer": "L2"})
	}
	ctx := context.Background()

	// Redis down: 200 from the process tier and the LLM, readiness degraded.
	if err := rp.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if r := post("redis is down"); r.status != 200 {
		t.Fatalf("signal with Redis down: %d %v", r.status, r.json)
	}
	if r := call(t, "GET", "http://"+in.admin+"/readyz", "", nil); r.status != 200 || r.json["status"] != "degraded" {
		t.Fatalf("readyz with Redis down: %d %v", r.status, r.json)
	}
	if n := sumMatching(scrape(t, in.admin), "hal9_cache_requests_total", `tier="redis"`, `result="error"`); n < 1 {
		t.Fatalf("redis errors = %v", n)
	}
	if err := rp.Start(ctx); err != nil {
		t.Fatal(err)
	}
	waitReady(t, in, "ready")

	// PostgreSQL down: 503 + Retry-After, readiness 503.
	if err := pg.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	r := post("postgres is down")
	if r.status != 503 || r.header.Get("Retry-After") == "" {
		t.Fatalf("signal with PostgreSQL down: %d %v %v", r.status, r.header, r.json)
	}
	if r := call(t, "GET", "http://"+in.admin+"/readyz", "", nil); r.status != 503 {
		t.Fatalf("readyz with PostgreSQL down: %d %v", r.status, r.json)
	}
	if err := pg.Start(ctx); err != nil {
		t.Fatal(err)
	}
	waitReady(t, in, "ready")
	if r := post("postgres is back"); r.status != 200 {
		t.Fatalf("signal after PostgreSQL returned: %d %v", r.status, r.json)
	}
}

func waitReady(t *testing.T, in *instance, want string) {
	t.Helper()
	for i := 0; ; i++ {
		r := call(t, "GET", "http://"+in.admin+"/readyz", "", nil)
		if r.json["status"] == want {
			return
		}
		if i > 300 {
			t.Fatalf("readyz never %q: %v", want, r.json)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
