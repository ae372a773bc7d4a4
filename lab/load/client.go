package load

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"strings"
	"sync/atomic"
	"time"
)

// NewTransport returns the one http.Transport a run shares between its
// VUs: keep-alive pools sized for maxConns so every VU keeps its
// connection, no compression (byte counts are what went over the wire),
// and connections that count the bytes they carry (data_sent,
// data_received).
func NewTransport(maxConns int) *http.Transport {
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
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
		IdleConnTimeout:       90 * time.Second,
		DisableCompression:    true,
		ResponseHeaderTimeout: 60 * time.Second, // k6's default request timeout
		ExpectContinueTimeout: time.Second,
	}
}

// countingConn counts bytes; the transport's read loop and the VU read the
// counters from different goroutines, hence atomics.
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
	// Discard drops the body unread into Response.Body (still counted).
	Discard bool
}

// Response is the outcome of Client.Do. Body is a buffer the client
// reuses: it is valid until the VU's next request.
type Response struct {
	Status   int
	Header   http.Header
	Body     []byte
	Duration time.Duration // http_req_duration
	Waiting  time.Duration // http_req_waiting (time to first byte)
}

// Client is a VU's HTTP client: every request is recorded as k6's
// http_* samples, tagged with the scenario, op, name, method and status.
// It is not safe for concurrent use; each VU has its own.
type Client struct {
	base string
	rt   http.RoundTripper
	rec  *recorder
	ectx context.Context // the engine's context for the current iteration

	trace     httptrace.ClientTrace
	lastCtx   context.Context
	lastTrace context.Context

	conn                      *countingConn
	r0, w0                    int64
	gotConn, wrote, firstByte time.Time
	resp                      Response
	buf                       bytes.Buffer
}

func newClient(base string, rt http.RoundTripper, rec *recorder) *Client {
	c := &Client{base: strings.TrimRight(base, "/"), rt: rt, rec: rec}
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

// Target is the base URL requests go to.
func (c *Client) Target() string { return c.base }

// ErrNoResponse wraps transport errors (status 0).
var ErrNoResponse = errors.New("no response")

// Do sends the request and records it. A response with any status is not
// an error (check it); a request that got no response returns status 0
// and an error. Requests cut short because the test is stopping are not
// recorded, so a test's end does not show up as failures.
func (c *Client) Do(ctx context.Context, r *Request) (*Response, error) {
	if ctx != c.lastCtx {
		c.lastCtx, c.lastTrace = ctx, httptrace.WithClientTrace(ctx, &c.trace)
	}
	var body io.Reader
	if len(r.Body) > 0 {
		body = bytes.NewReader(r.Body)
	}
	req, err := http.NewRequestWithContext(c.lastTrace, r.Method, c.base+r.Path, body)
	if err != nil {
		return nil, err
	}
	if r.Header != nil {
		req.Header = r.Header
	}
	c.conn, c.gotConn, c.wrote, c.firstByte = nil, time.Time{}, time.Time{}, time.Time{}
	start := time.Now()
	res, err := c.rt.RoundTrip(req)
	c.buf.Reset()
	if err == nil {
		if r.Discard {
			_, err = io.Copy(io.Discard, res.Body)
		} else {
			_, err = c.buf.ReadFrom(res.Body)
		}
		res.Body.Close()
	}
	end := time.Now()
	if !c.gotConn.IsZero() {
		start = c.gotConn
	}
	out := &c.resp
	*out = Response{Body: c.buf.Bytes(), Duration: end.Sub(start)}
	if !c.firstByte.IsZero() && !c.wrote.IsZero() {
		out.Waiting = c.firstByte.Sub(c.wrote)
	}
	if err != nil && c.ectx != nil && c.ectx.Err() != nil {
		return out, err // the engine is stopping: not a sample
	}
	if res != nil {
		out.Status, out.Header = res.StatusCode, res.Header
	}
	var sent, recv int64
	if c.conn != nil {
		sent, recv = c.conn.w.Load()-c.w0, c.conn.r.Load()-c.r0
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
	c.rec.httpSample(Tags{Scenario: c.rec.scenario, Op: r.Op, Name: name, Method: r.Method, Status: statusTag(out.Status)},
		out.Duration, out.Waiting, failed, sent, recv)
	return out, err
}
