package server

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/hal9-lab/hal9-lab/server/auth"
)

func TestAddressKey(t *testing.T) {
	for _, c := range []struct{ ip, want string }{
		{"192.0.2.7", "addr:192.0.2.7"},
		{"::ffff:192.0.2.7", "addr:192.0.2.7"}, // a v4-mapped address is its IPv4
		{"2001:db8:1:2:3:4:5:6", "addr:2001:db8:1:2::/64"},
		{"2001:db8:1:2:ffff::1", "addr:2001:db8:1:2::/64"}, // same /64, same key
		{"2001:db8:1:3::1", "addr:2001:db8:1:3::/64"},
		{"not-an-ip", "addr:not-an-ip"},
	} {
		if got := addressKey(c.ip); got != c.want {
			t.Errorf("addressKey(%q) = %q, want %q", c.ip, got, c.want)
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
