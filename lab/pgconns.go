package lab

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hal9-lab/hal9-lab/lab/infra"
	"github.com/hal9-lab/hal9-lab/lab/report"
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

// connSampler counts PostgreSQL's client connections (pg_stat_activity)
// once a second on a connection of its own: all of them, and those on the
// leg's database. It never fails the leg: a sampling error is reported.
type connSampler struct {
	mu   sync.Mutex
	out  *report.Connections
	conn *pgx.Conn
	db   string
	stop chan struct{}
	done chan struct{}
}

// startConnSampler samples into out until stop is called.
func startConnSampler(ctx context.Context, base, dbURL string, out *report.Connections) *connSampler {
	c := &connSampler{out: out, stop: make(chan struct{}), done: make(chan struct{})}
	if u, err := url.Parse(dbURL); err == nil {
		c.db = strings.TrimPrefix(u.Path, "/")
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	conn, err := pgx.Connect(cctx, base)
	cancel()
	if err != nil {
		c.fail(err)
		close(c.done)
		return c
	}
	c.conn = conn
	go c.loop(ctx)
	return c
}

func (c *connSampler) fail(err error) {
	c.mu.Lock()
	if c.out.Error == "" {
		c.out.Error = err.Error()
	}
	c.mu.Unlock()
}

func (c *connSampler) loop(ctx context.Context) {
	defer close(c.done)
	defer c.conn.Close(context.Background())
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		c.sample(ctx)
		select {
		case <-c.stop:
			c.sample(context.WithoutCancel(ctx))
			return
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (c *connSampler) sample(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var all, leg int
	err := c.conn.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE datname = $1)
		FROM pg_stat_activity WHERE backend_type = 'client backend'`, c.db).Scan(&all, &leg)
	if err != nil {
		c.fail(fmt.Errorf("sample pg_stat_activity: %w", err))
		return
	}
	c.mu.Lock()
	c.out.Samples++
	c.out.PeakInUse = max(c.out.PeakInUse, all)
	c.out.PeakLegDatabase = max(c.out.PeakLegDatabase, leg)
	c.mu.Unlock()
}

// Stop takes a last sample and ends the sampling.
func (c *connSampler) Stop() {
	select {
	case <-c.done:
		return
	default:
	}
	close(c.stop)
	<-c.done
}

// pgBudget is a PostgreSQL backend's connection budget: its limits, read
// once, and the PgBouncer in front of it (--pgbouncer).
type pgBudget struct {
	maxConns, reserved int
	bouncer            *infra.Process
	bouncerPool        int
}

// connectionBudget reads the backend's max_connections and, with
// --pgbouncer, starts PgBouncer in front of it with the pool that fits. On
// error the backend's infrastructure is stopped.
func (s *Session) connectionBudget(ctx context.Context, b *Backend) error {
	fail := func(err error) error {
		if stopErr := b.Stop(ctx); stopErr != nil {
			s.LabError("stop %s infrastructure: %v", b.Name, stopErr)
		}
		return err
	}
	maxConns, super, err := pgLimits(ctx, b.env.PostgresURL)
	if err != nil {
		return fail(err)
	}
	b.pg.maxConns, b.pg.reserved = maxConns, super+labReserve
	if !s.opts.PgBouncer {
		return nil
	}
	if b.pg.bouncerPool, err = pgbouncerPool(b.pg.maxConns, b.pg.reserved); err != nil {
		return fail(err)
	}
	clients := s.legReplicas(b.Name)*defaultPool + 100
	t := time.Now()
	b.pg.bouncer, err = infra.StartPgBouncerProcess(ctx, infra.PgBouncerOptions{Upstream: b.env.PostgresURL, PoolSize: b.pg.bouncerPool,
		MaxClientConn: clients, Process: infra.ProcessOptions{Logger: s.log}})
	if err != nil {
		return fail(fmt.Errorf("--pgbouncer: %w", err))
	}
	s.prog.step("PgBouncer (transaction pooling) on %s in %s: %d server connections per database, up to %d clients",
		b.pg.bouncer.URL(), time.Since(t).Round(10*time.Millisecond), b.pg.bouncerPool, clients)
	return nil
}
