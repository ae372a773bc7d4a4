package faults

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// children lists the processes whose parent is pid (from /proc; none
// where /proc is missing). PostgreSQL's backends and auxiliary processes
// are the postmaster's children, each in a session of its own (they call
// setsid), so a signal to the postmaster's process group misses them.
func children(pid int) []int {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var out []int
	for _, f := range stats {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		// "pid (comm) state ppid …": comm may hold spaces and parentheses.
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		fields := strings.Fields(s[i+1:])
		if len(fields) < 2 {
			continue
		}
		if ppid, _ := strconv.Atoi(fields[1]); ppid == pid {
			if c, err := strconv.Atoi(filepath.Base(filepath.Dir(f))); err == nil {
				out = append(out, c)
			}
		}
	}
	return out
}

// signalTree sends sig to pid and then to its children (the parent first:
// a stopped postmaster forks no new backend meanwhile).
func signalTree(pid int, sig syscall.Signal) error {
	if err := syscall.Kill(pid, sig); err != nil {
		return err
	}
	for _, c := range children(pid) {
		_ = syscall.Kill(c, sig)
	}
	return nil
}

// alive reports whether any of pids still exists (a zombie counts as gone).
func alive(pids []int) bool {
	for _, p := range pids {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(p) + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		if i := strings.LastIndexByte(s, ')'); i >= 0 && strings.HasPrefix(strings.TrimSpace(s[i+1:]), "Z") {
			continue
		}
		return true
	}
	return false
}
