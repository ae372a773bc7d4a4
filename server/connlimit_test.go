package server

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestConnLimitPerClient: a client address over its cap is answered 429
// and closed while another address still connects; a trusted proxy's
// connections are not capped; a client at its cap has its idle keep-alives
// closed after the short idle time, not the server's idle timeout, and may
// connect again once one is gone.
func TestConnLimitPerClient(t *testing.T) {
	trusted, err := ParseTrustedProxies("127.0.0.3")
	if err != nil {
		t.Fatal(err)
	}
	l := newConnLimiter(2, 0, trusted, prometheus.NewRegistry())
	l.idleNear = 50 * time.Millisecond
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }),
		IdleTimeout: 10 * time.Minute, ConnState: l.connState}
	go srv.Serve(l.listener(ln))
	t.Cleanup(func() { srv.Close() })

	dial := func(from string) net.Conn {
		t.Helper()
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
		c, err := d.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatalf("dial from %s: %v", from, err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	get := func(c net.Conn) (int, string) {
		t.Helper()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: test\r\n\r\n"); err != nil {
			return 0, err.Error()
		}
		r, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return 0, err.Error()
		}
		defer r.Body.Close()
		b, _ := io.ReadAll(r.Body)
		return r.StatusCode, string(b)
	}

	a1, a2 := dial("127.0.0.1"), dial("127.0.0.1")
	for _, c := range []net.Conn{a1, a2} {
		if code, body := get(c); code != http.StatusOK {
			t.Fatalf("a connection within the cap: %d %s", code, body)
		}
	}
	if code, body := get(dial("127.0.0.1")); code != http.StatusTooManyRequests || !strings.Contains(body, "--http-max-conns-per-client") {
		t.Fatalf("the third connection of 127.0.0.1 (cap 2): %d %s; want 429 naming the flag", code, body)
	}
	other := dial("127.0.0.2")
	if code, body := get(other); code != http.StatusOK {
		t.Fatalf("another address while 127.0.0.1 is at its cap: %d %s", code, body)
	}
	for range 4 {
		if code, body := get(dial("127.0.0.3")); code != http.StatusOK {
			t.Fatalf("a trusted proxy's connection: %d %s; want no cap per address", code, body)
		}
	}

	// 127.0.0.1 holds 2 of 2: its idle keep-alive closes after idleNear
	// (50 ms here), although the server keeps idle ones 10 minutes.
	a1.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := a1.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("an idle keep-alive of a client at its cap: read %v, want EOF (closed by the server)", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		code, _ := get(dial("127.0.0.1"))
		if code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("127.0.0.1 after one of its connections closed: %d, want 200", code)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if code, body := get(other); code != http.StatusOK { // 1 of 2: not near its cap, kept
		t.Fatalf("the idle keep-alive of a client below half its cap: %d %s", code, body)
	}
	if n := testutil.ToFloat64(l.refused); n < 1 {
		t.Fatalf("hal9_http_connections_refused_total = %v, want at least 1", n)
	}
}
