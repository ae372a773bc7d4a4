package app

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestConnCapPerClient: with the default --http-max-conns-per-client (256),
// one address holding 256 open connections gets its next one answered 429
// and closed, while another address is still served.
func TestConnCapPerClient(t *testing.T) {
	a := startApp(t, nil)
	addr := strings.TrimPrefix(a.api, "http://")
	const cap = 256 // the default --http-max-conns-per-client
	dial := func(from string) net.Conn {
		t.Helper()
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("dial from %s: %v", from, err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	health := func(c net.Conn) (int, string) {
		t.Helper()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(c, "GET /health HTTP/1.1\r\nHost: test\r\n\r\n"); err != nil {
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
	for range cap - 1 {
		dial("127.0.0.1") // open, nothing sent yet
	}
	if code, body := health(dial("127.0.0.1")); code != http.StatusOK {
		t.Fatalf("connection %d of 127.0.0.1: %d %s", cap, code, body)
	}
	if code, body := health(dial("127.0.0.1")); code != http.StatusTooManyRequests || !strings.Contains(body, "rate_limited") {
		t.Fatalf("connection %d of 127.0.0.1: %d %s; want 429 rate_limited", cap+1, code, body)
	}
	if code, body := health(dial("127.0.0.2")); code != http.StatusOK {
		t.Fatalf("another address while 127.0.0.1 is at its cap: %d %s", code, body)
	}
}
