package server

import (
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// NearCapIdle is how long a keep-alive connection may stay idle when its
// client holds more than half of --http-max-conns-per-client, or the server
// more than three quarters of --http-max-conns, instead of
// --http-idle-timeout: idle connections then make room for new ones.
const NearCapIdle = 5 * time.Second

// connLimiter caps the API connections one client address holds open
// (--http-max-conns-per-client): one client could otherwise take every
// connection the server accepts (--http-max-conns) and keep them idle. The
// client is the TCP peer as clientOf counts it (an IPv6 one by its /64);
// connections from a trusted proxy are the proxy's, carrying many clients,
// and are not capped per address (the clients behind it are not known before a request
// is read; the proxy's own limits apply to them).
type connLimiter struct {
	perClient int // 0: no cap per client
	total     int // --http-max-conns, for "near the cap" (0: none)
	idleNear  time.Duration
	trusted   *TrustedProxies

	mu      sync.Mutex
	clients map[string]map[*clientConn]struct{} // open connections by client key ("": not capped)
	all     int

	refusing chan struct{} // bounds the goroutines answering refused connections
	refused  prometheus.Counter
}

func newConnLimiter(perClient, total int, trusted *TrustedProxies, reg prometheus.Registerer) *connLimiter {
	l := &connLimiter{perClient: perClient, total: total, idleNear: NearCapIdle, trusted: trusted,
		clients: map[string]map[*clientConn]struct{}{}, refusing: make(chan struct{}, 64),
		refused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hal9_http_connections_refused_total",
			Help: "API connections refused at accept (429, then closed) because their client address already held --http-max-conns-per-client.",
		}),
	}
	reg.MustRegister(l.refused)
	return l
}

// listener wraps the API listener: a connection over its client's cap is
// answered 429 and closed, and never reaches the HTTP server.
func (l *connLimiter) listener(ln net.Listener) net.Listener { return capListener{ln, l} }

type capListener struct {
	net.Listener
	l *connLimiter
}

func (cl capListener) Accept() (net.Conn, error) {
	for {
		c, err := cl.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if cc := cl.l.admit(c); cc != nil {
			return cc, nil
		}
		cl.l.refuse(c)
	}
}

// admit counts a new connection; nil: its client is at the cap. When the
// client, or the server, has just come near its cap, the idle keep-alives
// it holds (every one, for the server) are shortened at once.
func (l *connLimiter) admit(c net.Conn) *clientConn {
	host := remoteHost(c.RemoteAddr().String())
	key := clientOf(host)
	if l.perClient <= 0 || (l.trusted != nil && l.trusted.trusted(host)) {
		key = "" // counted in all only
	}
	l.mu.Lock()
	set := l.clients[key]
	if key != "" && len(set) >= l.perClient {
		l.mu.Unlock()
		return nil
	}
	if set == nil {
		set = map[*clientConn]struct{}{}
		l.clients[key] = set
	}
	cc := &clientConn{Conn: c, l: l, key: key}
	set[cc] = struct{}{}
	l.all++
	var shorten []*clientConn
	if key != "" && !l.clientNear(len(set)-1) && l.clientNear(len(set)) {
		for o := range set {
			shorten = append(shorten, o)
		}
	}
	if !l.serverNear(l.all-1) && l.serverNear(l.all) {
		shorten = shorten[:0]
		for _, set := range l.clients {
			for o := range set {
				shorten = append(shorten, o)
			}
		}
	}
	l.mu.Unlock()
	for _, o := range shorten {
		o.shortenIdle()
	}
	return cc
}

func (l *connLimiter) clientNear(open int) bool { return l.perClient > 0 && 2*open > l.perClient }
func (l *connLimiter) serverNear(all int) bool  { return l.total > 0 && 4*all > 3*l.total }

func (l *connLimiter) release(c *clientConn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.all--
	if set := l.clients[c.key]; set != nil {
		delete(set, c)
		if len(set) == 0 {
			delete(l.clients, c.key)
		}
	}
}

// near reports whether key's client, or the whole server, is near its cap.
func (l *connLimiter) near(key string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return (key != "" && l.clientNear(len(l.clients[key]))) || l.serverNear(l.all)
}

// refusedAnswer is the whole HTTP answer to a refused connection.
var refusedAnswer = func() string {
	body := `{"error":{"code":"rate_limited","message":"too many open connections from this address (--http-max-conns-per-client); reuse keep-alive connections or close idle ones"}}` + "\n"
	return "HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\nRetry-After: 1\r\nConnection: close\r\n" +
		"Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
}()

// refuse answers 429 and closes c. The answer is written, the write side
// shut, and what the client sent read away for up to a second, so the
// client reads the answer rather than a reset; past 64 refusals at once,
// connections are closed without a word.
func (l *connLimiter) refuse(c net.Conn) {
	l.refused.Inc()
	select {
	case l.refusing <- struct{}{}:
	default:
		c.Close()
		return
	}
	go func() {
		defer func() { <-l.refusing }()
		defer c.Close()
		c.SetDeadline(time.Now().Add(time.Second))
		if _, err := io.WriteString(c, refusedAnswer); err != nil {
			return
		}
		if cw, ok := c.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
		io.Copy(io.Discard, io.LimitReader(c, 64<<10))
	}()
}

// clientConn is an accepted connection, counted until it closes.
type clientConn struct {
	net.Conn
	l     *connLimiter
	key   string
	close sync.Once

	mu    sync.Mutex
	phase int // where net/http is in the keep-alive cycle, as seen by connState and SetReadDeadline
}

// The keep-alive cycle of a connection: net/http calls connState(idle),
// then sets the idle deadline (--http-idle-timeout) and waits for the next
// request; once it is readable it sets the header deadline, reads the
// request and calls connState(active). Only the idle wait may be shortened:
// a read deadline that passes while a request runs cancels the request.
const (
	connBusy        = iota // new, active, or reading a request's headers
	connIdleArmed          // connState(idle) came; the next read deadline is the idle wait's
	connIdleWaiting        // waiting for the next request, under the idle deadline
)

func (c *clientConn) Close() error {
	err := c.Conn.Close()
	c.close.Do(func() { c.l.release(c) })
	return err
}

// SetReadDeadline is net/http's: the idle wait's deadline is shortened
// when the client or the server is near its cap.
func (c *clientConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch c.phase {
	case connIdleArmed:
		c.phase = connIdleWaiting
		if c.l.near(c.key) {
			if short := time.Now().Add(c.l.idleNear); t.IsZero() || short.Before(t) {
				t = short
			}
		}
	case connIdleWaiting: // the next request arrived: its header deadline
		c.phase = connBusy
	}
	return c.Conn.SetReadDeadline(t)
}

// shortenIdle closes the connection after the short idle time if it waits
// for its next request now; a busy one is shortened when it next goes idle.
func (c *clientConn) shortenIdle() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.phase == connIdleWaiting {
		c.Conn.SetReadDeadline(time.Now().Add(c.l.idleNear))
	}
}

// connState is the API server's ConnState hook for the limiter.
func (l *connLimiter) connState(c net.Conn, state http.ConnState) {
	if cc, ok := c.(*clientConn); ok {
		cc.mu.Lock()
		cc.phase = connBusy
		if state == http.StateIdle {
			cc.phase = connIdleArmed
		}
		cc.mu.Unlock()
	}
}
