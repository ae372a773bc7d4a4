package infra

import "syscall"

// ramDirUsable: dir is a tmpfs we can create entries in, with at least
// minFree bytes available.
func ramDirUsable(dir string, minFree uint64) bool {
	const tmpfsMagic = 0x01021994
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil || st.Type != tmpfsMagic {
		return false
	}
	if uint64(st.Bavail)*uint64(st.Bsize) < minFree {
		return false
	}
	return syscall.Access(dir, 0x2|0x1) == nil // W_OK|X_OK
}
