package server

import (
	"strings"
	"testing"
)

func TestAdminHosts(t *testing.T) {
	h, err := ParseAdminHosts("Metrics.Internal, .svc.test", "admin.example:9091")
	if err != nil {
		t.Fatal(err)
	}
	for host, want := range map[string]bool{
		"evil.example": false, "evil.example:9091": false, "svc.test": false, "xsvc.test": false, "admin.example.evil": false,
		"localhost": true, "LOCALHOST:9091": true, "app.localhost": true, "127.0.0.1": true, "[::1]:9091": true, "10.0.0.7:9091": true,
		"metrics.internal": true, "metrics.internal.": true, "a.b.svc.test:80": true, "admin.example:9091": true,
	} {
		if got := h.allowed(host); got != want {
			t.Errorf("allowed(%q) = %v, want %v", host, got, want)
		}
	}
	if any, _ := ParseAdminHosts("*", ""); !any.allowed("evil.example") {
		t.Error(`"*" must allow any Host`)
	}
	for _, bad := range []string{"host:9091", "http://host", "a b", "[::1]"} {
		if _, err := ParseAdminHosts(bad, ""); err == nil || !strings.Contains(err.Error(), "not a host name") {
			t.Errorf("ParseAdminHosts(%q) = %v, want an error", bad, err)
		}
	}
}
