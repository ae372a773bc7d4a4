package app

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestFailuresDoNotLockOutTheOwner is issue 18's item 2: 30 failed logins
// for a user from one address leave that user's right password working
// from another address (addresses named by X-Forwarded-For through a
// trusted proxy), while the failing address itself is refused.
func TestFailuresDoNotLockOutTheOwner(t *testing.T) {
	a := startApp(t, func(c *Config) {
		c.TrustedProxies = "127.0.0.1/32"
		c.LoginFailuresPerUser, c.LoginFailureWindow = 10, 15*time.Minute
	})
	a.userNamed("owner")
	bad := map[string]string{"username": "owner", "password": "not-the-password"}
	limited := 0
	for i := range 30 {
		r := a.do("POST", "/api/v1/auth/login", bad, "X-Forwarded-For", "198.51.100.66")
		switch r.Status {
		case http.StatusUnauthorized:
		case http.StatusTooManyRequests:
			limited++
		default:
			t.Fatalf("wrong password %d: %d %s", i, r.Status, r.Body)
		}
	}
	if limited == 0 {
		t.Fatal("30 failures from one address were never refused")
	}
	right := map[string]string{"username": "owner", "password": "password-owner"}
	r := a.do("POST", "/api/v1/auth/login", right, "X-Forwarded-For", "203.0.113.7")
	if r.Status != http.StatusOK {
		t.Fatalf("the owner's right password from another address after 30 failures elsewhere: %d %s", r.Status, r.Body)
	}
}

// TestConcurrentGuessesKeepToTheLimit is issue 18's item 5: 40 wrong
// passwords sent at once for one user from one address reach the password
// check at most as many times as the failure limit allows (counted by
// hal9_auth_failures_total{reason="bad_password"}, one per check that
// failed). The counter used to be read before bcrypt and written after it,
// so parallel guesses all passed.
func TestConcurrentGuessesKeepToTheLimit(t *testing.T) {
	const limit = 5
	a := startApp(t, func(c *Config) {
		c.LoginFailuresPerUser, c.LoginFailureWindow = limit, time.Hour
		c.BcryptCost = 8 // a few ms a check: the guesses overlap
	})
	a.userNamed("guessed")
	before := sum(a.scrape(), "hal9_auth_failures_total", map[string]string{"reason": "bad_password"})
	var wg sync.WaitGroup
	var mu sync.Mutex
	statuses := map[int]int{}
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := a.do("POST", "/api/v1/auth/login", map[string]string{"username": "guessed", "password": fmt.Sprint("guess-", i)})
			mu.Lock()
			statuses[r.Status]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	checked := sum(a.scrape(), "hal9_auth_failures_total", map[string]string{"reason": "bad_password"}) - before
	t.Logf("answers %v; %v wrong passwords reached the check", statuses, checked)
	if checked > limit {
		t.Fatalf("%v concurrent wrong passwords reached the password check, the limit is %d", checked, limit)
	}
	if checked == 0 {
		t.Fatalf("no guess reached the check: %v", statuses)
	}
}

// TestIPv6ClientsCountByPrefix is issue 18's item 9 for the general
// per-address limit: the addresses of one /64 are one client, so rotating
// through them does not refill the bucket.
func TestIPv6ClientsCountByPrefix(t *testing.T) {
	a := startApp(t, func(c *Config) { c.RateLimit = 0.1; c.TrustedProxies = "127.0.0.1/32" })
	first := a.do("GET", "/api/v1/status", nil, "X-Forwarded-For", "2001:db8:aa:bb::1")
	same64 := a.do("GET", "/api/v1/status", nil, "X-Forwarded-For", "2001:db8:aa:bb::2")
	other64 := a.do("GET", "/api/v1/status", nil, "X-Forwarded-For", "2001:db8:aa:cc::1")
	if first.Status != http.StatusOK || same64.Status != http.StatusTooManyRequests {
		t.Fatalf("two addresses of one /64: %d %d, want 200 429 (one client)", first.Status, same64.Status)
	}
	if other64.Status != http.StatusOK {
		t.Fatalf("another /64: %d, want 200", other64.Status)
	}
	// The failed-authentication bucket keys the same way.
	b := startApp(t, func(c *Config) { c.RateLimit = 0.1; c.TrustedProxies = "127.0.0.1/32" })
	codes := []int{}
	for _, ip := range []string{"2001:db8:aa:bb::1", "2001:db8:aa:bb::2"} {
		codes = append(codes, b.do("GET", "/api/v1/auth/profile", nil, "X-API-Key", "hal9_bad", "X-Forwarded-For", ip).Status)
	}
	if fmt.Sprint(codes) != "[401 429]" {
		t.Fatalf("bad keys from two addresses of one /64: %v, want [401 429]", codes)
	}
}

// TestNetworkCeilingOnCredentialRoutes is issue 18's item 9 for the bcrypt
// pool: one IPv6 /48 rotating through its /64s gets NetworkShare clients'
// worth of the credential routes, not one bucket per /64; another /48 is
// not affected.
func TestNetworkCeilingOnCredentialRoutes(t *testing.T) {
	a := startApp(t, func(c *Config) {
		c.TrustedProxies = "127.0.0.1/32"
		c.AuthRateLimit, c.AuthBurst = 0.001, 2 // per /64: 2, then one per 1000 s; per /48: 32
	})
	refused := -1
	for i := range 40 {
		r := a.do("POST", "/api/v1/auth/refresh", map[string]string{"refresh_token": "x"}, "X-Forwarded-For", fmt.Sprintf("2001:db8:77:%x::1", i))
		if r.Status == http.StatusTooManyRequests {
			if !strings.Contains(r.errMsg(), "2001:db8:77::/48") {
				t.Fatalf("refusal %d does not name the network: %s", i, r.Body)
			}
			refused = i
			break
		}
	}
	if refused != 32 {
		t.Fatalf("the first refusal in one /48 came at request %d, want 32 (16 clients × burst 2)", refused)
	}
	if r := a.do("POST", "/api/v1/auth/refresh", map[string]string{"refresh_token": "x"}, "X-Forwarded-For", "2001:db8:78::1"); r.Status != http.StatusUnauthorized {
		t.Fatalf("another /48: %d %s", r.Status, r.Body)
	}
	if n := sum(a.scrape(), "hal9_auth_limited_total", map[string]string{"scope": "network"}); n != 1 {
		t.Fatalf("network refusals %v, want 1", n)
	}
}

// TestFailureCeilingSlowsFailingAddressesOnly: past the username's ceiling
// (failures from many addresses), an address that has been failing gets no
// burst any more, while an address that has not still has its password
// checked, right or wrong.
func TestFailureCeilingSlowsFailingAddressesOnly(t *testing.T) {
	a := startApp(t, func(c *Config) {
		c.TrustedProxies = "127.0.0.1/32"
		c.LoginFailuresPerUser, c.LoginFailureCeiling, c.LoginFailureWindow = 10, 10, 15*time.Minute
	})
	a.userNamed("target")
	bad := map[string]string{"username": "target", "password": "not-the-password"}
	for i := range 10 { // a distributed attack: one failure from each of 10 addresses
		if r := a.do("POST", "/api/v1/auth/login", bad, "X-Forwarded-For", fmt.Sprintf("198.51.100.%d", i+1)); r.Status != http.StatusUnauthorized {
			t.Fatalf("failure %d: %d %s", i, r.Status, r.Body)
		}
	}
	// Under the ceiling an address may fail 10 times; past it, one that
	// has failed waits its failure out.
	if r := a.do("POST", "/api/v1/auth/login", bad, "X-Forwarded-For", "198.51.100.1"); r.Status != http.StatusTooManyRequests {
		t.Fatalf("a failing address past the ceiling: %d %s", r.Status, r.Body)
	}
	if r := a.do("POST", "/api/v1/auth/login", bad, "X-Forwarded-For", "203.0.113.9"); r.Status != http.StatusUnauthorized {
		t.Fatalf("a new address's wrong password past the ceiling: %d %s, want it checked (401)", r.Status, r.Body)
	}
	right := map[string]string{"username": "target", "password": "password-target"}
	if r := a.do("POST", "/api/v1/auth/login", right, "X-Forwarded-For", "203.0.113.10"); r.Status != http.StatusOK {
		t.Fatalf("the owner from an address that has not failed: %d %s", r.Status, r.Body)
	}
}

// TestRightPasswordGivesItsSlotBack: a login takes a failure slot before
// its password check and gives it back when the password was right, so
// logging in often never uses up the failures an address may have.
func TestRightPasswordGivesItsSlotBack(t *testing.T) {
	a := startApp(t, func(c *Config) { c.LoginFailuresPerUser, c.LoginFailureWindow = 2, time.Hour })
	a.userNamed("often") // one login already
	right := map[string]string{"username": "often", "password": "password-often"}
	bad := map[string]string{"username": "often", "password": "wrong-password"}
	for i := range 5 {
		if r := a.do("POST", "/api/v1/auth/login", right); r.Status != http.StatusOK {
			t.Fatalf("login %d: %d %s", i, r.Status, r.Body)
		}
	}
	for i := range 2 {
		if r := a.do("POST", "/api/v1/auth/login", bad); r.Status != http.StatusUnauthorized {
			t.Fatalf("failure %d after six good logins: %d %s, want both failures allowed", i, r.Status, r.Body)
		}
	}
	if r := a.do("POST", "/api/v1/auth/login", right); r.Status != http.StatusTooManyRequests {
		t.Fatalf("after the address's 2 failures: %d, want 429 from this address", r.Status)
	}
}
