//go:build unix && !linux

package infra

// ramDirUsable: only Linux's /dev/shm is used; elsewhere the disk.
func ramDirUsable(string, uint64) bool { return false }
