package app

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/hal9-lab/hal9-lab/server"
)

// TestAuthFailureReasons: a 401 says exactly why the credentials were
// refused and how to fix it.
func TestAuthFailureReasons(t *testing.T) {
	a := startApp(t, nil)
	name := "reasons-user"
	_, userID := a.userNamed(name)
	login := a.do("POST", "/api/v1/auth/login", map[string]string{"username": name, "password": "password-" + name})
	expired, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"token_type": "access", "sub": userID, "iss": "hal9",
		"iat": time.Now().Add(-time.Hour).Unix(), "exp": time.Now().Add(-time.Minute).Unix(),
	}).SignedString([]byte(strings.Repeat("k", 32))) // testConfig's JWT secret
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		hdr  []string
		want []string // substrings of the message
	}{
		{"expired", bearer(expired), []string{"expired", "/api/v1/auth/refresh"}},
		{"refresh as access", bearer(login.str("refresh_token")), []string{`"refresh" token where a "access" token is required`, "not the refresh_token"}},
		{"malformed key", []string{"X-API-Key", "hal9_short"}, []string{"malformed API key"}},
		{"unknown key", []string{"X-API-Key", "hal9_" + strings.Repeat("A", 43)}, []string{"unknown or revoked API key"}},
		{"garbage token", bearer("not.a.token"), []string{"authentication failed: invalid token", "log in again"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := a.do("GET", "/api/v1/auth/profile", nil, c.hdr...)
			if r.Status != http.StatusUnauthorized || r.errCode() != server.CodeUnauthorized {
				t.Fatalf("%d %s", r.Status, r.Body)
			}
			for _, w := range c.want {
				if !strings.Contains(r.errMsg(), w) {
					t.Errorf("message %q lacks %q", r.errMsg(), w)
				}
			}
			if !strings.Contains(r.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
				t.Errorf("WWW-Authenticate = %q", r.Header.Get("WWW-Authenticate"))
			}
		})
	}
}

// TestFailedAuthRateLimited: with --rate-limit 2, a flood of bad API keys
// from one address gets 429s, not an endless stream of 401s.
func TestFailedAuthRateLimited(t *testing.T) {
	a := startApp(t, func(c *Config) { c.RateLimit = 2 })
	var got []int
	for range 10 {
		got = append(got, a.do("GET", "/api/v1/auth/profile", nil, "X-API-Key", "hal9_bad").Status)
	}
	// burst 2: the first two are answered 401; the refill of 2/s could let
	// a few more through only if the loop took seconds, so at least one
	// 429 is required.
	if got[0] != http.StatusUnauthorized || got[1] != http.StatusUnauthorized {
		t.Fatalf("statuses %v: the first two should be 401", got)
	}
	n429 := 0
	for _, s := range got[2:] {
		if s == http.StatusTooManyRequests {
			n429++
		} else if s != http.StatusUnauthorized {
			t.Fatalf("statuses %v: only 401 and 429 expected", got)
		}
	}
	if n429 == 0 {
		t.Fatalf("statuses %v: no 429 for a flood of bad keys", got)
	}
	r := a.do("GET", "/api/v1/auth/profile", nil, "X-API-Key", "hal9_bad")
	if r.Status == http.StatusTooManyRequests && (r.errCode() != server.CodeRateLimited || r.Header.Get("Retry-After") == "") {
		t.Fatalf("429 without rate_limited code or Retry-After: %v %s", r.Header, r.Body)
	}
}
