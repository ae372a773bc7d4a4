package app

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hal9-lab/hal9-lab/internal/redact"
	"github.com/hal9-lab/hal9-lab/server/llm"
	"github.com/hal9-lab/hal9-lab/server/neuron"
	"github.com/hal9-lab/hal9-lab/server/telemetry"
)

// Config is everything `hal9 serve` can be told. cmd/hal9 fills it from
// flags and HAL9_* variables; Validate checks it before anything starts.
type Config struct {
	Addr      string // API listener
	AdminAddr string // /metrics, /debug/pprof, /health, /readyz

	DataDir     string
	DatabaseURL string // sqlite://PATH or postgres://...; empty: sqlite://<DataDir>/hal9.db
	DBMaxConns  int    // PostgreSQL pool (100, seed 000)
	DBMinConns  int    // (10)
	// SignalRetentionMonths keeps signals created in the current month
	// and the N before it; 0 keeps them forever (retention.go).
	SignalRetentionMonths int

	RedisURL        string // optional second cache tier: redis://, rediss://, unix://
	RedisPoolSize   int    // 0: go-redis default (10 per CPU)
	CacheStrategy   string // aside|through|behind, for signal and neuron-state records
	CacheMaxEntries int    // process tier (50,000, seed 000)
	CacheMaxBytes   int64  // process tier (256 MiB)
	L1TTL, L5TTL    time.Duration

	JWTSecret       string  // empty: random at start (tokens die with the process)
	BcryptCost      int     // password hashing cost (10)
	RateLimit       float64 // requests per second per client identity; 0 off
	ShutdownTimeout time.Duration
	AsyncWorkers    int // workers for ?async=true signals
	AsyncQueue      int // queued async signals before 503 queue_full

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
	Version      string // set by the binary, not a flag
}

// DefaultConfig holds the defaults documented in docs/server.md.
func DefaultConfig() Config {
	return Config{
		Addr:            "127.0.0.1:8080",
		AdminAddr:       "127.0.0.1:9091",
		DataDir:         "./data",
		DBMaxConns:      100,
		DBMinConns:      10,
		CacheStrategy:   "aside",
		CacheMaxEntries: 50_000,
		CacheMaxBytes:   256 << 20,
		L1TTL:           30 * time.Second,
		L5TTL:           time.Minute,
		RateLimit:       1000,
		BcryptCost:      10,
		ShutdownTimeout: 60 * time.Second,
		AsyncWorkers:    8,
		AsyncQueue:      1024,
		LLM:             "sim",
		LLMModel:        llm.DefaultModel,
		LLMTimeout:      30 * time.Second,
		AnthropicURL:    "https://api.anthropic.com",
		LLMLatencyScale: 1,
		LogLevel:        "info",
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
	if c.ShutdownTimeout <= 0 {
		add("--shutdown-timeout %s: must be positive, e.g. 60s", c.ShutdownTimeout)
	}
	if c.AsyncWorkers < 1 || c.AsyncWorkers > 1024 {
		add("--async-workers %d: must be 1..1024", c.AsyncWorkers)
	}
	if c.AsyncQueue < 1 {
		add("--async-queue %d: must be at least 1", c.AsyncQueue)
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
	return errors.Join(errs...)
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
