// Package infra gives the lab a PostgreSQL and a Redis: external servers
// named by environment variables, containers started with testcontainers-go
// when a Docker engine answers, or local initdb/postgres and redis-server
// processes in temporary directories. In front of them it starts HAProxy
// (haproxy.go: round robin over the lab's replicas, health-checked, with its
// Prometheus exporter; or an external one, HAL9_HAPROXY_URL) and PgBouncer
// (pgbouncer.go: transaction pooling) as local processes the same way.
// Everything it starts it stops again:
// on Stop, when a later start step fails, and (for processes) when this
// program dies, through Pdeathsig and a small watchdog per process.
package infra

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hal9-lab/hal9-lab/internal/redact"
)

// Mode is how backends are obtained.
type Mode string

// The modes. ModeAuto tries external, then testcontainers, then process.
const (
	ModeAuto           Mode = ""
	ModeExternal       Mode = "external"
	ModeTestcontainers Mode = "testcontainers"
	ModeProcess        Mode = "process"
)

// Environment variables of the external mode.
const (
	EnvPostgresDSN = "HAL9_PG_DSN"
	EnvRedisURL    = "HAL9_REDIS_URL"
)

// installHint is the one-line answer to "nothing worked".
const installHint = "install the local servers (Debian/Ubuntu: apt-get install postgresql redis-server; macOS: brew install postgresql@16 redis), or start Docker, or set HAL9_PG_DSN / HAL9_REDIS_URL to servers you run"

// ParseMode reads a --infra value: auto (or empty), external,
// testcontainers, process.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(strings.ToLower(strings.TrimSpace(s))); m {
	case "auto", ModeAuto:
		return ModeAuto, nil
	case ModeExternal, ModeTestcontainers, ModeProcess:
		return m, nil
	}
	return "", fmt.Errorf("unknown infra mode %q: use auto, external, testcontainers or process", s)
}

func (m Mode) String() string {
	if m == ModeAuto {
		return "auto"
	}
	return string(m)
}

// Options says which backends to start and how.
type Options struct {
	Postgres, Redis bool
	Mode            Mode
	Logger          *slog.Logger
	// Process configures the process mode (binaries, temp root, timeouts).
	Process ProcessOptions
	// Images configures the testcontainers mode's images.
	Images ImageOptions
	// Durable starts PostgreSQL, as a process or a container, with
	// production durability (fsync, synchronous_commit, full_page_writes
	// on, its data on disk): the lab's default. Off, commits are faster
	// and not on disk when acknowledged. External servers are as their
	// operator configured them (the lab reads and reports their settings).
	Durable bool
}

// Env is what Start yields: the URLs of the requested backends (the others
// are empty), the mode that provided them, and Stop, which stops everything
// Start started (a no-op for external servers). Stop may be called more
// than once.
type Env struct {
	PostgresURL string
	RedisURL    string
	Mode        Mode
	Stop        func(context.Context) error
	// Processes are the local servers of the process mode (PostgreSQL
	// first when both run; nil in other modes), e.g. to stop and restart
	// one mid-run. Stop closes them.
	Processes []*Process
	// Containers is the container session of the testcontainers mode (nil
	// in other modes): its network, where more containers (the servers
	// under test) can run next to PostgreSQL and Redis. Stop closes it.
	Containers *ContainerSession
	// NetworkPostgresURL and NetworkRedisURL are the same servers as
	// PostgresURL and RedisURL, as containers on Containers.Network
	// reach them (postgres:5432, redis:6379); empty in other modes.
	NetworkPostgresURL, NetworkRedisURL string
}

// NetworkURL turns a URL on one of env's servers as this machine reaches it
// (PostgresURL or RedisURL, any database or path, e.g. a database the lab
// created for one run) into the same URL as containers on
// Containers.Network reach it.
func (e *Env) NetworkURL(hostURL string) (string, error) {
	if e.Containers == nil {
		return "", fmt.Errorf("%s: no container network in infra mode %s", redact.URL(hostURL), e.Mode)
	}
	u, err := url.Parse(hostURL)
	if err != nil {
		return "", fmt.Errorf("parse %s: %w", redact.URL(hostURL), err)
	}
	for _, pair := range [][2]string{{e.PostgresURL, e.NetworkPostgresURL}, {e.RedisURL, e.NetworkRedisURL}} {
		if pair[0] == "" {
			continue
		}
		h, err1 := url.Parse(pair[0])
		n, err2 := url.Parse(pair[1])
		if err1 == nil && err2 == nil && h.Host == u.Host && h.Scheme == u.Scheme {
			u.Host = n.Host
			return u.String(), nil
		}
	}
	return "", fmt.Errorf("%s is on none of the servers of this infra (%s, %s)", redact.URL(hostURL), redact.URL(e.PostgresURL), redact.URL(e.RedisURL))
}

// Start provides the requested backends. In auto mode it uses external
// servers when the requested HAL9_PG_DSN / HAL9_REDIS_URL are all set, else
// containers when a Docker engine answers within 2 s, else local processes.
// When no way works, the error names each way tried, why it failed and what
// to install. Whatever a failed attempt started is stopped before Start
// moves on or returns.
func Start(ctx context.Context, opts Options) (*Env, error) {
	if !opts.Postgres && !opts.Redis {
		return nil, errors.New("infra: nothing requested: ask for Postgres and/or Redis")
	}
	mode, err := ParseMode(string(opts.Mode)) // also accepts "auto"
	if err != nil {
		return nil, fmt.Errorf("infra: %w", err)
	}
	opts.Mode = mode
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.Process.Logger == nil {
		opts.Process.Logger = log
	}
	if opts.Durable {
		opts.Process.Durable = true
	}
	type way struct {
		mode  Mode
		start func(context.Context, Options, *slog.Logger) (*Env, error)
	}
	all := []way{
		{ModeExternal, startExternal},
		{ModeTestcontainers, startContainers},
		{ModeProcess, startProcesses},
	}
	var tried []string
	for _, w := range all {
		if opts.Mode != ModeAuto && opts.Mode != w.mode {
			continue
		}
		env, err := w.start(ctx, opts, log)
		if err == nil {
			env.Stop = once(env.Stop)
			log.Info("infra: ready", "mode", w.mode.String(), "postgres", redact.URL(env.PostgresURL), "redis", redact.URL(env.RedisURL))
			return env, nil
		}
		var notSet *notConfiguredError
		if opts.Mode == ModeAuto && errors.As(err, &notSet) {
			log.Debug("infra: way skipped", "mode", w.mode.String(), "reason", err)
		} else if opts.Mode == ModeAuto && w.mode != ModeExternal {
			log.Info("infra: way failed, trying the next", "mode", w.mode.String(), "err", err)
		}
		tried = append(tried, fmt.Sprintf("  %s: %v", w.mode, indent(err.Error())))
		if ctx.Err() != nil {
			break
		}
		// External servers that are configured but do not answer are an
		// error, not a reason to start others: the engineer asked for them.
		if w.mode == ModeExternal && notSet == nil {
			break
		}
	}
	return nil, fmt.Errorf("infra: no %s (mode %s); tried:\n%s\n%s", what(opts), opts.Mode, strings.Join(tried, "\n"), installHint)
}

func what(o Options) string {
	switch {
	case o.Postgres && o.Redis:
		return "PostgreSQL and Redis"
	case o.Postgres:
		return "PostgreSQL"
	}
	return "Redis"
}

func indent(s string) string { return strings.ReplaceAll(s, "\n", "\n    ") }

// once makes a stop function idempotent.
func once(stop func(context.Context) error) func(context.Context) error {
	var o sync.Once
	var err error
	return func(ctx context.Context) error {
		o.Do(func() {
			if stop != nil {
				err = stop(ctx)
			}
		})
		return err
	}
}

// notConfiguredError marks an external mode without its variables.
type notConfiguredError struct{ msg string }

func (e *notConfiguredError) Error() string { return e.msg }

// startExternal uses servers named by HAL9_PG_DSN / HAL9_REDIS_URL; every
// requested one must be set and answer within 5 s.
func startExternal(ctx context.Context, opts Options, _ *slog.Logger) (*Env, error) {
	env := &Env{Mode: ModeExternal, Stop: func(context.Context) error { return nil }}
	var missing []string
	if opts.Postgres {
		if env.PostgresURL = os.Getenv(EnvPostgresDSN); env.PostgresURL == "" {
			missing = append(missing, EnvPostgresDSN)
		}
	}
	if opts.Redis {
		if env.RedisURL = os.Getenv(EnvRedisURL); env.RedisURL == "" {
			missing = append(missing, EnvRedisURL)
		}
	}
	if len(missing) > 0 {
		return nil, &notConfiguredError{strings.Join(missing, " and ") + " not set"}
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if opts.Postgres {
		if _, err := pgx.ParseConfig(env.PostgresURL); err != nil {
			return nil, fmt.Errorf("%s is not a PostgreSQL URL or DSN: %w", EnvPostgresDSN, err)
		}
		if err := pingPostgres(cctx, env.PostgresURL); err != nil {
			return nil, fmt.Errorf("%s=%s does not answer: %w", EnvPostgresDSN, redact.URL(env.PostgresURL), err)
		}
	}
	if opts.Redis {
		if err := pingRedis(cctx, env.RedisURL); err != nil {
			return nil, fmt.Errorf("%s=%s does not answer: %w", EnvRedisURL, redact.URL(env.RedisURL), err)
		}
	}
	return env, nil
}

// startProcesses starts local servers; when Redis fails after PostgreSQL
// started, PostgreSQL is closed again.
func startProcesses(ctx context.Context, opts Options, log *slog.Logger) (*Env, error) {
	env := &Env{Mode: ModeProcess}
	var procs []*Process
	closeAll := func(ctx context.Context) error {
		var errs []error
		for i := len(procs) - 1; i >= 0; i-- {
			errs = append(errs, procs[i].Close(ctx))
		}
		procs = nil
		return errors.Join(errs...)
	}
	cleanup := func(err error) (*Env, error) {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		return nil, errors.Join(err, closeAll(cctx))
	}
	if opts.Postgres {
		p, err := StartPostgresProcess(ctx, opts.Process)
		if err != nil {
			return cleanup(err)
		}
		procs = append(procs, p)
		env.PostgresURL = p.URL()
	}
	if opts.Redis {
		p, err := StartRedisProcess(ctx, opts.Process)
		if err != nil {
			return cleanup(err)
		}
		procs = append(procs, p)
		env.RedisURL = p.URL()
	}
	env.Stop = closeAll
	env.Processes = append([]*Process(nil), procs...)
	return env, nil
}
