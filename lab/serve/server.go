// Package serve runs the HAL9 servers of a lab leg: one `hal9 serve` as a
// process in its own process group or as a container of the server's image
// (one Server type over either runtime), several as replicas on fixed
// addresses behind HAProxy, and what the lab reads of them beside HTTP:
// their configuration (`hal9 config`) and how it departs from
// production's, their process stats. It talks to a server only by running
// its binary (or image) and over HTTP.
package serve

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

	"github.com/hal9-lab/hal9-lab/lab/procstat"
)

// Options start one `hal9 serve`.
type Options struct {
	Bin          string
	DatabaseURL  string // sqlite://PATH or postgres://...
	RedisURL     string
	RateLimit    float64 // 0: off
	PyroscopeURL string
	DataDir      string
	// AdminAddr fixes the admin listener's address (Prometheus scrapes one
	// address for the whole run); "" picks a free port. Addr fixes the
	// API listener's (a replica restarted behind HAProxy or by a fault
	// keeps its own).
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
	// process (--server container; container.go).
	Container *Container
}

// Args are the flags of `hal9 serve` on the given listeners (and of
// `hal9 config`, which prints the configuration they make): o's database,
// Redis, data dir and the rest.
func (o Options) Args(addr, admin string) []string {
	args := []string{"--addr", addr, "--admin-addr", admin,
		"--database-url", o.DatabaseURL,
		"--rate-limit", strconv.FormatFloat(o.RateLimit, 'f', -1, 64),
		"--data-dir", o.DataDir,
		"--shutdown-timeout", o.Shutdown.String()}
	if o.RedisURL != "" {
		args = append(args, "--redis-url", o.RedisURL)
	}
	if o.PyroscopeURL != "" {
		args = append(args, "--pyroscope-url", o.PyroscopeURL)
	}
	return append(args, o.Extra...)
}

// Server is a running `hal9 serve`, a process or a container: its
// runtime says which. Its methods are the same for both.
type Server struct {
	Addr, AdminAddr string

	rt      runtime
	opts    Options
	done    chan struct{} // closed once it has exited (and code is set)
	code    int
	waitErr error
}

// runtime is where a server runs: a process (process.go) or a container
// (container.go).
type runtime interface {
	pid() int // as this machine's /proc sees it (0: unknown)
	signal(sig syscall.Signal) error
	// wait blocks until the server has exited, releases what its start
	// took (log file, container) and returns the exit code.
	wait() (int, error)
}

// newServer watches rt until it exits.
func newServer(addr, admin string, rt runtime, opts Options) *Server {
	s := &Server{Addr: addr, AdminAddr: admin, rt: rt, opts: opts, done: make(chan struct{})}
	go func() {
		s.code, s.waitErr = rt.wait()
		close(s.done)
	}()
	return s
}

// Start starts the server on free loopback ports (or opts' fixed ones).
// It retries when a port was taken between choosing it and the server
// binding it.
func Start(ctx context.Context, opts Options) (*Server, error) {
	if opts.Bin == "" && opts.Container == nil {
		return nil, errors.New("start server: no binary (build it with `go build -o bin/hal9 ./cmd/hal9` or pass --hal9-bin)")
	}
	if _, err := os.Stat(opts.Bin); err != nil && opts.Container == nil {
		return nil, fmt.Errorf("start server: binary %s: %w", opts.Bin, err)
	}
	if opts.Shutdown == 0 {
		opts.Shutdown = 10 * time.Second
	}
	start := startProcess
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

// URL is the API base URL; AdminURL the admin listener's.
func (s *Server) URL() string      { return "http://" + s.Addr }
func (s *Server) AdminURL() string { return "http://" + s.AdminAddr }

// PID of the server process (a container's main process as this
// machine's /proc sees it).
func (s *Server) PID() int { return s.rt.pid() }

// Signal sends sig to the server: its process group, or the container's
// main process.
func (s *Server) Signal(sig syscall.Signal) error { return s.rt.signal(sig) }

// Done is closed once the server has exited.
func (s *Server) Done() <-chan struct{} { return s.done }

// Exited tells whether the server has ended.
func (s *Server) Exited() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// ExitCode is the server's exit code once it has exited (-1 when a
// process was killed by a signal; a container reports 128+signal).
func (s *Server) ExitCode() int {
	<-s.done
	return s.code
}

// WaitExit waits up to timeout for the server to exit: its exit code, or
// false when it still runs.
func (s *Server) WaitExit(timeout time.Duration) (int, bool) {
	select {
	case <-s.done:
		return s.code, true
	case <-time.After(timeout):
		return -1, false
	}
}

// Stats reads the server's peak RSS and CPU seconds from /proc.
func (s *Server) Stats() (peakRSS, cpuSeconds float64, ok bool) { return procstat.Stats(s.PID()) }

// WaitReady polls the admin /readyz until it answers 200, the server
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
			if err := readyz(ctx, client, base); err != nil {
				last = err.Error()
				continue
			}
			return nil
		}
	}
}

// readyz asks base's /readyz; nil when it answered 200.
func readyz(ctx context.Context, client *http.Client, base string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/readyz", nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%d %s", resp.StatusCode, strings.TrimSpace(string(b)))
	}
	return nil
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
	code, exited := s.WaitExit(wait)
	if !exited {
		s.Kill()
		<-s.done
		return -1, time.Since(start), fmt.Errorf("server did not exit within %s of SIGTERM (drain %s): killed", wait, s.opts.Shutdown)
	}
	took = time.Since(start)
	if code != 0 {
		return code, took, fmt.Errorf("server exited with code %d after SIGTERM (want 0)%s", code, s.logTail())
	}
	return 0, took, nil
}

// Kill SIGKILLs the server: its process group, or its container (Ctrl-C
// twice, failures).
func (s *Server) Kill() { _ = s.Signal(syscall.SIGKILL) }

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

// FreeAddr picks a free loopback port.
func FreeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// process is a server run as a subprocess in its own process group.
type process struct {
	cmd *exec.Cmd
	log *os.File
}

func (p *process) pid() int { return p.cmd.Process.Pid }

func (p *process) signal(sig syscall.Signal) error { return syscall.Kill(-p.cmd.Process.Pid, sig) }

func (p *process) wait() (int, error) {
	err := p.cmd.Wait()
	if p.log != nil {
		p.log.Close()
	}
	return p.cmd.ProcessState.ExitCode(), err
}

// startProcess runs `hal9 serve` on opts' listeners (free ports when
// unset).
func startProcess(ctx context.Context, opts Options) (*Server, error) {
	addr := opts.Addr
	var err error
	if addr == "" {
		if addr, err = FreeAddr(); err != nil {
			return nil, err
		}
	}
	admin := opts.AdminAddr
	// Two free ports picked one after the other can be the same one.
	for admin == "" || admin == addr {
		if opts.AdminAddr != "" {
			return nil, fmt.Errorf("start server: --addr and --admin-addr are both %s", addr)
		}
		if admin, err = FreeAddr(); err != nil {
			return nil, err
		}
	}
	// Not CommandContext: the lab stops the server itself (SIGTERM, then
	// a bounded wait), so a cancelled ctx still gets a clean shutdown.
	cmd := exec.Command(opts.Bin, append([]string{"serve"}, opts.Args(addr, admin)...)...)
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
	return newServer(addr, admin, &process{cmd: cmd, log: log}, opts), nil
}
