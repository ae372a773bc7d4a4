// Package procstat reads what Linux's /proc says about a process: its peak
// resident memory and the CPU time it used, alone or with its children.
// The lab reads its servers (lab/serve), the local databases (lab/backend)
// and itself with it. Where /proc is missing, every reading says so (ok
// false, or 0).
package procstat

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ticksPerSecond is USER_HZ: /proc's CPU times are in clock ticks, 100 per
// second on Linux.
const ticksPerSecond = 100

// Fields of /proc/PID/stat after the parenthesised command, 0-based: the
// state is 0, ppid 1, utime 11, stime 12, cutime 13, cstime 14 (man proc:
// fields 3, 4, 14, 15, 16, 17).
const (
	fieldPPID   = 1
	fieldUTime  = 11
	fieldSTime  = 12
	fieldCUTime = 13
	fieldCSTime = 14
)

// Stats reads the peak RSS (VmHWM, bytes) and the CPU seconds
// (utime+stime) of pid; ok is false where /proc has no such process.
func Stats(pid int) (peakRSS, cpuSeconds float64, ok bool) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, false
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, found := strings.CutPrefix(sc.Text(), "VmHWM:"); found {
			kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			peakRSS = kb * 1024
		}
	}
	f.Close()
	st := stat(pid)
	if st == nil {
		return peakRSS, 0, peakRSS > 0
	}
	return peakRSS, ticks(st, fieldUTime, fieldSTime), true
}

// TreeCPUSeconds sums the CPU seconds of pid, of its reaped children and
// of its living children (a PostgreSQL postmaster and its backends); 0
// where /proc is missing.
func TreeCPUSeconds(pid int) float64 {
	if pid <= 0 {
		return 0
	}
	root := stat(pid)
	if root == nil {
		return 0
	}
	sum := ticks(root, fieldUTime, fieldSTime, fieldCUTime, fieldCSTime)
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	parent := strconv.Itoa(pid)
	for _, d := range dirs {
		p, err := strconv.Atoi(filepath.Base(d))
		if err != nil || p == pid {
			continue
		}
		if f := stat(p); len(f) > fieldPPID && f[fieldPPID] == parent {
			sum += ticks(f, fieldUTime, fieldSTime)
		}
	}
	return sum
}

// stat is /proc/PID/stat's fields after the command (which may hold
// spaces and parentheses itself), or nil.
func stat(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(s[i+1:])
}

// ticks adds fields idx of a stat line, in seconds.
func ticks(f []string, idx ...int) float64 {
	var t float64
	for _, i := range idx {
		if i < len(f) {
			v, _ := strconv.ParseFloat(f[i], 64)
			t += v
		}
	}
	return t / ticksPerSecond
}
