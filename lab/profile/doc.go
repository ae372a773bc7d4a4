// Package profile reads the lab's profile files (scenarios/profiles/*.yaml:
// what a lab run measures) and validates them before anything starts: the
// backends (sqlite, postgres, postgres+redis), the scenarios and their
// scales, warm-up, the rate-limit check, the gate's defaults, the
// server:, postgres:, replicas/haproxy/pgbouncer and capacity: blocks, and
// the faults: timeline checked against each scenario.
package profile
