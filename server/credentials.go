package server

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hal9-lab/hal9-lab/server/limits"
)

// CredentialLimits bound the credential routes (register, login, refresh,
// logout), which cost a bcrypt hash or a database write each and are what
// a password-guessing flood hits. A zero Limit turns that check off. What
// a client is (an IPv4 address, an IPv6 /64) and its network (an IPv6
// /48) is decided by clientKeys alone.
type CredentialLimits struct {
	// PerAddress: requests per client.
	PerAddress limits.Limit
	// PerNetwork: requests per IPv6 network, the ceiling that keeps one
	// subscriber rotating through its /64s from filling the bcrypt pool.
	PerNetwork limits.Limit
	// FailedLogins: failed logins per (username, client). A login takes
	// one before its password is checked, atomically (so concurrent
	// guesses cannot all pass a count read before bcrypt), and gives it
	// back when the password was right. Past it, that client's logins for
	// that username are refused before any check; other clients' are not.
	FailedLogins limits.Limit
	// FailureCeiling: failed logins per username from every client. Past
	// it the username is under a distributed attack, and its failures are
	// no longer forgiven in bursts: a client that has failed k times
	// waits k × FailedLogins' interval before its next try. A client that
	// has not failed is never held back, so the owner is slowed at most
	// by their own mistakes, never locked out by others'.
	FailureCeiling limits.Limit
}

// credentialMetrics count the refusals by scope (address, network, user).
func newCredentialMetrics(reg prometheus.Registerer) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "hal9_auth_limited_total",
		Help: "Credential-route requests refused with 429, by scope: address (requests per client: an IPv4 address, an IPv6 /64), network (requests per IPv6 /48) or user (failed logins of a username from one client).",
	}, []string{"scope"})
	reg.MustRegister(c)
	for _, s := range []string{"address", "network", "user"} {
		c.WithLabelValues(s)
	}
	return c
}

// credential limits a credential route per client and per network.
func (s *Server) credential(next http.HandlerFunc) http.HandlerFunc {
	per, wide := s.d.CredentialLimits.PerAddress, s.d.CredentialLimits.PerNetwork
	if per.Off() && wide.Off() {
		return next
	}
	return func(w http.ResponseWriter, r *http.Request) {
		client, network := clientKeys(clientIP(r))
		if ok, wait := s.creds.Take(r.Context(), client, per); !ok {
			s.credLimited.WithLabelValues("address").Inc()
			writeRetry(w, http.StatusTooManyRequests, CodeRateLimited,
				fmt.Sprintf("too many register, login, refresh or logout requests from this address (limit %s); retry after the Retry-After delay", per), wait)
			return
		}
		if network != "" {
			if ok, wait := s.creds.Take(r.Context(), network, wide); !ok {
				s.credLimited.WithLabelValues("network").Inc()
				writeRetry(w, http.StatusTooManyRequests, CodeRateLimited,
					fmt.Sprintf("too many register, login, refresh or logout requests from this network (%s, limit %s); retry after the Retry-After delay", network[len("net:"):], wide), wait)
				return
			}
		}
		next(w, r)
	}
}

// loginSlot is the failed login a login took before its password check.
type loginSlot struct {
	key string // "" when FailedLogins is off
	lim limits.Limit
}

func usernameKey(username string) string { return "user:" + clip(username, 128) }

// takeLoginSlot takes one of the failed logins client may have for
// username, before its password is checked; ok false (and the wait) when
// they are used up. Past the username's FailureCeiling the client gets no
// burst: only an empty bucket (a client that has not been failing, or has
// waited its own failures out) passes.
func (s *Server) takeLoginSlot(ctx context.Context, username, client string) (loginSlot, bool, time.Duration) {
	lim := s.d.CredentialLimits.FailedLogins
	if lim.Off() {
		return loginSlot{}, true, 0
	}
	if c := s.d.CredentialLimits.FailureCeiling; !c.Off() {
		if ok, _ := s.creds.Check(ctx, usernameKey(username), c); !ok {
			lim.Burst = 1
		}
	}
	slot := loginSlot{key: "login:" + clip(username, 128) + "|" + client, lim: lim}
	ok, wait := s.creds.Take(ctx, slot.key, lim)
	return slot, ok, wait
}

// giveBack returns the slot of a login whose password was right (or that
// was never checked: the bcrypt pool was full, the database down).
func (s *Server) giveBack(ctx context.Context, slot loginSlot) {
	if slot.key != "" {
		s.creds.Give(context.WithoutCancel(ctx), slot.key, slot.lim)
	}
}

// loginFailed counts a failed login against the username's ceiling (its
// slot stays taken).
func (s *Server) loginFailed(ctx context.Context, username string) {
	if c := s.d.CredentialLimits.FailureCeiling; !c.Off() {
		s.creds.Take(context.WithoutCancel(ctx), usernameKey(username), c)
	}
}
