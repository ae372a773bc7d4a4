//go:build unix && !linux

package infra

import "syscall"

// childAttr: outside Linux there is no Pdeathsig; the reaper alone cleans up
// after a crash.
func childAttr(cred *syscall.Credential, _ syscall.Signal) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Credential: cred}
}
