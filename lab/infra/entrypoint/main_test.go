package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteHBA(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pg_hba.conf")
	base := "local all all trust\nhost all all 127.0.0.1/32 trust\n"
	if err := os.WriteFile(path, []byte(base), 0o600); err != nil {
		t.Fatal(err)
	}
	// A restart on other networks replaces the block, never stacks them.
	for _, nets := range [][]string{{"172.18.0.0/16"}, {"10.9.8.0/24", "10.9.9.0/24"}} {
		if err := writeHBA(path, nets); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := base + hbaMarker + "\nhost all all 10.9.8.0/24 trust\nhost all all 10.9.9.0/24 trust\n"
	if string(b) != want {
		t.Fatalf("pg_hba.conf =\n%s\nwant\n%s", b, want)
	}
}

func TestLocalNetworksSkipsLoopback(t *testing.T) {
	nets, err := localNetworks()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nets {
		if strings.HasPrefix(n, "127.") || n == "::1/128" {
			t.Errorf("loopback network %s listed", n)
		}
		if !strings.Contains(n, "/") {
			t.Errorf("%q is not a CIDR", n)
		}
	}
}

func TestRunErrors(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"no command", nil, nil, "no command"},
		{"postgres without PGDATA", []string{"postgres"}, nil, "PGDATA is not set"},
		{"flags mean postgres", []string{"-c", "x=1"}, nil, "PGDATA is not set"},
		{"unknown program", []string{"no-such-program-hal9"}, nil, "find no-such-program-hal9"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := run(tc.args, env(tc.env))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}
