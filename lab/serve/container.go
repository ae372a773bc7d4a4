package serve

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hal9-lab/hal9-lab/lab/infra"
	"github.com/hal9-lab/hal9-lab/lab/report"
)

// --server container: a leg's servers run as containers of the server's
// image on the container session of the leg's backend (the network
// PostgreSQL and Redis are on; a session of its own for SQLite). They
// reach PostgreSQL and Redis by name (postgres:5432, redis:6379), the
// lab's profile receiver on the network's gateway (this machine on that
// network); the lab, HAProxy and Prometheus reach them on their ports
// published on 127.0.0.1. Everything else is the process's: the same
// `hal9 serve` flags, readiness, SIGTERM and exit 0, restarts on the same
// addresses.

// Ports of `hal9 serve` inside its container (the image's defaults).
const (
	containerAPIPort   = 8080
	containerAdminPort = 9091
	containerDataDir   = "/data"
)

// Container says how Start runs a server in a container.
type Container struct {
	Session *infra.ContainerSession
	Image   string
	// Name gives each start a container name of its own (a restart runs
	// a new container).
	Name func() string
	// NetworkURL turns a URL of a backend as this machine reaches it
	// into the URL the containers reach (nil: SQLite, nothing to turn).
	NetworkURL func(hostURL string) (string, error)
}

// TrustedProxy is the address HAProxy's connections come from as the
// servers in c's containers see them: through the published ports (the
// engine's proxy), the network's gateway; 127.0.0.1 for processes (c nil).
func (c *Container) TrustedProxy() string {
	if c == nil {
		return "127.0.0.1/32"
	}
	return c.Session.Gateway + "/32"
}

// container is a server run as a container.
type container struct {
	ctr     *infra.Container
	hostPID int           // its main process as this machine's /proc sees it (0: unknown)
	readyIn time.Duration // create to ready
	logged  chan struct{} // closed when its output has been copied to the log
	log     *os.File
}

func (c *container) pid() int { return c.hostPID }

func (c *container) signal(sig syscall.Signal) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return c.ctr.Signal(ctx, strconv.Itoa(int(sig)))
}

// wait removes the container once it has exited (the session removes
// what is left).
func (c *container) wait() (int, error) {
	code, err := c.ctr.Wait(context.Background())
	select { // the stream ends with the container; do not hang on an engine that does not end it
	case <-c.logged:
	case <-time.After(5 * time.Second):
	}
	if c.log != nil {
		c.log.Close()
	}
	rctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	_ = c.ctr.Remove(rctx)
	cancel()
	return code, err
}

// ContainerStart describes a server container's start for the report
// (false for a process).
func (s *Server) ContainerStart() (report.ContainerStart, bool) {
	c, ok := s.rt.(*container)
	if !ok {
		return report.ContainerStart{}, false
	}
	return report.ContainerStart{Name: c.ctr.Name, ReadyMS: float64(c.readyIn.Microseconds()) / 1000}, true
}

// startContainer runs one `hal9 serve` as a container: the process's
// flags with listeners on the container's ports, the database and Redis as
// the network reaches them, the data dir mounted at /data, ports published
// on 127.0.0.1 (on the fixed ones opts names, so a restart keeps its
// addresses). Its output goes to opts.LogPath as it comes.
func startContainer(ctx context.Context, opts Options) (*Server, error) {
	c := opts.Container
	run := opts
	var err error
	for _, u := range []*string{&run.DatabaseURL, &run.RedisURL} {
		switch {
		case *u == "":
		case strings.HasPrefix(*u, "sqlite://"):
			p := strings.TrimPrefix(*u, "sqlite://")
			rel, rerr := filepath.Rel(opts.DataDir, p)
			if rerr != nil || strings.HasPrefix(rel, "..") {
				return nil, fmt.Errorf("server container: the SQLite file %s is not under the data dir %s, the only host path the container sees", p, opts.DataDir)
			}
			*u = "sqlite://" + filepath.ToSlash(filepath.Join(containerDataDir, rel))
		case c.NetworkURL == nil:
			return nil, fmt.Errorf("server container: no container network for %s", *u)
		default:
			if *u, err = c.NetworkURL(*u); err != nil {
				return nil, fmt.Errorf("server container: %w", err)
			}
		}
	}
	run.DataDir = containerDataDir
	hostPorts := map[int]int{}
	for port, addr := range map[int]string{containerAPIPort: opts.Addr, containerAdminPort: opts.AdminAddr} {
		if addr == "" {
			continue
		}
		host, p, err := net.SplitHostPort(addr)
		n, perr := strconv.Atoi(p)
		if err != nil || perr != nil || (host != "127.0.0.1" && host != "") {
			return nil, fmt.Errorf("server container: address %q: the containers' ports are published on 127.0.0.1: give 127.0.0.1:PORT", addr)
		}
		hostPorts[port] = n
	}
	env := map[string]string{}
	for _, kv := range os.Environ() { // the HAL9_* settings the user exported, as a process gets them
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, "HAL9_") {
			env[k] = v
		}
	}
	for k, v := range opts.Env {
		env[k] = v
	}
	log, err := createLog(opts.LogPath)
	if err != nil {
		return nil, err
	}
	begin := time.Now()
	ctr, err := c.Session.Run(ctx, infra.ContainerSpec{
		Name: c.Name(), Image: c.Image,
		Cmd: append([]string{"serve"}, run.Args(fmt.Sprintf("0.0.0.0:%d", containerAPIPort), fmt.Sprintf("0.0.0.0:%d", containerAdminPort))...),
		Env: env, Ports: []int{containerAdminPort, containerAPIPort}, HostPorts: hostPorts,
		Binds: []string{opts.DataDir + ":" + containerDataDir},
		Ready: func(ctx context.Context, addr string) error {
			return readyz(ctx, http.DefaultClient, "http://"+addr)
		},
		ReadyTimeout: 60 * time.Second,
	})
	if err != nil {
		if log != nil {
			fmt.Fprintf(log, "%v\n", err)
			log.Close()
		}
		return nil, err
	}
	rt := &container{ctr: ctr, readyIn: time.Since(begin), logged: make(chan struct{}), log: log}
	if rt.hostPID, err = ctr.HostPID(ctx); err != nil {
		rt.hostPID = 0 // no /proc numbers; the run goes on
	}
	go func() {
		defer close(rt.logged)
		var w io.Writer = io.Discard
		if log != nil {
			w = log
		}
		_ = ctr.FollowLogs(context.Background(), w)
	}()
	return newServer(ctr.HostAddr(containerAPIPort), ctr.HostAddr(containerAdminPort), rt, opts), nil
}
