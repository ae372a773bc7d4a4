package app

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hal9-lab/hal9-lab/lab/infra/infratest"
	"github.com/hal9-lab/hal9-lab/server"
)

// TestRefreshRotationOverHTTP: refresh hands out a new refresh token and
// retires the old one; a retry with the old one right away (the client lost
// the answer) gets the same new token; a replay once that was used is 401
// and ends the login; logout ends one.
func TestRefreshRotationOverHTTP(t *testing.T) {
	a := startApp(t, nil)
	a.userNamed("rot")
	login := func() resp {
		r := a.do("POST", "/api/v1/auth/login", map[string]string{"username": "rot", "password": "password-rot"})
		if r.Status != http.StatusOK {
			t.Fatalf("login: %d %s", r.Status, r.Body)
		}
		return r
	}
	refresh := func(tok string) resp {
		return a.do("POST", "/api/v1/auth/refresh", map[string]string{"refresh_token": tok})
	}
	first := login().str("refresh_token")
	r := refresh(first)
	if r.Status != http.StatusOK || r.str("refresh_token") == "" || r.str("refresh_token") == first {
		t.Fatalf("refresh: %d %s; want a new refresh token", r.Status, r.Body)
	}
	second := r.str("refresh_token")
	if r := refresh(first); r.Status != http.StatusOK || r.str("refresh_token") != second {
		t.Fatalf("a retry with the old token within --refresh-reuse-grace: %d %s; want 200 and the same new refresh token", r.Status, r.Body)
	}
	r = refresh(second)
	if r.Status != http.StatusOK {
		t.Fatalf("refresh with the new token: %d %s", r.Status, r.Body)
	}
	third := r.str("refresh_token")
	if r := refresh(first); r.Status != http.StatusUnauthorized || !strings.Contains(r.errMsg(), "already used") {
		t.Fatalf("replayed refresh token after its successor was used: %d %s; want 401 naming the reuse", r.Status, r.Body)
	}
	if r := refresh(third); r.Status != http.StatusUnauthorized || !strings.Contains(r.errMsg(), "ended") {
		t.Fatalf("the newest token after a replay: %d %s; want 401 (the login was revoked)", r.Status, r.Body)
	}

	other := login().str("refresh_token")
	if r := a.do("POST", "/api/v1/auth/logout", map[string]string{"refresh_token": other}); r.Status != http.StatusNoContent {
		t.Fatalf("logout: %d %s", r.Status, r.Body)
	}
	if r := refresh(other); r.Status != http.StatusUnauthorized {
		t.Fatalf("refresh after logout: %d %s", r.Status, r.Body)
	}
	if r := a.do("POST", "/api/v1/auth/logout", map[string]string{}); r.Status != http.StatusBadRequest {
		t.Fatalf("logout without a token: %d %s", r.Status, r.Body)
	}
	if r := a.do("POST", "/api/v1/auth/logout", map[string]string{"refresh_token": "not.a.token"}); r.Status != http.StatusUnauthorized {
		t.Fatalf("logout with garbage: %d %s", r.Status, r.Body)
	}
}

// TestCredentialLimits: past the per-address burst the credential routes
// answer 429 with Retry-After (other routes are untouched); past the failed
// logins of a username its logins are refused, right password included,
// before any password check.
func TestCredentialLimits(t *testing.T) {
	a := startApp(t, func(c *Config) {
		c.AuthRateLimit, c.AuthBurst = 0.001, 6 // 6, then one per 1000 s
		c.LoginFailuresPerUser, c.LoginFailureWindow = 2, time.Hour
	})
	a.userNamed("lim") // register + login: 2 of the 6
	bad := map[string]string{"username": "lim", "password": "wrong-password"}
	for i := range 2 {
		if r := a.do("POST", "/api/v1/auth/login", bad); r.Status != http.StatusUnauthorized {
			t.Fatalf("wrong password %d: %d %s", i, r.Status, r.Body)
		}
	}
	r := a.do("POST", "/api/v1/auth/login", map[string]string{"username": "lim", "password": "password-lim"})
	if r.Status != http.StatusTooManyRequests || r.Header.Get("Retry-After") == "" || !strings.Contains(r.errMsg(), "failed logins for this username") {
		t.Fatalf("right password after the username's failures: %d %s %v", r.Status, r.Body, r.Header)
	}
	// 5 of 6 used; the 6th passes, the 7th is refused per address.
	if r := a.do("POST", "/api/v1/auth/refresh", map[string]string{"refresh_token": "x"}); r.Status != http.StatusUnauthorized {
		t.Fatalf("6th credential request: %d %s", r.Status, r.Body)
	}
	r = a.do("POST", "/api/v1/auth/register", map[string]string{"username": "lim2", "email": "lim2@example.com", "password": "password-lim2"})
	if r.Status != http.StatusTooManyRequests || r.errCode() != server.CodeRateLimited || r.Header.Get("Retry-After") == "" {
		t.Fatalf("past the address's burst: %d %s", r.Status, r.Body)
	}
	if r := a.do("GET", "/api/v1/status", nil); r.Status != http.StatusOK {
		t.Fatalf("status during the credential limit: %d", r.Status)
	}
	m := a.scrape()
	if sum(m, "hal9_auth_limited_total", map[string]string{"scope": "address"}) != 1 || sum(m, "hal9_auth_limited_total", map[string]string{"scope": "user"}) != 1 {
		t.Fatalf("hal9_auth_limited_total: address %v user %v", sum(m, "hal9_auth_limited_total", map[string]string{"scope": "address"}),
			sum(m, "hal9_auth_limited_total", map[string]string{"scope": "user"}))
	}
}

// TestCredentialLimitsSharedInRedis: two servers on one Redis count one
// address together.
func TestCredentialLimitsSharedInRedis(t *testing.T) {
	url := infratest.RedisURL(t)
	limited := func(c *Config) { c.RedisURL, c.AuthRateLimit, c.AuthBurst = url, 0.001, 3 }
	a, b := startApp(t, limited), startApp(t, limited)
	codes := []int{}
	for i, s := range []*testApp{a, b, a, b} {
		r := s.do("POST", "/api/v1/auth/refresh", map[string]string{"refresh_token": fmt.Sprint("x", i)})
		codes = append(codes, r.Status)
	}
	if fmt.Sprint(codes) != "[401 401 401 429]" {
		t.Fatalf("statuses across two servers %v; want the 4th refused: the burst of 3 is shared", codes)
	}
}

// TestSecretSharedAcrossRestartAndServers: without --jwt-secret the secret
// is kept in the database: a token survives a restart and works on another
// server on the same database.
func TestSecretSharedAcrossRestartAndServers(t *testing.T) {
	dir := t.TempDir()
	noSecret := func(c *Config) { c.JWTSecret, c.DataDir = "", dir }
	a := startApp(t, noSecret)
	tok, _ := a.userNamed("keeper")
	b := startApp(t, noSecret) // a second server on the same database file
	if r := b.do("GET", "/api/v1/auth/profile", nil, bearer(tok)...); r.Status != http.StatusOK {
		t.Fatalf("the other server refused the token: %d %s", r.Status, r.Body)
	}
	if err := a.stop(); err != nil {
		t.Fatal(err)
	}
	if err := b.stop(); err != nil {
		t.Fatal(err)
	}
	c := startApp(t, noSecret) // a restart
	if r := c.do("GET", "/api/v1/auth/profile", nil, bearer(tok)...); r.Status != http.StatusOK {
		t.Fatalf("the restarted server refused the token: %d %s", r.Status, r.Body)
	}
	d := startApp(t, func(c *Config) { c.DataDir = dir }) // --jwt-secret wins over the stored one
	if r := d.do("GET", "/api/v1/auth/profile", nil, bearer(tok)...); r.Status != http.StatusUnauthorized {
		t.Fatalf("a server with its own --jwt-secret accepted the stored secret's token: %d", r.Status)
	}
}

// TestReadinessDetailsOnlyOnAdmin: the API's /readyz names no backend
// error; the admin listener's does.
func TestReadinessDetailsOnlyOnAdmin(t *testing.T) {
	a := startApp(t, nil)
	a.app.Store.Close() // the database goes away
	api := a.do("GET", "/readyz", nil)
	admin := doURL(t, "GET", a.admin+"/readyz", nil)
	if api.Status != http.StatusServiceUnavailable || admin.Status != http.StatusServiceUnavailable {
		t.Fatalf("readyz with the store closed: api %d, admin %d", api.Status, admin.Status)
	}
	if strings.Contains(string(api.Body), "sqlite") || !strings.Contains(string(api.Body), "store unavailable") {
		t.Fatalf("API readyz leaks or lacks the reason: %s", api.Body)
	}
	if !strings.Contains(string(admin.Body), "sqlite") {
		t.Fatalf("admin readyz lacks the detail: %s", admin.Body)
	}
	if r := doURL(t, "GET", a.admin+"/debug/pprof/cmdline", nil); r.Status != http.StatusNotFound {
		t.Fatalf("/debug/pprof/cmdline: %d, want 404 (it would show secrets passed as flags)", r.Status)
	}
}
