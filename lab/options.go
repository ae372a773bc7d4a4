package lab

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/hal9-lab/hal9-lab/lab/build"
	"github.com/hal9-lab/hal9-lab/lab/infra"
	"github.com/hal9-lab/hal9-lab/lab/profile"
)

// Options configure a lab session (one `hal9-lab run`, gate or baseline).
type Options struct {
	Root      string           // repository root: scenarios/, dashboards/, alerts/
	Profile   *profile.Profile // what to run
	Backends  []string         // nil: the profile's
	Scenarios []string         // scenario files replacing the profile's (nil: the profile's)
	OutDir    string           // where reports, logs and profiles go
	Infra     string           // ""(auto)|external|testcontainers|process
	// Server is where the servers run: "process" (default) or "container"
	// (the server's image on the backend's container network; implies
	// Infra testcontainers).
	Server     string
	RequireAll bool   // a backend that cannot be had is an error, not a skip
	Prometheus bool   // run a real Prometheus and check dashboard and rule queries
	HalBin     string // server binary; "" builds Root/bin/hal9 once
	// Scale multiplies the profile's scale (tests use tiny values); 0: 1.
	Scale float64
	// Repetitions overrides the profile's (0: the profile's).
	Repetitions int
	// Replicas overrides the profile's replicas (0: the profile's);
	// PgBouncer true puts PgBouncer in front of PostgreSQL (false: the
	// profile's pgbouncer).
	Replicas  int
	PgBouncer bool
	// ServerEnv is added to every server's environment.
	ServerEnv map[string]string
	// BaselineDir holds baseline files and profiles (reports/baselines).
	BaselineDir string
	// PyroscopeURL sends the servers' profiles to a real Pyroscope instead
	// of the lab's receiver (the report then has no top functions).
	PyroscopeURL string
	// Drain is the server's --shutdown-timeout (default 10s).
	Drain    time.Duration
	Command  string    // the subcommand, for the report
	Progress io.Writer // live progress; nil: none
	Logger   *slog.Logger
}

// Where the lab runs its servers (Options.Server, --server).
const (
	ServerModeProcess   = "process"
	ServerModeContainer = "container"
)

// maxScale bounds Scale: a factor, not a count.
const maxScale = 100

// Validate checks the options and settles the ones given loosely: Infra
// "auto" becomes "", Server "" process, and containers imply Infra
// testcontainers; HalBin becomes absolute. Its errors name the flags of
// hal9-lab run, gate and baseline update.
func (o *Options) Validate() error {
	switch o.Infra {
	case "auto":
		o.Infra = ""
	case "", string(infra.ModeExternal), string(infra.ModeTestcontainers), string(infra.ModeProcess):
	default:
		return fmt.Errorf("--infra %q: use auto, external, testcontainers or process", o.Infra)
	}
	if o.Replicas < 0 || o.Replicas > profile.MaxReplicas {
		return fmt.Errorf("--replicas %d: want 1..%d servers per leg", o.Replicas, profile.MaxReplicas)
	}
	if o.Scale < 0 || o.Scale > maxScale {
		return fmt.Errorf("--scale %v: want a positive factor (e.g. 0.2 for a quick try)", o.Scale)
	}
	if o.PyroscopeURL != "" {
		u, err := url.Parse(o.PyroscopeURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("--pyroscope-url %q: want http(s)://host:port of a Pyroscope server", o.PyroscopeURL)
		}
	}
	if err := o.validateServerMode(); err != nil {
		return err
	}
	if o.HalBin != "" {
		abs, err := filepath.Abs(o.HalBin)
		if err != nil {
			return fmt.Errorf("--hal9-bin: %w", err)
		}
		if st, err := os.Stat(abs); err != nil || st.IsDir() {
			return fmt.Errorf("--hal9-bin %s: not an executable file (build one with `go build -o bin/hal9 ./cmd/hal9`)", o.HalBin)
		}
		if o.Server == ServerModeContainer {
			if err := build.CheckStatic(abs); err != nil {
				return fmt.Errorf("--hal9-bin with --server container: %w", err)
			}
		}
		o.HalBin = abs
	}
	return nil
}

// validateServerMode checks Server (--server) against the other options
// (and the profile's pgbouncer).
func (o *Options) validateServerMode() error {
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

// settle validates the options and fills what is unset from the profile
// and the defaults.
func (o *Options) settle() error {
	if o.Profile == nil {
		return errors.New("lab: no profile")
	}
	if err := o.Validate(); err != nil {
		return err
	}
	if o.OutDir == "" {
		return errors.New("lab: no output directory")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Drain == 0 {
		o.Drain = 10 * time.Second
	}
	if o.Scale == 0 {
		o.Scale = 1
	}
	if len(o.Backends) == 0 {
		o.Backends = o.Profile.Backends
	}
	if o.Repetitions == 0 {
		o.Repetitions = o.Profile.Repetitions
	}
	if o.Replicas == 0 {
		o.Replicas = o.Profile.Replicas
	}
	o.PgBouncer = o.PgBouncer || o.Profile.PgBouncer
	return nil
}
