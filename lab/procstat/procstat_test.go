package procstat_test

import (
	"os"
	"os/exec"
	"runtime"
	"testing"
	"time"

	"github.com/hal9-lab/hal9-lab/lab/procstat"
)

// burn spends CPU in this process until at least d of it is used.
func burn(d time.Duration) {
	_, start, _ := procstat.Stats(os.Getpid())
	x := 0
	for {
		for i := 0; i < 1_000_000; i++ {
			x += i
		}
		if _, now, _ := procstat.Stats(os.Getpid()); now-start >= d.Seconds() {
			return
		}
	}
}

func TestStats(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("/proc is Linux's")
	}
	rss, cpu0, ok := procstat.Stats(os.Getpid())
	if !ok || rss <= 0 {
		t.Fatalf("Stats(self) = %v, %v, %v", rss, cpu0, ok)
	}
	burn(200 * time.Millisecond)
	if _, cpu1, _ := procstat.Stats(os.Getpid()); cpu1-cpu0 < 0.2 {
		t.Errorf("CPU %v then %v after burning 0.2 s", cpu0, cpu1)
	}
	if _, _, ok := procstat.Stats(1 << 30); ok {
		t.Error("a pid that does not exist has stats")
	}
}

// TestTreeCPUSeconds: a child's CPU counts while it runs (as a living
// child) and after it exits (reaped: cutime).
func TestTreeCPUSeconds(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("/proc is Linux's")
	}
	if procstat.TreeCPUSeconds(0) != 0 || procstat.TreeCPUSeconds(1<<30) != 0 {
		t.Error("no process, yet CPU seconds")
	}
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	// sh runs a busy loop in a child shell, then waits for it.
	cmd := exec.Command(sh, "-c", `sh -c 'i=0; while [ $i -lt 150000 ]; do i=$((i+1)); done'`)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	_, own, _ := procstat.Stats(cmd.Process.Pid)
	var during float64
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if v := procstat.TreeCPUSeconds(cmd.Process.Pid); v > during {
			during = v
		}
		if during >= 0.05 {
			break
		}
	}
	_ = cmd.Wait()
	if during <= own {
		t.Errorf("the tree used %v s, the shell alone %v s: the busy child was not counted", during, own)
	}
}
