// Package lab measures HAL9: one lab session runs the server binary on each
// backend it can get (SQLite, PostgreSQL, PostgreSQL + Redis) under the
// profile's scenarios and hands a report.RunSummary to lab/report. It talks
// to the server only over HTTP and by running its binary, so it measures
// any HAL9 build.
//
// It orchestrates; the packages below it do the work, and none of them
// imports lab:
//
//	lab → profile (profile files), backend (a leg's PostgreSQL and Redis,
//	      pools, fresh databases), serve (the servers: processes or
//	      containers, replicas behind HAProxy), build (binaries, images),
//	      readings (scrapes and engine results to report numbers), ratecheck
//	    → infra, prom, load, faults, capacity, report, ledger, baseline,
//	      profiles, procstat
//
// What it holds, by file:
//
//   - options.go: Options and their validation (one place for the flags of
//     run, gate and baseline update).
//   - session.go: the session a run, gate or baseline update shares across
//     its legs (the validated scenarios, the summary being built, lab
//     errors); sidecars.go: what it runs beside them (the profile
//     receiver, the lab's /metrics, Prometheus with --prometheus).
//   - backends.go: each backend of the run in turn, started (or skipped
//     with the reason) and stopped.
//   - leg.go: one run of one leg (runLeg), its sequence written out: fresh
//     database, the fault leg's ledger and proxies, the scenarios, the
//     capacity leg, the rate-limit check, SIGTERM, the ledger check, the
//     service demand; each step timed. legserver.go: starting and stopping
//     the leg's servers with the profile's settings, the pools that fit and
//     the departures from production.
//   - scenario.go: one scenario of a leg: /metrics scraped before, every
//     second during and after the load; the client/server cross-check.
//   - ratelimit.go: the rate-limit check as a leg's scenario (lab/ratecheck).
//   - faultleg.go, porttaken.go, alerts.go: the fault leg: the
//     acknowledgement ledger, the proxies, the timeline (faults.Timeline)
//     per scenario, the port-taken fault before the first start, the
//     write-behind loss at a SIGKILL, the alerts that fired.
//   - capacityleg.go: the capacity leg: the knee search (lab/capacity),
//     the requests the servers counted, the service demand from the CPU
//     profile and the fleet projection.
//   - run.go, gate.go, finish.go: the entry points Run (`hal9-lab run`),
//     Gate and UpdateBaseline, and the end of a session (Prometheus query
//     checks, merged profiles and their top functions, the report files).
//   - progress.go: the lab's progress lines (elapsed time, leg, step).
package lab
