package infra

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/wait"
)

// ContainerSession is one lab run's containers on a Docker engine: a
// user-defined bridge network of its own (containers reach each other by
// name on it), labels on everything it creates, and a watchdog that
// removes all of it if this program dies. Close removes it all too.
type ContainerSession struct {
	// ID is the value of the org.hal9-lab.session label.
	ID string
	// Network is the name of the session's network (hal9-lab-<ID>).
	Network string
	// Gateway is this machine's address on Network: a container reaches
	// a listener of the lab there (listen on it, or on 0.0.0.0). Empty
	// when the engine is not on this machine.
	Gateway string
	// Subnet is Network's IPv4 subnet (CIDR).
	Subnet string

	cli      *client.Client
	provider *testcontainers.DockerProvider // its default network is ours: no other gets attached
	local    bool                           // the engine runs here: ports are published on 127.0.0.1
	hostName string
	log      *slog.Logger
	labels   map[string]string
	opts     ImageOptions

	mu         sync.Mutex
	containers []*Container
	watchdog   *reaper
	closed     bool
}

// ContainerSpec describes a container to run in a session.
type ContainerSpec struct {
	// Name is the container's role: its network alias (other containers
	// reach it as Name:port), its org.hal9-lab.infra label, part of its
	// container name. Lower case letters, digits and dashes.
	Name  string
	Image string
	Cmd   []string
	Env   map[string]string
	// Ports are the container's TCP ports to publish on this machine
	// (127.0.0.1 on a local engine, on an ephemeral port each unless
	// HostPorts names one).
	Ports []int
	// HostPorts fixes the host port of some of Ports (container port ->
	// host port), e.g. an address Prometheus was told before the start.
	HostPorts map[int]int
	// Tmpfs mounts (path -> mount options), e.g. for a database's data.
	Tmpfs map[string]string
	// Binds are bind mounts "HOSTPATH:PATH[:OPTIONS]" (a local engine's
	// paths), e.g. a server's data that must outlive its container.
	Binds []string
	// Ready, when set, is called until it returns nil (or ReadyTimeout
	// passes, or the container exits) with the container's published
	// address of Ports[0]: a real connection, not a log line.
	Ready        func(ctx context.Context, hostAddr string) error
	ReadyTimeout time.Duration // zero: 60s
}

// Container is a running container of a session.
type Container struct {
	Name string
	ID   string
	ctr  *testcontainers.DockerContainer
	addr map[int]string // container port -> host:port published here
	sess *ContainerSession
}

// HostAddr is where this machine reaches the container's port ("" when
// the port was not published).
func (c *Container) HostAddr(port int) string { return c.addr[port] }

// NetworkAddr is where containers on the session's network reach the
// container's port: Name:port.
func (c *Container) NetworkAddr(port int) string { return net.JoinHostPort(c.Name, strconv.Itoa(port)) }

// LogTail returns the last bytes of the container's output.
func (c *Container) LogTail(ctx context.Context, max int) string {
	rc, err := c.ctr.Logs(ctx)
	if err != nil {
		return "(no logs: " + err.Error() + ")"
	}
	defer rc.Close()
	b, _ := io.ReadAll(rc)
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return strings.TrimSpace(string(b))
}

// WriteLogs copies the container's output so far (stdout and stderr, as
// the engine multiplexes them) to w.
func (c *Container) WriteLogs(ctx context.Context, w io.Writer) error {
	rc, err := c.ctr.Logs(ctx)
	if err != nil {
		return fmt.Errorf("logs of container %s: %w", c.Name, err)
	}
	defer rc.Close()
	_, err = io.Copy(w, rc)
	return err
}

// Stop sends the image's stop signal (SIGTERM unless it says otherwise),
// SIGKILL after timeout, and returns the exit code. The container stays
// (for its logs) until the session closes.
func (c *Container) Stop(ctx context.Context, timeout time.Duration) (int, error) {
	if err := c.ctr.Stop(ctx, &timeout); err != nil {
		return -1, fmt.Errorf("stop container %s: %w", c.Name, err)
	}
	st, err := c.ctr.State(ctx)
	if err != nil {
		return -1, fmt.Errorf("stop container %s: %w", c.Name, err)
	}
	return st.ExitCode, nil
}

// Running tells whether the container is up.
func (c *Container) Running(ctx context.Context) bool {
	st, err := c.ctr.State(ctx)
	return err == nil && st.Running
}

// NewContainerSession connects to the engine (see newEngine), removes what
// dead labs of this machine left, starts the watchdog and creates the
// session's network. Close undoes it all.
func NewContainerSession(ctx context.Context, opts ImageOptions, log *slog.Logger) (*ContainerSession, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cli, err := newEngine(ctx, log)
	if err != nil {
		return nil, err
	}
	sweepDeadOwners(ctx, cli, log)
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	s := &ContainerSession{ID: hex.EncodeToString(b), cli: cli, local: engineIsLocal(cli), log: log, opts: opts}
	s.Network = "hal9-lab-" + s.ID
	s.labels = self().labels()
	s.labels[LabelSession] = s.ID
	s.hostName = "127.0.0.1"
	if !s.local {
		if u, err := url.Parse(cli.DaemonHost()); err == nil && u.Hostname() != "" {
			s.hostName = u.Hostname()
		}
	}
	if s.watchdog, err = startContainerReaper(s.ID, cli.DaemonHost()); err != nil {
		// Without it a SIGKILL leaves containers until the next lab's sweep.
		log.Warn("infra: no container watchdog; a killed lab leaves its containers until the next run removes them", "err", err)
	}
	fail := func(err error) (*ContainerSession, error) {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		return nil, errors.Join(err, s.Close(cctx))
	}
	if _, err := cli.NetworkCreate(ctx, s.Network, client.NetworkCreateOptions{Driver: "bridge", Labels: s.labels}); err != nil {
		return fail(fmt.Errorf("create network %s: %w", s.Network, err))
	}
	ins, err := cli.NetworkInspect(ctx, s.Network, client.NetworkInspectOptions{})
	if err != nil {
		return fail(fmt.Errorf("inspect network %s: %w", s.Network, err))
	}
	for _, c := range ins.Network.IPAM.Config {
		if c.Subnet.Addr().Is4() {
			s.Subnet = c.Subnet.String()
			if s.local && c.Gateway.IsValid() {
				s.Gateway = c.Gateway.String()
			}
			break
		}
	}
	// testcontainers attaches every container to a default network as
	// well ("bridge", else one it creates and never removes); make ours
	// that default.
	if s.provider, err = testcontainers.NewDockerProvider(testcontainers.WithDefaultBridgeNetwork(s.Network), testcontainers.WithLogger(tcLogger{log})); err != nil {
		return fail(fmt.Errorf("testcontainers: %w", err))
	}
	log.Debug("infra: container session", "id", s.ID, "network", s.Network, "subnet", s.Subnet, "engine", cli.DaemonHost())
	return s, nil
}

// Labels are the labels of everything the session creates.
func (s *ContainerSession) Labels() map[string]string {
	m := make(map[string]string, len(s.labels))
	for k, v := range s.labels {
		m[k] = v
	}
	return m
}

// Containers lists the session's containers, oldest first.
func (s *ContainerSession) Containers() []*Container {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*Container(nil), s.containers...)
}

// Image resolves the image of kind ("postgres", "redis") with the
// session's image options (see ResolveImage).
func (s *ContainerSession) Image(ctx context.Context, kind string) (*Image, error) {
	return ResolveImage(ctx, s.cli, kind, s.opts, s.log)
}

// Engine is the session's engine client (for images; do not Close it).
func (s *ContainerSession) Engine() *client.Client { return s.cli }

// Run starts a container on the session's network and waits until
// spec.Ready accepts it. On error the container is removed again.
func (s *ContainerSession) Run(ctx context.Context, spec ContainerSpec) (*Container, error) {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return nil, errors.New("run container: session closed")
	}
	if spec.Name == "" || strings.Trim(strings.ToLower(spec.Name), "abcdefghijklmnopqrstuvwxyz0123456789-") != "" {
		return nil, fmt.Errorf("run container: name %q: use lower case letters, digits and dashes", spec.Name)
	}
	labels := s.Labels()
	labels[LabelRole] = spec.Name
	hostIP := netip.IPv4Unspecified()
	if s.local {
		hostIP = netip.AddrFrom4([4]byte{127, 0, 0, 1})
	}
	var exposed []string
	for _, p := range spec.Ports {
		exposed = append(exposed, fmt.Sprintf("%d/tcp", p))
	}
	opts := []testcontainers.ContainerCustomizer{
		testcontainers.WithName("hal9-lab-" + s.ID + "-" + spec.Name),
		testcontainers.WithLabels(labels),
		testcontainers.WithExposedPorts(exposed...),
		testcontainers.WithEnv(spec.Env),
		testcontainers.WithLogger(tcLogger{s.log}),
		testcontainers.CustomizeRequest(testcontainers.GenericContainerRequest{ContainerRequest: testcontainers.ContainerRequest{
			Networks:       []string{s.Network},
			NetworkAliases: map[string][]string{s.Network: {spec.Name}},
		}}),
		testcontainers.WithHostConfigModifier(func(hc *container.HostConfig) {
			hc.PortBindings = network.PortMap{}
			for i, e := range exposed {
				b := network.PortBinding{HostIP: hostIP}
				if hp := spec.HostPorts[spec.Ports[i]]; hp > 0 {
					b.HostPort = strconv.Itoa(hp)
				}
				hc.PortBindings[network.MustParsePort(e)] = []network.PortBinding{b}
			}
			if len(spec.Tmpfs) > 0 {
				hc.Tmpfs = spec.Tmpfs
			}
			hc.Binds = append(hc.Binds, spec.Binds...)
		}),
	}
	if len(spec.Cmd) > 0 {
		opts = append(opts, testcontainers.WithCmd(spec.Cmd...))
	}
	if spec.Ready != nil {
		if len(spec.Ports) == 0 {
			return nil, fmt.Errorf("run container %s: Ready needs a published port", spec.Name)
		}
		timeout := spec.ReadyTimeout
		if timeout <= 0 {
			timeout = 60 * time.Second
		}
		opts = append(opts, testcontainers.WithWaitStrategy(&connectReady{port: exposed[0], host: s.hostName, probe: spec.Ready, timeout: timeout}))
	}
	req := testcontainers.GenericContainerRequest{ContainerRequest: testcontainers.ContainerRequest{Image: spec.Image}, Started: true}
	for _, o := range opts {
		if err := o.Customize(&req); err != nil {
			return nil, fmt.Errorf("run container %s: %w", spec.Name, err)
		}
	}
	ctr, err := s.start(ctx, req.ContainerRequest)
	c := &Container{Name: spec.Name, ctr: ctr, sess: s, addr: map[int]string{}}
	if ctr != nil {
		c.ID = ctr.GetContainerID()
		s.mu.Lock()
		s.containers = append(s.containers, c)
		s.mu.Unlock()
	}
	if err != nil {
		msg := fmt.Errorf("run container %s (%s): %w", spec.Name, spec.Image, err)
		if ctr != nil {
			msg = fmt.Errorf("%w\n--- container output (last lines) ---\n%s", msg, c.LogTail(context.WithoutCancel(ctx), 2048))
			_ = s.remove(context.WithoutCancel(ctx), c)
		}
		return nil, msg
	}
	for _, p := range spec.Ports {
		mp, err := ctr.MappedPort(ctx, fmt.Sprintf("%d/tcp", p))
		if err != nil {
			_ = s.remove(context.WithoutCancel(ctx), c)
			return nil, fmt.Errorf("run container %s: published port of %d: %w", spec.Name, p, err)
		}
		c.addr[p] = net.JoinHostPort(s.hostName, strconv.Itoa(int(mp.Num())))
	}
	return c, nil
}

// start is testcontainers.GenericContainer with the session's provider.
func (s *ContainerSession) start(ctx context.Context, req testcontainers.ContainerRequest) (*testcontainers.DockerContainer, error) {
	c, err := s.provider.CreateContainer(ctx, req)
	var dc *testcontainers.DockerContainer
	if c != nil {
		dc, _ = c.(*testcontainers.DockerContainer)
	}
	if err != nil {
		return dc, err
	}
	if dc == nil {
		return nil, fmt.Errorf("testcontainers returned a %T, not a Docker container", c)
	}
	return dc, dc.Start(ctx)
}

// remove terminates one container (Stop of the session does them all).
func (s *ContainerSession) remove(ctx context.Context, c *Container) error {
	s.mu.Lock()
	for i, x := range s.containers {
		if x == c {
			s.containers = append(s.containers[:i], s.containers[i+1:]...)
			break
		}
	}
	s.mu.Unlock()
	if c.ctr == nil {
		return nil
	}
	return testcontainers.TerminateContainer(c.ctr, testcontainers.StopContext(ctx), testcontainers.StopTimeout(5*time.Second))
}

// Close removes the session's containers (newest first: servers before
// the databases they use), then its network, then dismisses the watchdog.
// Safe to call more than once.
func (s *ContainerSession) Close(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	ctrs := s.containers
	s.containers = nil
	s.mu.Unlock()
	var errs []error
	for i := len(ctrs) - 1; i >= 0; i-- {
		if ctrs[i].ctr != nil {
			if err := testcontainers.TerminateContainer(ctrs[i].ctr, testcontainers.StopContext(ctx), testcontainers.StopTimeout(5*time.Second)); err != nil {
				errs = append(errs, fmt.Errorf("remove container %s: %w", ctrs[i].Name, err))
			}
		}
	}
	// Whatever a failed start left, and the network: by label.
	if err := removeByLabel(ctx, s.cli, LabelSession+"="+s.ID, nil); err != nil {
		errs = append(errs, err)
	}
	err := errors.Join(errs...)
	if s.watchdog != nil {
		if err == nil {
			s.watchdog.release()
		} else {
			// Leave it: when we exit it tries once more.
			s.log.Warn("infra: container cleanup incomplete; the watchdog retries when the lab exits", "err", err)
		}
	}
	if s.provider != nil {
		_ = s.provider.Close()
	}
	_ = s.cli.Close()
	return err
}

// connectReady is a testcontainers wait strategy that judges readiness by a
// real connection to the published port (pgx ping, Redis PING), polling
// every 50 ms, and fails at once when the container exits.
type connectReady struct {
	port    string // "5432/tcp"
	host    string
	probe   func(ctx context.Context, hostAddr string) error
	timeout time.Duration
}

func (w *connectReady) String() string { return "a real connection to " + w.port }

func (w *connectReady) WaitUntilReady(ctx context.Context, t wait.StrategyTarget) error {
	ctx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	var last error
	for {
		st, err := t.State(ctx)
		if err == nil && !st.Running && st.Status != "created" {
			return fmt.Errorf("container %s (exit code %d) before accepting connections", st.Status, st.ExitCode)
		}
		mp, err := t.MappedPort(ctx, w.port)
		if err == nil {
			addr := net.JoinHostPort(w.host, strconv.Itoa(int(mp.Num())))
			pctx, pcancel := context.WithTimeout(ctx, time.Second)
			last = w.probe(pctx, addr)
			pcancel()
			if last == nil {
				return nil
			}
		} else {
			last = err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not accepting connections within %v; last attempt: %v", w.timeout, last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
