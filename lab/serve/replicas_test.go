package serve_test

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

	"github.com/hal9-lab/hal9-lab/lab/infra/infratest"
	"github.com/hal9-lab/hal9-lab/lab/load"
	"github.com/hal9-lab/hal9-lab/lab/prom"
	"github.com/hal9-lab/hal9-lab/lab/serve"
)

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
			if os.Getenv(infratest.EnvRequireInfra) == "1" {
				t.Fatal("HAL9_REQUIRE_INFRA=1 but no haproxy (apt-get install haproxy)")
			}
			t.Skip("no haproxy (apt-get install haproxy)")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	opts := serve.Options{Bin: serverBin(t), DatabaseURL: infratest.PostgresURL(t), RedisURL: infratest.RedisURL(t), DataDir: t.TempDir(),
		Shutdown: 5 * time.Second, LogPath: filepath.Join(t.TempDir(), "hal9.log"),
		Env: map[string]string{"HAL9_LLM_LATENCY_SCALE": "0.2", "HAL9_BCRYPT_COST": "4"}}
	// A shared secret (a token one replica issued is good at the others),
	// HAProxy's forwarded addresses believed, pools that fit PostgreSQL.
	plan := serve.Plan{N: 3, Env: map[string]string{"HAL9_JWT_SECRET": serve.NewSecret(), "HAL9_TRUSTED_PROXIES": "127.0.0.1/32"},
		Extra: []string{"--db-max-conns", "10", "--db-min-conns", "2"}}
	rs, err := serve.StartReplicas(ctx, opts, plan, t.Logf)
	if err != nil {
		t.Fatalf("start 3 replicas: %v", err)
	}
	defer rs.Kill()
	if rs.Len() != 3 || rs.Balancer() == nil {
		t.Fatalf("%d replicas, balancer %v", rs.Len(), rs.Balancer())
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
	kill := &load.Plan{Name: "kill", Scenarios: []load.Scenario{{Name: "kill", Executor: load.ConstantArrivalRate, Rate: 25, TimeUnit: time.Second,
		Duration: 7 * time.Second, PreAllocatedVUs: 10, MaxVUs: 40, GracefulStop: 10 * time.Second}}}
	start := time.Now()
	if _, err := load.Run(ctx, kill, load.Options{Target: rs.URL(), Workload: load.IterationFunc(ledger.iteration), RunID: "kill-" + serve.NewSecret()[:8]}); err != nil {
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
	if err := serve.WaitServersUp(ctx, rs.Balancer().MetricsURL, 3, 30*time.Second); err != nil {
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
