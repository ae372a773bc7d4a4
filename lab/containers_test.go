package lab_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/hal9-lab/hal9-lab/lab"
	"github.com/hal9-lab/hal9-lab/lab/build"
	"github.com/hal9-lab/hal9-lab/lab/infra"
	"github.com/hal9-lab/hal9-lab/lab/infra/infratest"
	"github.com/hal9-lab/hal9-lab/lab/profile"
	"github.com/hal9-lab/hal9-lab/lab/report"
)

// TestRunServerContainers is `hal9-lab run --server container` on SQLite and
// PostgreSQL + Redis at a tiny scale: every leg's server ran in a
// container on its backend's network, sent its profiles to the lab on the
// gateway, exited 0 on SIGTERM, and nothing of this process is left on the
// engine afterwards.
func TestRunServerContainers(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the lab run starts containers")
	}
	sess := infratest.Containers(t) // also checks what is left at the end
	sum, out := runTestProfile(t, "containers-profile.yaml", lab.Options{RequireAll: true, Server: lab.ServerModeContainer,
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
