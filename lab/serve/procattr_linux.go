package serve

import "syscall"

// procAttr puts a child in its own process group (so SIGTERM/SIGKILL reach
// anything it starts) and has the kernel kill it if the lab dies.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
