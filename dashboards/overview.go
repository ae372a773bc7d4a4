package dashboards

import (
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

// SLO objectives, shared with alerts/hal9.rules.yml (the rules hard-code the
// same numbers; TestSLOConstantsMatchRules keeps them equal).
const (
	AvailabilityObjective = 0.999 // 99.9 % of requests are not 5xx
	LatencyObjective      = 0.99  // 99 % of requests finish under LatencyThreshold
	LatencyThreshold      = "0.5" // seconds; a bucket boundary of hal9_http_request_duration_seconds
)

// sloSel leaves out the probes, as the SLO recording rules do: /readyz
// answers 503 on purpose while the server drains.
const sloSel = sel + `, route!~"/health|/readyz"`

func runbook(alert string) link { return link{title: "Runbook: " + alert, url: RunbookURL(alert)} }

func overview() (dashboard.Dashboard, error) {
	bd := newBoard(UIDOverview, "HAL9 overview",
		"HAL9 server health: the RED method by route, SLOs and error-budget burn, saturation. Source: the server's admin listener /metrics.",
		[]string{"hal9", "server"}, serverVars())

	bd.row("Golden signals")
	bd.add(panel{kind: kindStat, title: "Request rate", width: 6, height: 5, unit: "reqps",
		description: "Requests per second answered by the API listener, all routes (hal9_http_requests_total).",
		queries:     []q{{`sum(rate(hal9_http_requests_total{` + sel + `}[$__rate_interval]))`, "req/s"}}})
	bd.add(panel{kind: kindStat, title: "Error ratio (5xx)", width: 6, height: 5, unit: "percentunit",
		description: "Share of requests (probes excluded) answered with a 5xx code. Alert HAL9HighErrorRate fires above 1 % for 5 minutes.",
		queries:     []q{{`(sum(rate(hal9_http_requests_total{` + sloSel + `, code=~"5.."}[$__rate_interval])) or vector(0)) / sum(rate(hal9_http_requests_total{` + sloSel + `}[$__rate_interval]))`, "5xx ratio"}},
		thresholds:  steps(0.001, 0.01), links: []link{runbook("HAL9HighErrorRate")}})
	bd.add(panel{kind: kindStat, title: "P99 latency", width: 6, height: 5, unit: "s",
		description: "99th percentile of request duration over all routes, from the histogram buckets. Alert HAL9HighLatencyP99 fires above 500 ms for 5 minutes.",
		queries:     []q{{`histogram_quantile(0.99, sum by (le) (rate(hal9_http_request_duration_seconds_bucket{` + sel + `}[$__rate_interval])))`, "p99"}},
		thresholds:  steps(0.38, 0.5), links: []link{runbook("HAL9HighLatencyP99")}})
	bd.add(panel{kind: kindStat, title: "In-flight requests", width: 6, height: 5, unit: "short",
		description: "Requests being served right now (hal9_http_inflight_requests), summed over the selected instances.",
		queries:     []q{{`sum(hal9_http_inflight_requests{` + sel + `})`, "in flight"}}})

	bd.row("Rate, errors, duration by route")
	bd.add(panel{title: "Requests by route", unit: "reqps",
		description: "Request rate per route template and method. Routes are templates (/api/v1/signals/{id}), never raw paths.",
		queries:     []q{{`sum by (route, method) (rate(hal9_http_requests_total{` + sel + `}[$__rate_interval]))`, "{{method}} {{route}}"}}})
	bd.add(panel{title: "Errors by route and code", unit: "reqps",
		description: "4xx and 5xx answers per second by route and status code. 5xx are server faults and count against the availability SLO; 4xx (bad input, 401, 429) do not.",
		queries:     []q{{`sum by (route, code) (rate(hal9_http_requests_total{` + with(`code=~"[45].."`) + `}[$__rate_interval]))`, "{{code}} {{route}}"}},
		links:       []link{runbook("HAL9HighErrorRate")}})
	bd.add(panel{title: "P99 latency by route", unit: "s",
		description: "99th percentile of request duration per route template. The latency SLO counts requests slower than 500 ms.",
		queries:     []q{{`histogram_quantile(0.99, sum by (route, le) (rate(hal9_http_request_duration_seconds_bucket{` + sel + `}[$__rate_interval])))`, "{{route}}"}},
		thresholds:  steps(0.38, 0.5), links: []link{runbook("HAL9HighLatencyP99")}})
	bd.add(panel{title: "Latency percentiles", unit: "s",
		description: "P50, P95 and P99 of request duration over all routes. Seed baselines: P50 45 ms, P95 120 ms, P99 380 ms.",
		queries: []q{
			{`histogram_quantile(0.50, sum by (le) (rate(hal9_http_request_duration_seconds_bucket{` + sel + `}[$__rate_interval])))`, "p50"},
			{`histogram_quantile(0.95, sum by (le) (rate(hal9_http_request_duration_seconds_bucket{` + sel + `}[$__rate_interval])))`, "p95"},
			{`histogram_quantile(0.99, sum by (le) (rate(hal9_http_request_duration_seconds_bucket{` + sel + `}[$__rate_interval])))`, "p99"},
			{`sum(rate(hal9_http_request_duration_seconds_sum{` + sel + `}[$__rate_interval])) / sum(rate(hal9_http_request_duration_seconds_count{` + sel + `}[$__rate_interval]))`, "mean"},
		}, thresholds: steps(0.38, 0.5)})

	bd.row("SLOs and error budget")
	bd.add(panel{kind: kindStat, title: "Availability over the range", width: 6, height: 6, unit: "percentunit",
		description: "Share of non-5xx requests over the dashboard's time range. Objective: 99.9 %.",
		queries:     []q{{`1 - (sum(increase(hal9_http_requests_total{` + sloSel + `, code=~"5.."}[$__range])) or vector(0)) / sum(increase(hal9_http_requests_total{` + sloSel + `}[$__range]))`, "availability"}},
		thresholds:  lowSteps(0.999, 0.9995), links: []link{runbook("HAL9ErrorBudgetBurn")}})
	bd.add(panel{kind: kindStat, title: "Availability budget left", width: 6, height: 6, unit: "percentunit",
		description: "Error budget of the 99.9 % availability SLO still unspent over the time range: 1 − (5xx ratio / 0.1 %). Negative means the objective is missed.",
		queries:     []q{{`1 - ((sum(increase(hal9_http_requests_total{` + sloSel + `, code=~"5.."}[$__range])) or vector(0)) / sum(increase(hal9_http_requests_total{` + sloSel + `}[$__range]))) / 0.001`, "budget left"}},
		thresholds:  lowSteps(0, 0.25)})
	bd.add(panel{kind: kindStat, title: "Requests under 500 ms", width: 6, height: 6, unit: "percentunit",
		description: "Share of requests that finished within 500 ms (bucket le=\"0.5\") over the time range. Objective: 99 %.",
		queries:     []q{{`sum(increase(hal9_http_request_duration_seconds_bucket{` + sloSel + `, le="0.5"}[$__range])) / sum(increase(hal9_http_request_duration_seconds_count{` + sloSel + `}[$__range]))`, "fast"}},
		thresholds:  lowSteps(0.99, 0.995), links: []link{runbook("HAL9LatencyBudgetBurn")}})
	bd.add(panel{kind: kindStat, title: "Latency budget left", width: 6, height: 6, unit: "percentunit",
		description: "Error budget of the latency SLO (99 % under 500 ms) still unspent over the time range: 1 − (slow ratio / 1 %).",
		queries:     []q{{`1 - (1 - sum(increase(hal9_http_request_duration_seconds_bucket{` + sloSel + `, le="0.5"}[$__range])) / sum(increase(hal9_http_request_duration_seconds_count{` + sloSel + `}[$__range]))) / 0.01`, "budget left"}},
		thresholds:  lowSteps(0, 0.25)})
	bd.add(panel{title: "Availability burn rate", unit: "suffix:×",
		description: "How fast the 99.9 % availability budget burns (5xx ratio ÷ 0.1 %), per alert window, from the recording rules in alerts/hal9.rules.yml. Pages when 1h and 5m both exceed 14.4×, or 6h and 30m both exceed 6×; tickets when 3d and 6h exceed 1×.",
		queries: []q{
			{`hal9:http_request_errors:ratio_rate5m{job=~"$job"} / 0.001`, "5m"},
			{`hal9:http_request_errors:ratio_rate1h{job=~"$job"} / 0.001`, "1h"},
			{`hal9:http_request_errors:ratio_rate6h{job=~"$job"} / 0.001`, "6h"},
			{`hal9:http_request_errors:ratio_rate3d{job=~"$job"} / 0.001`, "3d"},
		}, thresholds: steps(6, 14.4), links: []link{runbook("HAL9ErrorBudgetBurn"), runbook("HAL9ErrorBudgetBurnSlow")}})
	bd.add(panel{title: "Latency burn rate", unit: "suffix:×",
		description: "How fast the latency budget burns (share of requests over 500 ms ÷ 1 %), per alert window, from the recording rules. Same paging and ticket thresholds as availability.",
		queries: []q{
			{`hal9:http_request_slow:ratio_rate5m{job=~"$job"} / 0.01`, "5m"},
			{`hal9:http_request_slow:ratio_rate1h{job=~"$job"} / 0.01`, "1h"},
			{`hal9:http_request_slow:ratio_rate6h{job=~"$job"} / 0.01`, "6h"},
			{`hal9:http_request_slow:ratio_rate3d{job=~"$job"} / 0.01`, "3d"},
		}, thresholds: steps(6, 14.4), links: []link{runbook("HAL9LatencyBudgetBurn"), runbook("HAL9LatencyBudgetBurnSlow")}})

	bd.row("Saturation")
	bd.add(panel{title: "Connections and in-flight requests", width: 8, unit: "short",
		description: "Open client connections (idle keep-alive ones included) and requests being served, per instance. HAL9TooManyConnections fires above 8,000 open connections (seed 000's active-connection limit).",
		queries: []q{{`hal9_http_open_connections{` + sel + `}`, "{{instance}} connections"},
			{`hal9_http_inflight_requests{` + sel + `}`, "{{instance}} in flight"}},
		thresholds: steps(6000, 8000), links: []link{runbook("HAL9TooManyConnections")}})
	bd.add(panel{title: "CPU", width: 8, unit: "percentunit", min: f(0),
		description: "Process CPU time per second divided by GOMAXPROCS (the CPUs the Go runtime may use, which follows the container's CPU limit). HAL9HighCPU fires above 80 % for 5 minutes.",
		queries:     []q{{`rate(process_cpu_seconds_total{` + sel + `}[$__rate_interval]) / go_sched_gomaxprocs_threads{` + sel + `}`, "{{instance}}"}},
		thresholds:  steps(0.7, 0.8), links: []link{runbook("HAL9HighCPU")}})
	bd.add(panel{title: "Memory", width: 8, unit: "bytes", min: f(0),
		description: "Resident set size, Go heap in use, and the Go memory limit (GOMEMLIMIT; shown only when set). HAL9HighMemory fires when RSS passes 90 % of the limit.",
		queries: []q{
			{`process_resident_memory_bytes{` + sel + `}`, "RSS {{instance}}"},
			{`go_memstats_heap_inuse_bytes{` + sel + `}`, "heap in use {{instance}}"},
			{`go_gc_gomemlimit_bytes{` + sel + `} < 1e18`, "GOMEMLIMIT {{instance}}"},
		}, links: []link{runbook("HAL9HighMemory")}})
	bd.add(panel{title: "Goroutines", width: 8, unit: "short",
		description: "Live goroutines per instance; a steady climb under constant load is a leak.",
		queries:     []q{{`go_goroutines{` + sel + `}`, "{{instance}}"}}})
	bd.add(panel{title: "Open file descriptors", width: 8, unit: "percentunit", min: f(0), max: f(1),
		description: "Open file descriptors as a share of the process limit; every client connection holds one.",
		queries:     []q{{`process_open_fds{` + sel + `} / process_max_fds{` + sel + `}`, "{{instance}}"}}})
	bd.add(panel{title: "Rejected requests", width: 8, unit: "reqps",
		description: "Requests refused by the per-client rate limiter (429) and authentication failures by reason.",
		queries: []q{
			{`sum(rate(hal9_ratelimit_rejections_total{` + sel + `}[$__rate_interval]))`, "rate limited"},
			{`sum by (reason) (rate(hal9_auth_failures_total{` + sel + `}[$__rate_interval]))`, "auth: {{reason}}"},
		}})
	bd.add(panel{title: "DB pool connections", width: 8, unit: "short",
		description: "PostgreSQL pool: acquired, idle and total connections against the maximum (100 by default). SQLite reports its reader and writer pools summed (db=\"sqlite\"). HAL9DBPoolExhausted fires when acquired stays above 90 % of max.",
		queries: []q{
			{`sum by (db) (hal9_db_pool_acquired_conns{` + sel + `})`, "acquired {{db}}"},
			{`sum by (db) (hal9_db_pool_idle_conns{` + sel + `})`, "idle {{db}}"},
			{`sum by (db) (hal9_db_pool_total_conns{` + sel + `})`, "total {{db}}"},
			{`sum by (db) (hal9_db_pool_max_conns{` + sel + `})`, "max {{db}}"},
		}, links: []link{runbook("HAL9DBPoolExhausted")}})
	bd.add(panel{title: "DB pool waits", width: 8, unit: "ops", min: f(0),
		description: "Pool acquisitions per second that found no idle connection and had to wait (pgxpool's empty acquires, database/sql's wait count on SQLite). Sustained waits mean the pool is too small or queries too slow.",
		queries:     []q{{`sum by (db) (rate(hal9_db_pool_empty_acquires_total{` + sel + `}[$__rate_interval]))`, "waits {{db}}"}},
		links:       []link{runbook("HAL9DBPoolExhausted")}})
	bd.add(panel{title: "DB pool wait time", width: 8, unit: "s",
		description: "Seconds spent waiting for a pool connection per second of wall time: the average number of requests blocked on the pool.",
		queries:     []q{{`sum(rate(hal9_db_pool_acquire_wait_seconds_total{` + sel + `}[$__rate_interval]))`, "waiting"}}})
	bd.add(panel{title: "Group commit: writes per commit", width: 8, unit: "short", min: f(0),
		description: "Writes committed together by one transaction (one WAL sync): the mean, and the p99 from hal9_db_batch_size. Near 1 when the store is idle, higher under concurrent writes. PostgreSQL commits each signal on its own (its own WAL group commit shares the syncs), so only SQLite shows batches by default.",
		queries: []q{
			{`sum by (db) (rate(hal9_db_batch_size_sum{` + sel + `}[$__rate_interval])) / sum by (db) (rate(hal9_db_batch_size_count{` + sel + `}[$__rate_interval]))`, "mean {{db}}"},
			{`histogram_quantile(0.99, sum by (db, le) (rate(hal9_db_batch_size_bucket{` + sel + `}[$__rate_interval])))`, "p99 {{db}}"},
		}})
	bd.add(panel{title: "Group commit: commit duration", width: 8, unit: "s", min: f(0),
		description: "Time of one group commit from BEGIN to the end of COMMIT, the durable sync included (hal9_db_commit_duration_seconds). Every write in the batch waits this long at least; a rising p99 means the disk or the store's CPU is the limit.",
		queries: []q{
			{`histogram_quantile(0.5, sum by (db, le) (rate(hal9_db_commit_duration_seconds_bucket{` + sel + `}[$__rate_interval])))`, "p50 {{db}}"},
			{`histogram_quantile(0.99, sum by (db, le) (rate(hal9_db_commit_duration_seconds_bucket{` + sel + `}[$__rate_interval])))`, "p99 {{db}}"},
		}})
	bd.add(panel{title: "Credential routes refused", width: 8, unit: "reqps", min: f(0),
		description: "Register, login, refresh and logout answered 429 by the credential limiter (scope address: --auth-rate-limit per client, an IPv4 address or an IPv6 /64; network: 16 times that per IPv6 /48; user: --login-failures-per-user of a username from one client), and logins or registrations answered 503 because every bcrypt worker and queue place was taken.",
		queries: []q{
			{`sum by (scope) (rate(hal9_auth_limited_total{` + sel + `}[$__rate_interval]))`, "429 {{scope}}"},
			{`sum(rate(hal9_auth_busy_total{` + sel + `}[$__rate_interval]))`, "503 bcrypt busy"},
		}})

	bd.row("Capacity")
	bd.add(panel{title: "Load against rated capacity", width: 24, unit: "percentunit", min: f(0),
		description: "API requests per second (probes excluded) of the servers that export a rated capacity (--capacity-rps: the knee `make capacity` measured for their machine class), divided by the sum of their ratings; servers without one count in neither, and with none the panel is empty. The forecast is where the trend of the last 30 minutes puts the load 30 minutes later, against the capacity there is now (from the recording rules the alerts read, per job). HAL9LoadApproachingCapacity warns when the forecast has passed 80 % for 20 minutes (and the last 10 minutes' trend agrees); HAL9LoadNearCapacity pages above 90 % for 5 minutes.",
		queries: []q{
			{`sum by (job) (rate(hal9_http_requests_total{` + sloSel + `}[$__rate_interval]) and on (job, instance) hal9_capacity_requests_per_second{` + sel + `}) / sum by (job) (hal9_capacity_requests_per_second{` + sel + `})`, "{{job}} load"},
			{`predict_linear(hal9:capacity_http_requests:rate5m{job=~"$job"}[30m], 1800) / hal9:capacity_requests_per_second:sum{job=~"$job"}`, "{{job}} in 30 min at the last 30 min's trend"},
		}, thresholds: steps(0.8, 0.9), links: []link{runbook("HAL9LoadApproachingCapacity"), runbook("HAL9LoadNearCapacity")}})

	return bd.build()
}
