package infra

import "syscall"

// childAttr puts a server in its own process group (so it is stopped with
// its children, and a terminal's Ctrl-C reaches only us, who stop it in
// order) and asks the kernel to signal it when we die (Pdeathsig), so
// nothing survives a crashed lab. Go sets Pdeathsig after switching user,
// so it holds for servers run as the postgres user too.
func childAttr(cred *syscall.Credential, deathSig syscall.Signal) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: deathSig, Credential: cred}
}
