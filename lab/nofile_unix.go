//go:build unix

package lab

import "syscall"

// openFileLimit raises the soft RLIMIT_NOFILE to the hard one (Go does it
// at start-up since 1.19; this says what it came to) and returns it.
func openFileLimit() (uint64, bool) {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0, false
	}
	if r.Cur < r.Max {
		r.Cur = r.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &r)
		_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r)
	}
	return uint64(r.Cur), true
}
