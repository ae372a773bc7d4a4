package load

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// The VUs' HTTP timeouts: k6's defaults (a request has 60 s; a connection
// 10 s to be made), and keep-alive connections closed after 30 s idle,
// (the server and HAProxy keep them 120 s, so the client closes first).
const (
	dialTimeout     = 10 * time.Second
	requestTimeout  = 60 * time.Second
	idleConnTimeout = 90 * time.Second
	// userAgent names the lab in the server's logs (k6 sends "k6/…").
	userAgent = "hal9-lab"
)

// NewTransport returns an http.Transport for what does not run on the VUs'
// own connections: workload setup (Env.HTTP) and callers that pass their
// own Options.Transport (the fault legs' recording transport). Keep-alive
// pools sized for maxConns, no compression (byte counts are what went
// over the wire), and connections that count the bytes they carry.
func NewTransport(maxConns int) *http.Transport {
	d := &net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}
	maxConns = max(maxConns, 16)
	return &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return &countingConn{Conn: c}, nil
		},
		MaxIdleConns:          maxConns,
		MaxIdleConnsPerHost:   maxConns,
		IdleConnTimeout:       idleConnTimeout,
		DisableCompression:    true,
		ResponseHeaderTimeout: requestTimeout,
		ExpectContinueTimeout: time.Second,
	}
}

// countingConn counts the bytes of an http.Transport's connection; the
// transport's read loop and the VU read the counters from different
// goroutines, hence atomics.
type countingConn struct {
	net.Conn
	r, w atomic.Int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.r.Add(int64(n))
	return n, err
}

func (c *countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.w.Add(int64(n))
	return n, err
}

// Request is one HTTP request of a workload. Op and Name become the
// samples' tags: Op is the workload's operation (signal, login, …), Name
// the route template (defaults to Path; set it when Path holds an id so
// the series stay bounded).
type Request struct {
	Method string
	Path   string // appended to the target URL: "/api/v1/status"
	Body   []byte
	Header http.Header
	Op     string
	Name   string
	// Layer tags the request with the entry layer it addresses (the layer
	// tag: per-layer series of one operation); empty for none.
	Layer string
	// Discard: the caller does not read Response.Body (it is still read
	// off the connection and counted).
	Discard bool
}

// Response is the outcome of Client.Do. Header and Body are buffers the
// client reuses: they are valid until the VU's next request.
type Response struct {
	Status   int
	Header   Header
	Body     []byte
	Duration time.Duration // http_req_duration
	Waiting  time.Duration // http_req_waiting (time to first byte)
}

// Header is a response's header, read in place.
type Header struct {
	fast *fasthttp.ResponseHeader
	std  http.Header
}

// Get returns the first value of the field key (any case), or "".
func (h Header) Get(key string) string {
	if h.fast != nil {
		return string(h.fast.Peek(key))
	}
	return h.std.Get(key)
}

// target is the base URL the VUs' requests go to, parsed once per run.
type target struct {
	base string // without a trailing slash: paths are appended
	addr string // host:port to dial
	tls  *tls.Config
	err  error // the URL cannot be dialed: every request fails with it
}

func parseTarget(base string, tlsConf *tls.Config) *target {
	t := &target{base: strings.TrimRight(base, "/")}
	u, err := url.Parse(t.base)
	switch {
	case err != nil:
		t.err = fmt.Errorf("target %q: %w", base, err)
	case u.Scheme != "http" && u.Scheme != "https":
		t.err = fmt.Errorf("target %q: the scheme must be http or https", base)
	case u.Host == "":
		t.err = fmt.Errorf("target %q has no host", base)
	}
	if t.err != nil {
		return t
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	t.addr = net.JoinHostPort(u.Hostname(), port)
	if u.Scheme == "https" {
		t.tls = &tls.Config{MinVersion: tls.VersionTLS12}
		if tlsConf != nil {
			t.tls = tlsConf.Clone()
		}
		if t.tls.ServerName == "" {
			t.tls.ServerName = u.Hostname()
		}
		t.tls.NextProtos = []string{"http/1.1"} // the VUs speak HTTP/1.1 only
	}
	return t
}

// Client is a VU's HTTP client: every request is recorded as k6's
// http_* samples, tagged with the scenario, op, name, method and status.
// It is not safe for concurrent use; each VU has its own.
//
// By default a VU owns one keep-alive HTTP/1.1 connection (a fasthttp
// HostClient of one connection) and sends each request on its own
// goroutine, reusing one request, one response and their buffers: no
// allocation and no goroutine handoff per request, which is what Go's
// net/http client costs (two goroutines per connection). With
// Options.Transport, requests go through that http.RoundTripper instead.
type Client struct {
	tgt  *target
	rec  *recorder
	ectx context.Context // the engine's context for the current iteration

	hc   *fasthttp.HostClient
	req  fasthttp.Request
	res  fasthttp.Response
	url  []byte
	wire wire       // what the connection saw
	at   wire       // wire when the request in flight began
	stop stopWatch  // closes the connection when the request's context ends
	dial net.Dialer // the VU's connection, made by dialConn

	rt  *rtClient // Options.Transport; nil by default
	out Response
}

// wire is what the VU's connection saw: bytes both ways, when the request
// began to go out, when it was all written and when the first byte of the
// response came back. Only the VU's goroutine touches it.
type wire struct {
	sent, recv, dials       int64
	start, wrote, firstByte time.Time
}

// wireConn is the VU's connection: it keeps wire up to date.
type wireConn struct {
	net.Conn
	w *wire
}

func (c *wireConn) Write(p []byte) (int, error) {
	now := time.Now()
	if c.w.start.IsZero() {
		c.w.start = now
	}
	n, err := c.Conn.Write(p)
	c.w.sent += int64(n)
	c.w.wrote = time.Now()
	return n, err
}

func (c *wireConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.w.recv += int64(n)
		if c.w.firstByte.IsZero() {
			c.w.firstByte = time.Now()
		}
	}
	return n, err
}

func newClient(tgt *target, rt http.RoundTripper, rec *recorder) *Client {
	c := &Client{tgt: tgt, rec: rec}
	if rt != nil {
		c.rt = newRTClient(rt)
		return c
	}
	c.dial = net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}
	c.hc = &fasthttp.HostClient{
		Addr:                tgt.addr,
		Name:                userAgent,
		Dial:                c.dialConn,
		IsTLS:               tgt.tls != nil,
		MaxConns:            1,
		MaxIdleConnDuration: idleConnTimeout,
		// A response has requestTimeout to come whole; writing a request
		// has no deadline of its own (net/http's has none either), which
		// saves setting one per request.
		ReadTimeout:            requestTimeout,
		ReadBufferSize:         16 << 10, // also the largest response header
		DisablePathNormalizing: true,     // paths go out as the workload wrote them, as with net/http
		RetryIfErr:             c.retry,
	}
	return c
}

// dialConn makes the VU's connection (and its TLS session), then clears
// wire's times: http_req_duration starts at the request's first byte
// out, so neither connecting nor the TLS handshake is in it (k6's
// http_req_connecting and http_req_tls_handshaking are apart too).
func (c *Client) dialConn(addr string) (net.Conn, error) {
	ctx := c.stop.context()
	c.wire.dials++
	conn, err := c.dial.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	wc := &wireConn{Conn: conn, w: &c.wire}
	var nc net.Conn = wc
	if c.tgt.tls != nil {
		tc := tls.Client(wc, c.tgt.tls)
		hctx, cancel := context.WithTimeout(ctx, dialTimeout)
		err = tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			conn.Close()
			return nil, err
		}
		nc = tc
	}
	if !c.stop.adopt(conn) {
		conn.Close()
		return nil, context.Cause(ctx)
	}
	c.wire.start, c.wire.wrote, c.wire.firstByte = time.Time{}, time.Time{}, time.Time{}
	return nc, nil
}

// retry is fasthttp's RetryIfErr: a request is sent again only when a
// kept-alive connection turned out closed before anything of the response
// came back and the request is safe to repeat (idempotent, or nothing of
// it was written), as net/http does; never after a timeout, nor once the
// iteration is stopping.
func (c *Client) retry(req *fasthttp.Request, attempts int, err error) (resetTimeout, retry bool) {
	fresh := c.wire.dials != c.at.dials // the connection was made for this request: not a stale one
	if attempts > 1 || fresh || c.wire.recv != c.at.recv || c.stop.ended() || errors.Is(err, fasthttp.ErrTimeout) {
		return false, false
	}
	if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
		return false, false
	}
	idem := req.Header.IsGet() || req.Header.IsHead() || req.Header.IsPut() || req.Header.IsDelete() || req.Header.IsOptions()
	return true, idem || c.wire.sent == c.at.sent
}

// Target is the base URL requests go to.
func (c *Client) Target() string { return c.tgt.base }

// ErrNoResponse wraps transport errors (status 0).
var ErrNoResponse = errors.New("no response")

// Do sends the request and records it. A response with any status is not
// an error (check it); a request that got no response returns status 0
// and an error. Requests cut short because the test is stopping are not
// recorded, so a test's end does not show up as failures.
func (c *Client) Do(ctx context.Context, r *Request) (*Response, error) {
	out := &c.out
	*out = Response{}
	if c.tgt.err != nil {
		return out, c.tgt.err
	}
	var sent, recv int64
	var err error
	if c.rt != nil {
		sent, recv, err = c.rt.do(ctx, c.tgt.base, r, out)
	} else {
		sent, recv, err = c.fastDo(ctx, r, out)
	}
	if err != nil && c.ectx != nil && c.ectx.Err() != nil {
		return out, err // the engine is stopping: not a sample
	}
	name := r.Name
	if name == "" {
		name = r.Path
	}
	failed := err != nil || out.Status >= 400 || out.Status == 0
	if err != nil {
		out.Status = 0
		err = errors.Join(ErrNoResponse, err)
	}
	c.rec.httpSample(httpKey{op: r.Op, layer: r.Layer, name: name, method: r.Method, status: out.Status, failed: failed},
		out.Duration, out.Waiting, sent, recv)
	return out, err
}

// fastDo sends r on the VU's own connection.
func (c *Client) fastDo(ctx context.Context, r *Request, out *Response) (sent, recv int64, err error) {
	if c.stop.watch(ctx) {
		c.hc.CloseIdleConnections() // closed when the last context ended
	}
	if err := ctx.Err(); err != nil {
		return 0, 0, err
	}
	req := &c.req
	req.Reset()
	req.Header.SetNoDefaultContentType(true) // as net/http: no Content-Type unless the request has one
	req.Header.SetMethod(r.Method)
	c.url = append(append(c.url[:0], c.tgt.base...), r.Path...)
	req.SetRequestURIBytes(c.url)
	for k, vs := range r.Header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	if len(r.Body) > 0 {
		req.SetBodyRaw(r.Body)
	}
	c.wire.start, c.wire.wrote, c.wire.firstByte = time.Time{}, time.Time{}, time.Time{}
	c.at = c.wire
	c.res.SkipBody = false // fasthttp sets it for a HEAD and keeps it for the requests after
	err = c.hc.Do(req, &c.res)
	end := time.Now()
	w := &c.wire
	sent, recv = w.sent-c.at.sent, w.recv-c.at.recv
	if !w.start.IsZero() {
		out.Duration = end.Sub(w.start)
	}
	if !w.firstByte.IsZero() && !w.wrote.IsZero() {
		out.Waiting = w.firstByte.Sub(w.wrote)
	}
	if err != nil {
		return sent, recv, err
	}
	out.Status = c.res.StatusCode()
	out.Header = Header{fast: &c.res.Header}
	out.Body = c.res.Body()
	return sent, recv, nil
}

// close ends the VU's connection at the end of the run.
func (c *Client) close() {
	c.stop.release()
	if c.hc != nil {
		c.hc.CloseIdleConnections()
	}
}

// stopWatch closes the VU's connection when the context of its requests
// ends, so a request waiting on a stalled server returns at once when the
// test stops or the VU is ramped down (net/http does the same with a
// cancelled request). It watches one context at a time and keeps watching
// it across requests: the engine's context stays the same over many
// iterations, and registering on a context shared by every VU at each
// request would serialise them on its lock.
type stopWatch struct {
	ctx    context.Context // the watched one (the VU's goroutine only)
	unhook func() bool

	mu    sync.Mutex
	gen   uint64   // which watch is current: an earlier one's end is ignored
	conn  net.Conn // the VU's current connection
	fired bool     // the current context ended and conn was closed
	done  atomic.Bool
}

// watch makes ctx the watched context. It reports whether the previous
// one's end closed the connection (the HostClient's idle one is dead).
func (s *stopWatch) watch(ctx context.Context) (closed bool) {
	if ctx == s.ctx {
		return false
	}
	if s.unhook != nil {
		s.unhook()
	}
	s.mu.Lock()
	s.gen++
	gen := s.gen
	closed, s.fired = s.fired, false
	s.done.Store(false)
	s.mu.Unlock()
	s.ctx = ctx
	s.unhook = context.AfterFunc(ctx, func() { s.fire(gen) })
	return closed
}

func (s *stopWatch) fire(gen uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if gen != s.gen {
		return
	}
	s.fired = true
	s.done.Store(true)
	if s.conn != nil {
		s.conn.Close()
	}
}

// context is the watched context (for dialing).
func (s *stopWatch) context() context.Context {
	if s.ctx == nil {
		return context.Background()
	}
	return s.ctx
}

// adopt makes conn the one to close; false when the context has ended.
func (s *stopWatch) adopt(conn net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fired {
		return false
	}
	s.conn = conn
	return true
}

// ended tells whether the watched context has ended.
func (s *stopWatch) ended() bool { return s.done.Load() }

// release stops watching: the VU is about to cancel its iteration's own
// context, whose end must not close the connection.
func (s *stopWatch) release() {
	if s.unhook != nil {
		s.unhook()
	}
	s.ctx, s.unhook = nil, nil
}

// rtClient sends a VU's requests through Options.Transport, timing them
// with httptrace and counting bytes on the transport's countingConns.
type rtClient struct {
	rt                        http.RoundTripper
	trace                     httptrace.ClientTrace
	lastCtx, lastTrace        context.Context
	conn                      *countingConn
	r0, w0                    int64
	gotConn, wrote, firstByte time.Time
	buf                       bytes.Buffer
}

func newRTClient(rt http.RoundTripper) *rtClient {
	c := &rtClient{rt: rt}
	c.trace = httptrace.ClientTrace{
		GotConn: func(i httptrace.GotConnInfo) {
			c.gotConn = time.Now()
			if cc, ok := i.Conn.(*countingConn); ok {
				c.conn, c.r0, c.w0 = cc, cc.r.Load(), cc.w.Load()
			}
		},
		WroteRequest:         func(httptrace.WroteRequestInfo) { c.wrote = time.Now() },
		GotFirstResponseByte: func() { c.firstByte = time.Now() },
	}
	return c
}

func (c *rtClient) do(ctx context.Context, base string, r *Request, out *Response) (sent, recv int64, err error) {
	if ctx != c.lastCtx {
		c.lastCtx, c.lastTrace = ctx, httptrace.WithClientTrace(ctx, &c.trace)
	}
	var body io.Reader
	if len(r.Body) > 0 {
		body = bytes.NewReader(r.Body)
	}
	req, err := http.NewRequestWithContext(c.lastTrace, r.Method, base+r.Path, body)
	if err != nil {
		return 0, 0, err
	}
	if r.Header != nil {
		req.Header = r.Header
	}
	c.conn, c.gotConn, c.wrote, c.firstByte = nil, time.Time{}, time.Time{}, time.Time{}
	start := time.Now()
	res, err := c.rt.RoundTrip(req)
	c.buf.Reset()
	if err == nil {
		_, err = c.buf.ReadFrom(res.Body)
		res.Body.Close()
	}
	end := time.Now()
	if !c.gotConn.IsZero() {
		start = c.gotConn
	}
	out.Body, out.Duration = c.buf.Bytes(), end.Sub(start)
	if !c.firstByte.IsZero() && !c.wrote.IsZero() {
		out.Waiting = c.firstByte.Sub(c.wrote)
	}
	if c.conn != nil {
		sent, recv = c.conn.w.Load()-c.w0, c.conn.r.Load()-c.r0
	}
	if res != nil {
		out.Status, out.Header = res.StatusCode, Header{std: res.Header}
	}
	return sent, recv, err
}
