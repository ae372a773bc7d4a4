package backend

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hal9-lab/hal9-lab/lab/infra"
)

// pgLimits reads max_connections and superuser_reserved_connections from
// the PostgreSQL at base.
func pgLimits(ctx context.Context, base string) (maxConns, superReserved int, err error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, base)
	if err != nil {
		return 0, 0, fmt.Errorf("connect to PostgreSQL to read max_connections: %w", err)
	}
	defer c.Close(context.Background())
	if err := c.QueryRow(ctx, "SELECT current_setting('max_connections')::int, current_setting('superuser_reserved_connections')::int").Scan(&maxConns, &superReserved); err != nil {
		return 0, 0, fmt.Errorf("read max_connections: %w", err)
	}
	return maxConns, superReserved, nil
}

// pgBudget is a PostgreSQL backend's connection budget: its limits, read
// once, and the PgBouncer in front of it (--pgbouncer).
type pgBudget struct {
	maxConns, reserved int
	bouncer            *infra.Process
	bouncerPool        int
}

// connectionBudget reads the backend's max_connections and, with
// o.PgBouncer, starts PgBouncer in front of it with the pool that fits.
func (b *Backend) connectionBudget(ctx context.Context, o Options) error {
	maxConns, super, err := pgLimits(ctx, b.env.PostgresURL)
	if err != nil {
		return err
	}
	b.pg.maxConns, b.pg.reserved = maxConns, super+labReserve
	if !o.PgBouncer {
		return nil
	}
	if b.pg.bouncerPool, err = pgbouncerPool(b.pg.maxConns, b.pg.reserved); err != nil {
		return err
	}
	clients := b.Servers(o.Replicas)*defaultPool + 100
	t := time.Now()
	b.pg.bouncer, err = infra.StartPgBouncerProcess(ctx, infra.PgBouncerOptions{Upstream: b.env.PostgresURL, PoolSize: b.pg.bouncerPool,
		MaxClientConn: clients, Process: infra.ProcessOptions{Logger: o.Logger}})
	if err != nil {
		return fmt.Errorf("--pgbouncer: %w", err)
	}
	o.Progress("PgBouncer (transaction pooling) on %s in %s: %d server connections per database, up to %d clients",
		b.pg.bouncer.URL(), time.Since(t).Round(10*time.Millisecond), b.pg.bouncerPool, clients)
	return nil
}

// Pool sizing. Every replica's pool must fit PostgreSQL's max_connections
// beside the connections the lab and an operator need:
//
//	pool = min(default, ⌊(max_connections − reserved) / replicas⌋)
//	reserved = superuser_reserved_connections + labReserve
//
// A stock PostgreSQL (max_connections 100, 3 reserved) gives one server
// the pool of 92 instead of its default 100, and three replicas 30 each.
// With PgBouncer in front the servers keep their default pools (client
// connections to PgBouncer are cheap) and PgBouncer's default_pool_size
// takes the budget instead: max_connections − reserved − 1 (one server
// connection of its own for the readiness pings to database postgres).
const (
	// labReserve: the lab's own connections (creating and dropping the
	// leg's database, the connection sampler) and one psql.
	labReserve = 5
	// defaultPool is the server's --db-max-conns default (seed 000).
	defaultPool = 100
	// minPool is the smallest pool the lab gives a server.
	minPool = 2
)

// Pools is how n servers on the backend share PostgreSQL's connections.
type Pools struct {
	// DatabaseURL is the URL the servers get: through PgBouncer when it
	// runs in front.
	DatabaseURL string
	// Flags are each server's pool flags (--db-max-conns, --db-min-conns).
	Flags []string
	// The budget, for the report.
	MaxConnections, Reserved, PoolPerServer, PgBouncerPool int
	PgBouncer                                              bool
}

// Pools sizes the pools of n servers on database dbURL; nil without
// PostgreSQL.
func (b *Backend) Pools(n int, dbURL string) (*Pools, error) {
	if b.pg.maxConns == 0 { // SQLite
		return nil, nil
	}
	p := &Pools{DatabaseURL: dbURL, MaxConnections: b.pg.maxConns, Reserved: b.pg.reserved, PoolPerServer: defaultPool}
	if b.pg.bouncer != nil {
		through, err := infra.ThroughPgBouncer(dbURL, b.pg.bouncer.URL())
		if err != nil {
			return nil, err
		}
		p.DatabaseURL, p.PgBouncerPool, p.PgBouncer = through, b.pg.bouncerPool, true
	} else {
		var err error
		if p.PoolPerServer, err = poolPerReplica(b.pg.maxConns, b.pg.reserved, n); err != nil {
			return nil, err
		}
	}
	p.Flags = []string{"--db-max-conns", fmt.Sprint(p.PoolPerServer), "--db-min-conns", fmt.Sprint(minConns(p.PoolPerServer))}
	return p, nil
}

// poolPerReplica is the --db-max-conns each of n replicas gets.
func poolPerReplica(maxConns, reserved, n int) (int, error) {
	if n < 1 {
		return 0, fmt.Errorf("pool sizing: %d replicas", n)
	}
	avail := maxConns - reserved
	pool := min(defaultPool, avail/n)
	if pool < minPool {
		return 0, fmt.Errorf("PostgreSQL's max_connections %d leaves %d connections after %d reserved: fewer than %d for each of %d replicas; raise max_connections, run fewer replicas, or put PgBouncer in front (pgbouncer: true, --pgbouncer)",
			maxConns, max(avail, 0), reserved, minPool, n)
	}
	return pool, nil
}

// pgbouncerPool is PgBouncer's default_pool_size for a PostgreSQL with
// maxConns connections of which reserved are kept.
func pgbouncerPool(maxConns, reserved int) (int, error) {
	pool := maxConns - reserved - 1
	if pool < minPool {
		return 0, fmt.Errorf("PostgreSQL's max_connections %d leaves PgBouncer %d server connections after %d reserved; raise max_connections", maxConns, max(pool, 0), reserved)
	}
	return pool, nil
}

// minConns is --db-min-conns for a pool: the default 10, at most the pool.
func minConns(pool int) int { return min(10, pool) }
