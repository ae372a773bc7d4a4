package server

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"

	"github.com/realclientip/realclientip-go"
)

// TrustedProxies is --trusted-proxies: the reverse proxies (addresses and
// CIDR ranges) whose X-Forwarded-For the server believes. Behind a load
// balancer every request comes from the balancer's address, so without it
// the per-client rate limits would put all clients in one bucket.
//
// The client of a request is its direct peer unless that peer is trusted;
// then it is the rightmost address of X-Forwarded-For that is not trusted
// (each proxy appends the address it got the request from, so everything
// left of the first untrusted hop was written by the client and may be
// forged). When every hop is trusted, or the rightmost untrusted entry is
// not an IP address, the direct peer stays the client: a broken header never
// picks an address the client chose. The walk over the header is
// realclientip-go's RightmostTrustedRangeStrategy.
type TrustedProxies struct {
	nets     []net.IPNet
	spec     string
	strategy realclientip.RightmostTrustedRangeStrategy
}

// ParseTrustedProxies reads a comma-separated list of addresses and CIDR
// ranges ("127.0.0.1/32,10.0.0.0/8,::1"). An empty list gives nil: no proxy
// is trusted and X-Forwarded-For is ignored.
func ParseTrustedProxies(s string) (*TrustedProxies, error) {
	var items []string
	for _, it := range strings.Split(s, ",") {
		if it = strings.TrimSpace(it); it != "" {
			items = append(items, it)
		}
	}
	if len(items) == 0 {
		return nil, nil
	}
	t := &TrustedProxies{spec: strings.Join(items, ",")}
	for _, it := range items {
		nets, err := realclientip.AddressesAndRangesToIPNets(it)
		if err != nil {
			return nil, fmt.Errorf("%q is not an IP address or CIDR range (no zones, no host names); write them separated by commas, e.g. 127.0.0.1/32,10.0.0.0/8,::1", it)
		}
		t.nets = append(t.nets, nets...)
	}
	var err error
	if t.strategy, err = realclientip.NewRightmostTrustedRangeStrategy("X-Forwarded-For", t.nets); err != nil {
		return nil, fmt.Errorf("trusted proxies: %w", err)
	}
	return t, nil
}

// String is the list as given (normalised separators).
func (t *TrustedProxies) String() string {
	if t == nil {
		return ""
	}
	return t.spec
}

// trusted tells whether ip (no port, maybe a zone) is one of the proxies.
func (t *TrustedProxies) trusted(ip string) bool {
	if i := strings.LastIndexByte(ip, '%'); i > 0 {
		ip = ip[:i]
	}
	addr := net.ParseIP(ip)
	if addr == nil {
		return false
	}
	for _, n := range t.nets {
		if n.Contains(addr) {
			return true
		}
	}
	return false
}

// ClientIP returns the client address of a request that arrived from
// remoteAddr (host:port, as http.Request.RemoteAddr) with header h.
func (t *TrustedProxies) ClientIP(remoteAddr string, h http.Header) string {
	peer := remoteHost(remoteAddr)
	if t == nil || !t.trusted(peer) {
		return peer
	}
	if ip := t.strategy.ClientIP(h, remoteAddr); ip != "" {
		return ip
	}
	return peer
}

// remoteHost is the host part of an address, the address itself when it
// has no port.
func remoteHost(addr string) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return host
}

type clientKey struct{}

// wrap resolves each request's client once, for clientIP to read.
func (t *TrustedProxies) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ip := t.ClientIP(r.RemoteAddr, r.Header)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), clientKey{}, ip)))
	})
}

// forwardedClient is the client wrap resolved, ok false without
// --trusted-proxies.
func forwardedClient(ctx context.Context) (string, bool) {
	ip, ok := ctx.Value(clientKey{}).(string)
	return ip, ok
}
