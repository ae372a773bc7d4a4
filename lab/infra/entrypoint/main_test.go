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

// A cluster made at build time is copied, modes kept; an existing one is
// left alone.
func TestEnsureClusterFromTemplate(t *testing.T) {
	tmpl := filepath.Join(t.TempDir(), "template")
	if err := os.MkdirAll(filepath.Join(tmpl, "base", "1"), 0o700); err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{"PG_VERSION": "15\n", "base/1/1259": "rel", "postgresql.conf": "listen_addresses = '*'\n"} {
		if err := os.WriteFile(filepath.Join(tmpl, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	data := filepath.Join(t.TempDir(), "data")
	if err := ensureCluster(data, tmpl, nil); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(data, "base", "1", "1259"))
	if err != nil || string(b) != "rel" {
		t.Fatalf("copied relation file: %q, %v", b, err)
	}
	for _, p := range []string{data, filepath.Join(data, "PG_VERSION")} {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s has mode %v: PostgreSQL wants it private", p, st.Mode().Perm())
		}
	}
	// A second start finds the cluster and copies nothing over it.
	if err := os.WriteFile(filepath.Join(data, "base", "1", "1259"), []byte("changed"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := ensureCluster(data, tmpl, nil); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(data, "base", "1", "1259")); string(b) != "changed" {
		t.Fatalf("an existing cluster was overwritten: %q", b)
	}
}
