package report

import (
	"bytes"
	"fmt"
	"html/template"
	"sort"
	"strings"
)

// Replicas is a leg served by several `hal9 serve` behind HAProxy
// (Leg.Replicas; nil for a leg with one server straight from the load).
// The numbers add up the leg's measured scenarios (not the warm-up nor the
// rate-limit check).
type Replicas struct {
	Count     int    `json:"count"`
	Balancer  string `json:"balancer"` // "haproxy (process)", "haproxy (external …)"
	PgBouncer bool   `json:"pgbouncer,omitempty"`
	// Note says what was changed from the request (e.g. a SQLite leg run
	// with one server).
	Note    string          `json:"note,omitempty"`
	Servers []ReplicaServer `json:"servers"`
	// Requests are the API requests all replicas counted (their
	// hal9_http_requests_total difference, health checks left out).
	Requests float64 `json:"requests"`
	// CacheHits are LLM response-cache hits at every tier (coalesced waits
	// included); RedisHits those the Redis tier answered, after a miss in
	// the replica's own process tier; RedisShare = RedisHits / CacheHits.
	CacheHits  float64 `json:"cache_hits"`
	RedisHits  float64 `json:"redis_hits"`
	RedisShare float64 `json:"redis_hit_share"`
	// HAProxy is what HAProxy's own exporter counted (nil without one).
	HAProxy *HAProxyNumbers `json:"haproxy,omitempty"`
}

// ReplicaServer is one replica: what it counted, and what HAProxy counted
// for it (its backend server of the same name).
type ReplicaServer struct {
	Name        string  `json:"name"` // r0, r1, …: HAProxy's server name
	Addr        string  `json:"addr"` // its API listener
	Requests    float64 `json:"requests"`
	Share       float64 `json:"share"` // of all replicas' requests
	ProcessHits float64 `json:"process_hits"`
	RedisHits   float64 `json:"redis_hits"`
	// Stale: its /metrics did not answer at the end (killed?): its numbers
	// stop at its last answered scrape.
	Stale bool `json:"stale,omitempty"`
	// From HAProxy's exporter (haproxy_server_*{server=Name}).
	LBResponses   float64 `json:"lb_responses"`
	LB5xx         float64 `json:"lb_5xx"`
	CheckFailures float64 `json:"check_failures"`
	UpDown        float64 `json:"up_down_transitions"`
	MaxQueue      float64 `json:"max_queue"`
	State         string  `json:"state,omitempty"` // at the end: UP, DOWN, …
	Restarts      int     `json:"restarts,omitempty"`
}

// HAProxyNumbers are HAProxy's frontend and backend totals over the leg.
type HAProxyNumbers struct {
	MetricsURL    string  `json:"metrics_url,omitempty"`
	Requests      float64 `json:"requests"`       // frontend HTTP requests
	Responses5xx  float64 `json:"responses_5xx"`  // frontend 5xx, HAProxy's own 502/503 included
	Retries       float64 `json:"retries"`        // haproxy_server_retry_warnings_total
	Redispatches  float64 `json:"redispatches"`   // haproxy_server_redispatch_warnings_total
	CheckFailures float64 `json:"check_failures"` // all servers
	MaxQueue      float64 `json:"max_queue"`      // the largest server queue seen
}

// Connections is a PostgreSQL leg's connection budget: the pools the lab
// gave its servers against the server's max_connections, and what was in
// use (pg_stat_activity, sampled every second during the scenarios).
type Connections struct {
	MaxConnections int `json:"max_connections"`
	// Reserved is superuser_reserved_connections plus what the lab keeps
	// for itself (creating databases, sampling, a psql).
	Reserved int `json:"reserved"`
	Replicas int `json:"replicas"`
	// PoolPerReplica is the --db-max-conns each server got.
	PoolPerReplica int `json:"pool_per_replica"`
	// PgBouncerPool is PgBouncer's default_pool_size (0: no PgBouncer):
	// then the servers' pools open client connections to PgBouncer, and
	// PostgreSQL sees at most this many per database.
	PgBouncerPool int `json:"pgbouncer_pool,omitempty"`
	// PeakInUse is the most client connections PostgreSQL had (all
	// databases, the lab's own included); PeakLegDatabase those on the
	// leg's database.
	PeakInUse       int    `json:"peak_in_use"`
	PeakLegDatabase int    `json:"peak_leg_database"`
	Samples         int    `json:"samples"`
	Error           string `json:"error,omitempty"` // sampling failed
}

// Fits reports whether every pool fits max_connections (with the
// reserve): N × pool + reserved ≤ max, or PgBouncer's pool instead of the
// servers' when it is in front.
func (c *Connections) Fits() bool {
	if c == nil || c.MaxConnections == 0 {
		return true
	}
	need := c.Replicas * c.PoolPerReplica
	if c.PgBouncerPool > 0 {
		need = c.PgBouncerPool
	}
	return need+c.Reserved <= c.MaxConnections
}

// replicaFindings are the leg's replica and connection problems: a replica
// that served nothing, no Redis hit with several replicas on Redis,
// connections over max_connections. They are JUnit failures and report
// warnings.
func replicaFindings(l Leg) []string {
	var out []string
	if r := l.Replicas; r != nil && r.Count > 1 {
		if r.Requests > 0 {
			for _, s := range r.Servers {
				if s.Requests == 0 && !s.Stale {
					out = append(out, fmt.Sprintf("replica %s (%s) served no request of %.0f behind %s", s.Name, s.Addr, r.Requests, r.Balancer))
				}
			}
		}
		if l.Redis && r.CacheHits > 0 && r.RedisHits == 0 {
			out = append(out, fmt.Sprintf("%d replicas on one Redis, %.0f cache hits, none from the Redis tier", r.Count, r.CacheHits))
		}
	}
	if c := l.Connections; c != nil && c.MaxConnections > 0 && c.PeakInUse > c.MaxConnections {
		out = append(out, fmt.Sprintf("%d connections in use, over PostgreSQL's max_connections %d", c.PeakInUse, c.MaxConnections))
	}
	if c := l.Connections; c != nil && !c.Fits() {
		out = append(out, fmt.Sprintf("the pools (%s) do not fit max_connections %d", poolText(c), c.MaxConnections))
	}
	return out
}

func poolText(c *Connections) string {
	if c.PgBouncerPool > 0 {
		return fmt.Sprintf("%d replicas × %d to PgBouncer, PgBouncer %d per database, reserve %d", c.Replicas, c.PoolPerReplica, c.PgBouncerPool, c.Reserved)
	}
	return fmt.Sprintf("%d × %d = %d, reserve %d", c.Replicas, c.PoolPerReplica, c.Replicas*c.PoolPerReplica, c.Reserved)
}

// connectionsLine is the one-line summary of a leg's connections.
func connectionsLine(c *Connections) string {
	if c == nil {
		return ""
	}
	if c.Error != "" && c.Samples == 0 {
		return "PostgreSQL connections not sampled: " + c.Error
	}
	return fmt.Sprintf("PostgreSQL connections: peak %d in use of max_connections %d (this leg's database %d; pools %s; %d samples)",
		c.PeakInUse, c.MaxConnections, c.PeakLegDatabase, poolText(c), c.Samples)
}

// replicasLine is the one-line summary of a leg's replicas.
func replicasLine(r *Replicas) string {
	if r == nil {
		return ""
	}
	if r.Count <= 1 {
		var parts []string
		if r.PgBouncer {
			parts = append(parts, "one server, PgBouncer in front of PostgreSQL")
		}
		if r.Note != "" {
			parts = append(parts, r.Note)
		}
		return strings.Join(parts, " · ")
	}
	s := fmt.Sprintf("%d replicas behind %s", r.Count, r.Balancer)
	if r.PgBouncer {
		s += ", PgBouncer in front of PostgreSQL"
	}
	s += fmt.Sprintf(" · Redis tier: %s of cache hits (%.0f of %.0f)", pct(r.RedisShare), r.RedisHits, r.CacheHits)
	if h := r.HAProxy; h != nil {
		s += fmt.Sprintf(" · HAProxy: %.0f requests, %.0f 5xx, %.0f retries, %.0f redispatches, %.0f check failures, max queue %.0f",
			h.Requests, h.Responses5xx, h.Retries, h.Redispatches, h.CheckFailures, h.MaxQueue)
	}
	if r.Note != "" {
		s += " · " + r.Note
	}
	return s
}

// legReplicaLine is a leg's replicas and connections in one line.
func legReplicaLine(l Leg) string {
	var parts []string
	for _, p := range []string{replicasLine(l.Replicas), connectionsLine(l.Connections)} {
		if p != "" {
			parts = append(parts, p)
		}
	}
	return strings.Join(parts, " · ")
}

// writeReplicas is report.md's replicas and connections section.
func writeReplicas(b *strings.Builder, s *RunSummary) {
	var any bool
	for _, l := range s.Legs {
		if l.Replicas != nil || l.Connections != nil {
			any = true
		}
	}
	if !any {
		return
	}
	b.WriteString("## Replicas and database connections\n\n")
	var rows []string
	for _, l := range s.Legs {
		if r := l.Replicas; r != nil && r.Count > 1 {
			for _, sv := range r.Servers {
				rows = append(rows, fmt.Sprintf("| %s | %d | %s%s | %.0f | %s | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f | %s |",
					legName(l), l.Run, sv.Name, staleMark(sv), sv.Requests, pct(sv.Share), sv.ProcessHits, sv.RedisHits,
					sv.LBResponses, sv.LB5xx, sv.CheckFailures, sv.UpDown, sv.MaxQueue, orDash(sv.State)))
			}
		}
	}
	if len(rows) > 0 {
		b.WriteString("Requests per replica from each replica's /metrics difference (health checks left out); the HAProxy columns from HAProxy's exporter.\n\n")
		b.WriteString("| leg | run | replica | requests | share | process-tier hits | Redis-tier hits | HAProxy responses | HAProxy 5xx | check failures | up/down | max queue | state |\n")
		b.WriteString("| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n")
		b.WriteString(strings.Join(rows, "\n") + "\n\n")
	}
	for _, l := range s.Legs {
		if line := legReplicaLine(l); line != "" {
			fmt.Fprintf(b, "- **%s run %d**: %s\n", legName(l), l.Run, line)
		}
		for _, f := range replicaFindings(l) {
			fmt.Fprintf(b, "- ⚠️ %s run %d: %s\n", legName(l), l.Run, f)
		}
	}
	b.WriteString("\n")
}

func staleMark(sv ReplicaServer) string {
	var s string
	if sv.Restarts > 0 {
		s += fmt.Sprintf(" (restarted %d×)", sv.Restarts)
	}
	if sv.Stale {
		s += " (no /metrics at the end)"
	}
	return s
}

var replicasTmpl = template.Must(template.New("replicas").Funcs(template.FuncMap{
	"pct": pct, "legName": legName, "stale": staleMark, "orDash": orDash,
	"line": legReplicaLine, "findings": replicaFindings,
}).Parse(`<section id="replicas">
  <h2>Replicas and database connections</h2>
  <p class="note">Requests per replica from each replica's /metrics difference (health checks left out); the HAProxy columns from HAProxy's own Prometheus exporter; connections from pg_stat_activity, sampled every second.</p>
  {{if .Rows}}<table>
    <tr><th>leg</th><th class="n">run</th><th>replica</th><th class="n">requests</th><th class="n">share</th><th class="n">process-tier hits</th><th class="n">Redis-tier hits</th><th class="n">HAProxy responses</th><th class="n">HAProxy 5xx</th><th class="n">check failures</th><th class="n">up/down</th><th class="n">max queue</th><th>state</th></tr>
    {{range $l := .Legs}}{{with $l.Replicas}}{{if gt .Count 1}}{{range .Servers}}
    <tr><td><b>{{legName $l}}</b></td><td class="n">{{$l.Run}}</td><td>{{.Name}}{{stale .}}</td><td class="n">{{printf "%.0f" .Requests}}</td><td class="n">{{pct .Share}}</td><td class="n">{{printf "%.0f" .ProcessHits}}</td><td class="n">{{printf "%.0f" .RedisHits}}</td>
      <td class="n">{{printf "%.0f" .LBResponses}}</td><td class="n">{{printf "%.0f" .LB5xx}}</td><td class="n">{{printf "%.0f" .CheckFailures}}</td><td class="n">{{printf "%.0f" .UpDown}}</td><td class="n">{{printf "%.0f" .MaxQueue}}</td><td>{{orDash .State}}</td></tr>
    {{end}}{{end}}{{end}}{{end}}
  </table>{{end}}
  <ul>
  {{range $l := .Legs}}{{with line $l}}<li><b>{{legName $l}} run {{$l.Run}}</b>: {{.}}</li>{{end}}
  {{range findings $l}}<li class="warnbox">{{legName $l}} run {{$l.Run}}: {{.}}</li>{{end}}{{end}}
  </ul>
</section>
`))

// replicasHTML is report.html's replicas and connections section ("" when
// no leg has either).
func replicasHTML(s *RunSummary) (template.HTML, error) {
	var data struct {
		Legs []Leg
		Rows bool // some leg has several replicas
	}
	for _, l := range s.Legs {
		if l.Replicas != nil || l.Connections != nil {
			data.Legs = append(data.Legs, l)
			data.Rows = data.Rows || (l.Replicas != nil && l.Replicas.Count > 1)
		}
	}
	if len(data.Legs) == 0 {
		return "", nil
	}
	var buf bytes.Buffer
	if err := replicasTmpl.Execute(&buf, data); err != nil {
		return "", fmt.Errorf("render the replicas section: %w", err)
	}
	return template.HTML(buf.String()), nil
}

// replicaCases are junit.xml's cases for a leg's replicas and connections.
func replicaCases(l Leg) []junitCase {
	if l.Replicas == nil && l.Connections == nil {
		return nil
	}
	class := "hal9lab." + l.Name + ".replicas"
	var cases []junitCase
	bad := map[string]string{}
	for _, f := range replicaFindings(l) {
		switch {
		case strings.HasPrefix(f, "replica "):
			bad["served"] += f + "\n"
		case strings.Contains(f, "Redis tier"):
			bad["redis"] += f + "\n"
		default:
			bad["conns"] += f + "\n"
		}
	}
	add := func(key, name, out string) {
		c := junitCase{Name: name, Classname: class, Output: out}
		if msg := bad[key]; msg != "" {
			c.Failure = &junitMessage{Message: name + ": no", Body: strings.TrimSpace(msg)}
		}
		cases = append(cases, c)
	}
	if r := l.Replicas; r != nil && r.Count > 1 {
		var per []string
		for _, sv := range r.Servers {
			per = append(per, fmt.Sprintf("%s %.0f", sv.Name, sv.Requests))
		}
		sort.Strings(per)
		add("served", fmt.Sprintf("each of %d replicas served requests", r.Count), "requests per replica: "+strings.Join(per, ", "))
		if l.Redis {
			add("redis", "the Redis tier served cache hits", fmt.Sprintf("Redis tier %.0f of %.0f hits (%s)", r.RedisHits, r.CacheHits, pct(r.RedisShare)))
		}
	}
	if c := l.Connections; c != nil {
		add("conns", "connections fit max_connections", connectionsLine(c))
	}
	return cases
}
