// Package load is the lab's load engine. It speaks k6's language
// (executors and their options, stages, thresholds, checks, metric names,
// the handleSummary JSON) in a Go engine of its own: k6 is AGPL, and
// nothing of it is imported.
//
// # Vocabulary
//
// A Plan is one test, usually read from a scenario file (ReadScenarioFile):
// what the virtual users do (its WorkloadSpec, built into a Workload by
// lab/workload), its Scenarios and its Thresholds. A Scenario names one
// executor and its options; the scenarios of a plan run side by side,
// each from its startTime. A VU (virtual user) runs iterations one after
// another: an iteration is one call of VU.Iteration, which sends requests
// through Iter.HTTP, records checks (Iter.Check) and custom samples
// (Iter.Add). The executors follow two models:
//
//   - closed (closed.go): constant-vus and ramping-vus hold a number of VUs
//     (VUSchedule), each running iterations back to back, so the rate is
//     what the system under test lets them reach;
//   - open (open.go): constant-arrival-rate and ramping-arrival-rate start
//     iterations on a schedule of their own (RateSchedule, the integral of
//     a piecewise-linear rate: the formula is in schedule.go), handing each
//     to a free VU, allocating VUs up to maxVUs, dropping an iteration
//     that found none within maxWait (dropped_iterations).
//
// A Segment (i/n) is one share of every executor's VUs and iterations, for
// running a test from several processes; MergeSummaries joins their
// summaries exactly.
//
// # Coordinated omission
//
// A closed-model client that waits for a slow server sends less, so the
// stall is measured once instead of for every request that would have
// queued behind it. The metric iteration_response_time counts from each
// iteration's scheduled start (Iter.Scheduled) to its end, so the time an
// open-model iteration waited for a VU or behind a stalled server counts
// (wrk2's cure). In the closed model it equals iteration_duration.
//
// # Files
//
// engine.go holds Run and the engine: the per-second time series,
// abortOnFail, the summary at the end. executor.go is one executor's run,
// vu.go the VU handle (one allocated VU, with what lets a ramp-down
// interrupt it). plan.go, config.go and yamlx.go read and validate
// scenario files; schedule.go computes both models' schedules;
// workload.go is the interface workloads implement (and IterationFunc,
// its function adapter); client.go the HTTP client that records http_*
// samples; metrics.go, sink.go and threshold.go the metrics (HdrHistogram
// trends), their aggregation and k6's threshold syntax; summary.go and
// text.go the summary JSON and its text form; prom.go the engine's own
// Prometheus metrics (hal9lab_*); progress.go the live progress;
// startat.go the agreed start of a distributed test's segments; bench.go
// the engine measured against wrk.
package load
