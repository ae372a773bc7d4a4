package app

import (
	"context"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hal9-lab/hal9-lab/server"
)

// TestRoutes covers every route and each documented error.
func TestRoutes(t *testing.T) {
	a := startApp(t, nil)
	tok, _ := a.userNamed("routes-user")
	other, _ := a.user()
	big := `{"content":"` + strings.Repeat("x", server.MaxBodyBytes) + `","layer":"L1"}`
	longContent := map[string]string{"content": strings.Repeat("y", server.MaxContentBytes+1), "layer": "L1"}
	auth := bearer(tok)

	// A signal of the first user, for the ownership check.
	first := a.signal(tok, "route test signal", "L2")
	firstID := first.str("signal_id")

	tests := []struct {
		name       string
		method     string
		path       string
		body       any
		hdr        []string
		wantStatus int
		wantCode   string // error code, when an error
		wantIn     string // substring of the error message or body
		wantHeader [2]string
	}{
		{"health", "GET", "/health", nil, nil, 200, "", `"ok"`, [2]string{}},
		{"readyz", "GET", "/readyz", nil, nil, 200, "", `"ready"`, [2]string{}},
		{"status", "GET", "/api/v1/status", nil, nil, 200, "", `"uptime_seconds"`, [2]string{}},
		{"neurons", "GET", "/api/v1/neurons", nil, nil, 200, "", `"count":10`, [2]string{}},
		{"neurons by layer", "GET", "/api/v1/neurons?layer=L3", nil, nil, 200, "", `"count":2`, [2]string{}},
		{"neurons bad layer", "GET", "/api/v1/neurons?layer=L9", nil, nil, 400, server.CodeInvalidLayer, "L1, L2, L3, L4, L5", [2]string{}},
		{"neuron", "GET", "/api/v1/neurons/l3-design-1", nil, nil, 200, "", `"role":"design"`, [2]string{}},
		{"neuron unknown", "GET", "/api/v1/neurons/l9-x-1", nil, nil, 404, server.CodeNotFound, "GET /api/v1/neurons", [2]string{}},
		{"neuron health", "GET", "/api/v1/neurons/l1-reflexive-2/health", nil, nil, 200, "", `"healthy":true`, [2]string{}},
		{"neuron health unknown", "GET", "/api/v1/neurons/nope/health", nil, nil, 404, server.CodeNotFound, "", [2]string{}},
		{"metrics json", "GET", "/api/v1/metrics", nil, nil, 200, "", `"hit_rate"`, [2]string{}},
		{"signal ok", "POST", "/api/v1/signals", map[string]string{"content": "hello", "layer": "L1"}, auth, 200, "", `"trace"`, [2]string{"X-HAL9-Cache", "miss"}},
		{"signal with neuron", "POST", "/api/v1/signals", map[string]string{"content": "hello", "layer": "L2", "neuron_id": "l2-implementation-2"}, auth, 200, "", `"neuron_id":"l2-implementation-2"`, [2]string{}},
		{"signal no auth", "POST", "/api/v1/signals", map[string]string{"content": "x", "layer": "L1"}, nil, 401, server.CodeUnauthorized, "Authorization: Bearer", [2]string{"WWW-Authenticate", `Bearer realm="hal9"`}},
		{"signal bad token", "POST", "/api/v1/signals", map[string]string{"content": "x", "layer": "L1"}, bearer("not.a.token"), 401, server.CodeUnauthorized, "authentication failed: invalid token", [2]string{}},
		{"signal bad api key", "POST", "/api/v1/signals", map[string]string{"content": "x", "layer": "L1"}, []string{"X-API-Key", "hal9_nope"}, 401, server.CodeUnauthorized, "malformed API key", [2]string{}},
		{"signal malformed json", "POST", "/api/v1/signals", `{"content": "x", "layer":`, auth, 400, server.CodeInvalidJSON, "malformed JSON", [2]string{}},
		{"signal empty body", "POST", "/api/v1/signals", "", auth, 400, server.CodeInvalidJSON, "content, layer, neuron_id", [2]string{}},
		{"signal two objects", "POST", "/api/v1/signals", `{"content":"x","layer":"L1"}{}`, auth, 400, server.CodeInvalidJSON, "exactly one JSON object", [2]string{}},
		{"signal unknown field", "POST", "/api/v1/signals", `{"content":"x","layer":"L1","prio":1}`, auth, 400, server.CodeInvalidJSON, `unknown field "prio"`, [2]string{}},
		{"signal wrong type", "POST", "/api/v1/signals", `{"content":5,"layer":"L1"}`, auth, 400, server.CodeInvalidJSON, `"content" must be a string`, [2]string{}},
		{"signal array", "POST", "/api/v1/signals", `[1,2]`, auth, 400, server.CodeInvalidJSON, "JSON object", [2]string{}},
		{"signal unknown layer", "POST", "/api/v1/signals", map[string]string{"content": "x", "layer": "L7"}, auth, 400, server.CodeInvalidLayer, "layer must be one of L1, L2, L3, L4, L5", [2]string{}},
		{"signal no layer", "POST", "/api/v1/signals", map[string]string{"content": "x"}, auth, 400, server.CodeInvalidLayer, "L1, L2, L3, L4, L5", [2]string{}},
		{"signal blank content", "POST", "/api/v1/signals", map[string]string{"content": "  ", "layer": "L1"}, auth, 400, server.CodeBadRequest, "content is required", [2]string{}},
		{"signal neuron of other layer", "POST", "/api/v1/signals", map[string]string{"content": "x", "layer": "L3", "neuron_id": "l1-reflexive-1"}, auth, 400, server.CodeBadRequest, "belongs to layer L1", [2]string{}},
		{"signal unknown neuron", "POST", "/api/v1/signals", map[string]string{"content": "x", "layer": "L3", "neuron_id": "l3-design-9"}, auth, 400, server.CodeBadRequest, "does not exist", [2]string{}},
		{"signal body too large", "POST", "/api/v1/signals", big, auth, 413, server.CodePayloadTooLarge, "1048576", [2]string{}},
		{"signal content too large", "POST", "/api/v1/signals", longContent, auth, 413, server.CodePayloadTooLarge, "32768", [2]string{}},
		{"signal form post", "POST", "/api/v1/signals", `content=x`, append([]string{"Content-Type", "application/x-www-form-urlencoded"}, auth...), 415, server.CodeUnsupportedMedia, "application/json", [2]string{}},
		{"signal bad async", "POST", "/api/v1/signals?async=maybe", map[string]string{"content": "x", "layer": "L1"}, auth, 400, server.CodeBadRequest, "async=true", [2]string{}},
		{"signal get own", "GET", "/api/v1/signals/" + firstID, nil, auth, 200, "", `"status":"processed"`, [2]string{}},
		{"signal get other's", "GET", "/api/v1/signals/" + firstID, nil, bearer(other), 404, server.CodeNotFound, "", [2]string{}},
		{"signal get unknown", "GET", "/api/v1/signals/" + uuid.NewString(), nil, auth, 404, server.CodeNotFound, "", [2]string{}},
		{"signal get bad id", "GET", "/api/v1/signals/zzz", nil, auth, 404, server.CodeNotFound, "", [2]string{}},
		{"signal get no auth", "GET", "/api/v1/signals/" + firstID, nil, nil, 401, server.CodeUnauthorized, "", [2]string{}},
		{"signals wrong method", "GET", "/api/v1/signals", nil, auth, 405, server.CodeMethodNotAllowed, "use POST", [2]string{"Allow", "POST"}},
		{"health wrong method", "DELETE", "/health", nil, nil, 405, server.CodeMethodNotAllowed, "", [2]string{"Allow", "GET, HEAD"}},
		{"api keys wrong method", "PUT", "/api/v1/auth/api-keys", nil, auth, 405, server.CodeMethodNotAllowed, "", [2]string{"Allow", "GET, HEAD, POST"}},
		{"unknown route", "GET", "/api/v1/nope", nil, nil, 404, server.CodeNotFound, "no route GET /api/v1/nope", [2]string{}},
		{"trailing slash", "GET", "/api/v1/neurons/", nil, nil, 404, server.CodeNotFound, "", [2]string{}},
		{"metrics not on api", "GET", "/metrics", nil, nil, 404, server.CodeNotFound, "", [2]string{}},
		{"pprof not on api", "GET", "/debug/pprof/", nil, nil, 404, server.CodeNotFound, "", [2]string{}},
		{"register weak password", "POST", "/api/v1/auth/register", map[string]string{"username": "weakling", "email": "w@example.com", "password": "short"}, nil, 400, server.CodeBadRequest, "at least 8", [2]string{}},
		{"register missing fields", "POST", "/api/v1/auth/register", map[string]string{"username": "x"}, nil, 400, server.CodeBadRequest, "missing email, password", [2]string{}},
		{"register duplicate", "POST", "/api/v1/auth/register", map[string]string{"username": "routes-user", "email": "new@example.com", "password": "long-enough-pw"}, nil, 409, server.CodeConflict, "username", [2]string{}},
		{"login wrong password", "POST", "/api/v1/auth/login", map[string]string{"username": "routes-user", "password": "wrong-password"}, nil, 401, server.CodeUnauthorized, "invalid username or password", [2]string{"WWW-Authenticate", `Bearer realm="hal9"`}},
		{"login unknown user", "POST", "/api/v1/auth/login", map[string]string{"username": "ghost", "password": "wrong-password"}, nil, 401, server.CodeUnauthorized, "", [2]string{}},
		{"login malformed", "POST", "/api/v1/auth/login", `{"username":`, nil, 400, server.CodeInvalidJSON, "", [2]string{}},
		{"refresh bad", "POST", "/api/v1/auth/refresh", map[string]string{"refresh_token": "x.y.z"}, nil, 401, server.CodeUnauthorized, "", [2]string{}},
		{"refresh missing", "POST", "/api/v1/auth/refresh", map[string]string{}, nil, 400, server.CodeBadRequest, "refresh_token is required", [2]string{}},
		{"profile", "GET", "/api/v1/auth/profile", nil, auth, 200, "", `"username":"routes-user"`, [2]string{}},
		{"profile no auth", "GET", "/api/v1/auth/profile", nil, nil, 401, server.CodeUnauthorized, "", [2]string{}},
		{"api keys list", "GET", "/api/v1/auth/api-keys", nil, auth, 200, "", `"api_keys"`, [2]string{}},
		{"api key create no name", "POST", "/api/v1/auth/api-keys", map[string]string{}, auth, 400, server.CodeBadRequest, "name is required", [2]string{}},
		{"api key delete unknown", "DELETE", "/api/v1/auth/api-keys/" + uuid.NewString(), nil, auth, 404, server.CodeNotFound, "", [2]string{}},
		{"search", "GET", "/api/v1/memories/search?q=route&limit=5", nil, auth, 200, "", `"memories"`, [2]string{}},
		{"search no q", "GET", "/api/v1/memories/search", nil, auth, 400, server.CodeBadRequest, "q is required", [2]string{}},
		{"search bad limit", "GET", "/api/v1/memories/search?q=x&limit=0", nil, auth, 400, server.CodeBadRequest, "1 to 100", [2]string{}},
		{"search no auth", "GET", "/api/v1/memories/search?q=x", nil, nil, 401, server.CodeUnauthorized, "", [2]string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := a.do(tt.method, tt.path, tt.body, tt.hdr...)
			if r.Status != tt.wantStatus {
				t.Fatalf("status = %d, want %d; body %.300s", r.Status, tt.wantStatus, r.Body)
			}
			if ct := r.Header.Get("Content-Type"); ct != "application/json" && r.Status != 204 {
				t.Errorf("Content-Type = %q", ct)
			}
			if r.Header.Get("X-Request-ID") == "" {
				t.Error("no X-Request-ID")
			}
			if tt.wantCode != "" {
				if r.errCode() != tt.wantCode {
					t.Errorf("code = %q, want %q (%s)", r.errCode(), tt.wantCode, r.Body)
				}
				if len(r.JSON) != 1 || r.errMsg() == "" {
					t.Errorf("error body is not {\"error\":{code,message}}: %s", r.Body)
				}
			}
			if tt.wantIn != "" && !strings.Contains(string(r.Body), tt.wantIn) && !strings.Contains(r.errMsg(), tt.wantIn) {
				t.Errorf("body %.400s does not contain %q", r.Body, tt.wantIn)
			}
			if h := tt.wantHeader; h[0] != "" && r.Header.Get(h[0]) != h[1] {
				t.Errorf("header %s = %q, want %q", h[0], r.Header.Get(h[0]), h[1])
			}
		})
	}
}

func TestRegisterLoginShapes(t *testing.T) {
	a := startApp(t, nil)
	r := a.do("POST", "/api/v1/auth/register", map[string]string{"username": "shape", "email": "shape@example.com", "password": "shape-password"})
	if r.Status != 201 {
		t.Fatalf("register %d %s", r.Status, r.Body)
	}
	u, ok := r.JSON["user"].(map[string]any)
	if !ok || u["id"] == "" || u["username"] != "shape" || u["email"] != "shape@example.com" || u["created_at"] == nil || u["password_hash"] != nil {
		t.Fatalf("register body %s", r.Body)
	}
	r = a.do("POST", "/api/v1/auth/login", map[string]string{"username": "shape", "password": "shape-password"})
	if r.Status != 200 {
		t.Fatalf("login %d %s", r.Status, r.Body)
	}
	for _, k := range []string{"access_token", "refresh_token"} {
		if r.str(k) == "" {
			t.Errorf("login: no %s in %s", k, r.Body)
		}
	}
	if r.JSON["expires_in"].(float64) != 900 || r.JSON["user"].(map[string]any)["username"] != "shape" {
		t.Errorf("login body %s", r.Body)
	}
	// refresh → new tokens that work.
	rr := a.do("POST", "/api/v1/auth/refresh", map[string]string{"refresh_token": r.str("refresh_token")})
	if rr.Status != 200 || rr.str("access_token") == "" {
		t.Fatalf("refresh %d %s", rr.Status, rr.Body)
	}
	if p := a.do("GET", "/api/v1/auth/profile", nil, bearer(rr.str("access_token"))...); p.Status != 200 {
		t.Fatalf("profile with refreshed token: %d %s", p.Status, p.Body)
	}
	// a refresh token is not an access token.
	if p := a.do("GET", "/api/v1/auth/profile", nil, bearer(r.str("refresh_token"))...); p.Status != 401 {
		t.Fatalf("profile with refresh token: %d", p.Status)
	}
}

func TestAPIKeys(t *testing.T) {
	a := startApp(t, nil)
	tok, _ := a.user()
	r := a.do("POST", "/api/v1/auth/api-keys", map[string]string{"name": "ci"}, bearer(tok)...)
	if r.Status != 201 || !strings.HasPrefix(r.str("key"), "hal9_") {
		t.Fatalf("create: %d %s", r.Status, r.Body)
	}
	key := r.str("key")
	id := r.JSON["api_key"].(map[string]any)["id"].(string)
	s := a.do("POST", "/api/v1/signals", map[string]string{"content": "via key", "layer": "L1"}, "X-API-Key", key)
	if s.Status != 200 {
		t.Fatalf("signal with key: %d %s", s.Status, s.Body)
	}
	l := a.do("GET", "/api/v1/auth/api-keys", nil, "X-API-Key", key)
	if l.Status != 200 || l.JSON["count"].(float64) != 1 || strings.Contains(string(l.Body), key) {
		t.Fatalf("list: %d %s", l.Status, l.Body)
	}
	if d := a.do("DELETE", "/api/v1/auth/api-keys/"+id, nil, bearer(tok)...); d.Status != 204 {
		t.Fatalf("delete: %d %s", d.Status, d.Body)
	}
	if s := a.do("POST", "/api/v1/signals", map[string]string{"content": "via key", "layer": "L1"}, "X-API-Key", key); s.Status != 401 {
		t.Fatalf("revoked key: %d", s.Status)
	}
}

func TestRequestID(t *testing.T) {
	a := startApp(t, nil)
	if r := a.do("GET", "/health", nil, "X-Request-ID", "abc-123"); r.Header.Get("X-Request-ID") != "abc-123" {
		t.Fatalf("X-Request-ID = %q", r.Header.Get("X-Request-ID"))
	}
	if r := a.do("GET", "/health", nil, "X-Request-ID", "bad id with spaces"); r.Header.Get("X-Request-ID") == "bad id with spaces" || len(r.Header.Get("X-Request-ID")) != 24 {
		t.Fatalf("X-Request-ID = %q", r.Header.Get("X-Request-ID"))
	}
}

func TestRateLimit(t *testing.T) {
	// 0.1/s with a burst of 1: the second request in ten seconds is refused.
	a := startApp(t, func(c *Config) { c.RateLimit = 0.1 })
	first := a.do("GET", "/api/v1/status", nil)
	second := a.do("GET", "/api/v1/status", nil)
	if first.Status != 200 || second.Status != 429 || second.errCode() != server.CodeRateLimited {
		t.Fatalf("statuses %d %d %s", first.Status, second.Status, second.Body)
	}
	if ra := second.Header.Get("Retry-After"); ra == "" || ra == "0" {
		t.Fatalf("Retry-After = %q", ra)
	}
	// health probes are never limited.
	if r := a.do("GET", "/health", nil); r.Status != 200 {
		t.Fatalf("health %d", r.Status)
	}
	if n := sum(a.scrape(), "hal9_ratelimit_rejections_total", nil); n < 1 {
		t.Fatalf("hal9_ratelimit_rejections_total = %v", n)
	}
}

func TestReadiness(t *testing.T) {
	t.Run("redis down is degraded", func(t *testing.T) {
		a := startApp(t, func(c *Config) { c.RedisURL = "redis://127.0.0.1:1/0" })
		r := a.do("GET", "/readyz", nil)
		if r.Status != 200 || r.str("status") != "degraded" || !strings.Contains(string(r.Body), "redis") {
			t.Fatalf("readyz %d %s", r.Status, r.Body)
		}
		// signals still work from the process tier and the LLM.
		tok, _ := a.user()
		a.signal(tok, "redis is down", "L2")
		if n := sum(a.scrape(), "hal9_cache_requests_total", map[string]string{"tier": "redis", "result": "error"}); n < 1 {
			t.Fatalf("redis errors not counted: %v", n)
		}
	})
	t.Run("store down is unavailable", func(t *testing.T) {
		a := startApp(t, nil)
		a.app.Store.Close()
		r := a.do("GET", "/readyz", nil)
		if r.Status != 503 || r.str("status") != "unavailable" || !strings.Contains(string(r.Body), "store") {
			t.Fatalf("readyz %d %s", r.Status, r.Body)
		}
		if r := doURL(t, "GET", a.admin+"/readyz", nil); r.Status != 503 {
			t.Fatalf("admin readyz %d", r.Status)
		}
	})
}

func TestAdminListener(t *testing.T) {
	a := startApp(t, nil)
	for _, p := range []string{"/metrics", "/debug/pprof/", "/debug/pprof/goroutine?debug=1", "/health", "/readyz"} {
		r := doURL(t, "GET", a.admin+p, nil)
		if r.Status != 200 {
			t.Errorf("admin %s: %d", p, r.Status)
		}
		if p == "/health" || p == "/readyz" {
			continue
		}
		if r := a.do("GET", p, nil); r.Status != 404 {
			t.Errorf("API %s: %d, want 404", p, r.Status)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Config)
		want   string // "" = valid
	}{
		{"defaults", func(*Config) {}, ""},
		{"bad addr", func(c *Config) { c.Addr = "localhost" }, "--addr (HAL9_ADDR)"},
		{"bad port", func(c *Config) { c.Addr = "127.0.0.1:99999" }, "0..65535"},
		{"same addrs", func(c *Config) { c.AdminAddr = c.Addr }, "must not share"},
		{"bad db scheme", func(c *Config) { c.DatabaseURL = "mysql://x" }, "unknown scheme"},
		{"sqlite no path", func(c *Config) { c.DatabaseURL = "sqlite://" }, "no file path"},
		{"postgres ok", func(c *Config) { c.DatabaseURL = "postgres://u:p@h:5432/db" }, ""},
		{"bad redis", func(c *Config) { c.RedisURL = "http://x" }, "--redis-url"},
		{"bad strategy", func(c *Config) { c.CacheStrategy = "lru" }, "aside, through or behind"},
		{"pool sizes", func(c *Config) { c.DBMinConns = 200 }, "--db-min-conns"},
		{"negative rate", func(c *Config) { c.RateLimit = -1 }, "--rate-limit (HAL9_RATE_LIMIT)"},
		{"negative scale", func(c *Config) { c.LLMLatencyScale = -0.5 }, "--llm-latency-scale"},
		{"error rate", func(c *Config) { c.LLMErrorRate = 1.5 }, "within [0, 1]"},
		{"unknown llm", func(c *Config) { c.LLM = "gpt" }, "sim or anthropic"},
		{"anthropic no key", func(c *Config) { c.LLM = "anthropic" }, "ANTHROPIC_API_KEY"},
		{"unknown model", func(c *Config) { c.LLMModel = "llama" }, "no price known"},
		{"short secret", func(c *Config) { c.JWTSecret = "short" }, "at least 32"},
		{"bad topology", func(c *Config) { c.Topology = "L9=1" }, "--topology"},
		{"bad pyroscope", func(c *Config) { c.PyroscopeURL = "localhost:4040" }, "--pyroscope-url"},
		{"bad log level", func(c *Config) { c.LogLevel = "loud" }, "--log-level"},
		{"zero ttl", func(c *Config) { c.L1TTL = 0 }, "--l1-ttl"},
		{"zero shutdown", func(c *Config) { c.ShutdownTimeout = 0 }, "--shutdown-timeout"},
		{"negative auth rate", func(c *Config) { c.AuthRateLimit = -1 }, "--auth-rate-limit (HAL9_AUTH_RATE_LIMIT)"},
		{"auth limit off", func(c *Config) { c.AuthRateLimit, c.AuthBurst, c.LoginFailuresPerUser = 0, 0, 0 }, ""},
		{"zero burst", func(c *Config) { c.AuthBurst = 0 }, "--auth-burst (HAL9_AUTH_BURST)"},
		{"negative login failures", func(c *Config) { c.LoginFailuresPerUser = -3 }, "--login-failures-per-user"},
		{"short failure window", func(c *Config) { c.LoginFailureWindow = time.Millisecond }, "--login-failure-window"},
		{"negative failure ceiling", func(c *Config) { c.LoginFailureCeiling = -1 }, "--login-failure-ceiling (HAL9_LOGIN_FAILURE_CEILING) -1: must be 0 (off) or a positive number"},
		{"ceiling under the per-address limit", func(c *Config) { c.LoginFailureCeiling = 5 }, "--login-failure-ceiling (HAL9_LOGIN_FAILURE_CEILING) 5: must be at least --login-failures-per-user (10)"},
		{"user share zero", func(c *Config) { c.LLMBudgetPerUser = 0 }, "--llm-budget-per-user (HAL9_LLM_BUDGET_PER_USER) 0: must be a share of each budget above 0 and at most 1"},
		{"user share over one", func(c *Config) { c.LLMBudgetPerUser = 1.5 }, "--llm-budget-per-user (HAL9_LLM_BUDGET_PER_USER) 1.5"},
		{"negative calls per user", func(c *Config) { c.LLMCallsPerUser = -1 }, "--llm-calls-per-user (HAL9_LLM_CALLS_PER_USER) -1: must be 0 (no cap)"},
		{"tiny read timeout", func(c *Config) { c.HTTPReadTimeout = time.Millisecond }, "--http-read-timeout (HAL9_HTTP_READ_TIMEOUT)"},
		{"no read timeout", func(c *Config) { c.HTTPReadTimeout = 0 }, ""},
		{"tiny idle timeout", func(c *Config) { c.HTTPIdleTimeout = 0 }, "--http-idle-timeout"},
		{"write timeout under the llm's", func(c *Config) { c.HTTPWriteTimeout = time.Second }, "shorter than --llm-timeout"},
		{"negative max conns", func(c *Config) { c.HTTPMaxConns = -1 }, "--http-max-conns"},
		{"admin host with a port", func(c *Config) { c.AdminAllowedHosts = "metrics.internal:9091" }, "--admin-allowed-hosts (HAL9_ADMIN_ALLOWED_HOSTS)"},
		{"admin hosts", func(c *Config) { c.AdminAllowedHosts = "metrics.internal, .svc.cluster.local" }, ""},
		{"per-client cap over the server's", func(c *Config) { c.HTTPMaxConnsPerClient = 20_000 }, "--http-max-conns-per-client (HAL9_HTTP_MAX_CONNS_PER_CLIENT)"},
		{"negative per-client cap", func(c *Config) { c.HTTPMaxConnsPerClient = -1 }, "--http-max-conns-per-client"},
		{"per-client cap off", func(c *Config) { c.HTTPMaxConnsPerClient = 0 }, ""},
		{"long refresh grace", func(c *Config) { c.RefreshReuseGrace = 5 * time.Minute }, "--refresh-reuse-grace (HAL9_REFRESH_REUSE_GRACE)"},
		{"refresh grace off", func(c *Config) { c.RefreshReuseGrace = 0 }, ""},
		{"delay over a quarter", func(c *Config) { c.ShutdownDelay = 20 * time.Second }, "--shutdown-delay (HAL9_SHUTDOWN_DELAY)"},
		{"per-user share over the queue", func(c *Config) { c.AsyncQueuePerUser = 5000 }, "--async-queue-per-user"},
		{"no committers", func(c *Config) { c.DBCommitters = 0 }, "--db-committers (HAL9_DB_COMMITTERS) 0: must be 1..64"},
		{"one committer", func(c *Config) { c.DBCommitters = 1 }, ""},
		{"async max under the min", func(c *Config) { c.AsyncWorkers, c.AsyncWorkersMax = 16, 8 }, "--async-workers-max (HAL9_ASYNC_WORKERS_MAX) 8: must be between --async-workers (16) and 4096"},
		{"async max huge", func(c *Config) { c.AsyncWorkersMax = 5000 }, "--async-workers-max (HAL9_ASYNC_WORKERS_MAX) 5000"},
		{"async fixed pool", func(c *Config) { c.AsyncWorkers, c.AsyncWorkersMax = 8, 8 }, ""},
		{"zero hourly budget", func(c *Config) { c.LLMBudgetHourly = 0 }, "--llm-budget-hourly"},
		{"negative daily budget", func(c *Config) { c.LLMBudgetDaily = -1 }, "--llm-budget-daily"},
		{"bad enforce", func(c *Config) { c.LLMBudgetEnforce = "maybe" }, "auto (on with --llm anthropic"},
		{"capacity rated", func(c *Config) { c.CapacityRPS = 1077 }, ""},
		{"negative capacity", func(c *Config) { c.CapacityRPS = -5 }, "--capacity-rps (HAL9_CAPACITY_RPS) -5: must be a positive number"},
		{"capacity NaN", func(c *Config) { c.CapacityRPS = math.NaN() }, "--capacity-rps (HAL9_CAPACITY_RPS) NaN"},
		{"capacity infinite", func(c *Config) { c.CapacityRPS = math.Inf(1) }, "--capacity-rps (HAL9_CAPACITY_RPS) +Inf"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			tt.mutate(&c)
			err := c.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

// TestDerivedLimits: the values that follow from others.
func TestDerivedLimits(t *testing.T) {
	c := DefaultConfig()
	if got, want := c.WriteTimeout(), 5*30*time.Second+30*time.Second; got != want {
		t.Errorf("derived write timeout %v, want %v (5 layers × --llm-timeout + 30s)", got, want)
	}
	c.HTTPWriteTimeout = 10 * time.Minute
	if c.WriteTimeout() != 10*time.Minute {
		t.Errorf("--http-write-timeout not used: %v", c.WriteTimeout())
	}
	// 1024 queued / 8 workers = 128 jobs ahead, + its own, × (5 × 30s + 15s), + 1m.
	if got, want := c.PendingMaxAge(), 129*165*time.Second+time.Minute; got != want {
		t.Errorf("pending max age %v, want %v", got, want)
	}
	c.AsyncQueue, c.AsyncWorkers, c.LLMTimeout = 10, 5, time.Second
	if got, want := c.PendingMaxAge(), 3*20*time.Second+time.Minute; got != want {
		t.Errorf("pending max age with a short queue %v, want %v", got, want)
	}
	for _, e := range []struct {
		llm, flag string
		want      bool
	}{{"sim", "auto", false}, {"anthropic", "auto", true}, {"sim", "on", true}, {"anthropic", "off", false}} {
		c.LLM, c.LLMBudgetEnforce = e.llm, e.flag
		if got, err := c.BudgetEnforced(); err != nil || got != e.want {
			t.Errorf("--llm %s --llm-budget-enforce %s: %v %v, want %v", e.llm, e.flag, got, err, e.want)
		}
	}
	c = DefaultConfig()
	l := c.credentialLimits()
	if l.PerAddress.Period != time.Second || l.PerAddress.Burst != 20 || l.FailedLogins.Rate != 10 || l.FailedLogins.Period != 15*time.Minute ||
		l.PerNetwork.Rate != 16 || l.PerNetwork.Period != time.Second || l.PerNetwork.Burst != 320 ||
		l.FailureCeiling.Rate != 100 || l.FailureCeiling.Burst != 100 || l.FailureCeiling.Period != 15*time.Minute {
		t.Errorf("credential limits from the defaults: %+v", l)
	}
	c.AuthRateLimit, c.LoginFailuresPerUser = 0, 0
	if l := c.credentialLimits(); !l.PerAddress.Off() || !l.PerNetwork.Off() || !l.FailedLogins.Off() || !l.FailureCeiling.Off() {
		t.Errorf("0 must turn the credential limits off: %+v", l)
	}
}

func TestOpenRejectsBadConfig(t *testing.T) {
	cfg := testConfig(t)
	cfg.CacheStrategy = "nope"
	if _, err := Open(context.Background(), cfg, nil); err == nil || !strings.Contains(err.Error(), "cache-strategy") {
		t.Fatalf("err = %v", err)
	}
}

func TestOpenUnreachableDatabase(t *testing.T) {
	cfg := testConfig(t)
	cfg.DatabaseURL = "postgres://postgres@127.0.0.1:1/x?sslmode=disable"
	_, err := Open(context.Background(), cfg, nil)
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Fatalf("err = %v", err)
	}
}

func TestTopologyPersisted(t *testing.T) {
	a := startApp(t, func(c *Config) { c.Topology = "L1=3,L5=1" })
	r := a.do("GET", "/api/v1/neurons", nil)
	if r.JSON["count"].(float64) != 10 {
		t.Fatalf("neurons %s", r.Body)
	}
	ns, err := a.app.Store.ListNeurons(context.Background())
	if err != nil || len(ns) != 10 {
		t.Fatalf("stored neurons %d %v", len(ns), err)
	}
	if r := a.do("GET", "/api/v1/neurons/l1-reflexive-3", nil); r.Status != 200 {
		t.Fatalf("l1-reflexive-3: %d", r.Status)
	}
	if r := a.do("GET", "/api/v1/neurons/l5-strategic-2", nil); r.Status != 404 {
		t.Fatalf("l5-strategic-2: %d", r.Status)
	}
}

func TestPyroscopeWired(t *testing.T) {
	got := make(chan string, 100)
	ing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case got <- r.URL.Path + "?" + r.URL.RawQuery:
		default:
		}
	}))
	defer ing.Close()
	a := startApp(t, func(c *Config) { c.PyroscopeURL = ing.URL })
	if err := a.stop(); err != nil { // stopping flushes the profiles
		t.Fatal(err)
	}
	select {
	case q := <-got:
		if !strings.HasPrefix(q, "/ingest?") || !strings.Contains(q, "hal9") {
			t.Fatalf("ingest %s", q)
		}
	default:
		t.Fatal("no profile uploaded on shutdown")
	}
}

// TestOpenConnectionsGauge: the API listener counts open connections,
// keep-alive ones included, and forgets them when they close.
func TestOpenConnectionsGauge(t *testing.T) {
	a := startApp(t, nil)
	tr := &http.Transport{}
	c := &http.Client{Transport: tr}
	for i := 0; i < 3; i++ {
		r, err := c.Get(a.api + "/health")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, r.Body)
		r.Body.Close()
	}
	if v := sum(a.scrape(), "hal9_http_open_connections", nil); v != 1 {
		t.Fatalf("open connections with one idle keep-alive connection = %v, want 1", v)
	}
	tr.CloseIdleConnections()
	deadline := time.Now().Add(5 * time.Second)
	for sum(a.scrape(), "hal9_http_open_connections", nil) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("open connections did not return to 0 after the client closed its connection")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestCapacityGauge: --capacity-rps is exported on the admin listener's
// /metrics; unset, the gauge is absent (the capacity rules stay silent).
func TestCapacityGauge(t *testing.T) {
	for _, rps := range []float64{0, 1077} {
		a := startApp(t, func(c *Config) { c.CapacityRPS = rps })
		body := string(doURL(t, "GET", a.admin+"/metrics", nil).Body)
		has := strings.Contains(body, "\nhal9_capacity_requests_per_second 1077\n")
		if present := strings.Contains(body, "hal9_capacity_requests_per_second"); present != (rps > 0) || has != (rps > 0) {
			t.Errorf("--capacity-rps %g: gauge present %v, with the value %v", rps, present, has)
		}
	}
}
