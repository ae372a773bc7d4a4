package lab

import (
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

	"github.com/hal9-lab/hal9-lab/lab/infra"
)

// ServerOptions start one `hal9 serve`.
type ServerOptions struct {
	Bin          string
	DatabaseURL  string // sqlite://PATH or postgres://...
	RedisURL     string
	RateLimit    float64 // 0: off
	PyroscopeURL string
	DataDir      string
	// AdminAddr fixes the admin listener's address (Prometheus scrapes one
	// address for the whole run); "" picks a free port. Addr fixes the
	// API listener's (a replica restarted behind HAProxy or by a fault keeps its own).
	AdminAddr, Addr string
	// Shutdown is --shutdown-timeout: how long in-flight requests get on
	// SIGTERM; the lab waits that long plus a margin for the exit.
	Shutdown time.Duration
	// Env is added to the lab's own environment (so HAL9_* settings the
	// user exported reach the server; these win over them).
	Env     map[string]string
	LogPath string // server stdout+stderr
	Extra   []string
	// Container, when set, runs the server in a container instead of a
	// process (--server container; servercontainer.go).
	Container *ServerContainer
}

// Server is a running `hal9 serve`: a subprocess in its own process
// group, or a container (ctr set).
type Server struct {
	Addr, AdminAddr string
	cmd             *exec.Cmd
	ctr             *infra.Container
	pid             int           // the container's main process, as /proc sees it
	readyIn         time.Duration // the container's create to ready
	opts            ServerOptions
	done            chan struct{}
	waitErr         error
	code            int // the container's exit code, once done
	logFile         *os.File
}

// StartServer starts the server on free loopback ports. It retries when a
// port was taken between choosing it and the server binding it.
func StartServer(ctx context.Context, opts ServerOptions) (*Server, error) {
	if opts.Bin == "" && opts.Container == nil {
		return nil, errors.New("start server: no binary (build it with `go build -o bin/hal9 ./cmd/hal9` or pass --hal9-bin)")
	}
	if _, err := os.Stat(opts.Bin); err != nil && opts.Container == nil {
		return nil, fmt.Errorf("start server: binary %s: %w", opts.Bin, err)
	}
	if opts.Shutdown == 0 {
		opts.Shutdown = 10 * time.Second
	}
	start := startOnce
	if opts.Container != nil {
		start = startContainer
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		s, err := start(ctx, opts)
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
	addr := opts.Addr
	var err error
	if addr == "" {
		if addr, err = freeAddr(); err != nil {
			return nil, err
		}
	}
	admin := opts.AdminAddr
	// Two free ports picked one after the other can be the same one.
	for admin == "" || admin == addr {
		if opts.AdminAddr != "" {
			return nil, fmt.Errorf("start server: --addr and --admin-addr are both %s", addr)
		}
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
	log, err := createLog(opts.LogPath)
	if err != nil {
		return nil, err
	}
	if log != nil {
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

// createLog creates a server's log file (nil for no path).
func createLog(path string) (*os.File, error) {
	if path == "" {
		return nil, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("create log dir: %w", err)
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("create server log: %w", err)
	}
	return f, nil
}

// args are the flags of `hal9 serve` on the given listeners (and of
// `hal9 config`, which prints the configuration they make): opts'
// database, Redis, data dir and the rest.
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

// PID of the server process (a container's main process as this
// machine's /proc sees it).
func (s *Server) PID() int {
	if s.ctr != nil {
		return s.pid
	}
	return s.cmd.Process.Pid
}

// Signal sends sig to the server: its process group, or the container's
// main process.
func (s *Server) Signal(sig syscall.Signal) error {
	if s.ctr != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return s.ctr.Signal(ctx, strconv.Itoa(int(sig)))
	}
	return syscall.Kill(-s.cmd.Process.Pid, sig)
}

// ExitCode is the server's exit code once it has exited (-1 when a
// process was killed by a signal; a container reports 128+signal).
func (s *Server) ExitCode() int {
	<-s.done
	if s.ctr != nil {
		return s.code
	}
	return s.cmd.ProcessState.ExitCode()
}

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
		_ = s.Signal(syscall.SIGTERM)
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
	code = s.ExitCode()
	if code != 0 {
		return code, took, fmt.Errorf("server exited with code %d after SIGTERM (want 0)%s", code, s.logTail())
	}
	return 0, took, nil
}

// Kill SIGKILLs the server's process group, or its container (Ctrl-C
// twice, failures).
func (s *Server) Kill() {
	if s.ctr != nil {
		_ = s.Signal(syscall.SIGKILL)
		return
	}
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
