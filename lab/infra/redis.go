package infra

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

const redisInstallHint = "install Redis (Debian/Ubuntu: apt-get install redis-server; macOS: brew install redis)"

// StartRedisProcess starts redis-server on a free 127.0.0.1 port in a new
// temporary directory without persistence (--save "" --appendonly no). The
// URL points at logical database 0. On error nothing is left behind.
func StartRedisProcess(ctx context.Context, opts ProcessOptions) (*Process, error) {
	bin, err := findRedis(opts.RedisServer)
	if err != nil {
		return nil, err
	}
	dbs := opts.RedisDatabases
	if dbs <= 0 {
		dbs = 16
	}
	p := &Process{name: "redis", stopSig: syscall.SIGTERM, opts: opts, log: opts.logger()}
	if p.dir, err = newProcessDir(opts.TempRoot, "redis"); err != nil {
		return nil, err
	}
	p.logPath = filepath.Join(p.dir, "redis.log")
	p.startReaper("TERM")
	p.command = func(port int) (string, []string) {
		return bin, []string{
			"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
			"--save", "", "--appendonly", "no", "--dir", p.dir,
			"--databases", strconv.Itoa(dbs),
		}
	}
	p.ready = pingRedisRaw
	p.bindFail = func(tail string) bool { return strings.Contains(tail, "Address already in use") }
	p.mu.Lock()
	err = p.startLocked(ctx)
	p.mu.Unlock()
	if err != nil {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
		defer cancel()
		return nil, errors.Join(err, p.Close(cctx))
	}
	return p, nil
}

// pingRedis asks a Redis (any URL: password, TLS) for PONG, once.
func pingRedis(ctx context.Context, url string) error {
	o, err := redis.ParseURL(url)
	if err != nil {
		return err
	}
	o.MaxRetries = -1
	o.DialerRetries = 1
	o.PoolSize = 1
	c := redis.NewClient(o)
	defer c.Close()
	return c.Ping(ctx).Err()
}

// findRedis returns bin when given (checked), else redis-server from PATH.
func findRedis(bin string) (string, error) {
	if bin == "" {
		path, err := exec.LookPath("redis-server")
		if err != nil {
			return "", fmt.Errorf("redis binary: redis-server not found on PATH; %s", redisInstallHint)
		}
		return path, nil
	}
	if !isExecutable(bin) {
		return "", fmt.Errorf("redis binary: %s is not an executable file; %s", bin, redisInstallHint)
	}
	return bin, nil
}

// pingRedisRaw is the readiness probe of our own redis-server: a plain
// PING over TCP, without go-redis, which logs every failed dial to stderr.
func pingRedisRaw(ctx context.Context, rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return err
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(line) != "+PONG" {
		return fmt.Errorf("PING answered %q", strings.TrimSpace(line))
	}
	return nil
}
