package lab_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hal9-lab/hal9-lab/lab"
)

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
	sum, out := runTestProfile(t, "replicas-profile.yaml", lab.Options{ServerEnv: map[string]string{"HAL9_BCRYPT_COST": "4"}})
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
