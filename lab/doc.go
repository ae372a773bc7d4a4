// Package lab measures HAL9: one lab session runs the server binary on each
// backend it can get (SQLite, PostgreSQL, PostgreSQL + Redis) under the
// profile's scenarios and hands a report.RunSummary to lab/report. It talks
// to the server only over HTTP and by running its binary, so it measures
// any HAL9 build. What it holds, by file:
//
//   - session.go: the Session a run, gate or baseline update shares across
//     its legs (the validated scenarios, the Pyroscope receiver, the lab's
//     own /metrics, Prometheus with --prometheus, the summary being built,
//     lab errors) and the server binary it builds once.
//   - backend.go: a Backend, the PostgreSQL and Redis that lab/infra gives
//     a backend for all its legs; one that cannot be had is skipped.
//   - backing.go: each leg-run's own database (a new PostgreSQL database,
//     an empty Redis logical DB), dropped afterwards.
//   - leg.go: one run of one leg (RunLeg): fresh database, server, warm-up,
//     the scenarios, the rate-limit check, SIGTERM; each step timed.
//   - scenario.go: one scenario of a leg: /metrics scraped before, every
//     second during and after the load, and the client/server cross-check.
//   - scrape.go: reading /metrics and every conversion from measurements to
//     report numbers: the server's difference between two scrapes (how the
//     cache hit rate is computed), the per-second series, the engine's
//     result, a leg's totals, cost per 1,000 requests and the monthly
//     projection.
//   - ratelimit.go: the rate-limit check (429s with Retry-After above the
//     limit, none below) and its report scenario.
//   - server.go: building and running `hal9 serve` as a subprocess in its
//     own process group; its peak RSS and CPU from /proc.
//   - replicas.go: a leg's servers as a ReplicaSet: one, or N replicas on
//     fixed addresses behind HAProxy (lab/infra), each addressable
//     (Signal, Restart, Stop, Kill) by faults; their merged /metrics, the
//     pool sizes that fit max_connections, per-replica and HAProxy numbers.
//     profile_replicas.go: the profile's replicas, haproxy, pgbouncer keys.
//   - pgconns.go: a PostgreSQL backend's connection budget (max_connections,
//     PgBouncer in front with --pgbouncer) and the pg_stat_activity sampler.
//   - faultleg.go, profile_faults.go: the leg's acknowledgement ledger
//     (checked in its database after the server stopped) and, with a
//     `faults:` timeline, the proxies before the backends, the timeline
//     played during the load (lab/faults), the per-fault results.
//   - finish.go: the end of a session: Prometheus query checks, merged
//     profiles and their top functions (against the baseline's), the report
//     files.
//   - run.go, gate.go: the entry points: Run (`hal9-lab run`), Gate (the
//     Mann-Whitney gate against a baseline file or interleaved runs of a
//     reference build), UpdateBaseline (baseline files and profiles).
//   - profile.go: profile files (scenarios/profiles/*.yaml) and backends;
//     profile_server.go their server:, postgres: and capacity: blocks.
//   - settings.go: `hal9 config` before each server starts, and the
//     departures from production's settings it shows, for the report.
//   - capacityleg.go: a leg's knee search (lab/capacity), the requests its
//     servers counted, the service demand from its CPU profile and the
//     fleet projection.
//   - progress.go: the lab's progress lines (elapsed time, leg, step).
package lab
