// Package app is HAL9's one composition root: the configuration of `hal9
// serve` (Config, its defaults and validation) and the wiring of the store,
// the cache tiers, the LLM provider and its guard, the neurons, the auth
// service and the background workers into a running server.Server on two
// listeners, with graceful shutdown. cmd/hal9 parses flags and calls it.
package app

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hal9-lab/hal9-lab/internal/redact"
	"github.com/hal9-lab/hal9-lab/server"
	"github.com/hal9-lab/hal9-lab/server/auth"
	"github.com/hal9-lab/hal9-lab/server/cache"
	"github.com/hal9-lab/hal9-lab/server/limits"
	"github.com/hal9-lab/hal9-lab/server/limits/redislimits"
	"github.com/hal9-lab/hal9-lab/server/llm"
	"github.com/hal9-lab/hal9-lab/server/neuron"
	"github.com/hal9-lab/hal9-lab/server/store"
	"github.com/hal9-lab/hal9-lab/server/store/postgres"
	"github.com/hal9-lab/hal9-lab/server/store/sqlite"
	"github.com/hal9-lab/hal9-lab/server/telemetry"
)

// Server is a wired HAL9: store, cache tiers, LLM guard, neurons, HTTP
// handlers, and the two listeners. Open builds it, Listen binds, Serve runs
// until the context ends and then shuts down gracefully.
type Server struct {
	cfg      Config
	log      *slog.Logger
	Registry *prometheus.Registry
	Store    store.Store
	HTTP     *server.Server
	Router   *neuron.Router
	Guard    *llm.Guard
	Process  *cache.Process
	Redis    *cache.Redis // nil without --redis-url

	signalRecords *cache.Records
	neuronRecords *cache.Records
	spend         *llm.StoredSpend // the ledger's spend in the database (nil with Redis)
	stopProfiling func() error
	bgCancel      context.CancelFunc
	bg            sync.WaitGroup

	apiLn, adminLn   net.Listener
	apiSrv, adminSrv *http.Server
	closeOnce        sync.Once
}

// OpenStore opens the database of the URL (creating the SQLite directory)
// and applies migrations.
func OpenStore(ctx context.Context, cfg Config, log *slog.Logger) (store.Store, error) {
	raw := cfg.EffectiveDatabaseURL()
	driver, path, err := ParseDatabaseURL(raw)
	if err != nil {
		return nil, err
	}
	switch driver {
	case "sqlite":
		// Owner only: the database holds password hashes and tokens. A
		// directory that exists already is left as it is (it may be the
		// working directory); the files themselves are made 0600 by the store.
		if dir := filepath.Dir(path); dir != "" {
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return nil, fmt.Errorf("create data directory %s: %w", dir, err)
			}
		}
		st, err := sqlite.Open(ctx, path)
		if err != nil { // not a typed nil in the interface
			return nil, err
		}
		return st, nil
	default:
		st, err := postgres.Open(ctx, raw, postgres.Options{
			MaxConns: int32(cfg.DBMaxConns), MinConns: int32(cfg.DBMinConns), GroupCommit: cfg.DBGroupCommit, Committers: cfg.DBCommitters, Logger: log,
		})
		if err != nil {
			return nil, explainStoreDown(raw, err)
		}
		return st, nil
	}
}

// Open validates cfg and wires everything; nothing listens yet.
func Open(ctx context.Context, cfg Config, log *slog.Logger) (_ *Server, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid configuration:\n%w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	topo, _ := cfg.ParseTopology()
	startedAt := time.Now()
	a := &Server{cfg: cfg, log: log, Registry: telemetry.NewRegistry(telemetry.Build{Version: cfg.Version})}
	telemetry.RegisterCapacity(a.Registry, cfg.CapacityRPS)
	defer func() {
		if err != nil {
			a.Close(context.Background())
		}
	}()
	bgCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	a.bgCancel = cancel

	if cfg.PyroscopeURL != "" {
		a.stopProfiling, err = telemetry.StartProfiling(telemetry.ProfilingOptions{
			ServerURL: cfg.PyroscopeURL, Version: cfg.Version, Instance: cfg.Addr, Logger: log,
		})
		if err != nil {
			return nil, err
		}
	}

	// Store.
	a.Store, err = OpenStore(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	if c, ok := a.Store.(interface{ Collector() prometheus.Collector }); ok {
		a.Registry.MustRegister(c.Collector())
	}
	// An async signal pending for longer than cfg.PendingMaxAge() was cut
	// by a crash or kill of the server processing it: no worker will ever
	// finish it. Fail such signals, at start and then every minute, so
	// clients polling GET /api/v1/signals/{id} learn to resubmit. The age
	// (not this process's start time) keeps servers sharing one database
	// from failing each other's live work. The same sweep drops expired
	// refresh tokens.
	if err := a.failStalePending(ctx, startedAt); err != nil {
		return nil, err
	}
	a.bg.Add(1)
	go func() { defer a.bg.Done(); a.sweep(bgCtx, time.Minute) }()
	if pg, ok := a.Store.(*postgres.Store); ok {
		a.bg.Add(1)
		go func() { defer a.bg.Done(); pg.RunMaintenance(bgCtx, time.Hour) }()
	}

	// Cache tiers: process, then Redis when configured.
	cm := cache.NewMetrics(a.Registry)
	a.Process, err = cache.NewProcess(cache.ProcessOptions{MaxEntries: int64(cfg.CacheMaxEntries), MaxBytes: cfg.CacheMaxBytes}, cm)
	if err != nil {
		return nil, fmt.Errorf("process cache: %w", err)
	}
	tiers := []cache.Tier{a.Process}
	if cfg.RedisURL != "" {
		a.Redis, err = cache.NewRedis(ctx, cfg.RedisURL, cache.RedisOptions{PoolSize: cfg.RedisPoolSize}, cm)
		if err != nil {
			return nil, err
		}
		a.Registry.MustRegister(a.Redis.Collector())
		tiers = append(tiers, a.Redis)
		if herr := a.Redis.Healthy(ctx); herr != nil {
			log.Warn("redis is not answering; serving from the process tier until it does", "redis", redact.URL(cfg.RedisURL), "error", herr)
		}
	}
	layered := cache.NewLayered(cm, tiers...)
	strategy, _ := cache.ParseStrategy(cfg.CacheStrategy)
	a.signalRecords, err = cache.NewRecords(strategy, layered, nil, cache.WriteBehindOptions{}, cm)
	if err != nil {
		return nil, err
	}
	a.neuronRecords, err = cache.NewRecords(strategy, layered, cache.SinkFunc(a.writeNeurons), cache.WriteBehindOptions{}, cm)
	if err != nil {
		return nil, err
	}

	// LLM: provider → guard (timeout, breakers, metrics, ledger).
	lm := llm.NewMetrics(a.Registry)
	ledger, err := a.openLedger(ctx, bgCtx, lm)
	if err != nil {
		return nil, err
	}
	if enforce, _ := cfg.BudgetEnforced(); !enforce {
		log.Info("LLM cost budgets are watched, not enforced (--llm-budget-enforce)", "llm", cfg.LLM,
			"hourly_usd", cfg.LLMBudgetHourly, "daily_usd", cfg.LLMBudgetDaily)
	}
	var provider llm.Provider
	var llmFaults server.LLMFaults // the admin listener's /admin/llm/faults
	switch cfg.LLM {
	case "anthropic":
		provider = llm.NewAnthropic(llm.AnthropicOptions{BaseURL: cfg.AnthropicURL, APIKey: cfg.AnthropicAPIKey, Model: cfg.LLMModel})
	default:
		sim := llm.NewSimulated(llm.SimOptions{Model: cfg.LLMModel, LatencyScale: cfg.LLMLatencyScale,
			ErrorRate: cfg.LLMErrorRate, RateLimitRPM: cfg.LLMRateLimitRPM, Seed: cfg.LLMSeed})
		provider, llmFaults = sim, sim
	}
	a.Guard = llm.NewGuard(provider, llm.GuardOptions{Timeout: cfg.LLMTimeout, Metrics: lm, Ledger: ledger,
		Logger: log, DefaultModel: cfg.LLMModel})

	// Neurons.
	ttls := cache.DefaultTTLs()
	ttls["L1"], ttls["L5"] = cfg.L1TTL, cfg.L5TTL
	states := a.Guard.BreakerStates
	a.Router, err = neuron.NewRouter(neuron.Options{
		Topology: topo, Provider: a.Guard, Cache: layeredCache{layered}, Key: cache.LLMKey, TTLs: ttls,
		Model: cfg.LLMModel, Metrics: neuron.NewMetrics(a.Registry), Logger: log,
		BreakerState: func(layer string) string { return states()["llm_"+layer] },
	})
	if err != nil {
		return nil, err
	}
	a.Registry.MustRegister(a.Router.Collector())
	if err := a.Store.UpsertNeurons(ctx, a.neuronStates()); err != nil {
		return nil, fmt.Errorf("persist neurons: %w", err)
	}
	a.bg.Add(1)
	go func() { defer a.bg.Done(); a.publishNeuronStates(bgCtx, 5*time.Second) }()

	// Auth.
	secret, err := a.jwtSecret(ctx)
	if err != nil {
		return nil, err
	}
	// Requests' store calls are bounded (store.WithTimeout): a frozen
	// database is answered 503 in 10 s, not held until the client leaves.
	bounded := store.WithTimeout(a.Store, StoreCallTimeout)
	authn, err := auth.NewService(bounded, auth.Options{Secret: secret, BcryptCost: cfg.BcryptCost, ReuseGrace: cfg.RefreshReuseGrace, Logger: log}, a.Registry)
	if err != nil {
		return nil, err
	}

	trusted, err := server.ParseTrustedProxies(cfg.TrustedProxies)
	if err != nil {
		return nil, fmt.Errorf("--trusted-proxies: %w", err)
	}
	adminHosts, err := server.ParseAdminHosts(cfg.AdminAllowedHosts, cfg.AdminAddr)
	if err != nil {
		return nil, fmt.Errorf("--admin-allowed-hosts: %w", err)
	}
	var redisHealth func(context.Context) error
	var sharedLimits limits.Backend
	if a.Redis != nil {
		redisHealth = a.Redis.Healthy
		sharedLimits = redislimits.New(a.Redis.Client()) // replicas on one Redis count together
	}
	credentials := limits.New(sharedLimits, a.Registry, func(err error) {
		log.Debug("credential limits: redis failed, counting in memory", "error", err)
	})
	a.HTTP, err = server.New(server.Deps{
		Store: bounded, Auth: authn, Router: a.Router,
		Costs: ledger.Snapshot, Breakers: a.Guard.BreakerStates, RedisHealth: redisHealth,
		Signals:  signalRecords{a.signalRecords},
		Search:   searchCache{layered},
		Registry: a.Registry, Logger: log, RateLimit: cfg.RateLimit, TrustedProxies: trusted,
		Credentials: credentials, CredentialLimits: cfg.credentialLimits(),
		BodyReadTimeout: cfg.HTTPReadTimeout,
		AsyncWorkers:    cfg.AsyncWorkers, AsyncWorkersMax: cfg.AsyncWorkersMax, AsyncQueue: cfg.AsyncQueue, AsyncPerUser: cfg.AsyncQueuePerUser,
		AsyncJobTimeout: cfg.AsyncJobTimeout(), Version: cfg.Version,
		LLMFaults:         llmFaults,
		MaxConnsPerClient: cfg.HTTPMaxConnsPerClient, MaxConns: cfg.HTTPMaxConns,
		AdminHosts: adminHosts,
	})
	if err != nil {
		return nil, err
	}
	a.startBackendProbe(bgCtx)
	a.startRetention(bgCtx)
	return a, nil
}

// jwtSecret is --jwt-secret, else the secret kept in the database: created
// at random by the first server on it, then read by every later start and
// every replica, so tokens survive restarts and work across servers.
func (a *Server) jwtSecret(ctx context.Context) ([]byte, error) {
	if a.cfg.JWTSecret != "" {
		return []byte(a.cfg.JWTSecret), nil
	}
	candidate := make([]byte, 32)
	rand.Read(candidate)
	secret, err := a.Store.EnsureSecret(ctx, "jwt", candidate)
	if err != nil {
		return nil, fmt.Errorf("JWT secret: no --jwt-secret given and none could be kept in the database: %w", err)
	}
	if len(secret) < auth.MinSecretLen {
		return nil, fmt.Errorf("JWT secret: the one kept in the database is %d bytes, under %d; delete it (server_secrets, name jwt) or set --jwt-secret", len(secret), auth.MinSecretLen)
	}
	a.log.Info("JWT secret: the one kept in the database, shared by every server on it (--jwt-secret overrides)")
	return secret, nil
}

// Listen binds the API and admin listeners (":0" picks free ports) unless
// UseListeners gave them (bind.go).
func (a *Server) Listen() error {
	if a.apiLn != nil {
		return nil
	}
	l, err := Bind(a.cfg)
	if err != nil {
		return err
	}
	a.UseListeners(l)
	return nil
}

// APIAddr and AdminAddr are the bound addresses (after Listen).
func (a *Server) APIAddr() string   { return a.apiLn.Addr().String() }
func (a *Server) AdminAddr() string { return a.adminLn.Addr().String() }

// Serve serves until ctx ends, then shuts down in stages within
// --shutdown-timeout (see Shutdown). It returns nil after a clean shutdown.
func (a *Server) Serve(ctx context.Context) error {
	if a.apiLn == nil {
		if err := a.Listen(); err != nil {
			return err
		}
	}
	// No ReadTimeout: the body's deadline is set per request by the server
	// package (--http-read-timeout) and lifted once the body is read, since
	// an http.Server ReadTimeout would cancel long signals mid-flight.
	a.apiSrv = &http.Server{Handler: a.HTTP.Handler(), ReadHeaderTimeout: headerTimeout(a.cfg.HTTPReadTimeout),
		WriteTimeout: a.cfg.WriteTimeout(), IdleTimeout: a.cfg.HTTPIdleTimeout,
		ConnState: a.HTTP.ConnState, ErrorLog: slog.NewLogLogger(a.log.Handler(), slog.LevelWarn)}
	a.adminSrv = &http.Server{Handler: a.HTTP.AdminHandler(), ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout: AdminReadTimeout, WriteTimeout: AdminWriteTimeout, IdleTimeout: AdminIdleTimeout,
		ErrorLog: slog.NewLogLogger(a.log.Handler(), slog.LevelWarn)}
	errc := make(chan error, 2)
	go func() { errc <- a.apiSrv.Serve(a.apiLn) }()
	go func() { errc <- a.adminSrv.Serve(a.adminLn) }()
	a.log.Info("hal9 serving", "addr", a.APIAddr(), "admin_addr", a.AdminAddr(),
		"http_write_timeout", a.cfg.WriteTimeout().String(), "http_max_conns", a.cfg.HTTPMaxConns, "http_max_conns_per_client", a.cfg.HTTPMaxConnsPerClient,
		"database", redact.URL(a.cfg.EffectiveDatabaseURL()), "redis", redact.URL(a.cfg.RedisURL),
		"cache_strategy", a.cfg.CacheStrategy, "llm", a.cfg.LLM, "model", a.cfg.LLMModel, "version", a.cfg.Version)

	var serveErr error
	select {
	case <-ctx.Done():
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			serveErr = fmt.Errorf("serve: %w", err)
		}
	}
	return errors.Join(serveErr, a.Shutdown())
}

// Close releases everything Open made (idempotent): background tasks stop,
// write-behind flushes within ctx, Redis and the store close.
func (a *Server) Close(ctx context.Context) error {
	var errs []error
	a.closeOnce.Do(func() {
		if a.bgCancel != nil {
			a.bgCancel()
		}
		a.bg.Wait()
		if a.HTTP != nil {
			a.HTTP.DrainAsync(ctx)
		}
		if a.neuronRecords != nil && a.Store != nil && a.Router != nil {
			// The final states, then flush (behind) everything queued.
			for _, n := range a.neuronStates() {
				b, _ := json.Marshal(n)
				a.neuronRecords.Put(ctx, cache.Record{Key: cache.NeuronStateKey(n.ID), Value: b, Data: n})
			}
		}
		for _, r := range []*cache.Records{a.signalRecords, a.neuronRecords} {
			if r != nil {
				if err := r.Close(ctx); err != nil {
					errs = append(errs, err)
				}
			}
		}
		if err := a.syncSpend(ctx); err != nil {
			errs = append(errs, fmt.Errorf("keep LLM spend: %w", err))
		}
		if a.Redis != nil {
			a.Redis.Close()
		}
		if a.Process != nil {
			a.Process.Close()
		}
		if a.Store != nil {
			if err := closeWithin(ctx, a.Store.Close); err != nil {
				errs = append(errs, fmt.Errorf("close store: %w", err))
			}
		}
		if a.stopProfiling != nil {
			if err := a.stopProfiling(); err != nil {
				a.log.Warn("stop profiling", "error", err)
			}
		}
	})
	return errors.Join(errs...)
}

// closeGrace is how long closeWithin still waits once ctx has ended.
const closeGrace = 2 * time.Second

// closeWithin runs close and waits for it until ctx ends, plus closeGrace.
// A database that stops answering can hold a pool's Close for long (pgxpool
// waits up to 15 s per connection a cancelled query left behind), and the
// process exits after shutdown anyway: every acknowledged write is already
// durable, so the shutdown does not wait for it past its deadline.
func closeWithin(ctx context.Context, close func() error) error {
	done := make(chan error, 1)
	go func() { done <- close() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	select {
	case err := <-done:
		return err
	case <-time.After(closeGrace):
		return fmt.Errorf("still closing %v after the shutdown deadline (the database does not answer); left to the process exit", closeGrace)
	}
}

// Migrate opens the store of cfg, applies migrations and closes it.
func Migrate(ctx context.Context, cfg Config, log *slog.Logger) error {
	st, err := OpenStore(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer st.Close()
	return st.Migrate(ctx)
}
