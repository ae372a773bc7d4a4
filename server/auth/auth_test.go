package auth

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/crypto/bcrypt"

	"github.com/hal9-lab/hal9-lab/server/store"
	"github.com/hal9-lab/hal9-lab/server/store/sqlite"
)

var secret = []byte("0123456789abcdef0123456789abcdef")

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type fixture struct {
	svc   *Service
	st    *sqlite.Store
	clock *clock
	reg   *prometheus.Registry
}

func newFixture(t *testing.T) *fixture { t.Helper(); return newFixtureWith(t, Options{}) }

// newFixtureWith: opts over the fixture's secret, bcrypt cost and clock.
func newFixtureWith(t *testing.T, opts Options) *fixture {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "auth.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	clk := &clock{t: time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)}
	reg := prometheus.NewPedanticRegistry()
	opts.Secret, opts.BcryptCost, opts.Now = secret, bcrypt.MinCost, clk.Now
	svc, err := NewService(st, opts, reg)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{svc: svc, st: st, clock: clk, reg: reg}
}

func (f *fixture) failures(reason string) float64 {
	return testutil.ToFloat64(f.svc.failures.WithLabelValues(reason))
}

// expectFailure runs fn and checks the error, that it carries the given
// reason (FailureReason) and that exactly that reason counter moved by one
// (or none when reason is "").
func (f *fixture) expectFailure(t *testing.T, name string, want error, reason string, fn func() error) {
	t.Helper()
	before := map[string]float64{}
	for _, r := range reasons {
		before[r] = f.failures(r)
	}
	err := fn()
	if !errors.Is(err, want) {
		t.Fatalf("%s: error %v, want %v", name, err, want)
	}
	if got := FailureReason(err); got != reason {
		t.Fatalf("%s: FailureReason = %q, want %q", name, got, reason)
	}
	for _, r := range reasons {
		d := f.failures(r) - before[r]
		if w := map[bool]float64{true: 1, false: 0}[r == reason]; d != w {
			t.Fatalf("%s: hal9_auth_failures_total{reason=%q} moved by %v, want %v", name, r, d, w)
		}
	}
}

func TestNewServiceErrors(t *testing.T) {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "a.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cases := []struct {
		name string
		st   store.Store
		opts Options
		want string
	}{
		{"short secret", st, Options{Secret: []byte("short")}, "at least 32"},
		{"no secret", st, Options{}, "at least 32"},
		{"bcrypt cost too low", st, Options{Secret: secret, BcryptCost: 2}, "bcrypt cost"},
		{"bcrypt cost too high", st, Options{Secret: secret, BcryptCost: 40}, "bcrypt cost"},
		{"negative ttl", st, Options{Secret: secret, AccessTTL: -time.Second}, "lifetimes"},
		{"nil store", nil, Options{Secret: secret}, "nil store"},
	}
	for _, c := range cases {
		if _, err := NewService(c.st, c.opts, nil); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: NewService = %v, want an error mentioning %q", c.name, err, c.want)
		}
	}
	// Registering twice on one registry reuses the counter.
	reg := prometheus.NewRegistry()
	for i := 0; i < 2; i++ {
		if _, err := NewService(st, Options{Secret: secret, BcryptCost: bcrypt.MinCost}, reg); err != nil {
			t.Fatalf("NewService #%d on the same registry: %v", i+1, err)
		}
	}
}

func TestRegisterValidation(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	cases := []struct {
		name, user, email, pass string
		want                    []error
		field                   string
	}{
		{"short username", "ab", "a@example.com", "password1", []error{ErrInvalidInput}, "username"},
		{"long username", strings.Repeat("a", 65), "a@example.com", "password1", []error{ErrInvalidInput}, "username"},
		{"space in username", "a b c", "a@example.com", "password1", []error{ErrInvalidInput}, "username"},
		{"non-ascii username", "josé", "a@example.com", "password1", []error{ErrInvalidInput}, "username"},
		{"empty email", "alice", "", "password1", []error{ErrInvalidInput}, "email"},
		{"not an email", "alice", "alice", "password1", []error{ErrInvalidInput}, "email"},
		{"display name", "alice", "Alice <a@example.com>", "password1", []error{ErrInvalidInput}, "email"},
		{"no dot in domain", "alice", "a@localhost", "password1", []error{ErrInvalidInput}, "email"},
		{"short password", "alice", "a@example.com", "1234567", []error{ErrInvalidInput, ErrWeakPassword}, "password"},
		{"long password", "alice", "a@example.com", strings.Repeat("x", 73), []error{ErrInvalidInput}, "password"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := f.svc.Register(ctx, c.user, c.email, c.pass)
			for _, w := range c.want {
				if !errors.Is(err, w) {
					t.Fatalf("Register: %v, want %v", err, w)
				}
			}
			if !strings.Contains(err.Error(), c.field+":") {
				t.Fatalf("error %q does not name the field %q", err, c.field)
			}
			if c.name == "long password" && errors.Is(err, ErrWeakPassword) {
				t.Fatal("a too-long password is not a weak one")
			}
		})
	}
	// Boundaries that are fine.
	if _, err := f.svc.Register(ctx, "a.b-c_9", "Edge@Example.com", "12345678"); err != nil {
		t.Fatalf("valid edge input rejected: %v", err)
	}
	if _, err := f.svc.Register(ctx, strings.Repeat("z", 64), "z@example.com", strings.Repeat("p", 72)); err != nil {
		t.Fatalf("64-char username / 72-byte password rejected: %v", err)
	}
}

func TestRegisterAndLogin(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	u, err := f.svc.Register(ctx, "alice", "Alice@Example.com", "correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if u.ID == "" || u.Email != "alice@example.com" || u.PasswordHash == "correct horse" || !strings.HasPrefix(u.PasswordHash, "$2") {
		t.Fatalf("registered user: %+v", u)
	}
	var taken *TakenError
	_, err = f.svc.Register(ctx, "alice", "other@example.com", "correct horse")
	if !errors.Is(err, store.ErrConflict) || !strings.Contains(err.Error(), "username") || !errors.As(err, &taken) || taken.Field != "username" {
		t.Fatalf("duplicate username: %v, want a *TakenError (ErrConflict) naming username", err)
	}
	_, err = f.svc.Register(ctx, "alice2", "ALICE@example.com", "correct horse")
	if !errors.Is(err, store.ErrConflict) || !strings.Contains(err.Error(), "email") || !errors.As(err, &taken) || taken.Field != "email" {
		t.Fatalf("duplicate email (other case): %v, want a *TakenError (ErrConflict) naming email", err)
	}

	tok, lu, err := f.svc.Login(ctx, "alice", "correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if lu.ID != u.ID || tok.AccessToken == "" || tok.RefreshToken == "" || tok.ExpiresIn != 900 {
		t.Fatalf("Login = %+v, %+v", tok, lu)
	}

	cases := []struct {
		name, user, pass string
		want             error
		reason           string
	}{
		{"wrong password", "alice", "wrong horse", ErrInvalidCredentials, ReasonBadPassword},
		{"unknown user", "bob", "correct horse", ErrInvalidCredentials, ReasonUnknownUser},
		{"overlong password", "alice", strings.Repeat("x", 100), ErrInvalidCredentials, ReasonBadPassword},
		{"empty username", "", "x", ErrInvalidInput, ""},
		{"empty password", "alice", "", ErrInvalidInput, ""},
	}
	for _, c := range cases {
		f.expectFailure(t, c.name, c.want, c.reason, func() error {
			_, _, err := f.svc.Login(ctx, c.user, c.pass)
			return err
		})
	}
}

func request(headers ...string) *http.Request {
	r := httptest.NewRequest("GET", "/api/v1/auth/profile", nil)
	for i := 0; i+1 < len(headers); i += 2 {
		r.Header.Set(headers[i], headers[i+1])
	}
	return r
}

func TestTokens(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	u, err := f.svc.Register(ctx, "carol", "carol@example.com", "password1")
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := f.svc.Login(ctx, "carol", "password1")
	if err != nil {
		t.Fatal(err)
	}

	p, err := f.svc.Authenticate(request("Authorization", "Bearer "+tok.AccessToken))
	if err != nil || p.UserID != u.ID || p.Username != "carol" || p.Method != MethodToken {
		t.Fatalf("Authenticate(access) = %+v, %v", p, err)
	}
	if _, err := f.svc.Authenticate(request("Authorization", "bearer  "+tok.AccessToken)); err != nil {
		t.Fatalf("lower-case scheme: %v", err)
	}

	forge := func(method jwt.SigningMethod, key any, mutate func(*claims)) string {
		now := f.clock.Now()
		c := claims{TokenType: TypeAccess, RegisteredClaims: jwt.RegisteredClaims{
			Issuer: DefaultIssuer, Subject: u.ID, IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(time.Minute))}}
		if mutate != nil {
			mutate(&c)
		}
		s, err := jwt.NewWithClaims(method, c).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	parts := strings.Split(tok.AccessToken, ".")
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"someone-else","token_type":"access"}`)) + "." + parts[2]

	cases := []struct {
		name   string
		req    *http.Request
		want   error
		reason string
	}{
		{"no credentials", request(), ErrMissingCredentials, ReasonMissing},
		{"empty bearer", request("Authorization", "Bearer "), ErrMissingCredentials, ReasonMissing},
		{"basic scheme", request("Authorization", "Basic YTpi"), ErrInvalidToken, ReasonInvalidToken},
		{"garbage", request("Authorization", "Bearer not.a.jwt"), ErrInvalidToken, ReasonInvalidToken},
		{"refresh as access", request("Authorization", "Bearer "+tok.RefreshToken), ErrInvalidToken, ReasonWrongType},
		{"tampered payload", request("Authorization", "Bearer "+tampered), ErrInvalidToken, ReasonInvalidToken},
		{"other secret", request("Authorization", "Bearer "+forge(jwt.SigningMethodHS256, []byte("another-secret-another-secret-xx"), nil)), ErrInvalidToken, ReasonInvalidToken},
		{"alg none", request("Authorization", "Bearer "+forge(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, nil)), ErrInvalidToken, ReasonInvalidToken},
		{"alg HS512", request("Authorization", "Bearer "+forge(jwt.SigningMethodHS512, secret, nil)), ErrInvalidToken, ReasonInvalidToken},
		{"other issuer", request("Authorization", "Bearer "+forge(jwt.SigningMethodHS256, secret, func(c *claims) { c.Issuer = "evil" })), ErrInvalidToken, ReasonInvalidToken},
		{"no expiry", request("Authorization", "Bearer "+forge(jwt.SigningMethodHS256, secret, func(c *claims) { c.ExpiresAt = nil })), ErrInvalidToken, ReasonInvalidToken},
		{"no type", request("Authorization", "Bearer "+forge(jwt.SigningMethodHS256, secret, func(c *claims) { c.TokenType = "" })), ErrInvalidToken, ReasonWrongType},
		{"issued in the future", request("Authorization", "Bearer "+forge(jwt.SigningMethodHS256, secret, func(c *claims) {
			c.IssuedAt = jwt.NewNumericDate(f.clock.Now().Add(ClockSkew + time.Second))
		})), ErrInvalidToken, ReasonInvalidToken},
		{"not valid before a time beyond the skew", request("Authorization", "Bearer "+forge(jwt.SigningMethodHS256, secret, func(c *claims) {
			c.NotBefore = jwt.NewNumericDate(f.clock.Now().Add(ClockSkew + time.Second))
		})), ErrInvalidToken, ReasonInvalidToken},
	}
	for _, c := range cases {
		f.expectFailure(t, c.name, c.want, c.reason, func() error { _, err := f.svc.Authenticate(c.req); return err })
	}

	// Refresh: only refresh tokens.
	f.expectFailure(t, "refresh with an access token", ErrInvalidToken, ReasonWrongType, func() error {
		_, err := f.svc.Refresh(ctx, tok.AccessToken)
		return err
	})
	f.expectFailure(t, "refresh with nothing", ErrMissingCredentials, ReasonMissing, func() error {
		_, err := f.svc.Refresh(ctx, "")
		return err
	})
	ghost, _, err := f.svc.sign(store.User{ID: "ghost", Username: "ghost"}, TypeRefresh, "fam-ghost", f.clock.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	f.expectFailure(t, "refresh for a user that is gone", ErrInvalidToken, ReasonUnknownUser, func() error {
		_, err := f.svc.Refresh(ctx, ghost)
		return err
	})

	// A server whose clock is up to ClockSkew behind the signer's accepts
	// a token issued "in the future".
	skewed := forge(jwt.SigningMethodHS256, secret, func(c *claims) {
		c.IssuedAt = jwt.NewNumericDate(f.clock.Now().Add(ClockSkew - time.Second))
		c.NotBefore = c.IssuedAt
		c.ExpiresAt = jwt.NewNumericDate(f.clock.Now().Add(time.Hour))
	})
	if _, err := f.svc.AuthenticateToken(skewed); err != nil {
		t.Fatalf("a token from a clock %v ahead was refused: %v", ClockSkew-time.Second, err)
	}

	// Expiry with the injected clock: the access token dies after 15 minutes
	// (plus the clock skew allowed), the refresh token lives on and mints a
	// new pair.
	f.clock.Advance(15*time.Minute + ClockSkew - time.Second)
	if _, err := f.svc.AuthenticateToken(tok.AccessToken); err != nil {
		t.Fatalf("access token at 15m + skew - 1s: %v", err)
	}
	f.clock.Advance(2 * time.Second)
	f.expectFailure(t, "expired access token", ErrTokenExpired, ReasonExpired, func() error {
		_, err := f.svc.AuthenticateToken(tok.AccessToken)
		return err
	})
	if !errors.Is(ErrTokenExpired, ErrInvalidToken) {
		t.Fatal("ErrTokenExpired must also be an ErrInvalidToken")
	}
	fresh, err := f.svc.Refresh(ctx, tok.RefreshToken)
	if err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	if fresh.AccessToken == tok.AccessToken || fresh.RefreshToken == tok.RefreshToken {
		t.Fatal("Refresh returned the old tokens")
	}
	if p, err := f.svc.AuthenticateToken(fresh.AccessToken); err != nil || p.UserID != u.ID {
		t.Fatalf("refreshed access token: %+v, %v", p, err)
	}
	f.clock.Advance(7*24*time.Hour + ClockSkew + time.Second)
	f.expectFailure(t, "expired refresh token", ErrTokenExpired, ReasonExpired, func() error {
		_, err := f.svc.Refresh(ctx, fresh.RefreshToken)
		return err
	})
}

// TestRefreshRotation: each refresh token works once; a replay revokes its
// login's tokens (and only its login's); logout ends a login.
func TestRefreshRotation(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, err := f.svc.Register(ctx, "dave", "dave@example.com", "password1"); err != nil {
		t.Fatal(err)
	}
	first, _, err := f.svc.Login(ctx, "dave", "password1")
	if err != nil {
		t.Fatal(err)
	}
	other, _, err := f.svc.Login(ctx, "dave", "password1") // a second device
	if err != nil {
		t.Fatal(err)
	}
	second, err := f.svc.Refresh(ctx, first.RefreshToken)
	if err != nil {
		t.Fatalf("first refresh: %v", err)
	}
	third, err := f.svc.Refresh(ctx, second.RefreshToken)
	if err != nil {
		t.Fatalf("refresh with the rotated token: %v", err)
	}
	f.expectFailure(t, "replay of a retired refresh token", ErrInvalidToken, ReasonReused, func() error {
		_, err := f.svc.Refresh(ctx, first.RefreshToken)
		return err
	})
	f.expectFailure(t, "the newest token of the replayed login", ErrInvalidToken, ReasonRevoked, func() error {
		_, err := f.svc.Refresh(ctx, third.RefreshToken)
		return err
	})
	next, err := f.svc.Refresh(ctx, other.RefreshToken)
	if err != nil {
		t.Fatalf("the other login after a replay in the first: %v", err)
	}
	if err := f.svc.Logout(ctx, next.RefreshToken); err != nil {
		t.Fatalf("logout: %v", err)
	}
	if err := f.svc.Logout(ctx, next.RefreshToken); err != nil {
		t.Fatalf("logout twice: %v", err)
	}
	f.expectFailure(t, "refresh after logout", ErrInvalidToken, ReasonRevoked, func() error {
		_, err := f.svc.Refresh(ctx, next.RefreshToken)
		return err
	})
	f.expectFailure(t, "logout with an access token", ErrInvalidToken, ReasonWrongType, func() error {
		return f.svc.Logout(ctx, next.AccessToken)
	})
	legacy, _, err := f.svc.sign(store.User{ID: "x", Username: "x"}, TypeRefresh, "", f.clock.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	f.expectFailure(t, "a refresh token without a family", ErrInvalidToken, ReasonInvalidToken, func() error {
		_, err := f.svc.Refresh(ctx, legacy)
		return err
	})
}

// TestRefreshReuseGrace: a client that lost the answer of a refresh and
// retries with the same token within the grace gets the very refresh token
// the lost answer carried (and a fresh access token); that successor works
// once as usual; a replay after the grace still revokes the login.
func TestRefreshReuseGrace(t *testing.T) {
	f := newFixtureWith(t, Options{ReuseGrace: 10 * time.Second})
	ctx := context.Background()
	if _, err := f.svc.Register(ctx, "erin", "erin@example.com", "password1"); err != nil {
		t.Fatal(err)
	}
	first, _, err := f.svc.Login(ctx, "erin", "password1")
	if err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(time.Minute)
	lost, err := f.svc.Refresh(ctx, first.RefreshToken) // the answer the client never got
	if err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(3 * time.Second)
	retry, err := f.svc.Refresh(ctx, first.RefreshToken)
	if err != nil {
		t.Fatalf("a retry 3 s after the rotation: %v, want the lost answer's successor", err)
	}
	if retry.RefreshToken != lost.RefreshToken {
		t.Fatalf("the retry's refresh token differs from the lost answer's:\n%s\n%s", retry.RefreshToken, lost.RefreshToken)
	}
	if _, err := f.svc.AuthenticateToken(retry.AccessToken); err != nil {
		t.Fatalf("the retry's access token: %v", err)
	}
	f.clock.Advance(time.Second)
	next, err := f.svc.Refresh(ctx, retry.RefreshToken)
	if err != nil {
		t.Fatalf("refresh with the successor: %v", err)
	}
	f.clock.Advance(30 * time.Second)
	f.expectFailure(t, "a replay of the successor 30 s after its rotation", ErrInvalidToken, ReasonReused, func() error {
		_, err := f.svc.Refresh(ctx, retry.RefreshToken)
		return err
	})
	f.expectFailure(t, "the newest token after the replay", ErrInvalidToken, ReasonRevoked, func() error {
		_, err := f.svc.Refresh(ctx, next.RefreshToken)
		return err
	})
	if _, err := NewService(f.st, Options{Secret: secret, ReuseGrace: 2 * time.Minute}, nil); err == nil {
		t.Fatal("a reuse grace of 2m was accepted, want at most 1m")
	}
}

// TestHashPoolBusy: with every bcrypt worker and queue place taken, login
// and register are refused with ErrBusy at once (the test holds the slots:
// no timing involved), counted, and work again once a slot is free.
func TestHashPoolBusy(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, err := f.svc.Register(ctx, "erin", "erin@example.com", "password1"); err != nil {
		t.Fatal(err)
	}
	pool, err := newHashPool(1, 1, time.Millisecond, nil)
	if err != nil {
		t.Fatal(err)
	}
	f.svc.hashes = pool
	release := make(chan struct{})
	running := make(chan struct{})
	go pool.do(ctx, func() { close(running); <-release }) // the worker
	<-running
	queued := make(chan error)
	go func() { queued <- pool.do(ctx, func() {}) }() // the queue place
	for len(pool.admit) < 2 {
		time.Sleep(time.Millisecond)
	}
	if _, _, err := f.svc.Login(ctx, "erin", "password1"); !errors.Is(err, ErrBusy) {
		t.Fatalf("Login with the pool full: %v, want ErrBusy", err)
	}
	if _, err := f.svc.Register(ctx, "frank", "frank@example.com", "password1"); !errors.Is(err, ErrBusy) {
		t.Fatalf("Register with the pool full: %v, want ErrBusy", err)
	}
	if got := testutil.ToFloat64(pool.busy); got != 2 {
		t.Fatalf("hal9_auth_busy_total = %v, want 2", got)
	}
	close(release)
	if err := <-queued; err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.svc.Login(ctx, "erin", "password1"); err != nil {
		t.Fatalf("Login once the pool has room: %v", err)
	}
}

func TestHashPoolSize(t *testing.T) {
	cases := []struct {
		workers, queue int
		took           time.Duration
		wantWorkers    int
		wantQueue      int
	}{
		{2, 5, time.Second, 2, 5},                     // as given
		{2, 0, 50 * time.Millisecond, 2, 40},          // 1s / 50ms × 2 workers
		{2, 0, time.Second, 2, 16},                    // a slow hash: at least 8 places per worker
		{4, 0, time.Microsecond, 4, maxHashQueue},     // a cheap hash: bounded
		{0, 3, time.Second, runtime.GOMAXPROCS(0), 3}, // workers default to GOMAXPROCS
	}
	for _, c := range cases {
		p, err := newHashPool(c.workers, c.queue, c.took, nil)
		if err != nil {
			t.Fatal(err)
		}
		if cap(p.run) != c.wantWorkers || cap(p.admit)-cap(p.run) != c.wantQueue {
			t.Errorf("newHashPool(%d, %d, %v): %d workers, queue %d; want %d, %d",
				c.workers, c.queue, c.took, cap(p.run), cap(p.admit)-cap(p.run), c.wantWorkers, c.wantQueue)
		}
	}
	if _, err := newHashPool(-1, 0, time.Second, nil); err == nil {
		t.Fatal("negative workers accepted")
	}
}

func TestAPIKeyLifecycle(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	alice, err := f.svc.Register(ctx, "alice", "alice@example.com", "password1")
	if err != nil {
		t.Fatal(err)
	}
	bob, err := f.svc.Register(ctx, "bob", "bob@example.com", "password1")
	if err != nil {
		t.Fatal(err)
	}

	for _, bad := range []string{"", "   ", strings.Repeat("n", 101)} {
		if _, _, err := f.svc.CreateAPIKey(ctx, alice.ID, bad); !errors.Is(err, ErrInvalidInput) || !strings.Contains(err.Error(), "name:") {
			t.Errorf("CreateAPIKey(name %q) = %v, want ErrInvalidInput naming name", bad, err)
		}
	}
	if _, _, err := f.svc.CreateAPIKey(ctx, "nobody", "ci"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("CreateAPIKey for an unknown user = %v, want store.ErrNotFound", err)
	}

	key, k, err := f.svc.CreateAPIKey(ctx, alice.ID, "ci runner")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(key, APIKeyPrefix))
	if !strings.HasPrefix(key, "hal9_") || err != nil || len(raw) != 32 {
		t.Fatalf("key %q: want hal9_ + base64url of 32 bytes (%v)", key, err)
	}
	if k.Hash != HashAPIKey(key) || len(k.Hash) != 64 || strings.Contains(k.Hash, key) || k.Prefix != key[:11] {
		t.Fatalf("stored key %+v does not match %q", k, key)
	}
	key2, _, err := f.svc.CreateAPIKey(ctx, alice.ID, "laptop")
	if err != nil || key2 == key {
		t.Fatalf("second key: %q, %v", key2, err)
	}

	// Both headers work; the key's use is recorded, at most once a minute.
	p, err := f.svc.Authenticate(request("X-API-Key", key))
	if err != nil || p.UserID != alice.ID || p.Method != MethodAPIKey || p.APIKeyID != k.ID {
		t.Fatalf("Authenticate(X-API-Key) = %+v, %v", p, err)
	}
	stored, err := f.st.APIKeyByHash(ctx, k.Hash)
	if err != nil || !stored.LastUsedAt.Equal(f.clock.Now()) {
		t.Fatalf("LastUsedAt after use = %v (%v), want %v", stored.LastUsedAt, err, f.clock.Now())
	}
	f.clock.Advance(10 * time.Second)
	if _, err := f.svc.Authenticate(request("Authorization", "Bearer "+key)); err != nil {
		t.Fatalf("Authenticate(Bearer key): %v", err)
	}
	if again, _ := f.st.APIKeyByHash(ctx, k.Hash); !again.LastUsedAt.Equal(stored.LastUsedAt) {
		t.Fatalf("LastUsedAt rewritten after 10s: %v", again.LastUsedAt)
	}
	f.clock.Advance(time.Minute)
	if _, err := f.svc.Authenticate(request("X-API-Key", key)); err != nil {
		t.Fatal(err)
	}
	if again, _ := f.st.APIKeyByHash(ctx, k.Hash); !again.LastUsedAt.Equal(f.clock.Now()) {
		t.Fatalf("LastUsedAt not refreshed after a minute: %v", again.LastUsedAt)
	}

	list, err := f.svc.ListAPIKeys(ctx, alice.ID)
	if err != nil || len(list) != 2 {
		t.Fatalf("ListAPIKeys = %d keys, %v", len(list), err)
	}
	if list, _ := f.svc.ListAPIKeys(ctx, bob.ID); len(list) != 0 {
		t.Fatalf("bob sees %d keys", len(list))
	}

	if err := f.svc.DeleteAPIKey(ctx, bob.ID, k.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("bob deleting alice's key: %v, want store.ErrNotFound", err)
	}
	if err := f.svc.DeleteAPIKey(ctx, alice.ID, k.ID); err != nil {
		t.Fatal(err)
	}

	bad := []struct {
		name, key string
	}{
		{"revoked", key},
		{"malformed", "hal9_short"},
		{"wrong prefix", "abcd_" + key[5:]},
		{"unknown", APIKeyPrefix + base64.RawURLEncoding.EncodeToString(make([]byte, 32))},
	}
	for _, c := range bad {
		f.expectFailure(t, c.name+" key", ErrInvalidToken, ReasonBadAPIKey, func() error {
			_, err := f.svc.Authenticate(request("X-API-Key", c.key))
			return err
		})
	}
	if _, err := f.svc.Authenticate(request("X-API-Key", key2)); err != nil {
		t.Fatalf("the other key stopped working: %v", err)
	}
}

func TestFailureMetricExported(t *testing.T) {
	f := newFixture(t)
	n, err := testutil.GatherAndCount(f.reg, "hal9_auth_failures_total")
	if err != nil {
		t.Fatal(err)
	}
	if n != len(reasons) {
		t.Fatalf("hal9_auth_failures_total has %d series at start, want one per reason (%d)", n, len(reasons))
	}
}

func TestStoreOutageIsNotAnAuthFailure(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, err := f.svc.Register(ctx, "dave", "dave@example.com", "password1"); err != nil {
		t.Fatal(err)
	}
	key, _, err := f.svc.CreateAPIKey(ctx, mustUser(t, f, "dave").ID, "k")
	if err != nil {
		t.Fatal(err)
	}
	f.st.Close()
	before := 0.0
	for _, r := range reasons {
		before += f.failures(r)
	}
	if _, _, err := f.svc.Login(ctx, "dave", "password1"); err == nil || errors.Is(err, ErrInvalidCredentials) {
		t.Fatalf("Login with the store down: %v, want the store's error, not bad credentials", err)
	}
	if _, err := f.svc.Authenticate(request("X-API-Key", key)); err == nil || errors.Is(err, ErrInvalidToken) {
		t.Fatalf("API key with the store down: %v, want the store's error, not an invalid key", err)
	}
	after := 0.0
	for _, r := range reasons {
		after += f.failures(r)
	}
	if after != before {
		t.Fatalf("a store outage counted %v auth failures", after-before)
	}
}

func mustUser(t *testing.T, f *fixture, name string) store.User {
	t.Helper()
	u, err := f.st.UserByUsername(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
