package app

import (
	"fmt"
	"net"
	"time"

	"golang.org/x/net/netutil"
)

// Listeners are the API and admin listeners, bound before anything else
// happens: `hal9 serve` binds them first, so a taken port (seed 000's
// "port taken at 3 am") fails at once, naming the address, before the
// store is opened or migrated.
type Listeners struct {
	API, Admin net.Listener
}

// Bind binds cfg's --addr and --admin-addr.
func Bind(cfg Config) (*Listeners, error) {
	api, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("listen on --addr %s: %w (is another process using the port? `ss -ltnp` shows which); nothing was started", cfg.Addr, err)
	}
	admin, err := net.Listen("tcp", cfg.AdminAddr)
	if err != nil {
		api.Close()
		return nil, fmt.Errorf("listen on --admin-addr %s: %w (is another process using the port? `ss -ltnp` shows which); nothing was started", cfg.AdminAddr, err)
	}
	return &Listeners{API: api, Admin: admin}, nil
}

// Close closes both (a start that failed after Bind).
func (l *Listeners) Close() {
	if l != nil {
		l.API.Close()
		l.Admin.Close()
	}
}

// UseListeners makes the server serve on listeners bound by Bind (after
// Open). The API listener accepts at most --http-max-conns connections at
// once (further ones wait in the kernel's accept queue), and at most
// --http-max-conns-per-client from one client address (further ones are
// answered 429 and closed). The admin listener accepts at most
// AdminMaxConns.
func (a *Server) UseListeners(l *Listeners) {
	a.apiLn, a.adminLn = l.API, l.Admin
	if a.cfg.HTTPMaxConns > 0 {
		a.apiLn = netutil.LimitListener(a.apiLn, a.cfg.HTTPMaxConns)
	}
	a.apiLn = a.HTTP.LimitConns(a.apiLn)
	a.adminLn = netutil.LimitListener(a.adminLn, AdminMaxConns)
}

// The admin listener's limits. It serves a scrape or two, the probes and
// an operator's pprof, so a few dozen connections are plenty. A CPU
// profile or trace (?seconds=N) gets the write timeout plus N: net/http/pprof
// extends the deadline by the profile's length.
const (
	AdminMaxConns     = 64
	AdminReadTimeout  = 30 * time.Second
	AdminWriteTimeout = 2 * time.Minute
	AdminIdleTimeout  = time.Minute
)
