package server

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestParseTrustedProxies(t *testing.T) {
	tests := []struct {
		in      string
		nets    int
		wantErr string
	}{
		{"", 0, ""},
		{" , ", 0, ""},
		{"127.0.0.1/32", 1, ""},
		{"127.0.0.1", 1, ""},
		{"10.0.0.0/8, 192.168.0.0/16 ,::1,fd00::/8", 4, ""},
		{"10.0.0.0/33", 0, `"10.0.0.0/33" is not an IP address or CIDR range`},
		{"proxy.internal", 0, `"proxy.internal" is not an IP address`},
		{"fe80::1%eth0", 0, "no zones"},
		{"127.0.0.1,nope", 0, `"nope"`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			tp, err := ParseTrustedProxies(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				if !strings.Contains(err.Error(), "e.g. 127.0.0.1/32") {
					t.Errorf("the error does not say how to write the list: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.nets == 0 {
				if tp != nil {
					t.Fatalf("got %v, want nil (no proxy trusted)", tp)
				}
				return
			}
			if len(tp.nets) != tt.nets {
				t.Errorf("%d ranges, want %d", len(tp.nets), tt.nets)
			}
		})
	}
}

func TestTrustedProxiesClientIP(t *testing.T) {
	tp, err := ParseTrustedProxies("127.0.0.1/32,10.0.0.0/8,fd00::/8")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		peer   string
		xff    []string // one entry per header line
		want   string
		notNil bool
	}{
		{name: "direct client, no header", peer: "203.0.113.9:5000", want: "203.0.113.9"},
		{name: "untrusted peer: a spoofed header is ignored", peer: "203.0.113.9:5000", xff: []string{"198.51.100.1"}, want: "203.0.113.9"},
		{name: "untrusted IPv6 peer: a spoofed header is ignored", peer: "[2001:db8::7]:443", xff: []string{"198.51.100.1"}, want: "2001:db8::7"},
		{name: "trusted proxy, one hop", peer: "127.0.0.1:40000", xff: []string{"198.51.100.1"}, want: "198.51.100.1"},
		{name: "trusted proxy, client forged hops to the left", peer: "127.0.0.1:40000", xff: []string{"6.6.6.6, 7.7.7.7, 198.51.100.1"}, want: "198.51.100.1"},
		{name: "two trusted proxies", peer: "127.0.0.1:40000", xff: []string{"198.51.100.1, 10.1.2.3"}, want: "198.51.100.1"},
		{name: "several header lines", peer: "127.0.0.1:40000", xff: []string{"6.6.6.6", "198.51.100.1, 10.1.2.3"}, want: "198.51.100.1"},
		{name: "IPv6 client behind an IPv6 proxy", peer: "[fd00::1]:8080", xff: []string{"2001:db8::42"}, want: "2001:db8::42"},
		{name: "IPv6 client with a port and brackets", peer: "127.0.0.1:1", xff: []string{"[2001:db8::42]:5555"}, want: "2001:db8::42"},
		{name: "IPv4 client with a port", peer: "127.0.0.1:1", xff: []string{"198.51.100.1:5555"}, want: "198.51.100.1"},
		{name: "every hop trusted: the peer", peer: "127.0.0.1:1", xff: []string{"10.0.0.5, 127.0.0.1"}, want: "127.0.0.1"},
		{name: "trusted proxy without a header: the peer", peer: "10.9.9.9:1", want: "10.9.9.9"},
		{name: "rightmost untrusted entry is garbage: the peer", peer: "127.0.0.1:1", xff: []string{"198.51.100.1, not-an-ip"}, want: "127.0.0.1"},
		{name: "empty header: the peer", peer: "127.0.0.1:1", xff: []string{""}, want: "127.0.0.1"},
		{name: "IPv4-mapped IPv6 peer is the IPv4 proxy", peer: "[::ffff:127.0.0.1]:1", xff: []string{"198.51.100.1"}, want: "198.51.100.1"},
		{name: "peer without a port", peer: "127.0.0.1", xff: []string{"198.51.100.1"}, want: "198.51.100.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for _, v := range tt.xff {
				h.Add("X-Forwarded-For", v)
			}
			if got := tp.ClientIP(tt.peer, h); got != tt.want {
				t.Errorf("ClientIP(%s, %q) = %q, want %q", tt.peer, tt.xff, got, tt.want)
			}
		})
	}
	// Without --trusted-proxies the header never counts.
	var none *TrustedProxies
	if got := none.ClientIP("127.0.0.1:1", http.Header{"X-Forwarded-For": {"198.51.100.1"}}); got != "127.0.0.1" {
		t.Errorf("no trusted proxies: ClientIP = %q, want the peer", got)
	}
}

// TestClientIPBehindProxy: clientIP, the one function every per-address
// limit keys on, sees the forwarded client only through wrap.
func TestClientIPBehindProxy(t *testing.T) {
	tp, err := ParseTrustedProxies("127.0.0.1/32")
	if err != nil {
		t.Fatal(err)
	}
	var got string
	h := tp.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = clientIP(r) }))
	for _, tt := range []struct{ peer, xff, want string }{
		{"127.0.0.1:9", "198.51.100.1", "198.51.100.1"},
		{"203.0.113.9:9", "198.51.100.1", "203.0.113.9"},
		{"[::1]:9", "198.51.100.1", "::1"}, // ::1 is not 127.0.0.1/32
	} {
		r := httptest.NewRequest(http.MethodGet, "/api/v1/status", nil)
		r.RemoteAddr = tt.peer
		r.Header.Set("X-Forwarded-For", tt.xff)
		h.ServeHTTP(httptest.NewRecorder(), r)
		if got != tt.want {
			t.Errorf("peer %s, X-Forwarded-For %s: clientIP = %q, want %q", tt.peer, tt.xff, got, tt.want)
		}
	}
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.RemoteAddr = "127.0.0.1:9"
	r.Header.Set("X-Forwarded-For", "198.51.100.1")
	if got := clientIP(r); got != "127.0.0.1" {
		t.Errorf("without wrap: clientIP = %q, want the peer", got)
	}
}
