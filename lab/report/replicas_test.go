package report

import (
	"encoding/json"
	"encoding/xml"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// withReplicas gives the postgres+redis leg of fakeSummary three replicas
// behind HAProxy and every PostgreSQL leg its connections.
func withReplicas(s *RunSummary, redisHits float64, idle bool) {
	for i := range s.Legs {
		l := &s.Legs[i]
		if l.Name == "sqlite" {
			l.Replicas = &Replicas{Count: 1, Balancer: "none", Note: "sqlite runs one server"}
			continue
		}
		l.Connections = &Connections{MaxConnections: 100, Reserved: 8, Replicas: 1, PoolPerReplica: 92, PeakInUse: 17, PeakLegDatabase: 12, Samples: 40}
		if l.Name != "postgres+redis" {
			continue
		}
		l.Connections.Replicas, l.Connections.PoolPerReplica, l.Connections.PeakInUse = 3, 30, 61
		r := &Replicas{Count: 3, Balancer: "haproxy (process)", CacheHits: 500, RedisHits: redisHits, RedisShare: redisHits / 500,
			HAProxy: &HAProxyNumbers{Requests: 3190, Responses5xx: 2, Retries: 1, Redispatches: 1, CheckFailures: 4, MaxQueue: 0}}
		for j, n := range []float64{1063, 1064, 1063} {
			if idle && j == 2 {
				n = 0
			}
			r.Servers = append(r.Servers, ReplicaServer{Name: []string{"r0", "r1", "r2"}[j], Addr: "127.0.0.1:4000" + string(rune('0'+j)), Requests: n,
				Share: n / 3190, ProcessHits: 100, RedisHits: redisHits / 3, LBResponses: n, CheckFailures: float64(j), State: "UP"})
			r.Requests += n
		}
		l.Replicas = r
	}
}

// TestReplicasInEveryFormat: requests per replica, the Redis tier's share,
// HAProxy's numbers and the connections reach summary.json, report.md,
// report.html and junit.xml; a replica that served nothing and a Redis
// tier that answered no hit are failures in junit.xml and warnings in the
// others.
func TestReplicasInEveryFormat(t *testing.T) {
	for _, tt := range []struct {
		name      string
		redisHits float64
		idle      bool
		failures  int
	}{
		{"healthy", 120, false, 0},
		{"no Redis hit, one idle replica", 0, true, 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := fakeSummary(false)
			withReplicas(s, tt.redisHits, tt.idle)
			dir := t.TempDir()
			if _, err := WriteAll(dir, s); err != nil {
				t.Fatal(err)
			}
			read := func(f string) string {
				b, err := os.ReadFile(filepath.Join(dir, f))
				if err != nil {
					t.Fatal(err)
				}
				return string(b)
			}
			md, html, junit, js := read(MarkdownFile), read(HTMLFile), read(JUnitFile), read(SummaryFile)
			for _, want := range []string{"## Replicas and database connections", "| postgres+redis | 1 | r0 | 1063 |", "| postgres+redis | 1 | r1 | 1064 |",
				"3 replicas behind haproxy (process)", "Redis tier: " + pct(tt.redisHits/500) + " of cache hits",
				"HAProxy: 3190 requests, 2 5xx, 1 retries, 1 redispatches, 4 check failures",
				"peak 61 in use of max_connections 100", "pools 3 × 30 = 90, reserve 8", "sqlite runs one server"} {
				if !strings.Contains(md, want) {
					t.Errorf("report.md lacks %q", want)
				}
			}
			if strings.Contains(md, "| sqlite | 1 | r0 |") {
				t.Errorf("report.md has a replica row for the one-server sqlite leg")
			}
			for _, want := range []string{`<section id="replicas">`, "<td>r2</td>", "3 replicas behind haproxy (process)", "peak 61 in use of max_connections 100"} {
				if !strings.Contains(html, want) {
					t.Errorf("report.html lacks %q", want)
				}
			}
			var back RunSummary
			if err := json.Unmarshal([]byte(js), &back); err != nil {
				t.Fatal(err)
			}
			r := back.Legs[2].Replicas
			if r == nil || len(r.Servers) != 3 || r.RedisHits != tt.redisHits || r.HAProxy == nil || r.HAProxy.Requests != 3190 || back.Legs[2].Connections.PeakInUse != 61 {
				t.Errorf("summary.json's replicas: %+v", r)
			}
			var ju struct {
				Suites []struct {
					Name  string `xml:"name,attr"`
					Cases []struct {
						Name    string    `xml:"name,attr"`
						Failure *struct{} `xml:"failure"`
					} `xml:"testcase"`
				} `xml:"testsuite"`
			}
			if err := xml.Unmarshal([]byte(junit), &ju); err != nil {
				t.Fatal(err)
			}
			cases, failed := map[string]bool{}, 0
			for _, su := range ju.Suites {
				if !strings.HasPrefix(su.Name, "replicas.") {
					continue
				}
				for _, c := range su.Cases {
					cases[su.Name+"/"+c.Name] = true
					if c.Failure != nil {
						failed++
					}
				}
			}
			for _, want := range []string{"replicas.postgres+redis.run1/each of 3 replicas served requests", "replicas.postgres+redis.run1/the Redis tier served cache hits",
				"replicas.postgres+redis.run1/connections fit max_connections", "replicas.postgres.run1/connections fit max_connections"} {
				if !cases[want] {
					t.Errorf("junit.xml lacks %q (has %v)", want, cases)
				}
			}
			if failed != tt.failures {
				t.Errorf("%d replica failures in junit.xml, want %d", failed, tt.failures)
			}
			if tt.failures > 0 {
				for _, want := range []string{"replica r2 (127.0.0.1:40002) served no request", "none from the Redis tier"} {
					if !strings.Contains(md, want) || !strings.Contains(html, want) {
						t.Errorf("report.md or report.html lacks the warning %q", want)
					}
				}
			}
		})
	}
}

func TestConnectionsFit(t *testing.T) {
	for _, tt := range []struct {
		c    Connections
		want bool
	}{
		{Connections{MaxConnections: 100, Reserved: 8, Replicas: 3, PoolPerReplica: 30}, true},
		{Connections{MaxConnections: 100, Reserved: 8, Replicas: 3, PoolPerReplica: 31}, false},
		{Connections{MaxConnections: 100, Reserved: 8, Replicas: 3, PoolPerReplica: 100}, false},
		{Connections{MaxConnections: 100, Reserved: 8, Replicas: 30, PoolPerReplica: 100, PgBouncerPool: 91}, true},
		{Connections{MaxConnections: 100, Reserved: 8, Replicas: 30, PoolPerReplica: 100, PgBouncerPool: 93}, false},
	} {
		if got := tt.c.Fits(); got != tt.want {
			t.Errorf("%+v: Fits() = %v, want %v", tt.c, got, tt.want)
		}
	}
}
