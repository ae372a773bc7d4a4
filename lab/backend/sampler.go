package backend

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/hal9-lab/hal9-lab/lab/report"
	"github.com/jackc/pgx/v5"
)

// Sampler counts PostgreSQL's client connections (pg_stat_activity)
// once a second on a connection of its own: all of them, and those on the
// leg's database. It never fails the leg: a sampling error is reported.
type Sampler struct {
	mu   sync.Mutex
	out  *report.Connections
	conn *pgx.Conn
	db   string
	stop chan struct{}
	done chan struct{}
}

// SampleConnections samples PostgreSQL's connections into out until Stop;
// dbURL is the leg's database.
func (b *Backend) SampleConnections(ctx context.Context, dbURL string, out *report.Connections) *Sampler {
	return startSampler(ctx, b.env.PostgresURL, dbURL, out)
}

func startSampler(ctx context.Context, base, dbURL string, out *report.Connections) *Sampler {
	c := &Sampler{out: out, stop: make(chan struct{}), done: make(chan struct{})}
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

func (c *Sampler) fail(err error) {
	c.mu.Lock()
	if c.out.Error == "" {
		c.out.Error = err.Error()
	}
	c.mu.Unlock()
}

func (c *Sampler) loop(ctx context.Context) {
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

func (c *Sampler) sample(ctx context.Context) {
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
func (c *Sampler) Stop() {
	select {
	case <-c.done:
		return
	default:
	}
	close(c.stop)
	<-c.done
}
