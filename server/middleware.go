package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hal9-lab/hal9-lab/server/auth"
)

// The API handler is, from the outside in:
//
//	requestID → recoverer → metrics → bodyLimit → mux → [auth] → rateLimit → handler
//
// requestID creates the one statusWriter the next two read, so a panic is
// answered as a 500 JSON only when nothing was written yet and is counted
// with code 500.

type ctxKey int

const (
	keyReq ctxKey = iota
)

// reqState travels in the request context.
type reqState struct {
	id        string
	base      *slog.Logger
	log       *slog.Logger    // base with request_id, made on first use
	principal *auth.Principal // set by requireAuth
}

var discard = slog.New(slog.DiscardHandler)

func stateFrom(ctx context.Context) *reqState {
	if s, ok := ctx.Value(keyReq).(*reqState); ok {
		return s
	}
	return &reqState{log: discard}
}

// loggerFrom returns the request's logger (it carries request_id). It is
// made when first asked for: most requests log nothing, and With copies.
// A request's handlers run on one goroutine, so no lock is needed.
func loggerFrom(ctx context.Context) *slog.Logger {
	st := stateFrom(ctx)
	if st.log == nil {
		st.log = st.base.With("request_id", st.id)
	}
	return st.log
}

// statusWriter records the status written through it.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// validRequestID accepts a client's X-Request-ID when it is short and plain.
func validRequestID(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == ':') {
			return false
		}
	}
	return true
}

func newRequestID() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// requestID takes X-Request-ID from the client (or makes one), echoes it,
// and puts a logger carrying it into the context.
func requestID(base *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-ID")
		if !validRequestID(id) {
			id = newRequestID()
		}
		w.Header()["X-Request-Id"] = []string{id} // X-Request-ID, canonical: Set would allocate to canonicalise it
		st := &reqState{id: id, base: base}
		next.ServeHTTP(&statusWriter{ResponseWriter: w}, r.WithContext(context.WithValue(r.Context(), keyReq, st)))
	})
}

// recoverer turns a panic into a logged 500 JSON answer.
func recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if v == http.ErrAbortHandler { //nolint:errorlint // sentinel compared as net/http does
				panic(v)
			}
			loggerFrom(r.Context()).Error("panic in handler", "panic", fmt.Sprint(v),
				"method", r.Method, "path", r.URL.Path, "stack", string(debug.Stack()))
			if sw, ok := w.(*statusWriter); !ok || sw.status == 0 {
				writeError(w, http.StatusInternalServerError, CodeInternal, "internal error; the request id is in X-Request-ID")
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// httpMetrics are the API's request metrics.
type httpMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	inflight prometheus.Gauge
	conns    prometheus.Gauge
	rejected prometheus.Counter
}

// HTTPBuckets span a cached signal (1 ms) to a slow uncached one (30 s).
var HTTPBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2.5, 5, 10, 30}

func newHTTPMetrics(reg prometheus.Registerer) *httpMetrics {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hal9_http_requests_total",
			Help: "API requests by route template, method and status code.",
		}, []string{"route", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "hal9_http_request_duration_seconds",
			Help:    "API request duration by route template and method.",
			Buckets: HTTPBuckets,
		}, []string{"route", "method"}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "hal9_http_inflight_requests",
			Help: "API requests being served now.",
		}),
		conns: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "hal9_http_open_connections",
			Help: "Client connections open on the API listener, idle keep-alive ones included.",
		}),
		rejected: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hal9_ratelimit_rejections_total",
			Help: "Requests refused with 429 by the per-client rate limit.",
		}),
	}
	reg.MustRegister(m.requests, m.duration, m.inflight, m.conns, m.rejected)
	return m
}

// routeLabel turns the matched pattern "GET /api/v1/signals/{id}" into the
// label "/api/v1/signals/{id}"; the catch-all is "unmatched".
func routeLabel(pattern string) string {
	if i := strings.IndexByte(pattern, ' '); i >= 0 {
		pattern = pattern[i+1:]
	}
	if pattern == "" || pattern == "/" {
		return "unmatched"
	}
	return pattern
}

// knownMethod keeps the method label bounded.
func knownMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions:
		return m
	}
	return "OTHER"
}

// connState counts open API connections; it is the API http.Server's
// ConnState hook (seed 000 alerts on more than 8,000).
func (m *httpMetrics) connState(_ net.Conn, state http.ConnState) {
	switch state {
	case http.StateNew:
		m.conns.Inc()
	case http.StateClosed, http.StateHijacked:
		m.conns.Dec()
	}
}

// instrument records the request's route, method, code and duration. The
// mux sets r.Pattern on the request it is given, which is this r.
func (m *httpMetrics) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		m.inflight.Inc()
		defer func() {
			m.inflight.Dec()
			code := http.StatusInternalServerError // a panic before any write
			if sw, ok := w.(*statusWriter); ok && sw.status != 0 {
				code = sw.status
			}
			route, method := routeLabel(r.Pattern), knownMethod(r.Method)
			d := time.Since(start)
			m.requests.WithLabelValues(route, method, statusText(code)).Inc()
			m.duration.WithLabelValues(route, method).Observe(d.Seconds())
			log := loggerFrom(r.Context())
			lvl := slog.LevelDebug
			if code >= 500 {
				lvl = slog.LevelError
			}
			if log.Enabled(r.Context(), lvl) {
				log.LogAttrs(r.Context(), lvl, "request", slog.String("method", r.Method),
					slog.String("route", route), slog.Int("code", code),
					slog.Float64("duration_ms", float64(d.Microseconds())/1000))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

var codeText = func() map[int]string {
	m := map[int]string{}
	for c := 100; c < 600; c++ {
		m[c] = fmt.Sprint(c)
	}
	return m
}()

func statusText(code int) string {
	if s, ok := codeText[code]; ok {
		return s
	}
	return fmt.Sprint(code)
}

// bodyLimit refuses bodies over MaxBodyBytes: at once when Content-Length
// says so, otherwise when the handler reads past the limit.
func bodyLimit(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > MaxBodyBytes {
			tooLarge(MaxBodyBytes).write(w)
			return
		}
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
		}
		next.ServeHTTP(w, r)
	})
}

// clientIP is the client's address: the remote address without the port,
// or, when the request came through one of --trusted-proxies, the address
// X-Forwarded-For names (trustedproxy.go). Every per-address limit keys on
// it, through clientKeys (an IPv6 client is its /64).
func clientIP(r *http.Request) string {
	if ip, ok := forwardedClient(r.Context()); ok {
		return ip
	}
	return remoteHost(r.RemoteAddr)
}

// limit applies the per-client rate limit: the principal when the route
// authenticated one, else the remote IP.
func (s *Server) limit(next http.HandlerFunc) http.HandlerFunc {
	if s.rl == nil {
		return next
	}
	return func(w http.ResponseWriter, r *http.Request) {
		key := "ip:" + clientOf(clientIP(r))
		if p := stateFrom(r.Context()).principal; p != nil {
			key = limitKey(p)
		}
		if ok, wait := s.rl.allow(key); !ok {
			writeRetry(w, http.StatusTooManyRequests, CodeRateLimited,
				fmt.Sprintf("rate limit of %g requests per second exceeded; retry after the Retry-After delay", float64(s.rl.limit)), wait)
			return
		}
		next(w, r)
	}
}

// isCanceled reports whether err is a context cancellation or deadline
// (the client left or a timeout cut the work), so the answer can say so.
func isCanceled(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}
