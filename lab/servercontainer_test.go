package lab

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/hal9-lab/hal9-lab/lab/build"
	"github.com/hal9-lab/hal9-lab/lab/infra"
	"github.com/hal9-lab/hal9-lab/lab/procstat"
	"github.com/hal9-lab/hal9-lab/lab/profile"
	"github.com/hal9-lab/hal9-lab/lab/report"
)

func TestValidateServerMode(t *testing.T) {
	tests := []struct {
		name      string
		in        Options
		wantInfra string
		wantErr   string
	}{
		{"default is process", Options{}, "", ""},
		{"process keeps infra", Options{Server: "process", Infra: "process"}, "process", ""},
		{"container: auto becomes testcontainers", Options{Server: "container"}, "testcontainers", ""},
		{"container: testcontainers", Options{Server: "container", Infra: "testcontainers"}, "testcontainers", ""},
		{"container: process infra", Options{Server: "container", Infra: "process"}, "", "drop --infra process"},
		{"container: external infra", Options{Server: "container", Infra: "external"}, "", "drop --infra external"},
		{"container: pgbouncer", Options{Server: "container", PgBouncer: true}, "", "drop --pgbouncer"},
		{"container: the profile's pgbouncer", Options{Server: "container", Profile: &profile.Profile{ReplicaSettings: profile.ReplicaSettings{PgBouncer: true}}}, "", "drop --pgbouncer"},
		{"container: loopback pyroscope", Options{Server: "container", PyroscopeURL: "http://localhost:4040"}, "", "give an address they reach"},
		{"container: other pyroscope", Options{Server: "container", PyroscopeURL: "http://pyroscope.example:4040"}, "testcontainers", ""},
		{"unknown", Options{Server: "vm"}, "", `--server "vm"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := tt.in
			err := ValidateServerMode(&o)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if o.Infra != tt.wantInfra || (o.Server != ServerModeProcess && o.Server != ServerModeContainer) {
				t.Errorf("infra %q server %q, want infra %q", o.Infra, o.Server, tt.wantInfra)
			}
		})
	}
}

// needEngine skips without a Docker engine (fails under
// HAL9_REQUIRE_INFRA=1; .ci/run gives the tests one).
func needEngine(t *testing.T) *infra.ContainerSession {
	t.Helper()
	sess, err := infra.NewContainerSession(context.Background(), infra.ImageOptions{}, nil)
	if err != nil {
		if requireInfra() {
			t.Fatalf("HAL9_REQUIRE_INFRA=1 but %v", err)
		}
		t.Skipf("needs a Docker engine: %v", err)
	}
	t.Cleanup(func() { _ = sess.Close(context.Background()) })
	return sess
}

// TestContainerReplica: the replica handle faults build on works for a
// server container: SIGKILL ends it (exit 137), Restart brings a new
// container up on the same published addresses, SIGTERM exits 0.
func TestContainerReplica(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: runs containers")
	}
	sess := needEngine(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	img, err := (&build.Images{Root: root(t)}).For(ctx, sess, serverBin(t))
	if err != nil {
		t.Fatal(err)
	}
	data := t.TempDir()
	if err := os.Chmod(data, 0o777); err != nil {
		t.Fatal(err)
	}
	n := 0
	opts := ServerOptions{DatabaseURL: "sqlite://" + filepath.Join(data, "hal9.db"), DataDir: data, Shutdown: 5 * time.Second,
		Env:       map[string]string{"HAL9_BCRYPT_COST": "4"},
		LogPath:   filepath.Join(t.TempDir(), "r0.log"),
		Container: &ServerContainer{Session: sess, Image: img.Ref, Name: func() string { n++; return "hal9-t-" + strconv.Itoa(n) }}}
	rs, err := startReplicaSet(ctx, opts, replicaPlan{n: 1}, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	r, _ := rs.Replica(0)
	addr, admin := r.Addr(), r.AdminURL()
	if !strings.HasPrefix(addr, "127.0.0.1:") || r.PID() <= 0 {
		t.Fatalf("replica on %s, pid %d: want a published 127.0.0.1 port and a host pid", addr, r.PID())
	}
	if _, _, ok := procstat.Stats(r.PID()); !ok {
		t.Errorf("no /proc numbers for the container's pid %d", r.PID())
	}
	if err := r.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case <-r.Server().done:
	case <-time.After(30 * time.Second):
		t.Fatal("the container still runs 30 s after SIGKILL")
	}
	if code := r.Server().ExitCode(); code != 137 {
		t.Errorf("exit code %d after SIGKILL, want 137", code)
	}
	if err := r.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if r.Addr() != addr || r.AdminURL() != admin || r.Restarts() != 1 {
		t.Errorf("after Restart: %s %s (%d restarts), want %s %s", r.Addr(), r.AdminURL(), r.Restarts(), addr, admin)
	}
	if err := readyz(ctx, strings.TrimPrefix(admin, "http://")); err != nil {
		t.Errorf("restarted replica: %v", err)
	}
	code, _, err := rs.Stop()
	if err != nil || code != 0 {
		t.Errorf("SIGTERM: exit %d, %v; want 0", code, err)
	}
	logs, _ := os.ReadFile(strings.TrimSuffix(opts.LogPath, ".log") + "-restart1.log")
	if !strings.Contains(string(logs), "hal9 serving") || !strings.Contains(string(logs), "shut down") {
		t.Errorf("the restarted container's log lacks its start and shutdown:\n%s", logs)
	}
	if left := sess.Containers(); len(left) != 0 {
		t.Errorf("%d containers left in the session after they exited", len(left))
	}
}

// TestRunServerContainers is `hal9-lab run --server container` on SQLite and
// PostgreSQL + Redis at a tiny scale: every leg's server ran in a
// container on its backend's network, sent its profiles to the lab on the
// gateway, exited 0 on SIGTERM, and nothing of this process is left on the
// engine afterwards.
func TestRunServerContainers(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the lab run starts containers")
	}
	sess := needEngine(t) // also checks what is left at the end
	sum, out := runTestProfile(t, "containers-profile.yaml", Options{RequireAll: true, Server: ServerModeContainer,
		ServerEnv: map[string]string{"HAL9_BCRYPT_COST": "4"}})
	if sum.Verdict() != "pass" || len(sum.LabErrors) > 0 {
		t.Errorf("verdict %q, lab errors %v", sum.Verdict(), sum.LabErrors)
	}
	got := map[string]report.Leg{}
	for _, l := range sum.Legs {
		got[l.Name] = l
	}
	for _, name := range []string{profile.SQLite, profile.PostgresRedis} {
		l, ok := got[name]
		if !ok {
			t.Errorf("leg %s did not run", name)
			continue
		}
		c := l.Containers
		if l.Error != "" || l.Server.ExitCode == nil || *l.Server.ExitCode != 0 {
			t.Errorf("leg %s: error %q, exit %v", name, l.Error, l.Server.ExitCode)
		}
		if c == nil || len(c.Starts) == 0 || !strings.HasPrefix(c.Image, build.LabImagePrefix) || !strings.HasPrefix(c.Network, "hal9-lab-") || c.Gateway == "" {
			t.Errorf("leg %s: containers %+v, want the image, the network and a start", name, c)
			continue
		}
		if l.Server.Requests == 0 || l.Server.PeakRSSBytes == 0 {
			t.Errorf("leg %s: server numbers %v requests, %v peak RSS: /metrics or /proc of the container not read", name, l.Server.Requests, l.Server.PeakRSSBytes)
		}
		if _, err := os.Stat(filepath.Join(out, "profiles", name+"-cpu.pb.gz")); err != nil {
			t.Errorf("leg %s: no CPU profile from the container (receiver on %s): %v", name, c.Gateway, err)
		}
	}
	if l := got[profile.PostgresRedis]; l.Infra != "testcontainers" || !strings.Contains(l.Database, "127.0.0.1:") {
		t.Errorf("postgres+redis leg: infra %q, database %q", l.Infra, l.Database)
	}
	if md, _ := os.ReadFile(filepath.Join(out, report.MarkdownFile)); !strings.Contains(string(md), "## Servers in containers") {
		t.Error("report.md has no section on the server containers")
	}
	// Nothing this process made is left: containers and networks by the
	// owner label, through the engine API.
	f := client.Filters{}.Add("label", infra.LabelOwnerPID+"="+strconv.Itoa(os.Getpid())).Add("label", infra.LabelSession)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ctrs, err := sess.Engine().ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		t.Fatal(err)
	}
	nets, err := sess.Engine().NetworkList(ctx, client.NetworkListOptions{Filters: f})
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, c := range ctrs.Items {
		left = append(left, "container "+strings.Join(c.Names, ","))
	}
	for _, n := range nets.Items {
		if n.Name != sess.Network { // the checking session's own
			left = append(left, "network "+n.Name)
		}
	}
	if len(left) > 0 {
		t.Errorf("left on the engine after the run: %v", left)
	}
}
