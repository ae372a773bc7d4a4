package load

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// promMetrics are the engine's own metrics (hal9lab_*), for the lab's
// /metrics endpoint and the Load lab dashboard.
type promMetrics struct {
	vus        prometheus.Gauge
	vusMax     prometheus.Gauge
	iterations *prometheus.CounterVec
	httpReqs   *prometheus.CounterVec
	httpFailed *prometheus.CounterVec
	dropped    *prometheus.CounterVec
	httpDur    *prometheus.HistogramVec
	irt        *prometheus.HistogramVec
	checks     *prometheus.CounterVec
}

// latencyBuckets span a cached hit (1 ms) to a timed-out LLM call (60 s).
var latencyBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}

// newPromMetrics registers the engine metrics on reg (a private registry
// when reg is nil). Registering twice on the same registry (one lab
// process running many tests) reuses the collectors already there, so
// counters keep counting across runs as Prometheus expects.
func newPromMetrics(reg prometheus.Registerer) (*promMetrics, error) {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	p := &promMetrics{
		vus: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "hal9lab_vus", Help: "Virtual users running iterations now."}),
		vusMax: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "hal9lab_vus_max", Help: "Virtual users allocated (the pool size)."}),
		iterations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hal9lab_iterations_total", Help: "Completed iterations."}, []string{"scenario"}),
		httpReqs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hal9lab_http_reqs_total", Help: "HTTP requests sent by the load engine, by response status (0: no response)."},
			[]string{"scenario", "op", "status"}),
		httpFailed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hal9lab_http_req_failed_total", Help: "HTTP requests that failed (status >= 400 or no response)."},
			[]string{"scenario", "op"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hal9lab_dropped_iterations_total", Help: "Scheduled iterations that never started (no free VU within maxWait)."},
			[]string{"scenario"}),
		httpDur: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "hal9lab_http_req_duration_seconds", Help: "HTTP request duration, from sending to the end of the response body.",
			Buckets: latencyBuckets}, []string{"scenario", "op"}),
		irt: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "hal9lab_iteration_response_time_seconds", Help: "Iteration time from its scheduled start to its end (includes waiting for a VU).",
			Buckets: latencyBuckets}, []string{"scenario"}),
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hal9lab_checks_total", Help: "Checks evaluated, by result (pass|fail)."}, []string{"check", "result"}),
	}
	var err error
	p.vus = register(reg, p.vus, &err)
	p.vusMax = register(reg, p.vusMax, &err)
	p.iterations = register(reg, p.iterations, &err)
	p.httpReqs = register(reg, p.httpReqs, &err)
	p.httpFailed = register(reg, p.httpFailed, &err)
	p.dropped = register(reg, p.dropped, &err)
	p.httpDur = register(reg, p.httpDur, &err)
	p.irt = register(reg, p.irt, &err)
	p.checks = register(reg, p.checks, &err)
	return p, err
}

// register registers c, or returns the equal collector already registered.
func register[C prometheus.Collector](reg prometheus.Registerer, c C, errp *error) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		if *errp == nil {
			*errp = err
		}
	}
	return c
}
