// Package server is HAL9's HTTP side: routes, middleware, handlers, the
// admin listener, the async signal workers and the steps of a graceful
// shutdown. It knows the store.Store interface and small interfaces of its
// own for the caches, never a database driver or Redis: server/app wires
// the real ones behind it.
package server

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/hal9-lab/hal9-lab/server/auth"
	"github.com/hal9-lab/hal9-lab/server/limits"
	"github.com/hal9-lab/hal9-lab/server/llm"
	"github.com/hal9-lab/hal9-lab/server/neuron"
	"github.com/hal9-lab/hal9-lab/server/store"
)

// Deps are what the HTTP layer is built from; server/app wires the real ones.
type Deps struct {
	Store  store.Store
	Auth   *auth.Service
	Router *neuron.Router
	// Costs returns the ledger's totals (nil: zeros).
	Costs func() llm.CostSnapshot
	// Breakers returns breaker states by name (nil: none).
	Breakers func() map[string]string
	// RedisHealth is nil without Redis; an error makes readiness "degraded".
	RedisHealth func(ctx context.Context) error
	// Signals caches signal records (cache-aside reads, write-through or
	// write-behind writes); nil reads and writes the store directly.
	Signals SignalRecords
	// Search caches memory search results; nil: no cache.
	Search SearchCache
	// Registry serves /metrics; the server registers its own metrics on it.
	Registry  *prometheus.Registry
	Logger    *slog.Logger
	RateLimit float64 // per client identity per second; 0 off
	// TrustedProxies are the proxies whose X-Forwarded-For names the
	// client (nil: none, the peer is the client).
	TrustedProxies *TrustedProxies
	// Credentials counts the credential routes' limits (nil: in memory);
	// server/app gives it a Redis backend when the server has Redis.
	Credentials      *limits.Limiter
	CredentialLimits CredentialLimits
	// BodyReadTimeout bounds the arrival of a request body (0: none).
	BodyReadTimeout time.Duration
	// MaxConnsPerClient caps the API connections one client address holds
	// open (0: no cap); MaxConns is the server's cap (--http-max-conns),
	// near which idle keep-alives are closed sooner (connlimit.go).
	MaxConnsPerClient, MaxConns int
	// AsyncWorkers and AsyncQueue size the ?async=true pool (8, 1024);
	// AsyncPerUser is one user's share of the queue (0: a quarter of it).
	// AsyncWorkersMax is the most workers the pool grows to when jobs
	// would wait (0: DefaultAsyncWorkersMax; below AsyncWorkers: fixed).
	AsyncWorkers, AsyncWorkersMax, AsyncQueue, AsyncPerUser int
	// AsyncJobTimeout bounds one async signal (default 5m).
	AsyncJobTimeout time.Duration
	Version         string
	// LLMFaults serves /admin/llm/faults (nil: the provider is not simulated).
	LLMFaults LLMFaults
	// AdminHosts are the Host names the admin listener answers to besides
	// IP addresses and localhost (nil: only those).
	AdminHosts *AdminHosts
	// NoProfileLabels turns off the pprof labels (route, layer) on the
	// handlers' CPU samples (profilelabels.go); benchmarks compare.
	NoProfileLabels bool
}

// SignalRecords is the signal-record cache in front of the store. The store
// write itself is always synchronous and done by the server; these methods
// only keep the cached copy in step.
type SignalRecords interface {
	// Saved is called after a completed (not pending) signal was written
	// to the store: aside invalidates the cached copy, through sets it,
	// behind queues it.
	Saved(ctx context.Context, s store.Signal, hops []store.Hop)
	// Get returns a cached record, ok false on a miss.
	Get(ctx context.Context, id string) (store.Signal, []store.Hop, bool)
	// Fill caches a completed signal read from the store after a Get miss
	// (the populate step of cache-aside). Pending signals are never filled.
	Fill(ctx context.Context, s store.Signal, hops []store.Hop)
}

// SearchCache caches memory search answers in front of the store
// (cache-aside with a short TTL, so answers may lag new memories by that
// long). An answer depends on the user, the query and the limit only.
type SearchCache interface {
	// GetOrLoad returns the cached answer, or load's (which it caches).
	GetOrLoad(ctx context.Context, userID, query string, limit int,
		load func(context.Context) ([]byte, error)) ([]byte, error)
}

// Server holds the handlers.
type Server struct {
	d           Deps
	log         *slog.Logger
	metrics     *httpMetrics
	rl          *rateLimiter
	creds       *limits.Limiter
	credLimited *prometheus.CounterVec
	async       *asyncPool
	conns       *connLimiter
	started     time.Time

	shuttingDown atomic.Bool
	readyCache   readyCache
	sent         atomic.Int64 // signals accepted (sync and async)
	api          http.Handler
	admin        http.Handler
}

// New builds the API and admin handlers.
func New(d Deps) (*Server, error) {
	if d.Store == nil || d.Router == nil || d.Auth == nil {
		return nil, errors.New("server: Store, Router and Auth are required")
	}
	if d.Registry == nil {
		d.Registry = prometheus.NewRegistry()
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.AsyncWorkers <= 0 {
		d.AsyncWorkers = 8
	}
	if d.AsyncWorkersMax <= 0 {
		d.AsyncWorkersMax = max(DefaultAsyncWorkersMax, d.AsyncWorkers)
	}
	if d.AsyncQueue <= 0 {
		d.AsyncQueue = 1024
	}
	if d.AsyncJobTimeout <= 0 {
		d.AsyncJobTimeout = 5 * time.Minute
	}
	if d.AsyncPerUser <= 0 {
		d.AsyncPerUser = max(1, d.AsyncQueue/4)
	}
	s := &Server{d: d, log: d.Logger, started: time.Now()}
	s.metrics = newHTTPMetrics(d.Registry)
	s.rl = newRateLimiter(d.RateLimit, s.metrics.rejected)
	s.creds = d.Credentials
	if s.creds == nil {
		s.creds = limits.New(nil, nil, nil)
	}
	s.credLimited = newCredentialMetrics(d.Registry)
	s.conns = newConnLimiter(d.MaxConnsPerClient, d.MaxConns, d.TrustedProxies, d.Registry)
	s.async = newAsyncPool(s, d.AsyncWorkers, d.AsyncWorkersMax, d.AsyncQueue, d.AsyncPerUser).start()
	d.Registry.MustRegister(s.async.collectors()...)

	rt := newRoutes(s.profileLabels)
	// Public.
	rt.handle("GET /health", s.health)
	rt.handle("GET /readyz", s.readyz(false))
	// Credential routes: their own limit per address first (a flood is
	// refused before it costs a bcrypt hash), then the general one.
	rt.handle("POST /api/v1/auth/register", s.credential(s.limit(s.register)))
	rt.handle("POST /api/v1/auth/login", s.credential(s.limit(s.login)))
	rt.handle("POST /api/v1/auth/refresh", s.credential(s.limit(s.refresh)))
	rt.handle("POST /api/v1/auth/logout", s.credential(s.limit(s.logout)))
	rt.handle("GET /api/v1/status", s.limit(s.status))
	rt.handle("GET /api/v1/neurons", s.limit(s.listNeurons))
	rt.handle("GET /api/v1/neurons/{id}", s.limit(s.getNeuron))
	rt.handle("GET /api/v1/neurons/{id}/health", s.limit(s.neuronHealth))
	rt.handle("GET /api/v1/metrics", s.limit(s.metricsSnapshot))
	// Authenticated: writes and user data.
	rt.handle("POST /api/v1/signals", s.requireAuth(s.limit(s.postSignal)))
	rt.handle("GET /api/v1/signals/{id}", s.requireAuth(s.limit(s.getSignal)))
	rt.handle("GET /api/v1/auth/profile", s.requireAuth(s.limit(s.profile)))
	rt.handle("POST /api/v1/auth/api-keys", s.requireAuth(s.limit(s.createAPIKey)))
	rt.handle("GET /api/v1/auth/api-keys", s.requireAuth(s.limit(s.listAPIKeys)))
	rt.handle("DELETE /api/v1/auth/api-keys/{id}", s.requireAuth(s.limit(s.deleteAPIKey)))
	rt.handle("GET /api/v1/memories/search", s.requireAuth(s.limit(s.searchMemories)))
	mux := rt.build()

	s.api = requestID(d.Logger, recoverer(s.metrics.instrument(bodyDeadline(d.BodyReadTimeout, bodyLimit(mux)))))
	if d.TrustedProxies != nil {
		s.api = d.TrustedProxies.wrap(s.api)
	}
	s.admin = s.adminHandler()
	return s, nil
}

// Handler is the API (no metrics, no pprof).
func (s *Server) Handler() http.Handler { return s.api }

// ConnState is the API http.Server's connection hook (open-connection
// gauge, idle keep-alives near the connection caps).
func (s *Server) ConnState(c net.Conn, state http.ConnState) {
	s.metrics.connState(c, state)
	s.conns.connState(c, state)
}

// LimitConns wraps the API listener with the cap on connections per client
// address (Deps.MaxConnsPerClient); it must be the outermost wrapper, the
// one http.Server accepts from.
func (s *Server) LimitConns(ln net.Listener) net.Listener { return s.conns.listener(ln) }

// AdminHandler serves /metrics, /debug/pprof/*, /health and /readyz.
func (s *Server) AdminHandler() http.Handler { return s.admin }

// BeginShutdown turns readiness to 503 at once.
func (s *Server) BeginShutdown() { s.shuttingDown.Store(true) }

// DrainAsync stops taking async signals and waits (until ctx ends) for the
// queued ones to finish; those cut off by ctx are saved as failed.
func (s *Server) DrainAsync(ctx context.Context) error { return s.async.drain(ctx) }

func (s *Server) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.d.Registry, promhttp.HandlerOpts{
		Registry:          s.d.Registry, // promhttp_metric_handler_errors_total
		EnableOpenMetrics: true,
	}))
	mux.HandleFunc("GET /health", s.health)
	mux.HandleFunc("GET /readyz", s.readyz(true))
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	// Not served: the command line holds whatever secret was passed as a
	// flag (--jwt-secret, --anthropic-api-key, a database password).
	mux.HandleFunc("/debug/pprof/cmdline", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, CodeNotFound, "/debug/pprof/cmdline is not served: the command line may hold secrets; `hal9 config` prints the configuration with them redacted")
	})
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	s.adminLLM(mux)
	hosts := s.d.AdminHosts
	if hosts == nil {
		hosts = &AdminHosts{}
	}
	return hosts.checkHost(mux)
}

// routes registers handlers and adds, for every path, a method-less
// pattern that answers 405 with Allow, plus a catch-all 404: http.ServeMux
// would otherwise answer both in plain text.
type routes struct {
	wrap    func(route string, h http.HandlerFunc) http.HandlerFunc // profile labels
	mux     *http.ServeMux
	methods map[string][]string // path → methods
	order   []string
}

func newRoutes(wrap func(route string, h http.HandlerFunc) http.HandlerFunc) *routes {
	return &routes{wrap: wrap, mux: http.NewServeMux(), methods: map[string][]string{}}
}

func (rt *routes) handle(pattern string, h http.HandlerFunc) {
	method, path, _ := strings.Cut(pattern, " ")
	if _, ok := rt.methods[path]; !ok {
		rt.order = append(rt.order, path)
	}
	rt.methods[path] = append(rt.methods[path], method)
	if rt.wrap != nil {
		h = rt.wrap(path, h)
	}
	rt.mux.HandleFunc(pattern, h)
}

func (rt *routes) build() *http.ServeMux {
	for _, path := range rt.order {
		ms := rt.methods[path]
		if slices.Contains(ms, http.MethodGet) {
			ms = append(ms, http.MethodHead)
		}
		slices.Sort(ms)
		allow := strings.Join(ms, ", ")
		rt.mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", allow)
			writeError(w, http.StatusMethodNotAllowed, CodeMethodNotAllowed,
				r.Method+" is not allowed on "+path+"; use "+allow)
		})
	}
	rt.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, CodeNotFound,
			"no route "+r.Method+" "+clip(r.URL.Path, 200)+"; the API is under /api/v1 (see docs/server.md)")
	})
	return rt.mux
}

func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "version": s.d.Version})
}

// readyz: 503 when shutting down or the store does not answer, 200
// "degraded" when Redis is down or a layer has no active neuron (the server
// still answers, more slowly or with LLM errors), 200 "ready" otherwise.
// Only the admin listener's (detail) names the backends' errors: on the
// API listener they would tell anyone the database's address and user.
// The API listener's answer is kept for readyTTL (readyCache).
func (s *Server) readyz(detail bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var status int
		var body map[string]any
		switch {
		case detail || s.shuttingDown.Load(): // a shutdown shows at once
			status, body = s.readiness(r.Context(), detail)
		default:
			status, body = s.readyCache.get(func() (int, map[string]any) {
				// Not cut short by the caller leaving: the answer is shared.
				return s.readiness(context.WithoutCancel(r.Context()), false)
			})
		}
		if status == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", "5")
		}
		writeJSON(w, status, body)
	}
}

// readyTTL is how long the API listener's /readyz answer is reused: it is
// public, and each fresh answer pings the database and Redis, so anyone
// calling it in a loop would otherwise load both. Load balancers probe
// every few seconds; a second of staleness changes nothing for them.
const readyTTL = time.Second

// readyCache is the public /readyz answer of the last readyTTL; callers
// arriving while it is computed wait for that one answer.
type readyCache struct {
	mu     sync.Mutex
	at     time.Time
	status int
	body   map[string]any
}

func (c *readyCache) get(compute func() (int, map[string]any)) (int, map[string]any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.body == nil || time.Since(c.at) >= readyTTL {
		c.status, c.body = compute()
		c.at = time.Now()
	}
	return c.status, c.body
}

func (s *Server) readiness(ctx context.Context, detail bool) (int, map[string]any) {
	var fatal, degraded []string
	reason := func(what string, err error) string {
		if detail {
			return what + ": " + err.Error()
		}
		return what + " unavailable (details on the admin listener's /readyz)"
	}
	if s.shuttingDown.Load() {
		fatal = append(fatal, "shutting down")
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := s.d.Store.Ping(ctx); err != nil {
		fatal = append(fatal, reason("store", err))
	}
	if s.d.RedisHealth != nil {
		if err := s.d.RedisHealth(ctx); err != nil {
			degraded = append(degraded, reason("redis", err))
		}
	}
	if up, down := s.d.Router.Up(); !up {
		degraded = append(degraded, "no active neuron in layer "+strings.Join(down, ", "))
	}
	switch {
	case len(fatal) > 0:
		return http.StatusServiceUnavailable, map[string]any{"status": "unavailable", "reasons": append(fatal, degraded...)}
	case len(degraded) > 0:
		return http.StatusOK, map[string]any{"status": "degraded", "reasons": degraded}
	default:
		return http.StatusOK, map[string]any{"status": "ready"}
	}
}
