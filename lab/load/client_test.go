package load

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// testClient is a VU's client on its own sink, closed with the test.
func testClient(t *testing.T, url string, tlsConf *tls.Config) (*Client, *sink) {
	t.Helper()
	s := newSink(NewRegistry(), mustProm())
	c := newClient(parseTarget(url, tlsConf), nil, s.recorder("main"))
	t.Cleanup(c.close)
	return c, s
}

// TestClientHTTPSemantics: what workloads rely on from the VU's client
// against a real net/http server: one kept-alive connection per VU,
// redirects not followed, headers and bodies sent as given, chunked and
// HEAD responses read right, response headers in any case.
func TestClientHTTPSemantics(t *testing.T) {
	t.Parallel()
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/redirect":
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
		case "/echo":
			b, _ := io.ReadAll(r.Body)
			w.Header().Set("X-HAL9-Cache", "hit")
			w.Header().Set("X-Got", r.Method+" "+r.URL.RequestURI()+" "+r.Header.Get("Authorization")+" "+r.Header.Get("Content-Type"))
			w.Write(b)
		case "/chunked":
			for i := range 3 {
				io.WriteString(w, strings.Repeat(string(rune('a'+i)), 1000))
				w.(http.Flusher).Flush()
			}
		default:
			w.Header().Set("Content-Length", "5")
			if r.Method != http.MethodHead {
				io.WriteString(w, "hello")
			}
		}
	}))
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	c, _ := testClient(t, srv.URL+"/", nil)
	ctx := context.Background()

	res, err := c.Do(ctx, &Request{Method: "GET", Path: "/redirect", Op: "r"})
	if err != nil || res.Status != http.StatusFound || res.Header.Get("Location") != "/elsewhere" {
		t.Fatalf("redirect: status %d location %q err %v, want 302 not followed", res.Status, res.Header.Get("Location"), err)
	}
	body := []byte(`{"content":"x"}`)
	res, err = c.Do(ctx, &Request{Method: "POST", Path: "/echo?async=true", Body: body, Op: "e",
		Header: http.Header{"Authorization": {"Bearer t"}, "Content-Type": {"application/json"}}})
	if err != nil || res.Status != 200 || string(res.Body) != string(body) {
		t.Fatalf("echo: %d %q %v", res.Status, res.Body, err)
	}
	if got, want := res.Header.Get("x-got"), "POST /echo?async=true Bearer t application/json"; got != want {
		t.Errorf("the server saw %q, want %q", got, want)
	}
	if res.Header.Get("X-HAL9-Cache") != "hit" || res.Header.Get("X-Missing") != "" {
		t.Errorf("headers: X-HAL9-Cache %q", res.Header.Get("X-HAL9-Cache"))
	}
	res, err = c.Do(ctx, &Request{Method: "GET", Path: "/chunked", Op: "c"})
	if err != nil || len(res.Body) != 3000 || res.Body[2999] != 'c' {
		t.Fatalf("chunked: %d bytes, %v", len(res.Body), err)
	}
	res, err = c.Do(ctx, &Request{Method: "HEAD", Path: "/", Op: "h"})
	if err != nil || res.Status != 200 || len(res.Body) != 0 {
		t.Fatalf("HEAD: %d %q %v", res.Status, res.Body, err)
	}
	for range 20 {
		if res, err := c.Do(ctx, &Request{Method: "GET", Path: "/", Op: "g"}); err != nil || string(res.Body) != "hello" {
			t.Fatalf("GET: %q %v", res.Body, err)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections for 24 sequential requests, want 1 kept alive", n)
	}
}

// TestClientCountsTheWire: data_sent and data_received are the bytes on
// the connection, and the durations are those of the exchange.
func TestClientCountsTheWire(t *testing.T) {
	t.Parallel()
	url := cannedOK(t)
	c, s := testClient(t, url, nil)
	req := &Request{Method: "GET", Path: "/x", Op: "get"}
	const n = 10
	for range n {
		if _, err := c.Do(context.Background(), req); err != nil {
			t.Fatal(err)
		}
	}
	wire := "GET /x HTTP/1.1\r\nHost: " + strings.TrimPrefix(url, "http://") + "\r\nUser-Agent: " + userAgent + "\r\n\r\n"
	st := s.snapshot()
	sent, _ := st.selectAgg(MetricDataSent, nil)
	recv, _ := st.selectAgg(MetricDataReceived, nil)
	if sent.sum != float64(n*len(wire)) || recv.sum != float64(n*len(okResponse)) {
		t.Errorf("data_sent %v, data_received %v; want %d and %d", sent.sum, recv.sum, n*len(wire), n*len(okResponse))
	}
	dur, _ := st.selectAgg(MetricHTTPReqDuration, nil)
	wait, _ := st.selectAgg(MetricHTTPReqWaiting, nil)
	if dur.count != n || wait.count != n || dur.min <= 0 || wait.max > dur.max {
		t.Errorf("http_req_duration %d samples, min %v max %v; waiting %d, max %v", dur.count, dur.min, dur.max, wait.count, wait.max)
	}
}

// TestClientStaleConnection: a kept-alive connection the server closed
// while it was idle is replaced for a GET, which is sent again.
func TestClientStaleConnection(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() { // answers one request per connection, then hangs up without saying so
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			b := make([]byte, 4096)
			conn.Read(b)
			conn.Write(okResponse)
			time.Sleep(10 * time.Millisecond)
			conn.Close()
		}
	}()
	c, _ := testClient(t, "http://"+ln.Addr().String(), nil)
	for i := range 3 {
		time.Sleep(50 * time.Millisecond) // the server has closed the last one
		if res, err := c.Do(context.Background(), &Request{Method: "GET", Path: "/", Op: "g"}); err != nil || res.Status != 200 {
			t.Fatalf("request %d: %v", i, err)
		}
	}
}

// TestClientStopsWithItsContext: a request waiting on a stalled server
// returns as soon as its context ends, and the next context gets a new
// connection.
func TestClientStopsWithItsContext(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	var once sync.Once
	defer once.Do(func() { close(release) })
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/stall" {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
		io.WriteString(w, "ok")
	}))
	defer srv.Close()
	c, _ := testClient(t, srv.URL, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := c.Do(ctx, &Request{Method: "GET", Path: "/stall", Op: "s"}); err == nil {
		t.Fatal("a stalled request returned without an error")
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("the request returned %v after its context ended", el)
	}
	if _, err := c.Do(ctx, &Request{Method: "GET", Path: "/", Op: "s"}); err == nil {
		t.Error("a request on an ended context was sent")
	}
	res, err := c.Do(context.Background(), &Request{Method: "GET", Path: "/", Op: "s"})
	if err != nil || string(res.Body) != "ok" {
		t.Errorf("after the context: %v", err)
	}
}

// TestClientTLS: an https target, with the test server's CA given in
// Options.TLS, over HTTP/1.1 and one kept-alive connection.
func TestClientTLS(t *testing.T) {
	t.Parallel()
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Proto)
	}))
	srv.EnableHTTP2 = true
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}
	srv.StartTLS()
	defer srv.Close()
	roots := srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	c, s := testClient(t, srv.URL, &tls.Config{RootCAs: roots})
	for range 3 {
		res, err := c.Do(context.Background(), &Request{Method: "GET", Path: "/", Op: "tls"})
		if err != nil || string(res.Body) != "HTTP/1.1" {
			t.Fatalf("%q %v", res.Body, err)
		}
	}
	if conns.Load() != 1 {
		t.Errorf("%d connections, want 1", conns.Load())
	}
	if sent, _ := s.snapshot().selectAgg(MetricDataSent, nil); sent.sum < 300 { // the handshake is on the wire too
		t.Errorf("data_sent %v", sent.sum)
	}
	c2, _ := testClient(t, srv.URL, nil)
	if _, err := c2.Do(context.Background(), &Request{Method: "GET", Path: "/", Op: "tls"}); err == nil {
		t.Error("a certificate from an unknown CA was accepted")
	}
}
