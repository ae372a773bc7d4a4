package app

import (
	"context"
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
	const cap = 256 // the default --http-max-conns-per-client
	from := func(ip string) *net.Dialer {
		return &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	}
	for range cap {
		c, err := from("127.0.0.1").Dial("tcp", strings.TrimPrefix(a.api, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() }) // open, nothing sent
	}
	health := func(ip string) (int, string) {
		t.Helper()
		cl := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				return from(ip).DialContext(ctx, network, addr)
			}}}
		defer cl.CloseIdleConnections()
		r := doWith(t, cl, "GET", a.api+"/health", nil)
		return r.Status, string(r.Body)
	}
	if code, body := health("127.0.0.1"); code != http.StatusTooManyRequests || !strings.Contains(body, "rate_limited") {
		t.Fatalf("connection %d of 127.0.0.1: %d %s; want 429 rate_limited", cap+1, code, body)
	}
	if code, body := health("127.0.0.2"); code != http.StatusOK {
		t.Fatalf("another address while 127.0.0.1 is at its cap: %d %s", code, body)
	}
}
