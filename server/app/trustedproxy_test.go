package app

import (
	"strings"
	"testing"
)

// TestRateLimitPerForwardedClient: behind a trusted proxy each client named
// by X-Forwarded-For has its own bucket; without --trusted-proxies the
// header changes nothing (a client cannot escape its limit by forging it).
func TestRateLimitPerForwardedClient(t *testing.T) {
	for _, tt := range []struct {
		trusted     string
		otherStatus int // the second client's first request, after the first client's bucket is empty
	}{
		{"127.0.0.1/32", 200},
		{"", 429},
		{"10.0.0.0/8", 429}, // the test's peer (127.0.0.1) is not a trusted proxy
	} {
		t.Run("trusted="+tt.trusted, func(t *testing.T) {
			a := startApp(t, func(c *Config) { c.RateLimit = 0.1; c.TrustedProxies = tt.trusted })
			first := a.do("GET", "/api/v1/status", nil, "X-Forwarded-For", "198.51.100.1")
			again := a.do("GET", "/api/v1/status", nil, "X-Forwarded-For", "198.51.100.1")
			other := a.do("GET", "/api/v1/status", nil, "X-Forwarded-For", "6.6.6.6, 198.51.100.2")
			if first.Status != 200 || again.Status != 429 {
				t.Fatalf("one client: statuses %d %d, want 200 429", first.Status, again.Status)
			}
			if other.Status != tt.otherStatus {
				t.Fatalf("another client: status %d, want %d", other.Status, tt.otherStatus)
			}
		})
	}
}

func TestTrustedProxiesValidation(t *testing.T) {
	cfg := DefaultConfig()
	cfg.TrustedProxies = "127.0.0.1/32,10.0.0.0/33"
	err := cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), `--trusted-proxies (HAL9_TRUSTED_PROXIES) "127.0.0.1/32,10.0.0.0/33": "10.0.0.0/33" is not an IP address or CIDR range`) {
		t.Fatalf("Validate: %v", err)
	}
	cfg.TrustedProxies = " 127.0.0.1/32 , ::1 "
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
}
