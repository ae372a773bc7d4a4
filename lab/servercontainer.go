package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hal9-lab/hal9-lab/lab/build"
	"github.com/hal9-lab/hal9-lab/lab/infra"
	"github.com/hal9-lab/hal9-lab/lab/report"
	"github.com/hal9-lab/hal9-lab/lab/serve"
)

// --server container: each leg's servers run as containers of the
// server's image (lab/serve) on the container session of the leg's
// backend.

// Where the lab runs its servers (Options.Server, --server).
const (
	ServerModeProcess   = "process"
	ServerModeContainer = "container"
)

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
	l.ctr = &serve.Container{Session: b.ctrs, Image: img.Ref,
		Name: func() string { return fmt.Sprintf("%s-%d", prefix, n.Add(1)) }}
	if b.env != nil {
		l.ctr.NetworkURL = b.env.NetworkURL
	}
	return nil
}

// containerOptions points a start's options at the leg's container: the
// receiver on the gateway, HAProxy's address as the servers see it.
func (l *leg) containerOptions(opts *serve.Options) {
	if l.ctr == nil {
		return
	}
	opts.Container = l.ctr
	opts.PyroscopeURL = l.spec.Backend.recvURL
}

// noteContainers adds the containers of a start to the leg's report.
func (l *leg) noteContainers(rs *serve.ReplicaSet) {
	if l.out.Containers == nil {
		return
	}
	l.out.Containers.Starts = append(l.out.Containers.Starts, rs.Containers()...)
}
