package server

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hal9-lab/hal9-lab/server/limits"
)

// CredentialLimits bound the credential routes (register, login, refresh,
// logout), which cost a bcrypt hash or a database write each and are what
// a password-guessing flood hits. A zero Limit turns that check off.
type CredentialLimits struct {
	// PerAddress: requests per client address (clientIP; an IPv6 address
	// counts for its whole /64, which one client usually holds).
	PerAddress limits.Limit
	// FailedLoginsPerUser: failed logins per username, from any address;
	// past it the username's logins are refused before any password check.
	FailedLoginsPerUser limits.Limit
}

// credentialMetrics count the refusals by scope (address, user).
func newCredentialMetrics(reg prometheus.Registerer) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "hal9_auth_limited_total",
		Help: "Credential-route requests refused with 429, by scope: address (requests per client address) or user (failed logins per username).",
	}, []string{"scope"})
	reg.MustRegister(c)
	c.WithLabelValues("address")
	c.WithLabelValues("user")
	return c
}

// addressKey is the limiter key of a client address: an IPv4 address as
// is, an IPv6 address by its /64.
func addressKey(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return "addr:" + clip(ip, 64)
	}
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return "addr:" + p.String()
	}
	return "addr:" + a.String()
}

// credential limits a credential route per client address.
func (s *Server) credential(next http.HandlerFunc) http.HandlerFunc {
	lim := s.d.CredentialLimits.PerAddress
	if lim.Off() {
		return next
	}
	return func(w http.ResponseWriter, r *http.Request) {
		if ok, wait := s.creds.Take(r.Context(), addressKey(clientIP(r)), lim); !ok {
			s.credLimited.WithLabelValues("address").Inc()
			writeRetry(w, http.StatusTooManyRequests, CodeRateLimited,
				fmt.Sprintf("too many register, login, refresh or logout requests from this address (limit %s); retry after the Retry-After delay", lim), wait)
			return
		}
		next(w, r)
	}
}

// userLocked reports whether username has used up its failed logins: such
// a login is refused before its password is checked.
func (s *Server) userLocked(ctx context.Context, username string) (bool, time.Duration) {
	lim := s.d.CredentialLimits.FailedLoginsPerUser
	if lim.Off() {
		return false, 0
	}
	ok, wait := s.creds.Check(ctx, "user:"+clip(username, 128), lim)
	return !ok, wait
}

// loginFailed counts a failed login against its username.
func (s *Server) loginFailed(ctx context.Context, username string) {
	if lim := s.d.CredentialLimits.FailedLoginsPerUser; !lim.Off() {
		s.creds.Take(ctx, "user:"+clip(username, 128), lim)
	}
}
