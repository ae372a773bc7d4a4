package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hal9-lab/hal9-lab/lab/build"
	"github.com/hal9-lab/hal9-lab/lab/infra"
	"github.com/hal9-lab/hal9-lab/lab/report"
)

// --server container: each leg's servers run as containers of the
// server's image on the container session of the leg's backend (the
// network PostgreSQL and Redis are on; a session of its own for SQLite).
// They reach PostgreSQL and Redis by name (postgres:5432, redis:6379), the
// lab's profile receiver on the network's gateway (this machine on that
// network); the lab, HAProxy and Prometheus reach them on their ports
// published on 127.0.0.1. Everything else is the process path's: the same
// `hal9 serve` flags, readiness, SIGTERM and exit 0, restarts on the same
// addresses.

// Where the lab runs its servers (Options.Server, --server).
const (
	ServerModeProcess   = "process"
	ServerModeContainer = "container"
)

// Ports of `hal9 serve` inside its container (the image's defaults).
const (
	containerAPIPort   = 8080
	containerAdminPort = 9091
	containerDataDir   = "/data"
)

// ServerContainer says how StartServer runs a server in a container.
type ServerContainer struct {
	Session *infra.ContainerSession
	Image   string
	// Name gives each start a container name of its own (a restart runs
	// a new container).
	Name func() string
	// NetworkURL turns a URL of a backend as this machine reaches it
	// into the URL the containers reach (nil: SQLite, nothing to turn).
	NetworkURL func(hostURL string) (string, error)
}

// ValidateServerMode checks Server (--server) against the other options
// (and the profile's pgbouncer) and turns Infra auto into testcontainers
// for containers.
func ValidateServerMode(o *Options) error {
	switch o.Server {
	case "", ServerModeProcess:
		o.Server = ServerModeProcess
		return nil
	case ServerModeContainer:
	default:
		return fmt.Errorf("--server %q: use process or container", o.Server)
	}
	switch o.Infra {
	case "", string(infra.ModeTestcontainers):
		o.Infra = string(infra.ModeTestcontainers)
	default:
		return fmt.Errorf("--server container runs PostgreSQL and Redis in containers beside the servers (--infra testcontainers): drop --infra %s", o.Infra)
	}
	if o.PgBouncer || (o.Profile != nil && o.Profile.PgBouncer) {
		return errors.New("--server container with PgBouncer: PgBouncer runs as a local process on 127.0.0.1, which the server containers cannot reach; drop --pgbouncer (or pgbouncer: true in the profile), or run the servers as processes")
	}
	if o.PyroscopeURL != "" {
		if u, err := url.Parse(o.PyroscopeURL); err == nil {
			if ip := net.ParseIP(u.Hostname()); u.Hostname() == "localhost" || (ip != nil && ip.IsLoopback()) {
				return fmt.Errorf("--pyroscope-url %s with --server container: the containers' 127.0.0.1 is their own; give an address they reach (this machine's address on the container network, or a Pyroscope of its own)", o.PyroscopeURL)
			}
		}
	}
	return nil
}

// containerBackend prepares a backend for server containers: the infra's
// container session (or a new one for SQLite) and the profile receiver
// listening on that network's gateway.
func (s *Session) containerBackend(ctx context.Context, b *Backend) (err error) {
	if s.opts.Server != ServerModeContainer {
		return nil
	}
	defer func() {
		if err != nil {
			if stopErr := b.Stop(ctx); stopErr != nil {
				s.LabError("stop %s infrastructure: %v", b.Name, stopErr)
			}
		}
	}()
	if b.env != nil && b.env.Containers != nil {
		b.ctrs = b.env.Containers
	} else {
		sess, serr := infra.NewContainerSession(ctx, infra.ImageOptions{}, s.log)
		if serr != nil {
			return fmt.Errorf("--server container: %w", serr)
		}
		b.ctrs, b.ownCtrs = sess, true
	}
	if !b.ctrs.Local() || b.ctrs.Gateway == "" {
		return errors.New("--server container needs the Docker engine on this machine: its containers send profiles to the lab on their network's gateway")
	}
	b.recvURL = s.opts.PyroscopeURL
	if b.recvURL == "" {
		// Only the containers' network: the receiver stays off every other
		// interface.
		addr, srv, lerr := listenHTTP(net.JoinHostPort(b.ctrs.Gateway, "0"), s.recv)
		if lerr != nil {
			return fmt.Errorf("the profile receiver on the container network's gateway %s: %w", b.ctrs.Gateway, lerr)
		}
		b.recvURL, b.recvSrv = "http://"+addr, srv
	}
	s.prog.step("servers in containers on network %s (profiles to %s)", b.ctrs.Network, b.recvURL)
	return nil
}

// stopContainers closes what containerBackend opened.
func (b *Backend) stopContainers(ctx context.Context) error {
	var errs []error
	if b.recvSrv != nil {
		errs = append(errs, b.recvSrv.Shutdown(ctx))
		b.recvSrv = nil
	}
	if b.ownCtrs && b.ctrs != nil {
		errs = append(errs, b.ctrs.Close(ctx))
		b.ctrs = nil
	}
	return errors.Join(errs...)
}

// listenHTTP serves h on addr; it returns the address bound.
func listenHTTP(addr string, h http.Handler) (string, *http.Server, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	return l.Addr().String(), srv, nil
}

// containerLeg makes sure the leg's server image exists (a step of its
// own, so that "start server" times the start alone) and the data dir is
// writable by the image's unprivileged user.
func (l *leg) containerLeg(ctx context.Context) error {
	s, b := l.s, l.spec.Backend
	if s.opts.Server != ServerModeContainer {
		return nil
	}
	if err := os.Chmod(l.dataDir, 0o777); err != nil { // the image's user (65532) writes here
		return fmt.Errorf("data dir %s: %w", l.dataDir, err)
	}
	var img *build.Image
	err := l.step("server image", func() error {
		var err error
		img, err = s.images.For(ctx, b.ctrs, l.spec.Bin)
		return err
	})
	if err != nil {
		return err
	}
	l.out.Containers = &report.Containers{Image: img.Ref, ImageSource: img.Source, Network: b.ctrs.Network, Gateway: b.ctrs.Gateway}
	var n atomic.Int32
	prefix := "hal9-" + strings.NewReplacer("+", "-").Replace(l.key) + fmt.Sprintf("-run%d", l.spec.Run)
	l.ctr = &ServerContainer{Session: b.ctrs, Image: img.Ref,
		Name: func() string { return fmt.Sprintf("%s-%d", prefix, n.Add(1)) }}
	if b.env != nil {
		l.ctr.NetworkURL = b.env.NetworkURL
	}
	return nil
}

// containerOptions points a start's options at the leg's container: the
// receiver on the gateway, HAProxy's address as the servers see it.
func (l *leg) containerOptions(opts *ServerOptions) {
	if l.ctr == nil {
		return
	}
	opts.Container = l.ctr
	opts.PyroscopeURL = l.spec.Backend.recvURL
}

// noteContainers adds the containers of a start to the leg's report.
func (l *leg) noteContainers(rs *ReplicaSet) {
	if l.out.Containers == nil {
		return
	}
	for _, r := range rs.replicas {
		if srv := r.Server(); srv != nil && srv.ctr != nil {
			l.out.Containers.Starts = append(l.out.Containers.Starts, report.ContainerStart{Name: srv.ctr.Name, ReadyMS: float64(srv.readyIn.Microseconds()) / 1000})
		}
	}
}

// trustedProxy is the address HAProxy's connections come from, as the
// servers see them: 127.0.0.1, or through the published ports (the
// engine's proxy) the network's gateway.
func (l *leg) trustedProxy() string {
	if l.ctr != nil {
		return l.ctr.Session.Gateway + "/32"
	}
	return "127.0.0.1/32"
}

// startContainer runs one `hal9 serve` as a container: the process path's
// flags with listeners on the container's ports, the database and Redis as
// the network reaches them, the leg's data dir mounted at /data, ports
// published on 127.0.0.1 (on the fixed ones opts names, so a restart keeps
// its addresses). Its output goes to opts.LogPath as it comes; once it
// exits the container is removed.
func startContainer(ctx context.Context, opts ServerOptions) (*Server, error) {
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
	name := c.Name()
	logFile, err := createLog(opts.LogPath)
	if err != nil {
		return nil, err
	}
	begin := time.Now()
	ctr, err := c.Session.Run(ctx, infra.ContainerSpec{
		Name: name, Image: c.Image,
		Cmd: append([]string{"serve"}, run.args(fmt.Sprintf("0.0.0.0:%d", containerAPIPort), fmt.Sprintf("0.0.0.0:%d", containerAdminPort))...),
		Env: env, Ports: []int{containerAdminPort, containerAPIPort}, HostPorts: hostPorts,
		Binds: []string{opts.DataDir + ":" + containerDataDir},
		Ready: readyz, ReadyTimeout: 60 * time.Second,
	})
	if err != nil {
		if logFile != nil {
			fmt.Fprintf(logFile, "%v\n", err)
			logFile.Close()
		}
		return nil, err
	}
	s := &Server{Addr: ctr.HostAddr(containerAPIPort), AdminAddr: ctr.HostAddr(containerAdminPort), ctr: ctr, opts: opts,
		done: make(chan struct{}), logFile: logFile, readyIn: time.Since(begin)}
	if s.pid, err = ctr.HostPID(ctx); err != nil {
		s.pid = 0 // no /proc numbers; the run goes on
	}
	logged := make(chan struct{})
	go func() {
		defer close(logged)
		var w io.Writer = io.Discard
		if logFile != nil {
			w = logFile
		}
		_ = ctr.FollowLogs(context.Background(), w)
	}()
	go func() {
		s.code, s.waitErr = ctr.Wait(context.Background())
		select { // the stream ends with the container; do not hang on an engine that does not end it
		case <-logged:
		case <-time.After(5 * time.Second):
		}
		if logFile != nil {
			logFile.Close()
		}
		rctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_ = ctr.Remove(rctx) // the session removes what is left
		cancel()
		close(s.done)
	}()
	return s, nil
}

// readyz is a container's readiness: its admin /readyz answers 200.
func readyz(ctx context.Context, addr string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/readyz", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("/readyz answered %d", resp.StatusCode)
	}
	return nil
}
