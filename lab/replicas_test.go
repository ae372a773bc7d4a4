package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hal9-lab/hal9-lab/lab/load"
	"github.com/hal9-lab/hal9-lab/lab/profile"
	"github.com/hal9-lab/hal9-lab/lab/prom"
)

func TestPoolPerReplica(t *testing.T) {
	for _, tt := range []struct {
		max, reserved, n int
		want             int
		wantErr          string
	}{
		{max: 100, reserved: 8, n: 1, want: 92},  // a stock server: one server's default 100 does not fit
		{max: 200, reserved: 8, n: 1, want: 100}, // the lab's own: the default, capped
		{max: 100, reserved: 8, n: 3, want: 30},  // three replicas on a stock server
		{max: 200, reserved: 8, n: 3, want: 64},  // three on the lab's own
		{max: 100, reserved: 8, n: 30, want: 3},  // seed 000's 30 pods on a stock server
		{max: 100, reserved: 8, n: 46, want: 2},  // the smallest pool
		{max: 100, reserved: 8, n: 47, wantErr: "fewer than 2 for each of 47 replicas"},
		{max: 10, reserved: 13, n: 1, wantErr: "leaves 0 connections after 13 reserved"},
	} {
		got, err := poolPerReplica(tt.max, tt.reserved, tt.n)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "pgbouncer: true") {
				t.Errorf("poolPerReplica(%d, %d, %d): err %v, want %q and the PgBouncer hint", tt.max, tt.reserved, tt.n, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("poolPerReplica(%d, %d, %d) = %d, %v; want %d", tt.max, tt.reserved, tt.n, got, err, tt.want)
		}
		if tt.n*got+tt.reserved > tt.max {
			t.Errorf("poolPerReplica(%d, %d, %d) = %d: %d × %d + %d exceeds max_connections", tt.max, tt.reserved, tt.n, got, tt.n, got, tt.reserved)
		}
	}
	if got, err := pgbouncerPool(100, 8); err != nil || got != 91 {
		t.Errorf("pgbouncerPool(100, 8) = %d, %v; want 91", got, err)
	}
	if _, err := pgbouncerPool(10, 8); err == nil {
		t.Errorf("pgbouncerPool(10, 8): no error for a PgBouncer with 1 server connection")
	}
	if minConns(3) != 3 || minConns(64) != 10 {
		t.Errorf("minConns: %d %d", minConns(3), minConns(64))
	}
}

// signalLedger records what the load was told: every acknowledged signal
// (200 with its id) and every failure with its time.
type signalLedger struct {
	mu       sync.Mutex
	acked    []string
	failures []time.Time
	token    string
}

func (sl *signalLedger) iteration(ctx context.Context, it *load.Iter) error {
	body, _ := json.Marshal(map[string]string{"content": fmt.Sprintf("replica test %d-%d", it.VU, it.Iteration), "layer": "L1"})
	res, err := it.HTTP.Do(ctx, &load.Request{Method: http.MethodPost, Path: "/api/v1/signals", Body: body, Op: "signal",
		Header: http.Header{"Content-Type": {"application/json"}, "Authorization": {"Bearer " + sl.token}}})
	now := time.Now()
	var id string
	if err == nil && (res.Status == http.StatusOK || res.Status == http.StatusCreated) {
		var out struct {
			SignalID string `json:"signal_id"`
		}
		if json.Unmarshal(res.Body, &out) == nil {
			id = out.SignalID
		}
	}
	sl.mu.Lock()
	defer sl.mu.Unlock()
	if id == "" {
		sl.failures = append(sl.failures, now)
		return nil
	}
	sl.acked = append(sl.acked, id)
	return nil
}

// TestReplicaKilledUnderLoad: three replicas on one PostgreSQL and Redis
// behind HAProxy; one is SIGKILLed under load. HAProxy's health checks take
// it out, no request fails after they do, and every signal the load saw
// acknowledged is readable afterwards through HAProxy (from any replica:
// the replicas share the JWT secret and the database).
func TestReplicaKilledUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: starts PostgreSQL, Redis, three servers and HAProxy")
	}
	if _, err := exec.LookPath("haproxy"); err != nil {
		if _, err := os.Stat("/usr/sbin/haproxy"); err != nil {
			if requireInfra() {
				t.Fatal("HAL9_REQUIRE_INFRA=1 but no haproxy (apt-get install haproxy)")
			}
			t.Skip("no haproxy (apt-get install haproxy)")
		}
	}
	bin := serverBin(t)
	r := root(t)
	p, err := profile.Load(r, filepath.Join(r, "lab", "testdata", "tiny-profile.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var progress strings.Builder
	s, err := NewSession(ctx, Options{Root: r, Profile: p, OutDir: t.TempDir(), HalBin: bin, Replicas: 3, RequireAll: requireInfra(), Command: "test",
		ServerEnv: map[string]string{"HAL9_LLM_LATENCY_SCALE": "0.2", "HAL9_BCRYPT_COST": "4"}, Progress: &syncWriter{w: &progress}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	b, err := s.StartBackend(ctx, profile.PostgresRedis)
	if err != nil {
		t.Fatal(err)
	}
	if b == nil {
		t.Skipf("no PostgreSQL and Redis: %v", s.summary.Skipped)
	}
	defer b.Stop(ctx)
	l := &leg{s: s, spec: LegSpec{Backend: b, Run: 1, Bin: bin}, key: profile.PostgresRedis, backing: &Backing{}, limit: -1, secret: randomSecret()}
	defer l.dropDatabase(ctx)
	if err := l.freshDatabase(ctx); err != nil {
		t.Fatal(err)
	}
	if err := l.startServer(ctx, 0); err != nil {
		t.Fatalf("start 3 replicas: %v\n%s", err, progress.String())
	}
	rs := l.srv
	defer rs.Kill()
	if rs.Len() != 3 || rs.Balancer() == nil {
		t.Fatalf("%d replicas, balancer %v", rs.Len(), rs.Balancer())
	}
	if c := l.out.Connections; c == nil || c.PoolPerReplica*3+c.Reserved > c.MaxConnections {
		t.Fatalf("pools do not fit: %+v", c)
	}

	// One user, logged in through HAProxy (on some replica).
	ledger := &signalLedger{}
	httpc := &http.Client{Timeout: 10 * time.Second}
	for _, step := range []struct{ path, body string }{
		{"/api/v1/auth/register", `{"username":"kill_test","email":"kill@lab.invalid","password":"lab-password-8+"}`},
		{"/api/v1/auth/login", `{"username":"kill_test","password":"lab-password-8+"}`},
	} {
		res, err := httpc.Post(rs.URL()+step.path, "application/json", strings.NewReader(step.body))
		if err != nil {
			t.Fatal(err)
		}
		var tok struct {
			AccessToken string `json:"access_token"`
		}
		json.NewDecoder(res.Body).Decode(&tok)
		res.Body.Close()
		if res.StatusCode >= 300 {
			t.Fatalf("%s: %d", step.path, res.StatusCode)
		}
		if tok.AccessToken != "" {
			ledger.token = tok.AccessToken
		}
	}

	victim, _ := rs.Replica(1)
	const killAfter = 2 * time.Second
	var detected time.Time
	var killErr error
	killed := make(chan struct{})
	go func() {
		defer close(killed)
		time.Sleep(killAfter)
		if killErr = victim.Signal(syscall.SIGKILL); killErr != nil {
			return
		}
		// Detection: HAProxy's checks mark it DOWN.
		for ctx.Err() == nil {
			sc, err := prom.Fetch(ctx, httpc, rs.Balancer().MetricsURL)
			if err == nil && sc.Sum("haproxy_server_status", map[string]string{"server": victim.Name, "state": "DOWN"}) == 1 {
				detected = time.Now()
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	plan := &load.Plan{Name: "kill", Scenarios: []load.Scenario{{Name: "kill", Executor: load.ConstantArrivalRate, Rate: 25, TimeUnit: time.Second,
		Duration: 7 * time.Second, PreAllocatedVUs: 10, MaxVUs: 40, GracefulStop: 10 * time.Second}}}
	start := time.Now()
	if _, err := load.Run(ctx, plan, load.Options{Target: rs.URL(), Workload: load.IterationFunc(ledger.iteration), RunID: "kill-" + randomSuffix()}); err != nil {
		t.Fatalf("load: %v", err)
	}
	<-killed
	if killErr != nil {
		t.Fatal(killErr)
	}
	if detected.IsZero() {
		t.Fatalf("HAProxy never marked %s DOWN", victim.Name)
	}
	if !victim.Exited() {
		t.Fatalf("the killed replica still runs")
	}
	ledger.mu.Lock()
	acked, failures := append([]string(nil), ledger.acked...), append([]time.Time(nil), ledger.failures...)
	ledger.mu.Unlock()
	var after []time.Time
	for _, f := range failures {
		if f.After(detected) {
			after = append(after, f)
		}
	}
	t.Logf("%d signals acknowledged, %d failed (kill at +%s, DOWN at +%s, %d failures after)", len(acked), len(failures),
		killAfter, detected.Sub(start).Round(time.Millisecond), len(after))
	if len(after) > 0 {
		t.Errorf("%d requests failed after HAProxy took the dead replica out (first at +%s)", len(after), after[0].Sub(start))
	}
	if len(acked) < 100 {
		t.Fatalf("only %d signals acknowledged: the load did not run", len(acked))
	}
	// Every acknowledged signal is there, read through HAProxy.
	var missing []string
	for _, id := range acked {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, rs.URL()+"/api/v1/signals/"+id, nil)
		req.Header.Set("Authorization", "Bearer "+ledger.token)
		res, err := httpc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			missing = append(missing, fmt.Sprintf("%s (%d)", id, res.StatusCode))
		}
	}
	if len(missing) > 0 {
		t.Errorf("%d of %d acknowledged signals are not readable: %v", len(missing), len(acked), missing[:min(5, len(missing))])
	}
	// Restarted on its addresses, it is back in the rotation and serves.
	beforeRestart := victim.PID()
	if err := victim.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if victim.PID() == beforeRestart || victim.Restarts() != 1 {
		t.Fatalf("restart: pid %d -> %d, restarts %d", beforeRestart, victim.PID(), victim.Restarts())
	}
	if err := waitServersUp(ctx, rs.Balancer().MetricsURL, 3, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	sc0, err := rs.Scrape(ctx, httpc)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 6; i++ {
		res, err := httpc.Get(rs.URL() + "/api/v1/status")
		if err != nil || res.StatusCode != 200 {
			t.Fatalf("after the restart: %v %v", res, err)
		}
		res.Body.Close()
	}
	sc1, err := rs.Scrape(ctx, httpc)
	if err != nil {
		t.Fatal(err)
	}
	if got := prom.Delta(sc0, sc1, "hal9_http_requests_total", map[string]string{"replica": victim.Name, "route": "/api/v1/status"}); got != 2 {
		t.Errorf("the restarted replica served %v of 6 requests in round robin, want 2", got)
	}
	code, _, err := rs.Stop()
	if code != 0 || err != nil {
		t.Errorf("stop: exit %d, %v", code, err)
	}
}

// TestRunReplicasEndToEnd: a lab run of two replicas behind HAProxy with
// PgBouncer in front of PostgreSQL: each replica serves, the Redis tier
// answers repeats that land on the other replica, HAProxy's count is the
// replicas' count, the pools fit, the rate-limit check passes against two
// limiters, and every report file shows it.
func TestRunReplicasEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: starts PostgreSQL, Redis, PgBouncer, two servers and HAProxy")
	}
	for _, bin := range []string{"haproxy", "pgbouncer"} {
		if _, err := exec.LookPath(bin); err != nil {
			if _, err := os.Stat("/usr/sbin/" + bin); err != nil {
				if requireInfra() {
					t.Fatalf("HAL9_REQUIRE_INFRA=1 but no %s", bin)
				}
				t.Skipf("no %s (apt-get install %s)", bin, bin)
			}
		}
	}
	sum, out := runTestProfile(t, "replicas-profile.yaml", Options{ServerEnv: map[string]string{"HAL9_BCRYPT_COST": "4"}})
	if len(sum.Legs) == 0 {
		t.Skipf("no leg ran: %v", sum.Skipped)
	}
	l := sum.Legs[0]
	if l.Error != "" || len(sum.LabErrors) > 0 {
		t.Fatalf("leg error %q, lab errors %v", l.Error, sum.LabErrors)
	}
	rp, c := l.Replicas, l.Connections
	if rp == nil || rp.Count != 2 || len(rp.Servers) != 2 || !rp.PgBouncer || rp.Balancer != "haproxy (process)" {
		t.Fatalf("replicas %+v", rp)
	}
	for _, s := range rp.Servers {
		if s.Requests == 0 || s.State != "UP" {
			t.Errorf("replica %s: %v requests, state %q", s.Name, s.Requests, s.State)
		}
	}
	if rp.RedisHits == 0 || rp.RedisShare <= 0 || rp.RedisShare > 1 {
		t.Errorf("Redis tier: %v hits of %v (share %v), want some", rp.RedisHits, rp.CacheHits, rp.RedisShare)
	}
	// HAProxy counted what the replicas counted (the workload's setup
	// probe of /health included on both sides).
	if rp.HAProxy == nil || rp.HAProxy.Requests != rp.Requests+l.Scenarios[0].Server.RequestsByRoute["/health"] || rp.HAProxy.Responses5xx != 0 {
		t.Errorf("HAProxy %+v, replicas %v requests (+%v /health)", rp.HAProxy, rp.Requests, l.Scenarios[0].Server.RequestsByRoute["/health"])
	}
	if c == nil || c.PgBouncerPool == 0 || c.Samples == 0 || c.PeakLegDatabase > c.PgBouncerPool || !c.Fits() {
		t.Errorf("connections %+v", c)
	}
	var rl bool
	for _, sc := range l.Scenarios {
		if sc.Name == "ratelimit" {
			rl = sc.Passed
			if !strings.Contains(sc.Thresholds[0].Metric, "limit 20 = 2 replicas × 10") {
				t.Errorf("rate-limit check against %q, want two limiters", sc.Thresholds[0].Metric)
			}
		}
	}
	if !rl {
		t.Errorf("the rate-limit check against two replicas failed: %+v", l.Scenarios)
	}
	for file, want := range map[string]string{"report.md": "| replicas+redis", "report.html": `<section id="replicas">`, "junit.xml": "each of 2 replicas served requests", "summary.json": `"redis_hit_share"`} {
		if file == "report.md" {
			want = "2 replicas behind haproxy (process), PgBouncer in front of PostgreSQL"
		}
		b, err := os.ReadFile(filepath.Join(out, file))
		if err != nil || !strings.Contains(string(b), want) {
			t.Errorf("%s lacks %q (%v)", file, want, err)
		}
	}
}
