package app

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hal9-lab/hal9-lab/internal/redact"
	"github.com/hal9-lab/hal9-lab/server"
	"github.com/hal9-lab/hal9-lab/server/auth"
	"github.com/hal9-lab/hal9-lab/server/limits"
	"github.com/hal9-lab/hal9-lab/server/llm"
	"github.com/hal9-lab/hal9-lab/server/neuron"
	"github.com/hal9-lab/hal9-lab/server/store/postgres"
	"github.com/hal9-lab/hal9-lab/server/telemetry"
)

// Config is everything `hal9 serve` can be told. cmd/hal9 fills it from
// flags and HAL9_* variables; Validate checks it before anything starts.
type Config struct {
	Addr      string // API listener
	AdminAddr string // /metrics, /debug/pprof, /health, /readyz
	// AdminAllowedHosts are Host names the admin listener answers to
	// besides IPs, localhost and --admin-addr's host (DNS-rebinding guard).
	AdminAllowedHosts string

	DataDir     string
	DatabaseURL string // sqlite://PATH or postgres://...; empty: sqlite://<DataDir>/hal9.db
	DBMaxConns  int    // PostgreSQL pool (100, seed 000)
	DBMinConns  int    // (10)
	// DBGroupCommit sends concurrent PostgreSQL signal saves as one batch
	// and one commit (SQLite always groups its commits).
	DBGroupCommit bool
	// DBCommitters is how many PostgreSQL group commits may be in flight
	// at once (with DBGroupCommit).
	DBCommitters int
	// SignalRetentionMonths keeps signals created in the current month
	// and the N before it; 0 keeps them forever (retention.go).
	SignalRetentionMonths int

	RedisURL        string // optional second cache tier: redis://, rediss://, unix://
	RedisPoolSize   int    // 0: go-redis default (10 per CPU)
	CacheStrategy   string // aside|through|behind, for signal and neuron-state records
	CacheMaxEntries int    // process tier (50,000, seed 000)
	CacheMaxBytes   int64  // process tier (256 MiB)
	L1TTL, L5TTL    time.Duration

	JWTSecret  string  // empty: the database's shared secret (created once)
	BcryptCost int     // password hashing cost (10)
	RateLimit  float64 // requests per second per client identity; 0 off
	// TrustedProxies are the proxies whose X-Forwarded-For names the client: "127.0.0.1/32,10.0.0.0/8".
	TrustedProxies string

	// The credential routes' own limits (register, login, refresh, logout).
	AuthRateLimit         float64       // requests per second per client address (IPv6 per /64; 16× that per IPv6 /48); 0 off
	AuthBurst             int           // and the burst of it
	LoginFailuresPerUser  int           // failed logins per (username, client address) per LoginFailureWindow; 0 off
	LoginFailureCeiling   int           // failed logins per username from all addresses per window, past which each address loses its burst; 0 off
	LoginFailureWindow    time.Duration // (15m)
	RefreshReuseGrace     time.Duration // a rotated refresh token's retry window (10s); 0 none
	HTTPReadTimeout       time.Duration // a request body must arrive within this (30s); 0 none
	HTTPIdleTimeout       time.Duration // keep-alive connections idle longer are closed (120s)
	HTTPWriteTimeout      time.Duration // 0: derived from LLMTimeout × the 5 layers a signal may cross + 30s
	HTTPMaxConns          int           // open API connections at most (10,000); 0 unlimited
	HTTPMaxConnsPerClient int           // open API connections per client address (256); 0 unlimited
	ShutdownTimeout       time.Duration
	ShutdownDelay         time.Duration // readiness 503 this long before draining (at most a quarter of ShutdownTimeout)
	AsyncWorkers          int           // workers for ?async=true signals, always running
	AsyncWorkersMax       int           // the most workers the pool grows to when async signals would wait
	AsyncQueue            int           // queued async signals before 503 queue_full
	AsyncQueuePerUser     int           // one user's share of the queue; 0: a quarter of AsyncQueue
	LLMBudgetHourly       float64       // USD in the rolling hour (10, seed 004)
	LLMBudgetDaily        float64       // USD in the rolling day (100)
	LLMBudgetEnforce      string        // auto (on with --llm anthropic, off with sim), on, off
	LLMBudgetPerUser      float64       // one user's share of each budget (0..1]; 1: no share of its own
	LLMCallsPerUser       int           // one user's LLM calls in flight at most; 0 no cap

	LLM             string // sim|anthropic
	LLMModel        string
	LLMTimeout      time.Duration
	AnthropicURL    string
	AnthropicAPIKey string
	LLMLatencyScale float64
	LLMErrorRate    float64
	LLMRateLimitRPM int
	LLMSeed         int64 // 0: random

	Topology     string // "L1=3,L2=2,..." or a YAML file path (.yaml/.yml)
	PyroscopeURL string
	LogLevel     string
	// CapacityRPS is this server's rated capacity, exported as the gauge
	// hal9_capacity_requests_per_second for the capacity alerts; 0: none.
	CapacityRPS float64
	Version     string // set by the binary, not a flag
}

// DefaultConfig holds the defaults documented in docs/server.md.
func DefaultConfig() Config {
	return Config{
		Addr:            "127.0.0.1:8080",
		AdminAddr:       "127.0.0.1:9091",
		DataDir:         "./data",
		DBMaxConns:      100,
		DBMinConns:      10,
		DBGroupCommit:   true,
		DBCommitters:    postgres.DefaultCommitters,
		CacheStrategy:   "aside",
		CacheMaxEntries: 50_000,
		CacheMaxBytes:   256 << 20,
		L1TTL:           30 * time.Second,
		L5TTL:           time.Minute,
		RateLimit:       1000,
		BcryptCost:      10,

		AuthRateLimit:         1,
		AuthBurst:             20,
		LoginFailuresPerUser:  10,
		LoginFailureCeiling:   100,
		LoginFailureWindow:    15 * time.Minute,
		RefreshReuseGrace:     auth.DefaultReuseGrace,
		HTTPReadTimeout:       30 * time.Second,
		HTTPIdleTimeout:       120 * time.Second,
		HTTPMaxConns:          10_000,
		HTTPMaxConnsPerClient: 256,
		ShutdownTimeout:       60 * time.Second,
		ShutdownDelay:         5 * time.Second,
		AsyncWorkers:          8,
		AsyncWorkersMax:       server.DefaultAsyncWorkersMax,
		AsyncQueue:            1024,
		LLMBudgetHourly:       10,
		LLMBudgetDaily:        100,
		LLMBudgetEnforce:      "auto",
		LLMBudgetPerUser:      llm.DefaultUserShare,
		LLMCallsPerUser:       4,
		LLM:                   "sim",
		LLMModel:              llm.DefaultModel,
		LLMTimeout:            30 * time.Second,
		AnthropicURL:          "https://api.anthropic.com",
		LLMLatencyScale:       1,
		LogLevel:              "info",
	}
}

// EffectiveDatabaseURL fills in the SQLite default under DataDir.
func (c Config) EffectiveDatabaseURL() string {
	if c.DatabaseURL != "" {
		return c.DatabaseURL
	}
	return "sqlite://" + filepath.Join(c.DataDir, "hal9.db")
}

// Validate returns every problem found, each naming the flag and the fix.
func (c Config) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(withEnv(format), args...)) }

	if err := checkAddr(c.Addr); err != nil {
		add("--addr %q: %v", c.Addr, err)
	}
	if err := checkAddr(c.AdminAddr); err != nil {
		add("--admin-addr %q: %v", c.AdminAddr, err)
	}
	if _, err := server.ParseAdminHosts(c.AdminAllowedHosts, c.AdminAddr); err != nil {
		add("--admin-allowed-hosts %q: %v", c.AdminAllowedHosts, err)
	}
	if c.Addr == c.AdminAddr && !strings.HasSuffix(c.Addr, ":0") {
		add("--addr and --admin-addr are both %q; metrics and pprof must not share the API listener, pick another admin port", c.Addr)
	}
	if _, _, err := ParseDatabaseURL(c.EffectiveDatabaseURL()); err != nil {
		add("--database-url: %v", err)
	}
	if c.DBMaxConns < 1 {
		add("--db-max-conns %d: must be at least 1", c.DBMaxConns)
	}
	if c.DBMinConns < 0 || c.DBMinConns > c.DBMaxConns {
		add("--db-min-conns %d: must be between 0 and --db-max-conns (%d)", c.DBMinConns, c.DBMaxConns)
	}
	if c.DBCommitters < 1 || c.DBCommitters > 64 {
		add("--db-committers %d: must be 1..64 (PostgreSQL group commits in flight at once, e.g. 4; fewer are used when half of --db-max-conns is smaller)", c.DBCommitters)
	}
	if c.SignalRetentionMonths < 0 || c.SignalRetentionMonths > 1200 {
		add("--signal-retention %d: must be 0 (keep signals forever) or a number of months up to 1200", c.SignalRetentionMonths)
	}
	if c.RedisURL != "" {
		u, err := url.Parse(c.RedisURL)
		if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss" && u.Scheme != "unix") {
			add("--redis-url %q: want redis://host:port/db, rediss://… or unix://path", redact.URL(c.RedisURL))
		}
	}
	if c.RedisPoolSize < 0 {
		add("--redis-pool-size %d: must be 0 (the client's default) or more", c.RedisPoolSize)
	}
	switch c.CacheStrategy {
	case "aside", "through", "behind":
	default:
		add("--cache-strategy %q: must be aside, through or behind", c.CacheStrategy)
	}
	if c.CacheMaxEntries < 1 {
		add("--cache-max-entries %d: must be at least 1", c.CacheMaxEntries)
	}
	if c.CacheMaxBytes < 1<<10 {
		add("--cache-max-bytes %d: must be at least 1024", c.CacheMaxBytes)
	}
	if c.L1TTL <= 0 {
		add("--l1-ttl %s: must be positive, e.g. 30s", c.L1TTL)
	}
	if c.L5TTL <= 0 {
		add("--l5-ttl %s: must be positive, e.g. 1m", c.L5TTL)
	}
	if c.JWTSecret != "" && len(c.JWTSecret) < 32 {
		add("--jwt-secret: %d bytes is too short; use at least 32 (e.g. `openssl rand -hex 32`), or leave it empty for a random one", len(c.JWTSecret))
	}
	if c.BcryptCost < 4 || c.BcryptCost > 31 {
		add("--bcrypt-cost %d: must be 4..31 (10 is the usual)", c.BcryptCost)
	}
	if c.RateLimit < 0 {
		add("--rate-limit %g: must be 0 (off) or a positive number of requests per second", c.RateLimit)
	}
	if c.AuthRateLimit < 0 {
		add("--auth-rate-limit %g: must be 0 (off) or a positive number of requests per second per address", c.AuthRateLimit)
	}
	if c.AuthRateLimit > 0 && c.AuthBurst < 1 {
		add("--auth-burst %d: must be at least 1 while --auth-rate-limit is on (e.g. 20)", c.AuthBurst)
	}
	if c.LoginFailuresPerUser < 0 {
		add("--login-failures-per-user %d: must be 0 (off) or a positive number of failed logins per --login-failure-window", c.LoginFailuresPerUser)
	}
	if c.LoginFailureCeiling < 0 {
		add("--login-failure-ceiling %d: must be 0 (off) or a positive number of failed logins for one username from all addresses per --login-failure-window, e.g. 100", c.LoginFailureCeiling)
	}
	if c.LoginFailureCeiling > 0 && c.LoginFailuresPerUser > 0 && c.LoginFailureCeiling < c.LoginFailuresPerUser {
		add("--login-failure-ceiling %d: must be at least --login-failures-per-user (%d): it counts the failures of every address together", c.LoginFailureCeiling, c.LoginFailuresPerUser)
	}
	if c.LoginFailuresPerUser > 0 && c.LoginFailureWindow < time.Second {
		add("--login-failure-window %s: must be at least 1s while --login-failures-per-user is on, e.g. 15m", c.LoginFailureWindow)
	}
	if c.RefreshReuseGrace < 0 || c.RefreshReuseGrace > auth.MaxReuseGrace {
		add("--refresh-reuse-grace %s: must be 0 (every replay ends the login) up to %s (a longer window lets a stolen token be replayed unnoticed for longer), e.g. 10s", c.RefreshReuseGrace, auth.MaxReuseGrace)
	}
	if c.HTTPReadTimeout != 0 && c.HTTPReadTimeout < 100*time.Millisecond {
		add("--http-read-timeout %s: must be 0 (none) or at least 100ms, e.g. 30s", c.HTTPReadTimeout)
	}
	if c.HTTPIdleTimeout < time.Second {
		add("--http-idle-timeout %s: must be at least 1s, e.g. 120s", c.HTTPIdleTimeout)
	}
	if w := c.HTTPWriteTimeout; w != 0 && w < c.LLMTimeout {
		add("--http-write-timeout %s: shorter than --llm-timeout (%s), so even one LLM call would be cut; use 0 (derived: %s) or more", w, c.LLMTimeout, c.derivedWriteTimeout())
	}
	if c.HTTPMaxConns < 0 {
		add("--http-max-conns %d: must be 0 (unlimited) or a positive number of connections", c.HTTPMaxConns)
	}
	if c.HTTPMaxConnsPerClient < 0 || (c.HTTPMaxConns > 0 && c.HTTPMaxConnsPerClient > c.HTTPMaxConns) {
		add("--http-max-conns-per-client %d: must be 0 (unlimited: a load generator on one machine) or a positive number up to --http-max-conns (%d)", c.HTTPMaxConnsPerClient, c.HTTPMaxConns)
	}
	if _, err := server.ParseTrustedProxies(c.TrustedProxies); err != nil {
		add("--trusted-proxies %q: %v", c.TrustedProxies, err)
	}
	if c.ShutdownTimeout <= 0 {
		add("--shutdown-timeout %s: must be positive, e.g. 60s", c.ShutdownTimeout)
	}
	if c.ShutdownDelay < 0 || (c.ShutdownTimeout > 0 && c.ShutdownDelay > c.ShutdownTimeout/4) {
		add("--shutdown-delay %s: must be between 0 and a quarter of --shutdown-timeout (%s); it is the pause with readiness 503 before draining", c.ShutdownDelay, c.ShutdownTimeout)
	}
	if c.AsyncWorkers < 1 || c.AsyncWorkers > 1024 {
		add("--async-workers %d: must be 1..1024", c.AsyncWorkers)
	}
	if c.AsyncWorkersMax < c.AsyncWorkers || c.AsyncWorkersMax > 4096 {
		add("--async-workers-max %d: must be between --async-workers (%d) and 4096; it bounds the workers the pool starts when async signals would wait (arrival rate × job duration, docs/server.md), equal to --async-workers for a fixed pool", c.AsyncWorkersMax, c.AsyncWorkers)
	}
	if c.AsyncQueue < 1 {
		add("--async-queue %d: must be at least 1", c.AsyncQueue)
	}
	if c.AsyncQueuePerUser < 0 || c.AsyncQueuePerUser > c.AsyncQueue {
		add("--async-queue-per-user %d: must be between 0 (a quarter of --async-queue) and --async-queue (%d)", c.AsyncQueuePerUser, c.AsyncQueue)
	}
	if c.LLMBudgetHourly <= 0 {
		add("--llm-budget-hourly %g: must be a positive number of dollars, e.g. 10", c.LLMBudgetHourly)
	}
	if c.LLMBudgetDaily <= 0 {
		add("--llm-budget-daily %g: must be a positive number of dollars, e.g. 100", c.LLMBudgetDaily)
	}
	if c.LLMBudgetPerUser <= 0 || c.LLMBudgetPerUser > 1 {
		add("--llm-budget-per-user %g: must be a share of each budget above 0 and at most 1, e.g. 0.25 (a quarter); 1 gives no user a limit of its own", c.LLMBudgetPerUser)
	}
	if c.LLMCallsPerUser < 0 {
		add("--llm-calls-per-user %d: must be 0 (no cap) or a positive number of one user's LLM calls in flight, e.g. 4", c.LLMCallsPerUser)
	}
	if _, err := c.BudgetEnforced(); err != nil {
		add("--llm-budget-enforce %q: %v", c.LLMBudgetEnforce, err)
	}
	switch c.LLM {
	case "sim":
	case "anthropic":
		if c.AnthropicAPIKey == "" {
			add("--llm anthropic needs an API key: set ANTHROPIC_API_KEY (or HAL9_ANTHROPIC_API_KEY)")
		}
		if u, err := url.Parse(c.AnthropicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			add("--anthropic-url %q: want https://host", c.AnthropicURL)
		}
	default:
		add("--llm %q: must be sim or anthropic", c.LLM)
	}
	if _, _, ok := llm.PriceFor(c.LLMModel); !ok {
		add("--llm-model %q: no price known for it; use an opus, sonnet or haiku model such as %s", c.LLMModel, llm.DefaultModel)
	}
	if c.LLMTimeout <= 0 {
		add("--llm-timeout %s: must be positive, e.g. 30s", c.LLMTimeout)
	}
	if c.LLMLatencyScale < 0 {
		add("--llm-latency-scale %g: must be 0 (no simulated latency) or more", c.LLMLatencyScale)
	}
	if c.LLMErrorRate < 0 || c.LLMErrorRate > 1 {
		add("--llm-error-rate %g: must be within [0, 1]", c.LLMErrorRate)
	}
	if c.LLMRateLimitRPM < 0 {
		add("--llm-rate-limit-rpm %d: must be 0 (unlimited) or more", c.LLMRateLimitRPM)
	}
	if _, err := c.ParseTopology(); err != nil {
		add("--topology: %v", err)
	}
	if c.PyroscopeURL != "" {
		if u, err := url.Parse(c.PyroscopeURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			add("--pyroscope-url %q: want http://host:port", c.PyroscopeURL)
		}
	}
	if _, err := telemetry.ParseLevel(c.LogLevel); err != nil {
		add("--log-level: %v", err)
	}
	if !(c.CapacityRPS >= 0) || math.IsInf(c.CapacityRPS, 0) {
		add("--capacity-rps %g: must be a positive number of requests per second (the knee `make capacity` prints for this machine class and backend), or 0 for none", c.CapacityRPS)
	}
	return errors.Join(errs...)
}

// BudgetEnforced resolves --llm-budget-enforce: auto enforces the budgets
// on the real provider (real money) and not on the simulated one (the
// lab's runs spend far past $10/h in simulated dollars).
func (c Config) BudgetEnforced() (bool, error) {
	switch strings.ToLower(c.LLMBudgetEnforce) {
	case "auto", "":
		return c.LLM == "anthropic", nil
	case "on", "true", "1":
		return true, nil
	case "off", "false", "0":
		return false, nil
	}
	return false, errors.New("use auto (on with --llm anthropic, off with sim), on or off")
}

// LLMLayers is how many layers a signal may cross (L5 down to L1).
const LLMLayers = 5

// derivedWriteTimeout bounds a synchronous signal's answer: an LLM call per
// layer at worst, plus time for the database and the response.
func (c Config) derivedWriteTimeout() time.Duration {
	return time.Duration(LLMLayers)*c.LLMTimeout + 30*time.Second
}

// WriteTimeout is --http-write-timeout, or the derived one when 0.
func (c Config) WriteTimeout() time.Duration {
	if c.HTTPWriteTimeout > 0 {
		return c.HTTPWriteTimeout
	}
	return c.derivedWriteTimeout()
}

// PendingMaxAge is how long an async signal may stay pending before it is
// failed as abandoned: the longest a live one can wait and run, behind a
// full queue (AsyncQueue/AsyncWorkers jobs ahead of it, each up to
// AsyncJobTimeout), plus a minute.
func (c Config) PendingMaxAge() time.Duration {
	ahead := (c.AsyncQueue + c.AsyncWorkers - 1) / max(c.AsyncWorkers, 1)
	return time.Duration(ahead+1)*c.AsyncJobTimeout() + time.Minute
}

// AsyncJobTimeout bounds one async signal: every layer's LLM call at its
// timeout, plus the final save and its retries.
func (c Config) AsyncJobTimeout() time.Duration {
	return time.Duration(LLMLayers)*c.LLMTimeout + 15*time.Second
}

// ParseTopology reads the --topology value: empty (two neurons per layer),
// "L1=3,L2=2,…", or the path of a YAML file.
func (c Config) ParseTopology() (neuron.Topology, error) {
	if strings.HasSuffix(c.Topology, ".yaml") || strings.HasSuffix(c.Topology, ".yml") {
		return neuron.LoadTopologyFile(c.Topology)
	}
	return neuron.ParseTopology(c.Topology)
}

// withEnv names the variable after a leading flag: "--rate-limit %g: …"
// becomes "--rate-limit (HAL9_RATE_LIMIT) %g: …".
func withEnv(format string) string {
	if !strings.HasPrefix(format, "--") {
		return format
	}
	end := strings.IndexAny(format, " :")
	if end < 0 {
		return format
	}
	name := format[2:end]
	env := "HAL9_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
	return format[:end] + " (" + env + ")" + format[end:]
}

func checkAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("want host:port such as 127.0.0.1:8080 or :8080 (%v)", err)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 {
		return fmt.Errorf("port %q must be a number 0..65535", port)
	}
	if strings.ContainsAny(host, " /") {
		return fmt.Errorf("host %q is not a host name or IP", host)
	}
	return nil
}

// ParseDatabaseURL returns the driver ("sqlite" or "postgres") and, for
// SQLite, the file path.
func ParseDatabaseURL(raw string) (driver, path string, err error) {
	switch {
	case strings.HasPrefix(raw, "sqlite://"):
		p := strings.TrimPrefix(raw, "sqlite://")
		if i := strings.IndexByte(p, '?'); i >= 0 {
			p = p[:i]
		}
		if p == "" {
			return "", "", fmt.Errorf("%q has no file path; use sqlite://./data/hal9.db or sqlite:///abs/path.db", raw)
		}
		return "sqlite", p, nil
	case strings.HasPrefix(raw, "postgres://"), strings.HasPrefix(raw, "postgresql://"):
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" {
			return "", "", fmt.Errorf("%q: want postgres://user:pass@host:5432/db", redact.URL(raw))
		}
		return "postgres", "", nil
	default:
		return "", "", fmt.Errorf("%q: unknown scheme; use sqlite://PATH or postgres://user:pass@host:5432/db", redact.URL(raw))
	}
}

// credentialLimits turns the flags into the server's limits.
func (c Config) credentialLimits() server.CredentialLimits {
	var l server.CredentialLimits
	if c.AuthRateLimit > 0 {
		// GCRA's rate is whole events per period: one per 1/rate seconds.
		l.PerAddress = limits.Limit{Rate: 1, Period: time.Duration(float64(time.Second) / c.AuthRateLimit), Burst: c.AuthBurst}
		l.PerNetwork = limits.Limit{Rate: server.NetworkShare, Period: l.PerAddress.Period, Burst: server.NetworkShare * c.AuthBurst}
	}
	if c.LoginFailuresPerUser > 0 {
		l.FailedLogins = limits.Limit{Rate: c.LoginFailuresPerUser, Period: c.LoginFailureWindow, Burst: c.LoginFailuresPerUser}
		if c.LoginFailureCeiling > 0 {
			l.FailureCeiling = limits.Limit{Rate: c.LoginFailureCeiling, Period: c.LoginFailureWindow, Burst: c.LoginFailureCeiling}
		}
	}
	return l
}
