package app

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// TestAdminHostCheck: the admin listener refuses a Host name it was not
// told about (a DNS-rebinding page's), reads and writes alike, and answers
// IP addresses, localhost and the allowed names.
func TestAdminHostCheck(t *testing.T) {
	a := startApp(t, func(c *Config) { c.AdminAllowedHosts = "metrics.internal,.svc.test" })
	port := a.admin[strings.LastIndexByte(a.admin, ':')+1:]
	for _, tc := range []struct {
		host string
		want int
	}{
		{"evil.example", http.StatusForbidden},
		{"evil.example:" + port, http.StatusForbidden},
		{"svc.test.evil.example", http.StatusForbidden},
		{"localhost:" + port, http.StatusOK},
		{"127.0.0.1:" + port, http.StatusOK},
		{"[::1]:" + port, http.StatusOK},
		{"10.1.2.3:9091", http.StatusOK}, // a pod IP: probes and scrapes
		{"metrics.internal", http.StatusOK},
		{"hal9.ns.svc.test:" + port, http.StatusOK},
	} {
		r := doURL(t, "GET", a.admin+"/metrics", nil, "Host", tc.host)
		if r.Status != tc.want {
			t.Errorf("GET /metrics with Host %s: %d, want %d", tc.host, r.Status, tc.want)
		}
		if tc.want == http.StatusForbidden && !strings.Contains(r.errMsg(), "--admin-allowed-hosts") {
			t.Errorf("the refusal does not say how to allow a name: %s", r.Body)
		}
	}
	if r := doURL(t, "PUT", a.admin+"/admin/llm/faults", map[string]any{"error_rate": 1}, "Host", "evil.example"); r.Status != http.StatusForbidden {
		t.Fatalf("PUT /admin/llm/faults from a rebinding page: %d %s", r.Status, r.Body)
	}
	if r := doURL(t, "GET", a.admin+"/admin/llm/faults", nil); r.JSON["error_rate"] != 0.0 {
		t.Fatalf("the faults after a refused PUT: %s", r.Body)
	}
}

// TestAdminListenerLimits: the admin listener serves at most AdminMaxConns
// connections at once (the next one waits until one closes) and has read,
// write and idle timeouts.
func TestAdminListenerLimits(t *testing.T) {
	a := startApp(t, nil)
	addr := strings.TrimPrefix(a.admin, "http://")
	var held []net.Conn
	for range AdminMaxConns {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, conn)
		t.Cleanup(func() { conn.Close() })
	}
	// Each held connection is accepted (they are served one request each).
	for i, conn := range held {
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(conn, "GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
		if resp, err := http.ReadResponse(bufio.NewReader(conn), nil); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("held admin connection %d: %v", i, err)
		}
	}
	extra, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	io.WriteString(extra, "GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
	br := bufio.NewReader(extra)
	extra.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	if _, err := br.Peek(1); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("admin connection %d answered (%v) while %d were open", AdminMaxConns+1, err, AdminMaxConns)
	}
	held[0].Close()
	extra.SetReadDeadline(time.Now().Add(10 * time.Second))
	if resp, err := http.ReadResponse(br, nil); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("admin connection %d after one closed: %v", AdminMaxConns+1, err)
	}
	if err := a.stop(); err != nil {
		t.Fatal(err)
	}
	if s := a.app.adminSrv; s.ReadTimeout != AdminReadTimeout || s.WriteTimeout != AdminWriteTimeout || s.IdleTimeout != AdminIdleTimeout {
		t.Fatalf("admin listener timeouts: read %v, write %v, idle %v; want %v, %v, %v",
			s.ReadTimeout, s.WriteTimeout, s.IdleTimeout, AdminReadTimeout, AdminWriteTimeout, AdminIdleTimeout)
	}
}
