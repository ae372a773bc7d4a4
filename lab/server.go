package lab

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// BuildServer builds the server binary from the module at root into out.
func BuildServer(ctx context.Context, root, out string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./cmd/hal9")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build -o %s ./cmd/hal9 (in %s): %w\n%s", out, root, err, b)
	}
	return nil
}

// ServerOptions start one `hal9 serve`.
type ServerOptions struct {
	Bin          string
	DatabaseURL  string // sqlite://PATH or postgres://...
	RedisURL     string
	RateLimit    float64 // 0: off
	PyroscopeURL string
	DataDir      string
	// AdminAddr fixes the admin listener's address (Prometheus scrapes one
	// address for the whole run); "" picks a free port.
	AdminAddr string
	// Shutdown is --shutdown-timeout: how long in-flight requests get on
	// SIGTERM; the lab waits that long plus a margin for the exit.
	Shutdown time.Duration
	// Env is added to the lab's own environment (so HAL9_* settings the
	// user exported reach the server; these win over them).
	Env     map[string]string
	LogPath string // server stdout+stderr
	Extra   []string
}

// Server is a running `hal9 serve` subprocess in its own process group.
type Server struct {
	Addr, AdminAddr string
	cmd             *exec.Cmd
	opts            ServerOptions
	done            chan struct{}
	waitErr         error
	logFile         *os.File
}

// StartServer starts the server on free loopback ports. It retries when a
// port was taken between choosing it and the server binding it.
func StartServer(ctx context.Context, opts ServerOptions) (*Server, error) {
	if opts.Bin == "" {
		return nil, errors.New("start server: no binary (build it with `go build -o bin/hal9 ./cmd/hal9` or pass --hal9-bin)")
	}
	if _, err := os.Stat(opts.Bin); err != nil {
		return nil, fmt.Errorf("start server: binary %s: %w", opts.Bin, err)
	}
	if opts.Shutdown == 0 {
		opts.Shutdown = 10 * time.Second
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		s, err := startOnce(ctx, opts)
		if err == nil {
			return s, nil
		}
		lastErr = err
		if !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	return nil, lastErr
}

func startOnce(ctx context.Context, opts ServerOptions) (*Server, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	admin := opts.AdminAddr
	if admin == "" {
		if admin, err = freeAddr(); err != nil {
			return nil, err
		}
	}
	args := append([]string{"serve"}, opts.args(addr, admin)...)
	// Not CommandContext: the lab stops the server itself (SIGTERM, then
	// a bounded wait), so a cancelled ctx still gets a clean shutdown.
	cmd := exec.Command(opts.Bin, args...)
	cmd.Env = os.Environ()
	for k, v := range opts.Env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.SysProcAttr = procAttr() // own process group, killed if the lab dies
	var log *os.File
	if opts.LogPath != "" {
		if err := os.MkdirAll(filepath.Dir(opts.LogPath), 0o755); err != nil {
			return nil, fmt.Errorf("create log dir: %w", err)
		}
		if log, err = os.Create(opts.LogPath); err != nil {
			return nil, fmt.Errorf("create server log: %w", err)
		}
		cmd.Stdout, cmd.Stderr = log, log
	}
	if err := cmd.Start(); err != nil {
		if log != nil {
			log.Close()
		}
		return nil, fmt.Errorf("start %s: %w", opts.Bin, err)
	}
	s := &Server{Addr: addr, AdminAddr: admin, cmd: cmd, opts: opts, done: make(chan struct{}), logFile: log}
	go func() {
		s.waitErr = cmd.Wait()
		if log != nil {
			log.Close()
		}
		close(s.done)
	}()
	return s, nil
}

// args are the flags of `hal9 serve` (and of `hal9 config`, which prints
// the configuration they make).
func (opts ServerOptions) args(addr, admin string) []string {
	args := []string{"--addr", addr, "--admin-addr", admin,
		"--database-url", opts.DatabaseURL,
		"--rate-limit", strconv.FormatFloat(opts.RateLimit, 'f', -1, 64),
		"--data-dir", opts.DataDir,
		"--shutdown-timeout", opts.Shutdown.String()}
	if opts.RedisURL != "" {
		args = append(args, "--redis-url", opts.RedisURL)
	}
	if opts.PyroscopeURL != "" {
		args = append(args, "--pyroscope-url", opts.PyroscopeURL)
	}
	return append(args, opts.Extra...)
}

// freeAddr picks a free loopback port.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// URL is the API base URL; AdminURL the admin listener's.
func (s *Server) URL() string      { return "http://" + s.Addr }
func (s *Server) AdminURL() string { return "http://" + s.AdminAddr }

// PID of the server process.
func (s *Server) PID() int { return s.cmd.Process.Pid }

// Exited tells whether the process has ended.
func (s *Server) Exited() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// WaitReady polls the admin /readyz until it answers 200, the process
// exits, or timeout passes.
func (s *Server) WaitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second}
	var last string
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-s.done:
			return fmt.Errorf("server exited before it was ready (%v)%s", s.waitErr, s.logTail())
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("server not ready within %s (last /readyz: %s)%s", timeout, last, s.logTail())
			}
			return ctx.Err()
		case <-tick.C:
		}
		for _, base := range []string{s.AdminURL(), s.URL()} {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/readyz", nil)
			resp, err := client.Do(req)
			if err != nil {
				last = err.Error()
				continue
			}
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(string(b)))
		}
	}
}

// Stop sends SIGTERM and waits up to the drain time plus a margin. It
// returns the exit code (-1 when killed) and how long the exit took; a
// server still running after the wait is SIGKILLed and that is an error.
func (s *Server) Stop() (code int, took time.Duration, err error) {
	start := time.Now()
	if !s.Exited() {
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGTERM)
	}
	wait := s.opts.Shutdown + 5*time.Second
	select {
	case <-s.done:
	case <-time.After(wait):
		s.Kill()
		<-s.done
		return -1, time.Since(start), fmt.Errorf("server did not exit within %s of SIGTERM (drain %s): killed", wait, s.opts.Shutdown)
	}
	took = time.Since(start)
	code = s.cmd.ProcessState.ExitCode()
	if code != 0 {
		return code, took, fmt.Errorf("server exited with code %d after SIGTERM (want 0)%s", code, s.logTail())
	}
	return 0, took, nil
}

// Kill SIGKILLs the server's process group (Ctrl-C twice, failures).
func (s *Server) Kill() {
	if s.cmd.Process != nil {
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	}
}

// logTail returns the end of the server log for error messages.
func (s *Server) logTail() string {
	if s.opts.LogPath == "" {
		return ""
	}
	b, err := os.ReadFile(s.opts.LogPath)
	if err != nil || len(b) == 0 {
		return ""
	}
	if len(b) > 1500 {
		b = b[len(b)-1500:]
	}
	return "\nserver log (" + s.opts.LogPath + "), last lines:\n" + string(b)
}

// ProcStats reads the peak RSS (VmHWM) and CPU seconds (utime+stime) of
// pid from /proc; ok is false where /proc is missing.
func ProcStats(pid int) (peakRSS, cpuSeconds float64, ok bool) {
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
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return peakRSS, 0, peakRSS > 0
	}
	// Fields after the parenthesised command: state is field 3; utime and
	// stime are fields 14 and 15 (1-based), in clock ticks (100/s on Linux).
	s := string(stat)
	if i := strings.LastIndexByte(s, ')'); i >= 0 {
		fields := strings.Fields(s[i+1:])
		if len(fields) > 12 {
			ut, _ := strconv.ParseFloat(fields[11], 64)
			st, _ := strconv.ParseFloat(fields[12], 64)
			cpuSeconds = (ut + st) / 100
		}
	}
	return peakRSS, cpuSeconds, true
}
