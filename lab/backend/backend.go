// Package backend gives a lab leg its backend: PostgreSQL and Redis from
// lab/infra (none for SQLite), shared by the leg's runs, with what comes
// with them: PostgreSQL's connection budget and the pools that fit it
// (PgBouncer in front on request), a fresh database per run, the sampler of
// PostgreSQL's connections, and for server containers the container network
// and the profile receiver on its gateway. The lab reaches all of it
// through a Backend's methods.
package backend

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"path/filepath"
	"time"

	"github.com/hal9-lab/hal9-lab/lab/infra"
	"github.com/hal9-lab/hal9-lab/lab/procstat"
)

// Backend is a started backend shared by the runs of its legs: SQLite
// (nothing to start), PostgreSQL, or PostgreSQL and Redis.
type Backend struct {
	Name string     // the leg's: sqlite, postgres, postgres+redis
	env  *infra.Env // nil for SQLite
	pg   pgBudget   // PostgreSQL's connection budget and PgBouncer (budget.go)
	ctrs containers // --server container (containers.go)
}

// Options say how to start a backend.
type Options struct {
	// Infra is which of PostgreSQL and Redis the backend has (neither:
	// SQLite) and how lab/infra gets them.
	Infra infra.Options
	// PgBouncer puts PgBouncer in front of PostgreSQL, with the pool that
	// fits max_connections; Replicas bounds its clients (servers per leg).
	PgBouncer bool
	Replicas  int
	// Containers prepares the backend for server containers: a container
	// session (the infra's, or one of its own for SQLite) and Receiver
	// served on its network's gateway (PyroscopeURL instead when set).
	Containers   bool
	Receiver     http.Handler
	PyroscopeURL string
	Logger       *slog.Logger
	// Progress prints what was started; nil: nothing.
	Progress func(format string, a ...any)
}

// Start starts the infrastructure of backend name. On an error it also
// returns the backend as far as it got, for the caller to Stop.
func Start(ctx context.Context, name string, o Options) (*Backend, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Progress == nil {
		o.Progress = func(string, ...any) {}
	}
	b := &Backend{Name: name}
	if o.Infra.Postgres || o.Infra.Redis {
		io := o.Infra
		io.Logger = o.Logger
		env, err := infra.Start(ctx, io)
		if err != nil {
			return nil, err
		}
		b.env = env
	}
	if o.Infra.Postgres {
		if err := b.connectionBudget(ctx, o); err != nil {
			return b, err
		}
	}
	if o.Containers {
		if err := b.containerNetwork(ctx, o); err != nil {
			return b, err
		}
	}
	return b, nil
}

// Servers is how many servers a leg on the backend runs for replicas:
// SQLite's database is a file of one server.
func (b *Backend) Servers(replicas int) int {
	if b.env == nil {
		return 1
	}
	return max(replicas, 1)
}

// Infra says how the backend's servers were had: lab/infra's mode, or
// "none" for SQLite.
func (b *Backend) Infra() string {
	if b.env == nil {
		return "none"
	}
	return b.env.Mode.String()
}

// Durability lists the durability settings PostgreSQL has off (none
// without PostgreSQL).
func (b *Backend) Durability(ctx context.Context) (off []string, err error) {
	if b.env == nil || b.env.PostgresURL == "" {
		return nil, nil
	}
	return infra.PostgresDurability(ctx, b.env.PostgresURL)
}

// Processes are PostgreSQL and Redis when they run as local processes
// (faults kill, stop and pause them); nil otherwise.
func (b *Backend) Processes() (postgres, redis *infra.Process) {
	if b.env == nil {
		return nil, nil
	}
	for _, p := range b.env.Processes {
		switch p.URL() {
		case b.env.PostgresURL:
			postgres = p
		case b.env.RedisURL:
			redis = p
		}
	}
	return postgres, redis
}

// CPUSeconds is the CPU the backend's local processes (PostgreSQL with its
// backends, Redis) have used; 0 when they are not local processes.
func (b *Backend) CPUSeconds() float64 {
	if b == nil || b.env == nil {
		return 0
	}
	var sum float64
	for _, p := range b.env.Processes {
		sum += procstat.TreeCPUSeconds(p.PID())
	}
	return sum
}

// Stop stops what Start started.
func (b *Backend) Stop(ctx context.Context) error {
	if b == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 60*time.Second)
	defer cancel()
	err := b.ctrs.close(ctx)
	if b.env == nil {
		return err
	}
	if b.pg.bouncer != nil {
		err = errors.Join(err, b.pg.bouncer.Close(ctx))
	}
	return errors.Join(err, b.env.Stop(ctx))
}

// FreshDatabase provisions a leg run's own database: a new SQLite file in
// dataDir, or a new PostgreSQL database (and an empty Redis logical DB) on
// the backend's servers. Close drops it.
func (b *Backend) FreshDatabase(ctx context.Context, dataDir string) (*Database, error) {
	d := &Database{}
	if b.env == nil {
		d.DatabaseURL = "sqlite://" + filepath.Join(dataDir, "hal9.db")
		return d, nil
	}
	if b.env.RedisURL != "" {
		if err := provisionRedis(ctx, b.env.RedisURL, d); err != nil {
			return d, err
		}
	}
	return d, provisionPostgres(ctx, b.env.PostgresURL, d)
}
