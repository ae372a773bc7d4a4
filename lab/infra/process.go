package infra

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ProcessOptions configures a locally started PostgreSQL or Redis process.
// The zero value is ready to use.
type ProcessOptions struct {
	// Logger receives start/stop events; nil discards them.
	Logger *slog.Logger
	// PostgresBinDir holds initdb and postgres. Empty: PATH, then the
	// highest /usr/lib/postgresql/*/bin.
	PostgresBinDir string
	// RedisServer is the redis-server binary. Empty: PATH.
	RedisServer string
	// TempRoot is where the process's temporary directory is made.
	// Empty: $HAL9_INFRA_TMPDIR, else /dev/shm when it is a writable
	// tmpfs with 2 GiB free (file creation there is ~10x faster than on
	// disk, and durability is off anyway), else os.TempDir(); /tmp when
	// PostgreSQL runs as the postgres user and the choice is not
	// traversable by it.
	TempRoot string
	// ReadyTimeout bounds the wait for the server to accept connections
	// after each (re)start. Zero: 30s.
	ReadyTimeout time.Duration
	// StopTimeout bounds the polite shutdown before SIGKILL. Zero: 10s.
	StopTimeout time.Duration
	// RedisDatabases is Redis's "databases" setting (logical DBs). Zero: 16.
	RedisDatabases int
	// NoInitdbCache runs initdb every time instead of copying a cluster
	// initialised once per machine (see initCluster). Also set by
	// HAL9_PG_INITDB_CACHE=off.
	NoInitdbCache bool
	// Durable starts PostgreSQL with its durability settings left on
	// (fsync, synchronous_commit, full_page_writes) and, unless TempRoot or
	// $HAL9_INFRA_TMPDIR says otherwise, its data on disk (os.TempDir())
	// rather than in /dev/shm: for measuring what a commit really costs.
	Durable bool
}

func (o ProcessOptions) logger() *slog.Logger {
	if o.Logger != nil {
		return o.Logger
	}
	return slog.New(slog.DiscardHandler)
}

func (o ProcessOptions) readyTimeout() time.Duration {
	if o.ReadyTimeout > 0 {
		return o.ReadyTimeout
	}
	return 30 * time.Second
}

func (o ProcessOptions) stopTimeout() time.Duration {
	if o.StopTimeout > 0 {
		return o.StopTimeout
	}
	return 10 * time.Second
}

// Process is one locally started server (PostgreSQL or Redis) living in its
// own temporary directory on a fixed loopback port. Stop and Start keep the
// directory and the port, so a test can take the backend away and bring it
// back; Close removes everything.
type Process struct {
	name     string // "postgres" or "redis", for messages
	dir      string
	logPath  string
	port     int
	url      string
	stopSig  syscall.Signal
	cred     *syscall.Credential
	opts     ProcessOptions
	log      *slog.Logger
	command  func(port int) (path string, args []string)
	ready    func(ctx context.Context, url string) error
	bindFail func(logTail string) bool

	mu     sync.Mutex
	cmd    *exec.Cmd
	done   chan struct{} // closed once cmd has exited and been reaped
	reaper *reaper
	closed bool
}

// URL is the connection URL (postgres://… or redis://…).
func (p *Process) URL() string { return p.url }

// Port is the loopback TCP port the server listens on.
func (p *Process) Port() int { return p.port }

// Dir is the temporary directory holding the data and the server's log.
func (p *Process) Dir() string { return p.dir }

// LogPath is the file the server's stdout and stderr go to.
func (p *Process) LogPath() string { return p.logPath }

// PID is the server's process id, 0 when it is not running.
func (p *Process) PID() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Running reports whether the server process is up (started and not exited).
func (p *Process) Running() bool { return p.running() }

// running reports whether the server process has not exited.
func (p *Process) running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// ReaperPID is the pid of the watchdog that cleans up if this program dies
// without calling Close (0 when none runs).
func (p *Process) ReaperPID() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.reaper == nil {
		return 0
	}
	return p.reaper.pid()
}

// Start (re)starts a stopped server on the same port and data directory.
// Starting a running server is a no-op.
func (p *Process) Start(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return fmt.Errorf("start %s: process already closed", p.name)
	}
	if p.cmd != nil {
		select {
		case <-p.done: // it died by itself: start it again
			p.cmd, p.done = nil, nil
		default:
			return nil
		}
	}
	return p.startLocked(ctx)
}

// Stop stops the server (SIGINT for PostgreSQL's fast shutdown, SIGTERM for
// Redis; SIGKILL to its process group when that takes too long) and keeps
// the directory and the port for Start.
func (p *Process) Stop(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stopLocked(ctx)
}

// Close stops the server and removes its temporary directory. It is safe to
// call more than once.
func (p *Process) Close(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	err := p.stopLocked(ctx)
	if rmErr := os.RemoveAll(p.dir); rmErr != nil {
		err = errors.Join(err, fmt.Errorf("remove %s dir %s: %w", p.name, p.dir, rmErr))
	}
	if p.reaper != nil {
		p.reaper.release()
		p.reaper = nil
	}
	p.log.Debug("infra: closed", "backend", p.name, "dir", p.dir)
	return err
}

// startLocked starts the server and waits until it answers. A port lost to
// another program between choosing and binding is retried on a new port
// only for the first start; a restart must keep its port.
func (p *Process) startLocked(ctx context.Context) error {
	attempts := 1
	if p.port == 0 {
		attempts = 5
	}
	var err error
	for i := 0; i < attempts; i++ {
		if attempts > 1 {
			if p.port, err = freePort(); err != nil {
				return fmt.Errorf("start %s: %w", p.name, err)
			}
		}
		var tail string
		tail, err = p.startOnce(ctx)
		if err == nil {
			return nil
		}
		if !p.bindFail(tail) || ctx.Err() != nil {
			return err
		}
		p.log.Debug("infra: port taken, retrying", "backend", p.name, "port", p.port)
	}
	return err
}

func (p *Process) startOnce(ctx context.Context) (string, error) {
	logFile, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return "", fmt.Errorf("start %s: open log: %w", p.name, err)
	}
	offset, _ := logFile.Seek(0, io.SeekEnd)
	path, args := p.command(p.port)
	cmd := exec.Command(path, args...)
	cmd.Dir = p.dir
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = childAttr(p.cred, p.deathSignal())
	begin := time.Now()
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return "", fmt.Errorf("start %s (%s): %w", p.name, path, err)
	}
	logFile.Close() // the child holds its own copy
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	p.cmd, p.done = cmd, done
	if p.reaper != nil {
		p.reaper.watch(cmd.Process.Pid)
	}
	if u := p.urlFor(p.port); u != p.url {
		p.url = u // only before the first successful start: URL() reads it unlocked
	}

	rctx, cancel := context.WithTimeout(ctx, p.opts.readyTimeout())
	defer cancel()
	err = waitReady(rctx, done, func(c context.Context) error { return p.ready(c, p.url) })
	if err == nil {
		p.log.Info("infra: started", "backend", p.name, "url", p.url, "pid", cmd.Process.Pid,
			"dir", p.dir, "took", time.Since(begin).Round(time.Millisecond))
		return "", nil
	}
	// Not ready: make sure it is gone before reporting why.
	_ = p.killLocked()
	tail := readTail(p.logPath, offset, 2048)
	return tail, fmt.Errorf("start %s on 127.0.0.1:%d: %w\n--- %s (last lines) ---\n%s", p.name, p.port, err, p.logPath, tail)
}

// urlFor builds the URL for a port; set by the constructors.
func (p *Process) urlFor(port int) string {
	if p.name == "postgres" {
		return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
	}
	return fmt.Sprintf("redis://127.0.0.1:%d/0", port)
}

// deathSignal is what the kernel sends the server when this program dies.
// PostgreSQL gets SIGQUIT (immediate shutdown: it still removes its System V
// shared memory, which SIGKILL would leak); Redis gets SIGKILL. The reaper
// follows up with SIGKILL to the whole group either way.
func (p *Process) deathSignal() syscall.Signal {
	if p.name == "postgres" {
		return syscall.SIGQUIT
	}
	return syscall.SIGKILL
}

func waitReady(ctx context.Context, exited <-chan struct{}, try func(context.Context) error) error {
	var last error
	for {
		select {
		case <-exited:
			return errors.New("server exited before accepting connections")
		default:
		}
		c, cancel := context.WithTimeout(ctx, time.Second)
		last = try(c)
		cancel()
		if last == nil {
			return nil
		}
		select {
		case <-exited:
			return errors.New("server exited before accepting connections")
		case <-ctx.Done():
			return fmt.Errorf("not accepting connections (%w); last attempt: %v", ctx.Err(), last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (p *Process) stopLocked(ctx context.Context) error {
	if p.cmd == nil {
		return nil
	}
	cmd, done := p.cmd, p.done
	pid := cmd.Process.Pid
	select {
	case <-done: // already exited and reaped: its pid may belong to another process now
		p.cmd, p.done = nil, nil
		if p.reaper != nil {
			p.reaper.watch(0)
		}
		return nil
	default:
	}
	_ = syscall.Kill(pid, p.stopSig)
	timer := time.NewTimer(p.opts.stopTimeout())
	defer timer.Stop()
	var err error
	select {
	case <-done:
	case <-timer.C:
		err = fmt.Errorf("stop %s (pid %d): no exit after %v, killed", p.name, pid, p.opts.stopTimeout())
	case <-ctx.Done():
		err = fmt.Errorf("stop %s (pid %d): %w, killed", p.name, pid, ctx.Err())
	}
	if err != nil {
		_ = p.killLocked()
	}
	p.cmd, p.done = nil, nil
	if p.reaper != nil {
		p.reaper.watch(0)
	}
	p.log.Info("infra: stopped", "backend", p.name, "pid", pid)
	return err
}

// killLocked SIGKILLs the server's process group and waits for the leader.
// The leader is not yet reaped while we signal, so its pgid cannot have been
// reused.
func (p *Process) killLocked() error {
	if p.cmd == nil {
		return nil
	}
	select {
	case <-p.done:
	default:
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
	p.cmd, p.done = nil, nil
	if p.reaper != nil {
		p.reaper.watch(0)
	}
	return nil
}

// freePort asks the kernel for a free loopback port. Another program may
// take it before the server binds; callers retry on a bind failure.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// readTail returns at most max bytes from the end of the file, starting no
// earlier than offset.
func readTail(path string, offset int64, max int64) string {
	f, err := os.Open(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	start := offset
	if st.Size()-start > max {
		start = st.Size() - max
	}
	if start < 0 {
		start = 0
	}
	b := make([]byte, st.Size()-start)
	n, _ := f.ReadAt(b, start)
	s := strings.TrimSpace(string(b[:n]))
	if s == "" {
		return "(empty)"
	}
	return s
}

// EnvTempRoot overrides where servers' temporary directories are made.
const EnvTempRoot = "HAL9_INFRA_TMPDIR"

// defaultTempRoot picks the parent of the servers' temporary directories.
func defaultTempRoot() string {
	if d := os.Getenv(EnvTempRoot); d != "" {
		return d
	}
	if ramDirUsable("/dev/shm", 2<<30) {
		return "/dev/shm"
	}
	return os.TempDir()
}

// newProcessDir makes the temporary directory for one server.
func newProcessDir(root, name string) (string, error) {
	if root == "" {
		root = defaultTempRoot()
	}
	dir, err := os.MkdirTemp(root, "hal9-"+name+"-")
	if err != nil {
		return "", fmt.Errorf("create temp dir for %s: %w", name, err)
	}
	// MkdirTemp gives 0700; the directory may have to be handed to the
	// postgres user, which chown does.
	abs, err := filepath.Abs(dir)
	if err != nil {
		return dir, nil
	}
	return abs, nil
}
