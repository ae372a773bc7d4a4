package lab

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
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
