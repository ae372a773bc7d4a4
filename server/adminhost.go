package server

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// AdminHosts are the Host names the admin listener answers to, besides IP
// addresses and localhost: a guard against DNS rebinding. A page on
// evil.example can make a browser on the operator's machine resolve
// evil.example to 127.0.0.1 and then read /debug/pprof or PUT
// /admin/llm/faults with the page's own origin; the browser still sends
// Host: evil.example, which is refused. A Host that is an IP address cannot
// come from such a page (its origin would be that address), so IPs pass:
// the kubelet's probes and Prometheus's scrapes send the pod's IP.
type AdminHosts struct {
	exact  map[string]bool
	suffix []string // ".svc.cluster.local": that domain's names
	any    bool     // "*": no check
}

// ParseAdminHosts reads --admin-allowed-hosts (host names separated by
// commas; ".example.com" allows the names under it; "*" turns the check
// off) plus the host of --admin-addr when it is a name.
func ParseAdminHosts(list, adminAddr string) (*AdminHosts, error) {
	h := &AdminHosts{exact: map[string]bool{}}
	if host, _, err := net.SplitHostPort(adminAddr); err == nil && host != "" {
		h.exact[strings.ToLower(host)] = true
	}
	for _, it := range strings.Split(list, ",") {
		it = strings.ToLower(strings.TrimSpace(it))
		switch {
		case it == "":
		case it == "*":
			h.any = true
		case strings.ContainsAny(it, ":/ *[]@"):
			return nil, fmt.Errorf("%q is not a host name (no port, no scheme, no path); write names separated by commas, e.g. hal9-admin.internal,.svc.cluster.local (a leading dot allows the names under it), or * to turn the check off", it)
		case strings.HasPrefix(it, "."):
			h.suffix = append(h.suffix, it)
		default:
			h.exact[it] = true
		}
	}
	return h, nil
}

// allowed tells whether a request's Host (with or without a port) passes.
func (h *AdminHosts) allowed(hostport string) bool {
	if h == nil || h.any {
		return true
	}
	host := hostport
	if hh, _, err := net.SplitHostPort(hostport); err == nil {
		host = hh
	}
	host = strings.ToLower(strings.TrimSuffix(strings.Trim(host, "[]"), "."))
	if _, err := netip.ParseAddr(host); err == nil {
		return true
	}
	if host == "localhost" || strings.HasSuffix(host, ".localhost") || h.exact[host] {
		return true
	}
	for _, s := range h.suffix {
		if strings.HasSuffix(host, s) {
			return true
		}
	}
	return false
}

// checkHost refuses requests whose Host the admin listener does not
// answer to (403).
func (h *AdminHosts) checkHost(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !h.allowed(r.Host) {
			writeError(w, http.StatusForbidden, CodeForbidden, fmt.Sprintf(
				"Host %q is not one the admin listener answers to (a guard against DNS rebinding); use its IP address or localhost, or add the name to --admin-allowed-hosts",
				clip(r.Host, 100)))
			return
		}
		next.ServeHTTP(w, r)
	})
}
