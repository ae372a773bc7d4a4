package dashboards

import (
	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

// labSel selects the lab's own /metrics endpoint (hal9-lab load/run).
const labSel = `job=~"$lab_job"`

func loadLab() (dashboard.Dashboard, error) {
	vars := append(serverVars(), []cog.Builder[dashboard.VariableModel]{
		queryVar("lab_job", "Lab job", "label_values(hal9lab_vus, job)", false),
		queryVar("scenario", "Scenario", `label_values(hal9lab_iterations_total{job=~"$lab_job"}, scenario)`, true),
	}...)
	bd := newBoard(UIDLoadLab, "HAL9 load lab",
		"A lab run seen from both sides: the load engine's own metrics (hal9lab_*, from hal9-lab's /metrics) beside the server's. Client-side latency includes the network and queueing the server cannot see.",
		[]string{"hal9", "lab"}, vars)
	scen := labSel + `, scenario=~"$scenario"`

	bd.row("Load")
	bd.add(panel{title: "Virtual users", width: 8, unit: "short",
		description: "Active virtual users and the allocated maximum (hal9lab_vus, hal9lab_vus_max).",
		queries: []q{
			{`sum(hal9lab_vus{` + labSel + `})`, "VUs"},
			{`sum(hal9lab_vus_max{` + labSel + `})`, "max VUs"},
		}})
	bd.add(panel{title: "Iterations", width: 8, unit: "ops",
		description: "Completed iterations per second by scenario, and iterations dropped because no VU was free (arrival-rate executors).",
		queries: []q{
			{`sum by (scenario) (rate(hal9lab_iterations_total{` + scen + `}[$__rate_interval]))`, "{{scenario}}"},
			{`sum by (scenario) (rate(hal9lab_dropped_iterations_total{` + scen + `}[$__rate_interval]))`, "dropped {{scenario}}"},
		}})
	bd.add(panel{title: "Checks", width: 8, unit: "ops",
		description: "Check outcomes per second (hal9lab_checks_total): each response-shape assertion of the workload, pass or fail.",
		queries:     []q{{`sum by (check, result) (rate(hal9lab_checks_total{` + labSel + `}[$__rate_interval]))`, "{{check}} {{result}}"}}})

	bd.row("Requests: client vs server")
	bd.add(panel{title: "Request rate: lab sent vs server answered", unit: "reqps",
		description: "Requests per second as the lab counted them (by op) beside the server's own count. A gap means requests lost in between (connection errors, timeouts).",
		queries: []q{
			{`sum by (op) (rate(hal9lab_http_reqs_total{` + scen + `}[$__rate_interval]))`, "lab {{op}}"},
			{`sum(rate(hal9lab_http_reqs_total{` + scen + `}[$__rate_interval]))`, "lab total"},
			{`sum(rate(hal9_http_requests_total{` + sel + `}[$__rate_interval]))`, "server total"},
		}})
	bd.add(panel{title: "Failure ratio: lab vs server", unit: "percentunit", min: f(0),
		description: "Share of requests the lab counted as failed (http_req_failed: transport errors and unexpected statuses) beside the server's 5xx ratio. The seed threshold is rate<0.01.",
		queries: []q{
			{`(sum(rate(hal9lab_http_req_failed_total{` + scen + `}[$__rate_interval])) or vector(0)) / sum(rate(hal9lab_http_reqs_total{` + scen + `}[$__rate_interval]))`, "lab failed"},
			{`(sum(rate(hal9_http_requests_total{` + with(`code=~"5.."`) + `}[$__rate_interval])) or vector(0)) / sum(rate(hal9_http_requests_total{` + sel + `}[$__rate_interval]))`, "server 5xx"},
		}, thresholds: steps(0.005, 0.01)})
	bd.add(panel{title: "P99 latency: lab vs server", unit: "s",
		description: "99th percentile as the lab measured it from the send (http_req_duration), from each iteration's scheduled start (iteration_response_time: no coordinated omission), and as the server measured it.",
		queries: []q{
			{`histogram_quantile(0.99, sum by (le) (rate(hal9lab_http_req_duration_seconds_bucket{` + scen + `}[$__rate_interval])))`, "lab http_req_duration"},
			{`histogram_quantile(0.99, sum by (le) (rate(hal9lab_iteration_response_time_seconds_bucket{` + scen + `}[$__rate_interval])))`, "lab iteration_response_time"},
			{`histogram_quantile(0.99, sum by (le) (rate(hal9_http_request_duration_seconds_bucket{` + sel + `}[$__rate_interval])))`, "server"},
		}, thresholds: steps(0.5, 1)})
	bd.add(panel{title: "Lab P95 latency by op", unit: "s",
		description: "95th percentile of http_req_duration per operation of the workload mix (signals, status, neurons, auth, metrics). The seed threshold is p(95)<500 ms.",
		queries:     []q{{`histogram_quantile(0.95, sum by (op, le) (rate(hal9lab_http_req_duration_seconds_bucket{` + scen + `}[$__rate_interval])))`, "{{op}}"}},
		thresholds:  steps(0.4, 0.5)})
	bd.add(panel{title: "Lab responses by status", unit: "reqps",
		description: "Responses per second by op and HTTP status as the lab saw them (status 0 is a transport error).",
		queries:     []q{{`sum by (op, status) (rate(hal9lab_http_reqs_total{` + scen + `}[$__rate_interval]))`, "{{op}} {{status}}"}}})

	bd.row("Server during the run")
	bd.add(panel{title: "Server CPU", width: 8, unit: "percentunit", min: f(0),
		description: "Server process CPU per GOMAXPROCS during the run.",
		queries:     []q{{`rate(process_cpu_seconds_total{` + sel + `}[$__rate_interval]) / go_sched_gomaxprocs_threads{` + sel + `}`, "{{instance}}"}},
		thresholds:  steps(0.7, 0.8)})
	bd.add(panel{title: "Server in-flight and goroutines", width: 8, unit: "short",
		description: "Requests in flight and goroutines on the server: how much concurrency the load created.",
		queries: []q{
			{`sum(hal9_http_inflight_requests{` + sel + `})`, "in flight"},
			{`sum(go_goroutines{` + sel + `})`, "goroutines"},
		}})
	bd.add(panel{title: "Server cache hit ratio and LLM spend", width: 8, unit: "percentunit", min: f(0),
		description: "Response-cache hit ratio during the run; the LLM spend rate is on the Neurons dashboard.",
		queries:     []q{{`sum(rate(hal9_cache_requests_total{` + with(`result="hit"`) + `}[$__rate_interval])) / sum(rate(hal9_cache_requests_total{` + with(`tier="process"`) + `}[$__rate_interval]))`, "cache hit ratio"}},
		links:       []link{{title: "HAL9 neurons and layers", url: DashboardPath(UIDNeurons)}}})

	return bd.build()
}
