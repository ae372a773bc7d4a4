package backend

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/hal9-lab/hal9-lab/lab/infra"
)

// containers is a backend prepared for server containers: the session its
// servers run in (the infra's, or one of its own: own) and the profile
// receiver on that network's gateway.
type containers struct {
	sess    *infra.ContainerSession
	own     bool
	recvURL string
	recvSrv *http.Server
}

// containerNetwork prepares the backend for server containers: the infra's
// container session (or a new one for SQLite) and the profile receiver
// listening on that network's gateway.
func (b *Backend) containerNetwork(ctx context.Context, o Options) error {
	c := &b.ctrs
	if b.env != nil && b.env.Containers != nil {
		c.sess = b.env.Containers
	} else {
		sess, err := infra.NewContainerSession(ctx, infra.ImageOptions{}, o.Logger)
		if err != nil {
			return fmt.Errorf("--server container: %w", err)
		}
		c.sess, c.own = sess, true
	}
	if !c.sess.Local() || c.sess.Gateway == "" {
		return errors.New("--server container needs the Docker engine on this machine: its containers send profiles to the lab on their network's gateway")
	}
	c.recvURL = o.PyroscopeURL
	if c.recvURL == "" {
		// Only the containers' network: the receiver stays off every other
		// interface.
		l, err := net.Listen("tcp", net.JoinHostPort(c.sess.Gateway, "0"))
		if err != nil {
			return fmt.Errorf("the profile receiver on the container network's gateway %s: %w", c.sess.Gateway, err)
		}
		c.recvSrv = &http.Server{Handler: o.Receiver, ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = c.recvSrv.Serve(l) }()
		c.recvURL = "http://" + l.Addr().String()
	}
	o.Progress("servers in containers on network %s (profiles to %s)", c.sess.Network, c.recvURL)
	return nil
}

// close stops what containerNetwork opened.
func (c *containers) close(ctx context.Context) error {
	var errs []error
	if c.recvSrv != nil {
		errs = append(errs, c.recvSrv.Shutdown(ctx))
		c.recvSrv = nil
	}
	if c.own && c.sess != nil {
		errs = append(errs, c.sess.Close(ctx))
		c.sess = nil
	}
	return errors.Join(errs...)
}

// Containers is the session the backend's server containers run in (nil
// unless started with Options.Containers).
func (b *Backend) Containers() *infra.ContainerSession { return b.ctrs.sess }

// ReceiverURL is where the backend's server containers send their
// profiles.
func (b *Backend) ReceiverURL() string { return b.ctrs.recvURL }

// NetworkURL turns a URL of the backend's servers as this machine reaches
// them into the URL the server containers reach.
func (b *Backend) NetworkURL(hostURL string) (string, error) {
	if b.env == nil {
		return "", fmt.Errorf("backend %s has no container network", b.Name)
	}
	return b.env.NetworkURL(hostURL)
}
