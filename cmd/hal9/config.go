package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/hal9-lab/hal9-lab/internal/durationflag"
	"github.com/hal9-lab/hal9-lab/internal/redact"
	"github.com/hal9-lab/hal9-lab/server/app"
)

// secretFlags are never printed.
var secretFlags = map[string]bool{"jwt-secret": true, "anthropic-api-key": true}

// urlFlags have their passwords redacted when printed.
var urlFlags = map[string]bool{"database-url": true, "redis-url": true}

// envName is the variable of a flag: --llm-error-rate → HAL9_LLM_ERROR_RATE.
func envName(flagName string) string {
	return "HAL9_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// newFlagSet defines every serve flag on cfg (pre-filled with defaults).
func newFlagSet(name string, cfg *app.Config, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(out)
	d := app.DefaultConfig()
	*cfg = d
	fs.StringVar(&cfg.Addr, "addr", d.Addr, "API listen address (host:port)")
	fs.StringVar(&cfg.AdminAddr, "admin-addr", d.AdminAddr, "admin listen address: /metrics, /debug/pprof, /health, /readyz")
	fs.StringVar(&cfg.AdminAllowedHosts, "admin-allowed-hosts", "", "Host names the admin listener answers to besides IP addresses, localhost and --admin-addr's host (a DNS-rebinding guard), comma-separated; .example.com allows the names under it; * turns the check off")
	fs.StringVar(&cfg.DataDir, "data-dir", d.DataDir, "directory for the default SQLite database (created if missing)")
	fs.StringVar(&cfg.DatabaseURL, "database-url", "", "sqlite://PATH or postgres://user:pass@host:5432/db (default sqlite://<data-dir>/hal9.db)")
	fs.IntVar(&cfg.DBMaxConns, "db-max-conns", d.DBMaxConns, "PostgreSQL pool: maximum connections")
	fs.IntVar(&cfg.DBMinConns, "db-min-conns", d.DBMinConns, "PostgreSQL pool: connections kept open")
	fs.BoolVar(&cfg.DBGroupCommit, "db-group-commit", d.DBGroupCommit, "PostgreSQL: concurrent signal saves share one batch and one commit (=false: one transaction per signal; SQLite always groups)")
	fs.IntVar(&cfg.DBCommitters, "db-committers", d.DBCommitters, "PostgreSQL with --db-group-commit: group commits in flight at once, each on its own connection (1..64; at most half of --db-max-conns are used)")
	fs.IntVar(&cfg.SignalRetentionMonths, "signal-retention", d.SignalRetentionMonths, "months of signals kept (0: forever); older signals, their hops and memories are deleted hourly (PostgreSQL: whole monthly partitions dropped)")
	fs.StringVar(&cfg.RedisURL, "redis-url", "", "Redis second cache tier, redis://host:6379/0 (off when empty)")
	fs.IntVar(&cfg.RedisPoolSize, "redis-pool-size", d.RedisPoolSize, "Redis connection pool size (0: 10 per CPU)")
	fs.StringVar(&cfg.CacheStrategy, "cache-strategy", d.CacheStrategy, "record caching: aside, through or behind")
	fs.IntVar(&cfg.CacheMaxEntries, "cache-max-entries", d.CacheMaxEntries, "process cache: maximum entries")
	fs.Int64Var(&cfg.CacheMaxBytes, "cache-max-bytes", d.CacheMaxBytes, "process cache: maximum bytes of values")
	durationflag.Var(fs, &cfg.L1TTL, "l1-ttl", d.L1TTL, "response cache TTL of layer L1 (L2 10m, L3 5m, L4 2m are fixed)")
	durationflag.Var(fs, &cfg.L5TTL, "l5-ttl", d.L5TTL, "response cache TTL of layer L5")
	fs.StringVar(&cfg.JWTSecret, "jwt-secret", "", "HS256 secret for access and refresh tokens (empty: one kept in the database, shared by every server on it)")
	fs.IntVar(&cfg.BcryptCost, "bcrypt-cost", d.BcryptCost, "bcrypt cost of password hashes (4..31; each +1 doubles login CPU)")
	fs.Float64Var(&cfg.RateLimit, "rate-limit", d.RateLimit, "requests per second per client (user, API key, or IP); 0 turns it off")
	fs.StringVar(&cfg.TrustedProxies, "trusted-proxies", "", "reverse proxies (addresses, CIDR ranges, comma-separated) whose X-Forwarded-For names the client; empty: none")
	fs.Float64Var(&cfg.AuthRateLimit, "auth-rate-limit", d.AuthRateLimit, "register, login, refresh and logout requests per second per client address (IPv6 per /64; 16 times that per IPv6 /48); 0 turns it off (load tests from one machine)")
	fs.IntVar(&cfg.AuthBurst, "auth-burst", d.AuthBurst, "burst of --auth-rate-limit")
	fs.IntVar(&cfg.LoginFailuresPerUser, "login-failures-per-user", d.LoginFailuresPerUser, "failed logins per username from one client address (IPv6 per /64) per --login-failure-window; past it that address's logins for the username get 429, other addresses' do not; 0 turns it off")
	fs.IntVar(&cfg.LoginFailureCeiling, "login-failure-ceiling", d.LoginFailureCeiling, "failed logins per username from all addresses per --login-failure-window; past it an address that has been failing waits out its own failures (no burst), an address that has not is never held back; 0 turns it off")
	durationflag.Var(fs, &cfg.LoginFailureWindow, "login-failure-window", d.LoginFailureWindow, "the window of --login-failures-per-user")
	durationflag.Var(fs, &cfg.RefreshReuseGrace, "refresh-reuse-grace", d.RefreshReuseGrace, "a refresh token presented again this soon after its rotation, while its successor is unused, gets that successor (a retry of a lost answer) instead of ending the login; 0 none, at most 1m")
	durationflag.Var(fs, &cfg.HTTPReadTimeout, "http-read-timeout", d.HTTPReadTimeout, "API: a request body must arrive within this (408 after); 0 none")
	durationflag.Var(fs, &cfg.HTTPIdleTimeout, "http-idle-timeout", d.HTTPIdleTimeout, "API: idle keep-alive connections are closed after this")
	durationflag.Var(fs, &cfg.HTTPWriteTimeout, "http-write-timeout", d.HTTPWriteTimeout, "API: a response must be written within this; 0 derives it: 5 layers × --llm-timeout + 30s")
	fs.IntVar(&cfg.HTTPMaxConns, "http-max-conns", d.HTTPMaxConns, "API: open connections at most (more wait to be accepted); 0 unlimited")
	fs.IntVar(&cfg.HTTPMaxConnsPerClient, "http-max-conns-per-client", d.HTTPMaxConnsPerClient, "API: open connections per client address, IPv6 per /64 (more are answered 429 and closed; a trusted proxy's are not capped); 0 unlimited (load tests from one machine)")
	durationflag.Var(fs, &cfg.ShutdownTimeout, "shutdown-timeout", d.ShutdownTimeout, "graceful shutdown, all stages together")
	durationflag.Var(fs, &cfg.ShutdownDelay, "shutdown-delay", d.ShutdownDelay, "graceful shutdown: readiness answers 503 this long before the API drains (at most a quarter of --shutdown-timeout; unset, 5s or that quarter, whichever is shorter)")
	fs.IntVar(&cfg.AsyncWorkers, "async-workers", d.AsyncWorkers, "workers processing ?async=true signals, always running (1..1024)")
	fs.IntVar(&cfg.AsyncWorkersMax, "async-workers-max", d.AsyncWorkersMax, "the most async workers: one more starts when a signal would wait for a worker, and one idle 30s retires (--async-workers..4096; equal to --async-workers: a fixed pool)")
	fs.IntVar(&cfg.AsyncQueue, "async-queue", d.AsyncQueue, "async signals queued before 503 queue_full")
	fs.IntVar(&cfg.AsyncQueuePerUser, "async-queue-per-user", d.AsyncQueuePerUser, "one user's share of --async-queue (429 past it); 0: a quarter of the queue")
	fs.StringVar(&cfg.LLM, "llm", d.LLM, "LLM provider: sim (simulated) or anthropic (Messages API)")
	fs.StringVar(&cfg.LLMModel, "llm-model", d.LLMModel, "model name (its family sets the price: opus, sonnet, haiku)")
	durationflag.Var(fs, &cfg.LLMTimeout, "llm-timeout", d.LLMTimeout, "timeout of one LLM call")
	fs.Float64Var(&cfg.LLMBudgetHourly, "llm-budget-hourly", d.LLMBudgetHourly, "LLM spend allowed in the rolling hour, USD")
	fs.Float64Var(&cfg.LLMBudgetDaily, "llm-budget-daily", d.LLMBudgetDaily, "LLM spend allowed in the rolling day, USD")
	fs.StringVar(&cfg.LLMBudgetEnforce, "llm-budget-enforce", d.LLMBudgetEnforce, "refuse uncached signals (503) past a budget: auto (on with --llm anthropic, off with sim), on, off")
	fs.Float64Var(&cfg.LLMBudgetPerUser, "llm-budget-per-user", d.LLMBudgetPerUser, "one user's share of each LLM budget, (0, 1]; past it that user's uncached signals get 429 while others' flow (enforced budgets only); 1: no share of its own")
	fs.IntVar(&cfg.LLMCallsPerUser, "llm-calls-per-user", d.LLMCallsPerUser, "one user's LLM calls in flight at most (429 past it; enforced budgets only); 0: no cap")
	fs.StringVar(&cfg.AnthropicURL, "anthropic-url", d.AnthropicURL, "base URL of the Messages API")
	fs.StringVar(&cfg.AnthropicAPIKey, "anthropic-api-key", "", "Anthropic API key (or ANTHROPIC_API_KEY)")
	fs.Float64Var(&cfg.LLMLatencyScale, "llm-latency-scale", d.LLMLatencyScale, "simulated LLM: latency multiplier (0: no latency)")
	fs.Float64Var(&cfg.LLMErrorRate, "llm-error-rate", d.LLMErrorRate, "simulated LLM: share of calls failing, 0..1")
	fs.IntVar(&cfg.LLMRateLimitRPM, "llm-rate-limit-rpm", d.LLMRateLimitRPM, "simulated LLM: requests per minute before 429s (0: unlimited)")
	fs.Int64Var(&cfg.LLMSeed, "llm-seed", d.LLMSeed, "simulated LLM: seed of latency and injected errors (same seed, same run)")
	fs.StringVar(&cfg.Topology, "topology", d.Topology, `neurons per layer, "L1=3,L2=2" (others keep 2) or a YAML file (layers: {L1: 3})`)
	fs.StringVar(&cfg.PyroscopeURL, "pyroscope-url", "", "send continuous profiles to this pyroscope URL (off when empty)")
	fs.StringVar(&cfg.LogLevel, "log-level", d.LogLevel, "debug, info, warn or error")
	fs.Float64Var(&cfg.CapacityRPS, "capacity-rps", d.CapacityRPS, "rated capacity of this server in requests per second (the knee `make capacity` prints for its machine class), exported as hal9_capacity_requests_per_second for the capacity alerts; 0: none, the alerts stay silent")
	return fs
}

// parseConfig reads HAL9_* variables, then the flags (a flag wins over its
// variable). getenv is os.LookupEnv in production.
func parseConfig(name string, args []string, getenv func(string) (string, bool), out io.Writer) (app.Config, *flag.FlagSet, error) {
	var cfg app.Config
	fs := newFlagSet(name, &cfg, out)
	fs.Usage = func() {
		out := fs.Output()
		fmt.Fprintf(out, "usage: hal9 %s [flags]\n\nEvery flag can also be set by its environment variable (the flag wins).\n\n", name)
		fs.VisitAll(func(f *flag.Flag) {
			def := f.DefValue
			if def == "" {
				def = `""`
			}
			fmt.Fprintf(out, "  --%s  (%s, default %s)\n      %s\n", f.Name, envName(f.Name), def, f.Usage)
		})
	}
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		env := envName(f.Name)
		v, ok := getenv(env)
		if !ok && f.Name == "anthropic-api-key" {
			env = "ANTHROPIC_API_KEY"
			v, ok = getenv(env)
		}
		if !ok {
			return
		}
		if err := fs.Set(f.Name, v); err != nil {
			shown := v
			if secretFlags[f.Name] {
				shown = "REDACTED"
			}
			errs = append(errs, fmt.Errorf("environment variable %s=%q: %v (it sets --%s)", env, shown, cleanFlagErr(err), f.Name))
		}
	})
	if err := errors.Join(errs...); err != nil {
		return cfg, fs, err
	}
	if err := fs.Parse(args); err != nil {
		return cfg, fs, err
	}
	if fs.NArg() > 0 {
		return cfg, fs, fmt.Errorf("unexpected argument %q; flags start with --, see hal9 %s --help", fs.Arg(0), name)
	}
	// The delay's default must not make a short --shutdown-timeout invalid:
	// unless set, it is 5s or a quarter of the timeout, whichever is shorter.
	delaySet := false
	fs.Visit(func(f *flag.Flag) { delaySet = delaySet || f.Name == "shutdown-delay" })
	if !delaySet {
		cfg.ShutdownDelay = min(cfg.ShutdownDelay, cfg.ShutdownTimeout/4)
	}
	return cfg, fs, nil
}

// cleanFlagErr turns strconv's "parse error" wording into something short.
func cleanFlagErr(err error) string {
	s := err.Error()
	switch {
	case strings.Contains(s, "invalid syntax"), strings.Contains(s, "parse error"):
		return "not a valid value of the expected type"
	case strings.Contains(s, "missing unit in duration"), strings.Contains(s, "invalid duration"):
		return "not a duration; write it like 30s, 5m or 1h"
	case strings.Contains(s, "out of range"):
		return "value out of range"
	}
	return s
}

// effectiveConfig renders the flags as a JSON object (flag name → value),
// secrets redacted and the database default filled in.
func effectiveConfig(fs *flag.FlagSet, cfg app.Config) ([]byte, error) {
	m := map[string]any{}
	fs.VisitAll(func(f *flag.Flag) {
		var v any = f.Value.String()
		if g, ok := f.Value.(flag.Getter); ok {
			v = g.Get()
		}
		if d, ok := v.(time.Duration); ok {
			v = d.String()
		}
		switch {
		case secretFlags[f.Name]:
			if f.Value.String() != "" {
				v = "REDACTED"
			}
		case urlFlags[f.Name]:
			v = redact.URL(f.Value.String())
		}
		m[f.Name] = v
	})
	m["database-url"] = redact.URL(cfg.EffectiveDatabaseURL())
	if cfg.JWTSecret == "" {
		m["jwt-secret"] = "(kept in the database)"
	}
	return json.MarshalIndent(m, "", "  ")
}
