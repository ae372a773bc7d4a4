package prom

import (
	"os/exec"
	"syscall"
)

// setProcAttr puts Prometheus in its own process group (so Stop reaches any
// child) and asks the kernel to kill it if the lab dies first. Pdeathsig
// fires when the starting OS thread exits; Go keeps threads alive unless
// they were locked, which the lab never does around Start.
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

func terminate(cmd *exec.Cmd) { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }

func killGroup(cmd *exec.Cmd) { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
