package profile_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hal9-lab/hal9-lab/lab/load"
	"github.com/hal9-lab/hal9-lab/lab/profile"
)

// root is the repository root (tests run in lab/profile).
const root = "../.."

func TestParseBackends(t *testing.T) {
	tests := []struct {
		in      string
		want    []string
		wantErr string
	}{
		{"sqlite,postgres+redis", []string{"sqlite", "postgres+redis"}, ""},
		{" postgres ", []string{"postgres"}, ""},
		{"mysql", nil, "unknown backend \"mysql\""},
		{"sqlite,sqlite", nil, "twice"},
		{",", nil, "no backend"},
	}
	for _, tt := range tests {
		got, err := profile.ParseBackends(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("profile.ParseBackends(%q) err = %v, want %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || strings.Join(got, ",") != strings.Join(tt.want, ",") {
			t.Errorf("profile.ParseBackends(%q) = %v, %v", tt.in, got, err)
		}
	}
}

func TestLoadProfileErrors(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "scenarios", "profiles"), 0o755)
	os.WriteFile(filepath.Join(dir, "scenarios", "s.yaml"), []byte("name: s\n"), 0o644)
	tests := []struct {
		name, body, wantErr string
	}{
		{"ok", "name: p\nscenarios: [{file: scenarios/s.yaml}]\n", ""},
		{"unknown key", "name: p\nscenarioz: []\n", "field scenarioz not found"},
		{"no name", "scenarios: [{file: scenarios/s.yaml}]\n", "name is required"},
		{"no scenarios", "name: p\n", "list at least one"},
		{"missing file", "name: p\nscenarios: [{file: scenarios/nope.yaml}]\n", "nope.yaml"},
		{"bad backend", "name: p\nbackends: [oracle]\nscenarios: [{file: scenarios/s.yaml}]\n", "unknown backend \"oracle\""},
		{"bad duration", "name: p\nwarmup: soon\nscenarios: [{file: scenarios/s.yaml}]\n", "not a non-negative duration"},
		{"bad ratelimit", "name: p\nscenarios: [{file: scenarios/s.yaml}]\nratelimit: {limit: 10, below: 2}\n", "below"},
		{"zero limit", "name: p\nscenarios: [{file: scenarios/s.yaml}]\nratelimit: {limit: 0}\n", "limit must be positive"},
		{"server ok", "name: p\nscenarios: [{file: scenarios/s.yaml}]\nserver: {bcrypt_cost: 4, rate_limit: 0, llm_latency_scale: 0.5}\n", ""},
		{"server unknown key", "name: p\nscenarios: [{file: scenarios/s.yaml}]\nserver: {bcrypt: 4}\n", "server.bcrypt: unknown key (known keys: bcrypt_cost, llm_latency_scale"},
		{"server out of range", "name: p\nscenarios: [{file: scenarios/s.yaml}]\nserver: {bcrypt_cost: 3}\n", "server.bcrypt_cost: 3 is out of range: want 4..31"},
		{"server bad scale", "name: p\nscenarios: [{file: scenarios/s.yaml}]\nserver: {llm_latency_scale: -1}\n", "server.llm_latency_scale: -1 is out of range"},
		{"postgres unknown key", "name: p\nscenarios: [{file: scenarios/s.yaml}]\npostgres: {fsync: false}\n", "postgres.fsync: unknown key (known keys: durable)"},
		{"capacity without scenario", "name: p\ncapacity: {start_rate: 10}\n", "capacity.scenario is required"},
		{"capacity bad knob", "name: p\ncapacity: {scenario: scenarios/s.yaml, precision: 2}\n", "capacity: precision 2"},
		{"capacity bad slo", "name: p\ncapacity: {scenario: scenarios/s.yaml, slo: [p99]}\n", "want METRIC:EXPRESSION"},
		{"capacity unknown key", "name: p\ncapacity: {scenario: scenarios/s.yaml, steps: 3}\n", "capacity.steps: unknown key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, "scenarios", "profiles", "p.yaml")
			os.WriteFile(path, []byte(tt.body), 0o644)
			p, err := profile.Load(dir, "p")
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if len(p.Backends) != 3 || p.Scale != 1 || p.Repetitions != 1 {
					t.Errorf("defaults not applied: %+v", p)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}
	if _, err := profile.Load(dir, "nightlyy"); err == nil || !strings.Contains(err.Error(), "available: p") {
		t.Errorf("unknown profile: %v", err)
	}
}

// TestShippedProfiles loads scenarios/profiles/*.yaml (and their scenario
// files) as users will.
func TestShippedProfiles(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(root, "scenarios", "profiles", "*.yaml"))
	if len(files) == 0 {
		t.Fatal("no scenarios/profiles/*.yaml found: the shipped profiles are missing")
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".yaml")
		t.Run(name, func(t *testing.T) {
			if _, err := profile.Load(root, name); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestReplicaProfileKeys(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "scenarios", "profiles"), 0o755)
	os.WriteFile(filepath.Join(dir, "scenarios", "s.yaml"), []byte("name: s\n"), 0o644)
	for _, tt := range []struct{ name, body, wantErr string }{
		{"ok", "replicas: 3\npgbouncer: true\nhaproxy: {check_interval: 250ms, fall: 3, rise: 1}\n", ""},
		{"too many", "replicas: 17\n", "replicas: 17: want 1..16"},
		{"negative", "replicas: -1\n", "want 1..16"},
		{"fast checks", "haproxy: {check_interval: 10ms}\n", "haproxy.check_interval: 10ms: want 50ms..1m"},
		{"unknown haproxy key", "haproxy: {balance: leastconn}\n", "field balance not found"},
		{"bad fall", "haproxy: {fall: -1}\n", "fall -1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, "scenarios", "profiles", "p.yaml")
			os.WriteFile(path, []byte("name: p\nscenarios: [{file: scenarios/s.yaml}]\n"+tt.body), 0o644)
			p, err := profile.Load(dir, "p")
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if p.Replicas != 3 || !p.PgBouncer || p.HAProxy.CheckInterval.D() != 250*time.Millisecond || p.HAProxy.Fall != 3 {
					t.Errorf("profile %+v", p.ReplicaSettings)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestServerSettingsArgs(t *testing.T) {
	cost, limit := 4, 2.5
	s := &profile.ServerSettings{BcryptCost: &cost, AuthRateLimit: &limit}
	with := func(f string) bool { return f == "auth-rate-limit" }
	without := func(string) bool { return false }
	args, err := s.Args(with)
	if err != nil || strings.Join(args, " ") != "--bcrypt-cost 4 --auth-rate-limit 2.5" {
		t.Errorf("args %v, %v", args, err)
	}
	if _, err := s.Args(without); err == nil || !strings.Contains(err.Error(), "no --auth-rate-limit flag") {
		t.Errorf("auth_rate_limit on an older server: %v", err)
	}
	// Unset: the lab turns the credential-route limiter off where it exists.
	var none *profile.ServerSettings
	if args, _ := none.Args(with); strings.Join(args, " ") != "--auth-rate-limit 0" {
		t.Errorf("default args %v", args)
	}
	all := func(string) bool { return true }
	if args, _ := none.Args(all); !strings.Contains(strings.Join(args, " "), "--http-max-conns-per-client 0") {
		t.Errorf("default args on a server with the connection cap %v: want it off", args)
	}
	if args, _ := none.Args(without); len(args) != 0 {
		t.Errorf("default args on an older server %v", args)
	}
}

// TestScenarioFaults: a timeline is the profile's faults and the
// scenario's, scaled with it, and refused on a leg that lacks its target
// or when it outlasts the load.
func TestScenarioFaults(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "scenarios", "profiles"), 0o755)
	scenario := filepath.Join(dir, "scenarios", "s.yaml")
	os.WriteFile(scenario, []byte(`name: s
workload: {kind: http, requests: [{path: /}]}
scenarios:
  a: {executor: constant-arrival-rate, rate: 5, duration: 20s, preAllocatedVUs: 2}
faults:
  - {at: 4s, duration: 2s, target: redis, kind: kill}
`), 0o644)
	write := func(body string) *profile.Profile {
		t.Helper()
		os.WriteFile(filepath.Join(dir, "scenarios", "profiles", "p.yaml"), []byte("name: p\nscenarios: [{file: scenarios/s.yaml}]\n"+body), 0o644)
		p, err := profile.Load(dir, "p")
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	plan, err := load.ReadScenarioFile(scenario)
	if err != nil {
		t.Fatal(err)
	}
	p := write("faults:\n  - {at: 8s, duration: 2s, target: postgres, kind: crash}\n")
	specs, err := p.ScenarioFaults(plan, 0.5, []string{profile.PostgresRedis}, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(specs) != 2 || specs[0].Target != "postgres" || specs[0].At != 4*time.Second || specs[1].Target != "redis" || specs[1].At != 2*time.Second {
		t.Errorf("specs %+v: want the profile's crash then the scenario's kill, at half their times", specs)
	}
	if _, err := p.ScenarioFaults(plan, 1, []string{profile.Postgres}, ""); err == nil || !strings.Contains(err.Error(), "on the postgres leg") {
		t.Errorf("a redis fault on the postgres leg: %v", err)
	}
	if _, err := p.ScenarioFaults(plan, 1, []string{profile.PostgresRedis}, "testcontainers"); err == nil {
		t.Error("a kill of containers' Redis passed (only local processes can be killed)")
	}
	if _, err := write("faults:\n  - {at: 19s, duration: 5s, target: postgres, kind: crash}\n").ScenarioFaults(plan, 1, []string{profile.PostgresRedis}, ""); err == nil {
		t.Error("a fault healed after the load's end passed")
	}
	if specs, err := write("").ScenarioFaults(&load.Plan{File: "x.yaml"}, 1, []string{profile.SQLite}, ""); err != nil || specs != nil {
		t.Errorf("no timeline: %v, %v", specs, err)
	}
}
