package serve_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hal9-lab/hal9-lab/lab/build"
	"github.com/hal9-lab/hal9-lab/lab/infra/infratest"
	"github.com/hal9-lab/hal9-lab/lab/procstat"
	"github.com/hal9-lab/hal9-lab/lab/serve"
)

// TestContainerReplica: the replica handle faults build on works for a
// server container: SIGKILL ends it (exit 137), Restart brings a new
// container up on the same published addresses, SIGTERM exits 0.
func TestContainerReplica(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: runs containers")
	}
	sess := infratest.Containers(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	img, err := (&build.Images{Root: root}).For(ctx, sess, serverBin(t))
	if err != nil {
		t.Fatal(err)
	}
	data := t.TempDir()
	if err := os.Chmod(data, 0o777); err != nil {
		t.Fatal(err)
	}
	n := 0
	opts := serve.Options{DatabaseURL: "sqlite://" + filepath.Join(data, "hal9.db"), DataDir: data, Shutdown: 5 * time.Second,
		Env:       map[string]string{"HAL9_BCRYPT_COST": "4"},
		LogPath:   filepath.Join(t.TempDir(), "r0.log"),
		Container: &serve.Container{Session: sess, Image: img.Ref, Name: func() string { n++; return "hal9-t-" + strconv.Itoa(n) }}}
	rs, err := serve.StartReplicas(ctx, opts, serve.Plan{N: 1}, t.Logf)
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
	if code, err := r.Wait(30 * time.Second); err != nil || code != 137 {
		t.Errorf("after SIGKILL: exit code %d, %v; want 137", code, err)
	}
	if err := r.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if r.Addr() != addr || r.AdminURL() != admin || r.Restarts() != 1 {
		t.Errorf("after Restart: %s %s (%d restarts), want %s %s", r.Addr(), r.AdminURL(), r.Restarts(), addr, admin)
	}
	if res, err := http.Get(admin + "/readyz"); err != nil || res.StatusCode != http.StatusOK {
		t.Errorf("restarted replica: /readyz %v, %v", res, err)
	} else {
		res.Body.Close()
	}
	if st := rs.Containers(); len(st) != 1 || !strings.HasPrefix(st[0].Name, "hal9-t-") || st[0].ReadyMS <= 0 {
		t.Errorf("container starts %+v", st)
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
