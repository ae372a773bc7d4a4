package profile

import (
	"fmt"
	"time"
)

// MaxReplicas bounds replicas: each is a server process on this machine.
const MaxReplicas = 16

// ReplicaSettings are a profile's `replicas:`, `haproxy:` and `pgbouncer:`
// keys (inlined into Profile).
type ReplicaSettings struct {
	// Replicas is how many `hal9 serve` each PostgreSQL leg runs, on one
	// database and one Redis, behind HAProxy (0 or 1: one server, no
	// HAProxy). A SQLite leg always runs one: its database is a file of
	// one server.
	Replicas int `yaml:"replicas"`
	// HAProxy tunes the balancer's health checks.
	HAProxy HAProxySettings `yaml:"haproxy"`
	// PgBouncer puts PgBouncer (transaction pooling) between the servers
	// and PostgreSQL.
	PgBouncer bool `yaml:"pgbouncer"`
}

// HAProxySettings: a server leaves the rotation after Fall failed checks of
// its /readyz in a row, CheckInterval apart, and comes back after Rise
// passed ones.
type HAProxySettings struct {
	CheckInterval Duration `yaml:"check_interval"` // default 500ms
	Fall          int      `yaml:"fall"`           // default 2
	Rise          int      `yaml:"rise"`           // default 2
}

func (r *ReplicaSettings) validate() error {
	if r.Replicas < 0 || r.Replicas > MaxReplicas {
		return fmt.Errorf("replicas: %d: want 1..%d servers per leg (0 or 1: one server without HAProxy)", r.Replicas, MaxReplicas)
	}
	h := &r.HAProxy
	if h.CheckInterval < 0 || (h.CheckInterval > 0 && h.CheckInterval.D() < 50*time.Millisecond) || h.CheckInterval.D() > time.Minute {
		return fmt.Errorf("haproxy.check_interval: %s: want 50ms..1m (e.g. 500ms)", h.CheckInterval.D())
	}
	if h.Fall < 0 || h.Rise < 0 || h.Fall > 100 || h.Rise > 100 {
		return fmt.Errorf("haproxy: fall %d and rise %d: want 1..100 checks (0: the default 2)", h.Fall, h.Rise)
	}
	return nil
}
