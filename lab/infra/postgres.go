package infra

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// pgInstallHint says what to install when PostgreSQL binaries are missing.
const pgInstallHint = "install PostgreSQL's server binaries (Debian/Ubuntu: apt-get install postgresql; macOS: brew install postgresql@16)"

// StartPostgresProcess initialises a fresh cluster in a new temporary
// directory (initdb -A trust -U postgres --no-sync) and starts postgres on a
// free 127.0.0.1 port with durability off (fsync, synchronous_commit,
// full_page_writes; opts.Durable keeps them on) for speed and max_connections=200. The URL connects as
// user postgres to database postgres without a password. As root, initdb and
// postgres run as the unprivileged "postgres" system user, because
// PostgreSQL refuses to run as root. On error nothing is left behind.
func StartPostgresProcess(ctx context.Context, opts ProcessOptions) (*Process, error) {
	initdb, postgres, err := findPostgres(opts.PostgresBinDir)
	if err != nil {
		return nil, err
	}
	tempRoot := opts.TempRoot
	if opts.Durable && tempRoot == "" && os.Getenv(EnvTempRoot) == "" {
		tempRoot = os.TempDir() // a RAM directory would make fsync free
	}
	p, fail, err := newPostgresUserProcess(ctx, "postgres", "pg", syscall.SIGINT, tempRoot, opts)
	if err != nil {
		return nil, err
	}
	data := filepath.Join(p.dir, "data")
	begin := time.Now()
	cached, err := p.initCluster(ctx, initdb, data, opts.NoInitdbCache)
	if err != nil {
		return fail(err)
	}
	p.log.Debug("infra: cluster ready", "from_cache", cached, "took", time.Since(begin).Round(time.Millisecond))
	p.command = func(port int) (string, []string) {
		args := []string{
			"-D", data, "-p", strconv.Itoa(port), "-k", p.dir,
			"-c", "listen_addresses=127.0.0.1", "-c", "max_connections=200",
		}
		if !opts.Durable {
			args = append(args, "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
		}
		return postgres, args
	}
	p.ready = pingPostgres
	p.bindFail = func(tail string) bool {
		return strings.Contains(tail, "Address already in use") || strings.Contains(tail, "could not bind") ||
			strings.Contains(tail, "could not create any TCP/IP sockets")
	}
	p.mu.Lock()
	err = p.startLocked(ctx)
	p.mu.Unlock()
	if err != nil {
		return fail(err)
	}
	return p, nil
}

func (p *Process) runInitdb(ctx context.Context, initdb, data string) error {
	logPath := filepath.Join(p.dir, "initdb.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return fmt.Errorf("start postgres: initdb log: %w", err)
	}
	defer logFile.Close()
	cmd := exec.CommandContext(ctx, initdb, append([]string{"-D", data}, initdbArgs...)...)
	cmd.Dir = p.dir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = childAttr(p.cred, syscall.SIGKILL)
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start postgres: run %s: %w", initdb, err)
	}
	if p.reaper != nil {
		p.reaper.watch(cmd.Process.Pid)
	}
	err = cmd.Wait()
	if p.reaper != nil {
		p.reaper.watch(0)
	}
	if err != nil {
		return fmt.Errorf("start postgres: %s failed: %w\n--- %s (last lines) ---\n%s", initdb, err, logPath, readTail(logPath, 0, 2048))
	}
	return nil
}

// newPostgresUserProcess makes the Process of a server that refuses to run
// as root (PostgreSQL, PgBouncer): as root it runs as the postgres system
// user (cred set), in a new directory under tempRoot handed to that user,
// logging to NAME.log, watched by the reaper (stop: the polite signal).
// fail closes what was made and returns its error with Close's.
func newPostgresUserProcess(ctx context.Context, name, dirPrefix string, stop syscall.Signal, tempRoot string, opts ProcessOptions) (
	p *Process, fail func(error) (*Process, error), err error) {
	cred, root, err := postgresCredential(tempRoot)
	if err != nil {
		return nil, nil, fmt.Errorf("%s (it refuses to run as root): %w", name, err)
	}
	p = &Process{name: name, stopSig: stop, cred: cred, opts: opts, log: opts.logger()}
	if p.dir, err = newProcessDir(root, dirPrefix); err != nil {
		return nil, nil, err
	}
	p.logPath = filepath.Join(p.dir, name+".log")
	polite := "TERM"
	if stop == syscall.SIGINT {
		polite = "INT"
	}
	p.startReaper(polite)
	fail = func(err error) (*Process, error) {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
		defer cancel()
		return nil, errors.Join(err, p.Close(cctx))
	}
	if cred != nil {
		if err := os.Chown(p.dir, int(cred.Uid), int(cred.Gid)); err != nil {
			_, err = fail(fmt.Errorf("start %s: hand %s to the postgres user: %w", name, p.dir, err))
			return nil, nil, err
		}
	}
	return p, fail, nil
}

func (p *Process) startReaper(politeSig string) {
	r, err := startReaper(p.dir, politeSig)
	if err != nil {
		p.log.Warn("infra: no cleanup watchdog; a crash may leave "+p.dir+" behind", "err", err)
		return
	}
	p.reaper = r
}

func pingPostgres(ctx context.Context, url string) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	return conn.Close(ctx)
}

// findPostgres locates initdb and postgres: in binDir when given, else on
// PATH, else in the highest-versioned /usr/lib/postgresql/*/bin (Debian keeps
// them off PATH).
func findPostgres(binDir string) (initdb, postgres string, err error) {
	if binDir != "" {
		initdb, postgres = filepath.Join(binDir, "initdb"), filepath.Join(binDir, "postgres")
		for _, f := range []string{initdb, postgres} {
			if _, err := os.Stat(f); err != nil {
				return "", "", fmt.Errorf("postgres binaries: %w; %s", err, pgInstallHint)
			}
		}
		return initdb, postgres, nil
	}
	if i, err1 := exec.LookPath("initdb"); err1 == nil {
		if s, err2 := exec.LookPath("postgres"); err2 == nil {
			return i, s, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(a, b int) bool { return pgVersion(dirs[a]) > pgVersion(dirs[b]) })
	for _, d := range dirs {
		i, s := filepath.Join(d, "initdb"), filepath.Join(d, "postgres")
		if isExecutable(i) && isExecutable(s) {
			return i, s, nil
		}
	}
	return "", "", fmt.Errorf("postgres binaries: initdb and postgres not found on PATH nor under /usr/lib/postgresql/*/bin; %s", pgInstallHint)
}

// pgVersion reads the version from /usr/lib/postgresql/<version>/bin as a
// float (9.6 < 10 < 16); unparsable versions sort last.
func pgVersion(binDir string) float64 {
	v, err := strconv.ParseFloat(filepath.Base(filepath.Dir(binDir)), 64)
	if err != nil {
		return -1
	}
	return v
}

func isExecutable(path string) bool {
	st, err := os.Stat(path)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

// postgresCredential returns the user to run PostgreSQL as (nil: ourselves)
// and the directory to make temporary directories in. PostgreSQL refuses to
// run as root, so root runs it as the "postgres" system user, which must be
// able to reach the temporary directory.
func postgresCredential(tempRoot string) (*syscall.Credential, string, error) {
	if os.Geteuid() != 0 {
		return nil, tempRoot, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, "", fmt.Errorf("postgres as root: PostgreSQL refuses to run as root and there is no \"postgres\" user to run it as (%v); create one (useradd --system postgres, which apt-get install postgresql does) or run as a normal user", err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return nil, "", fmt.Errorf("postgres as root: unusable uid/gid %q/%q for user postgres", u.Uid, u.Gid)
	}
	root := tempRoot
	if root == "" {
		root = defaultTempRoot()
		if !traversable(root) {
			root = "/tmp"
		}
	}
	if !traversable(root) {
		return nil, "", fmt.Errorf("postgres as root: the postgres user cannot reach %s (a parent directory lacks o+x); set TempRoot (or TMPDIR) to a directory like /tmp", root)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, root, nil
}

// traversable reports whether every directory from / down to dir can be
// entered by any user (o+x), and dir can be written by root (it is root
// who creates the temp dir).
func traversable(dir string) bool {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return false
	}
	for d := abs; ; d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err != nil || !st.IsDir() || st.Mode().Perm()&0o001 == 0 {
			return false
		}
		if d == filepath.Dir(d) {
			return true
		}
	}
}
