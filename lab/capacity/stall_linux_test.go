//go:build linux

package capacity

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"
)

// The stall meter reports a stop of the whole process: a shell sends the
// test binary SIGSTOP, then SIGCONT 100 ms later.
func TestStallMeter(t *testing.T) {
	begin := time.Now()
	stop := startStallMeter()
	time.Sleep(20 * time.Millisecond)
	sh := exec.Command("sh", "-c", fmt.Sprintf("kill -STOP %[1]d; sleep 0.1; kill -CONT %[1]d", os.Getpid()))
	if err := sh.Run(); err != nil {
		t.Skipf("sh: %v", err)
	}
	time.Sleep(20 * time.Millisecond)
	worst, share := stop()
	elapsed := time.Since(begin)
	if worst < 80*time.Millisecond {
		t.Errorf("a stop of 100 ms measured as %s", worst)
	}
	// The time spent late includes the worst stall, and is not more than
	// the time measured.
	if late := time.Duration(share * float64(elapsed)); late < worst*9/10 || share > 1 {
		t.Errorf("late %s (%.2f) of %s, the worst stall %s", late, share, elapsed, worst)
	}
}
