package dashboards

import (
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

// Cache hit ratios. A lookup starts at the process tier and falls through to
// Redis, so every lookup is counted once at tier="process"; a hit at any tier
// is a hit overall.
const (
	cacheHitsByLayer    = `sum by (layer) (rate(hal9_cache_requests_total{` + sel + `, result="hit"}[$__rate_interval]))`
	cacheLookupsByLayer = `sum by (layer) (rate(hal9_cache_requests_total{` + sel + `, tier="process"}[$__rate_interval]))`
)

func neurons() (dashboard.Dashboard, error) {
	bd := newBoard(UIDNeurons, "HAL9 neurons and layers",
		"Inside the neuron hierarchy: signal latency per layer L1..L5, the response cache by layer and tier, LLM calls, tokens, cost against the budgets, circuit breakers.",
		[]string{"hal9", "neurons"}, serverVars())

	bd.row("Signals by layer")
	bd.add(panel{title: "Signals by layer and status", unit: "ops",
		description: "Signals per second by entry layer and status (processed, failed) from hal9_signals_total.",
		queries:     []q{{`sum by (layer, status) (rate(hal9_signals_total{` + sel + `}[$__rate_interval]))`, "{{layer}} {{status}}"}}})
	bd.add(panel{title: "Signal P99 latency by layer", unit: "s",
		description: "99th percentile of a signal's processing time per layer (hal9_signal_duration_seconds). L1 is reflexive (~100 ms horizon); higher layers plan and take longer.",
		queries:     []q{{`histogram_quantile(0.99, sum by (layer, le) (rate(hal9_signal_duration_seconds_bucket{` + sel + `}[$__rate_interval])))`, "{{layer}}"}}})
	bd.add(panel{title: "Signal P50 latency by layer", unit: "s",
		description: "Median signal processing time per layer.",
		queries:     []q{{`histogram_quantile(0.50, sum by (layer, le) (rate(hal9_signal_duration_seconds_bucket{` + sel + `}[$__rate_interval])))`, "{{layer}}"}}})
	bd.add(panel{title: "Signal failure ratio by layer", unit: "percentunit", min: f(0),
		description: "Share of signals per layer that failed (status=\"failed\"): an LLM error, timeout or open breaker on the way.",
		queries:     []q{{`sum by (layer) (rate(hal9_signals_total{` + with(`status="failed"`) + `}[$__rate_interval])) / sum by (layer) (rate(hal9_signals_total{` + sel + `}[$__rate_interval]))`, "{{layer}}"}}})

	bd.row("Response cache")
	bd.add(panel{kind: kindStat, title: "Cache hit ratio", width: 6, unit: "percentunit", min: f(0), max: f(1),
		description: "Hits at any tier per lookup over all layers. Seed 000 alerts below 30 % (HAL9LowCacheHitRate); seed 002's target is 90 %+.",
		queries:     []q{{`sum(rate(hal9_cache_requests_total{` + with(`result="hit"`) + `}[$__rate_interval])) / sum(rate(hal9_cache_requests_total{` + with(`tier="process"`) + `}[$__rate_interval]))`, "hit ratio"}},
		thresholds:  lowSteps(0.3, 0.6), links: []link{runbook("HAL9LowCacheHitRate")}})
	bd.add(panel{title: "Cache hit ratio by layer", width: 9, unit: "percentunit", min: f(0), max: f(1),
		description: "Hits at any tier per lookup, per layer. TTLs: L2 10 min, L3 5 min, L4 2 min; L1 and L5 configurable.",
		queries:     []q{{cacheHitsByLayer + " / " + cacheLookupsByLayer, "{{layer}}"}},
		thresholds:  lowSteps(0.3, 0.6), links: []link{runbook("HAL9LowCacheHitRate")}})
	bd.add(panel{title: "Cache hit ratio by tier", width: 9, unit: "percentunit", min: f(0), max: f(1),
		description: "Hits per lookup within each tier: the process tier sees every lookup, Redis only the process tier's misses.",
		queries:     []q{{`sum by (tier) (rate(hal9_cache_requests_total{` + with(`result="hit"`) + `}[$__rate_interval])) / sum by (tier) (rate(hal9_cache_requests_total{` + sel + `}[$__rate_interval]))`, "{{tier}}"}}})
	bd.add(panel{title: "Cache lookups by tier and result", width: 8, unit: "ops",
		description: "Cache lookups per second by tier and result (hit, miss, error). Tier errors are treated as misses.",
		queries:     []q{{`sum by (tier, result) (rate(hal9_cache_requests_total{` + sel + `}[$__rate_interval]))`, "{{tier}} {{result}}"}}})
	bd.add(panel{title: "Cache evictions", width: 8, unit: "ops",
		description: "Entries evicted per second by tier: the process tier evicts large, rarely used entries first when it passes its entry or byte bound.",
		queries:     []q{{`sum by (tier) (rate(hal9_cache_evictions_total{` + sel + `}[$__rate_interval]))`, "{{tier}}"}}})
	bd.add(panel{title: "Cache entries", width: 8, unit: "short",
		description: "Entries held per tier (process tier bound: 50,000).",
		queries:     []q{{`sum by (tier) (hal9_cache_entries{` + sel + `})`, "{{tier}}"}}})

	bd.row("LLM calls")
	bd.add(panel{title: "LLM requests by layer and outcome", unit: "reqps",
		description: "Calls to the LLM provider per second by layer and outcome (ok, error, timeout, rate_limited, circuit_open…). Cache hits never reach the provider.",
		queries:     []q{{`sum by (layer, outcome) (rate(hal9_llm_requests_total{` + sel + `}[$__rate_interval]))`, "{{layer}} {{outcome}}"}}})
	bd.add(panel{title: "LLM P99 latency by layer", unit: "s",
		description: "99th percentile of a provider call's duration per layer and model; calls time out at 30 s.",
		queries:     []q{{`histogram_quantile(0.99, sum by (layer, model, le) (rate(hal9_llm_request_duration_seconds_bucket{` + sel + `}[$__rate_interval])))`, "{{layer}} {{model}}"}}})
	bd.add(panel{title: "Tokens", unit: "short",
		description: "Tokens per second sent to (in) and received from (out) the model.",
		queries:     []q{{`sum by (model, direction) (rate(hal9_llm_tokens_total{` + sel + `}[$__rate_interval]))`, "{{model}} {{direction}}"}}})
	bd.add(panel{title: "Cost rate", unit: "currencyUSD",
		description: "LLM spend extrapolated to dollars per hour, by model, from hal9_llm_cost_dollars_total (the price of answered calls).",
		queries:     []q{{`sum by (model) (rate(hal9_llm_cost_dollars_total{` + sel + `}[$__rate_interval])) * 3600`, "{{model}} $/h"}}})

	bd.row("Cost budgets")
	bd.add(panel{title: "Spend in the last hour vs budget", unit: "currencyUSD", min: f(0),
		description: "Dollars the ledger charged over the trailing hour (answered calls at their price, calls of unknown cost at their reservation), summed over the replicas, against the hourly budget ($10 by default; warning at 80 %).",
		queries: []q{
			{`sum(increase(hal9_llm_budget_settled_dollars_total{` + sel + `}[1h]))`, "spent (1h)"},
			{`max(hal9_llm_budget_dollars{` + with(`window="hour"`) + `})`, "budget"},
			{`0.8 * max(hal9_llm_budget_dollars{` + with(`window="hour"`) + `})`, "warning (80 %)"},
		}, links: []link{runbook("HAL9LLMHourlyBudgetWarning"), runbook("HAL9LLMHourlyBudgetExceeded")}})
	bd.add(panel{title: "Spend in the last day vs budget", unit: "currencyUSD", min: f(0),
		description: "Dollars the ledger charged over the trailing 24 hours, summed over the replicas, against the daily budget ($100 by default; warning at 80 %).",
		queries: []q{
			{`sum(increase(hal9_llm_budget_settled_dollars_total{` + sel + `}[1d]))`, "spent (1d)"},
			{`max(hal9_llm_budget_dollars{` + with(`window="day"`) + `})`, "budget"},
			{`0.8 * max(hal9_llm_budget_dollars{` + with(`window="day"`) + `})`, "warning (80 %)"},
		}, links: []link{runbook("HAL9LLMDailyBudgetWarning"), runbook("HAL9LLMDailyBudgetExceeded")}})
	bd.add(panel{title: "Reserved and settled", unit: "currencyUSD", min: f(0),
		description: "Dollars per hour reserved before LLM calls (their worst case: input bytes and max_tokens at the model's price) and settled when they ended, and the reservations of calls still in flight: the gap between reserved and settled is what the budget held back for calls that cost less than their worst case.",
		queries: []q{
			{`sum(rate(hal9_llm_budget_reserved_dollars_total{` + sel + `}[$__rate_interval])) * 3600`, "reserved $/h"},
			{`sum(rate(hal9_llm_budget_settled_dollars_total{` + sel + `}[$__rate_interval])) * 3600`, "settled $/h"},
			{`sum(hal9_llm_budget_in_flight_dollars{` + sel + `})`, "in flight $"},
		}, links: []link{runbook("HAL9LLMBudgetRefusing")}})
	bd.add(panel{title: "LLM budget refusals by reason", unit: "reqps", min: f(0),
		description: "LLM calls the enforced budget refused per second: hourly_budget and daily_budget (the whole budget: 503 budget_exceeded), user_hourly_share and user_daily_share (one user's share, --llm-budget-per-user: 429), user_calls (one user's calls in flight, --llm-calls-per-user: 429).",
		queries:     []q{{`sum by (reason) (rate(hal9_llm_budget_refusals_total{` + sel + `}[$__rate_interval]))`, "{{reason}}"}},
		links:       []link{runbook("HAL9LLMBudgetRefusing")}})

	bd.row("Circuit breakers")
	bd.add(panel{kind: kindState, title: "Circuit-breaker state", width: 16, unit: "none",
		description: "State of each LLM circuit breaker (one per layer): closed, half-open (probing after 60 s) or open (5 failures in 60 s).",
		queries:     []q{{`max by (breaker) (hal9_circuit_breaker_state{` + sel + `})`, "{{breaker}}"}},
		mappings: []dashboard.ValueMapping{valueMap(map[string][2]string{
			"0": {"closed", "green"}, "1": {"half-open", "yellow"}, "2": {"open", "red"},
		})}, links: []link{runbook("HAL9CircuitBreakersOpen")}})
	bd.add(panel{kind: kindStat, title: "Open breaker ratio", width: 8, unit: "percentunit", min: f(0), max: f(1),
		description: "Share of circuit breakers that are open. Seed 004 keeps it under 10 %; HAL9CircuitBreakersOpen fires above.",
		queries:     []q{{`avg(hal9_circuit_breaker_state{` + sel + `} == bool 2)`, "open"}},
		thresholds:  steps(0.05, 0.1), links: []link{runbook("HAL9CircuitBreakersOpen")}})

	return bd.build()
}
