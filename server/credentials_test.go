package server

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/hal9-lab/hal9-lab/server/auth"
)

func TestClientKeys(t *testing.T) {
	for _, c := range []struct{ ip, client, network string }{
		{"192.0.2.7", "addr:192.0.2.7", ""},
		{"::ffff:192.0.2.7", "addr:192.0.2.7", ""}, // a v4-mapped address is its IPv4
		{"2001:db8:1:2:3:4:5:6", "addr:2001:db8:1:2::/64", "net:2001:db8:1::/48"},
		{"2001:db8:1:2:ffff::1", "addr:2001:db8:1:2::/64", "net:2001:db8:1::/48"}, // same /64, same client
		{"2001:db8:1:3::1", "addr:2001:db8:1:3::/64", "net:2001:db8:1::/48"},      // another /64 of the same /48
		{"2001:db8:1:ff00::1", "addr:2001:db8:1:ff00::/64", "net:2001:db8:1::/48"},
		{"2001:db8:2::1", "addr:2001:db8:2::/64", "net:2001:db8:2::/48"}, // another /48
		{"fe80::1%eth0", "addr:fe80::/64", "net:fe80::/48"},              // the zone is not part of the client
		{"not-an-ip", "addr:not-an-ip", ""},
	} {
		client, network := clientKeys(c.ip)
		if client != c.client || network != c.network {
			t.Errorf("clientKeys(%q) = %q %q, want %q %q", c.ip, client, network, c.client, c.network)
		}
	}
}

// TestBusyIsServiceUnavailable: a refusal of the bcrypt pool is a 503 with
// Retry-After, not a 500 (auth's TestHashPoolBusy makes the pool refuse).
func TestBusyIsServiceUnavailable(t *testing.T) {
	s := &Server{}
	rec := httptest.NewRecorder()
	s.authError(rec, httptest.NewRequest("POST", "/api/v1/auth/login", nil), "login", fmt.Errorf("login x: %w", auth.ErrBusy))
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("ErrBusy answered %d %v", rec.Code, rec.Header())
	}
}
