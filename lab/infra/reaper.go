package infra

import (
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// Watchdogs clean up after this program when it dies without doing so
// itself. Both kinds hold the read end of a pipe whose write end only this
// program holds (startWatchdog) and read EOF when it dies: the sh script
// below, one per Process, and a copy of this program, one per container
// session (containerreaper.go), which removes containers through the
// engine API.
//
// reaperScript is a tiny watchdog, one per Process. It reads commands on
// stdin, whose write end only this program holds: "pid N" names the
// server's current process group, "done" means we cleaned up ourselves.
// When stdin reaches EOF without "done", this program died (crash, SIGKILL,
// a test binary exiting without teardown): the watchdog stops the server's
// group politely, waits up to 5 s for the leader to exit (a zombie counts as
// exited: in a container nobody may reap it), SIGKILLs what is left of the
// group and removes the temporary directory.
// Pdeathsig alone could not remove the directory.
const reaperScript = `pg=0
while read -r cmd arg; do
  case "$cmd" in
    pid) pg="$arg" ;;
    done) exit 0 ;;
  esac
done
alive() {
  if [ -r "/proc/$pg/stat" ]; then ! grep -q ') Z ' "/proc/$pg/stat"; else kill -0 "$pg" 2>/dev/null; fi
}
if [ "$pg" != 0 ]; then
  kill -"$2" "$pg" 2>/dev/null
  i=0
  while alive && [ "$i" -lt 50 ]; do sleep 0.1; i=$((i+1)); done
  kill -KILL -"$pg" 2>/dev/null
fi
rm -rf "$1"
`

type reaper struct {
	mu   sync.Mutex
	cmd  *exec.Cmd
	w    *os.File
	done chan struct{}
}

// startReaper starts the watchdog for dir; politeSig is the signal name
// (INT, TERM) that stops the server cleanly.
func startReaper(dir, politeSig string) (*reaper, error) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		return nil, fmt.Errorf("start cleanup watchdog: %w", err)
	}
	return startWatchdog(exec.Command(sh, "-c", reaperScript, "hal9-reaper", dir, politeSig))
}

// startWatchdog starts cmd with its stdin on a pipe whose write end only
// this program holds: the watchdog sees our end (however it comes) as EOF.
// It runs in its own process group so neither a terminal's Ctrl-C nor a
// kill of a server's group reaches it, and it has no Pdeathsig: outliving
// us is its job.
func startWatchdog(cmd *exec.Cmd) (*reaper, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("start cleanup watchdog: %w", err)
	}
	cmd.Stdin = r
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		r.Close()
		w.Close()
		return nil, fmt.Errorf("start cleanup watchdog: %w", err)
	}
	r.Close()
	rp := &reaper{cmd: cmd, w: w, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(rp.done) }()
	return rp, nil
}

func (r *reaper) pid() int { return r.cmd.Process.Pid }

// watch tells the watchdog the server's current pid (= its process group),
// 0 when none runs.
func (r *reaper) watch(pid int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.w != nil {
		fmt.Fprintf(r.w, "pid %d\n", pid)
	}
}

// release dismisses the watchdog after we cleaned up ourselves.
func (r *reaper) release() {
	r.mu.Lock()
	if r.w != nil {
		fmt.Fprintln(r.w, "done")
		r.w.Close()
		r.w = nil
	}
	r.mu.Unlock()
	select {
	case <-r.done:
	case <-time.After(5 * time.Second):
		_ = r.cmd.Process.Kill()
		<-r.done
	}
}
