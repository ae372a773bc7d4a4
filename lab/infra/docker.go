package infra

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
	tclog "github.com/testcontainers/testcontainers-go/log"
)

// Labels on every container and network the lab creates. The session
// label is what cleanup goes by; the owner labels let a later lab remove
// what a lab that died with its watchdog left behind.
const (
	LabelSession    = "org.hal9-lab.session"     // the ContainerSession's ID
	LabelOwnerPID   = "org.hal9-lab.owner-pid"   // pid of the program that made it
	LabelOwnerStart = "org.hal9-lab.owner-start" // boot id and start time of that process
	LabelOwnerHost  = "org.hal9-lab.owner-host"  // hostname of that process
	LabelRole       = "org.hal9-lab.infra"       // postgres, redis, or the spec's name
	LabelImage      = "org.hal9-lab.image"       // on images built here: postgres, redis
	LabelRecipe     = "org.hal9-lab.recipe"      // on images built here: the build recipe version
)

// EnvRyukDisabled is testcontainers' switch for its reaper container,
// whose image cannot be pulled without a registry; the lab does its job
// (labels, Close, a watchdog process, a sweep of dead owners' leftovers).
const EnvRyukDisabled = "TESTCONTAINERS_RYUK_DISABLED"

// dockerCheckTimeout bounds the question "does a Docker engine answer?", so
// that machines without Docker do not wait.
const dockerCheckTimeout = 2 * time.Second

const dockerInstallHint = "install and start Docker (Debian: apt-get install docker.io; or Podman with DOCKER_HOST set), or use --infra process"

var tcSetupOnce sync.Once

// setupTestcontainers turns Ryuk off (unless the engineer set the variable
// either way) before testcontainers reads its configuration, once per
// process, and sends the library's chatter to debug logs.
func setupTestcontainers(log *slog.Logger) {
	tcSetupOnce.Do(func() {
		if _, set := os.LookupEnv(EnvRyukDisabled); !set {
			_ = os.Setenv(EnvRyukDisabled, "true")
		}
		tclog.SetDefault(tcLogger{log})
	})
}

// tcLogger adapts testcontainers' Printf logger to slog at debug level.
type tcLogger struct{ log *slog.Logger }

func (l tcLogger) Printf(format string, v ...any) {
	if l.log != nil {
		l.log.Debug("testcontainers: " + strings.TrimSpace(fmt.Sprintf(format, v...)))
	}
}

// newEngine connects to the Docker engine the way testcontainers finds it
// (DOCKER_HOST, docker context, ~/.testcontainers.properties, the default
// socket) and checks within dockerCheckTimeout that it answers. The client
// negotiates its API version down to the engine's (Debian 12's 20.10
// speaks 1.41; the client supports 1.40 and later).
func newEngine(ctx context.Context, log *slog.Logger) (*client.Client, error) {
	setupTestcontainers(log)
	ctx, cancel := context.WithTimeout(ctx, dockerCheckTimeout)
	defer cancel()
	type result struct {
		cli *client.Client
		err error
	}
	res := make(chan result, 1)
	go func() {
		defer func() {
			// The library may panic when it finds no Docker host at all.
			if r := recover(); r != nil {
				res <- result{err: fmt.Errorf("no Docker host: %v", r)}
			}
		}()
		tc, err := testcontainers.NewDockerClientWithOpts(ctx)
		if err != nil {
			res <- result{err: err}
			return
		}
		if _, err := tc.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
			tc.Close()
			res <- result{err: err}
			return
		}
		res <- result{cli: tc.Client}
	}()
	select {
	case r := <-res:
		if r.err != nil {
			return nil, fmt.Errorf("no Docker engine answered (%s): %w; %s", dockerWhere(), r.err, dockerInstallHint)
		}
		return r.cli, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("no Docker engine answered within %v (%s); %s", dockerCheckTimeout, dockerWhere(), dockerInstallHint)
	}
}

func dockerWhere() string {
	if h := os.Getenv("DOCKER_HOST"); h != "" {
		return "DOCKER_HOST=" + h
	}
	if _, err := os.Stat("/var/run/docker.sock"); err == nil {
		return "DOCKER_HOST unset, /var/run/docker.sock present"
	}
	return "DOCKER_HOST unset, /var/run/docker.sock absent"
}

// dockerHealth tells whether a Docker engine answers within dockerCheckTimeout.
func dockerHealth(ctx context.Context) error {
	cli, err := newEngine(ctx, nil)
	if err != nil {
		return err
	}
	return cli.Close()
}

// engineIsLocal: the engine runs on this machine (a unix socket), so
// published ports can be bound to 127.0.0.1 and reached here.
func engineIsLocal(cli *client.Client) bool {
	u, err := url.Parse(cli.DaemonHost())
	return err == nil && (u.Scheme == "unix" || u.Scheme == "npipe")
}

// ---- the owner of what we create ----

// owner identifies this process for the labels: a later lab on the same
// machine removes what we left only when this process is gone.
type owner struct {
	host, pid, start string
}

func self() owner {
	host, _ := os.Hostname()
	return owner{host: host, pid: strconv.Itoa(os.Getpid()), start: processStart(os.Getpid())}
}

func (o owner) labels() map[string]string {
	return map[string]string{LabelOwnerHost: o.host, LabelOwnerPID: o.pid, LabelOwnerStart: o.start}
}

// processStart is the boot id and start time of pid (Linux /proc), so a
// reused pid is not mistaken for the owner; "" where /proc has neither.
func processStart(pid int) string {
	boot, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return ""
	}
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return ""
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return ""
	}
	return strings.TrimSpace(string(boot)) + ":" + f[19] // field 22: starttime
}

// ownerAlive: the labels name a process of this machine that still runs.
// Labels of another machine (a shared engine) count as alive: we cannot tell.
func ownerAlive(labels map[string]string) bool {
	me := self()
	if labels[LabelOwnerHost] != me.host {
		return true
	}
	pid, err := strconv.Atoi(labels[LabelOwnerPID])
	if err != nil || pid <= 0 {
		return true
	}
	start := processStart(pid)
	if start == "" {
		// Not running (or no /proc to tell): on Linux /proc/PID/stat is
		// there for every live process.
		_, err := os.Stat("/proc/self/stat")
		return err != nil
	}
	return labels[LabelOwnerStart] == "" || labels[LabelOwnerStart] == start
}

// removeByLabel force-removes the containers, then the networks, carrying
// label (key or key=value). Networks are retried for a moment: an endpoint
// may linger after its container is gone.
func removeByLabel(ctx context.Context, cli *client.Client, label string, keep func(map[string]string) bool) error {
	f := client.Filters{}.Add("label", label)
	ctrs, err := cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		return fmt.Errorf("list containers with label %s: %w", label, err)
	}
	var errs []error
	for _, c := range ctrs.Items {
		if keep != nil && keep(c.Labels) {
			continue
		}
		if _, err := cli.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true}); err != nil && !isNotFound(err) {
			errs = append(errs, fmt.Errorf("remove container %.12s: %w", c.ID, err))
		}
	}
	nets, err := cli.NetworkList(ctx, client.NetworkListOptions{Filters: f})
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("list networks with label %s: %w", label, err))...)
	}
	for _, n := range nets.Items {
		if keep != nil && keep(n.Labels) {
			continue
		}
		var err error
		for i := 0; i < 20; i++ {
			if _, err = cli.NetworkRemove(ctx, n.ID, client.NetworkRemoveOptions{}); err == nil || isNotFound(err) {
				err = nil
				break
			}
			select {
			case <-ctx.Done():
				i = 20
			case <-time.After(250 * time.Millisecond):
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("remove network %s: %w", n.Name, err))
		}
	}
	return errors.Join(errs...)
}

func isNotFound(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "No such") || strings.Contains(strings.ToLower(err.Error()), "not found"))
}

// sweepDeadOwners removes containers and networks that labs of this
// machine left when they died together with their watchdog (kill -9 of
// the whole process group, a reboot of the lab's machine but not the
// engine's). Best effort.
func sweepDeadOwners(ctx context.Context, cli *client.Client, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	label := LabelOwnerHost + "=" + self().host
	if err := removeByLabel(ctx, cli, label, ownerAlive); err != nil {
		log.Debug("infra: sweep of dead labs' containers", "err", err)
	}
}
