package llm

import (
	"github.com/hal9-lab/hal9-lab/server/telemetry"

	"github.com/prometheus/client_golang/prometheus"
)

// Outcomes of a call, the values of the outcome label.
const (
	OutcomeOK             = "ok"
	OutcomeError          = "error"           // API or transport error
	OutcomeTimeout        = "timeout"         // the Guard's per-call timeout
	OutcomeRateLimited    = "rate_limited"    // 429 / simulated RPM limit
	OutcomeCircuitOpen    = "circuit_open"    // refused by the breaker
	OutcomeCanceled       = "canceled"        // the caller's context ended first
	OutcomeBudgetExceeded = "budget_exceeded" // only with Budgets.Enforce
	OutcomeUserLimited    = "user_limited"    // the user's share or call cap; only with Budgets.Enforce
)

// Metrics are the LLM side's Prometheus metrics. Create one per registry.
type Metrics struct {
	Requests        *prometheus.CounterVec   // hal9_llm_requests_total{model,layer,outcome}
	Duration        *prometheus.HistogramVec // hal9_llm_request_duration_seconds{model,layer}
	Tokens          *prometheus.CounterVec   // hal9_llm_tokens_total{model,direction}
	Cost            *prometheus.CounterVec   // hal9_llm_cost_dollars_total{model}
	BreakerState    *prometheus.GaugeVec     // hal9_circuit_breaker_state{breaker}
	BreakerFailures *prometheus.CounterVec   // hal9_circuit_breaker_failures_total{breaker,kind}
	Budget          *prometheus.GaugeVec     // hal9_llm_budget_dollars{window}: the configured limit
	Spend           *prometheus.GaugeVec     // hal9_llm_spend_dollars{window}: spend in the rolling window
	BudgetWarnings  *prometheus.CounterVec   // hal9_llm_budget_warnings_total{window}
	BudgetReserved  prometheus.Counter       // hal9_llm_budget_reserved_dollars_total
	BudgetSettled   prometheus.Counter       // hal9_llm_budget_settled_dollars_total
	BudgetInFlight  prometheus.Gauge         // hal9_llm_budget_in_flight_dollars
	BudgetRefusals  *prometheus.CounterVec   // hal9_llm_budget_refusals_total{reason}
	BudgetFallbacks prometheus.Counter       // hal9_llm_budget_fallbacks_total
}

// DurationBuckets suit 5 ms (cached-fast L1) to 60 s (twice the timeout).
var DurationBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

// NewMetrics creates the metrics and registers them on reg (nil: not
// registered). Registering on a registry that already holds them reuses the
// registered collectors, so two components can share one registry.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hal9_llm_requests_total",
			Help: "LLM calls by model, layer and outcome (ok, error, timeout, rate_limited, circuit_open, canceled, budget_exceeded, user_limited).",
		}, []string{"model", "layer", "outcome"}),
		Duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "hal9_llm_request_duration_seconds",
			Help:    "Duration of LLM calls that reached the provider.",
			Buckets: DurationBuckets,
		}, []string{"model", "layer"}),
		Tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hal9_llm_tokens_total",
			Help: "LLM tokens by model and direction (input, output).",
		}, []string{"model", "direction"}),
		Cost: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hal9_llm_cost_dollars_total",
			Help: "LLM cost in US dollars from the price table.",
		}, []string{"model"}),
		BreakerState: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "hal9_circuit_breaker_state",
			Help: "Circuit breaker state: 0 closed, 1 half-open, 2 open.",
		}, []string{"breaker"}),
		BreakerFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hal9_circuit_breaker_failures_total",
			Help: "Failures counted by a circuit breaker, by kind (timeout, api_error, other).",
		}, []string{"breaker", "kind"}),
		Budget: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "hal9_llm_budget_dollars",
			Help: "Configured LLM cost budget per window (hour, day).",
		}, []string{"window"}),
		Spend: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "hal9_llm_spend_dollars",
			Help: "LLM spend in the rolling window (hour, day) as the ledger last saw it: every replica sharing the ledger, calls in flight at their reservation.",
		}, []string{"window"}),
		BudgetWarnings: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hal9_llm_budget_warnings_total",
			Help: "Budget warnings logged (80 % and 100 % crossings) per window.",
		}, []string{"window"}),
		BudgetReserved: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hal9_llm_budget_reserved_dollars_total",
			Help: "Worst-case LLM cost reserved before calls (input tokens and max_tokens at the model's price), by this process.",
		}),
		BudgetSettled: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hal9_llm_budget_settled_dollars_total",
			Help: "LLM cost charged to the budget when calls ended: the real cost, or the reservation when the cost is unknown (timeout, caller gone), by this process.",
		}),
		BudgetInFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "hal9_llm_budget_in_flight_dollars",
			Help: "LLM cost reserved by this process's calls still running.",
		}),
		BudgetRefusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hal9_llm_budget_refusals_total",
			Help: "LLM calls refused by the ledger (enforced budgets only), by reason: hourly_budget, daily_budget (503 budget_exceeded), user_hourly_share, user_daily_share, user_calls (429).",
		}, []string{"reason"}),
		BudgetFallbacks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hal9_llm_budget_fallbacks_total",
			Help: "Ledger operations taken in this process's memory because the shared ledger (Redis) failed or its breaker was open.",
		}),
	}
	if reg != nil {
		m.Requests = telemetry.Register(reg, m.Requests)
		m.Duration = telemetry.Register(reg, m.Duration)
		m.Tokens = telemetry.Register(reg, m.Tokens)
		m.Cost = telemetry.Register(reg, m.Cost)
		m.BreakerState = telemetry.Register(reg, m.BreakerState)
		m.BreakerFailures = telemetry.Register(reg, m.BreakerFailures)
		m.Budget = telemetry.Register(reg, m.Budget)
		m.Spend = telemetry.Register(reg, m.Spend)
		m.BudgetWarnings = telemetry.Register(reg, m.BudgetWarnings)
		m.BudgetReserved = telemetry.Register(reg, m.BudgetReserved)
		m.BudgetSettled = telemetry.Register(reg, m.BudgetSettled)
		m.BudgetInFlight = telemetry.Register(reg, m.BudgetInFlight)
		m.BudgetRefusals = telemetry.Register(reg, m.BudgetRefusals)
		m.BudgetFallbacks = telemetry.Register(reg, m.BudgetFallbacks)
	}
	return m
}
