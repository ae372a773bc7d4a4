package profile

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/hal9-lab/hal9-lab/lab/faults"
)

// Backends a leg can run on.
const (
	SQLite        = "sqlite"
	Postgres      = "postgres"
	PostgresRedis = "postgres+redis"
)

// allBackends in report order.
var allBackends = []string{SQLite, Postgres, PostgresRedis}

// AllBackends returns the backends in report order.
func AllBackends() []string { return slices.Clone(allBackends) }

// ParseBackends reads a comma-separated list (e.g. "sqlite,postgres+redis").
func ParseBackends(s string) ([]string, error) {
	var out []string
	for _, b := range strings.Split(s, ",") {
		b = strings.TrimSpace(b)
		if b == "" {
			continue
		}
		if !slices.Contains(allBackends, b) {
			return nil, fmt.Errorf("unknown backend %q: choose from %s", b, strings.Join(allBackends, ", "))
		}
		if slices.Contains(out, b) {
			return nil, fmt.Errorf("backend %q listed twice", b)
		}
		out = append(out, b)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no backend in %q: choose from %s", s, strings.Join(allBackends, ", "))
	}
	return out, nil
}

// Profile is scenarios/profiles/<name>.yaml: what a lab run measures.
type Profile struct {
	Name        string   `yaml:"name"`
	Description string   `yaml:"description"`
	Backends    []string `yaml:"backends"`
	// Scenarios run in order on every leg; paths are relative to the
	// repository root (the directory holding scenarios/).
	Scenarios []Scenario `yaml:"scenarios"`
	// Scale multiplies every scenario's durations and user counts
	// (lab/load's --scale); each scenario may set its own on top.
	Scale float64 `yaml:"scale"`
	// Repetitions of each leg in a plain run (the gate has its own --runs).
	Repetitions int `yaml:"repetitions"`
	// Warmup is a short constant load before the first scrape, so caches,
	// pools and the JIT-free Go runtime settle (0: none).
	Warmup Duration `yaml:"warmup"`
	// WarmupRate is the warm-up's signals per second.
	WarmupRate float64 `yaml:"warmup_rate"`
	// RateLimit configures the rate-limit check (nil: not run).
	RateLimit *RateLimitCheck `yaml:"ratelimit"`
	// Gate holds the gate's defaults for this profile.
	Gate GateDefaults `yaml:"gate"`
	// Env is passed to the server on top of the lab's own environment.
	Env map[string]string `yaml:"env"`
	// ReplicaSettings: replicas, haproxy, pgbouncer (replicas.go).
	ReplicaSettings `yaml:",inline"`
	// Faults is the fault timeline of every scenario (faults.go).
	Faults yaml.Node `yaml:"faults"`
	// Server holds validated hal9 serve settings (server.go).
	Server *ServerSettings `yaml:"server"`
	// Postgres: durability is production's unless durable: false.
	Postgres PostgresSettings `yaml:"postgres"`
	// Capacity runs a knee search on every leg (server.go).
	Capacity *CapacitySpec `yaml:"capacity"`

	file   string
	faults []faults.Spec
}

// Scenario is one scenario file of a profile.
type Scenario struct {
	File  string  `yaml:"file"`
	Scale float64 `yaml:"scale"` // multiplies the profile's scale (0: 1)
	// RateLimit starts this scenario's server with --rate-limit (0: off).
	RateLimit float64 `yaml:"rate_limit"`
}

// RateLimitCheck: against a server started with --rate-limit Limit, send
// one client's requests at Below×Limit (no 429 allowed) and at
// Above×Limit (429s with Retry-After required), each for Duration.
type RateLimitCheck struct {
	Limit    float64  `yaml:"limit"`
	Below    float64  `yaml:"below"`
	Above    float64  `yaml:"above"`
	Duration Duration `yaml:"duration"`
	// Backends the check runs on (default: the first leg only; the limiter
	// does not depend on the backend).
	Backends []string `yaml:"backends"`
}

// GateDefaults are the gate's defaults for a profile.
type GateDefaults struct {
	Runs int `yaml:"runs"`
	// MinEffect overrides minimum effects by metric pattern ("*_ms": "10%").
	MinEffect map[string]string `yaml:"min_effect"`
	// Metrics the gate compares (patterns; empty: all).
	Metrics []string `yaml:"metrics"`
}

// Duration is a time.Duration written as "30s" in YAML.
type Duration time.Duration

// UnmarshalYAML reads a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return fmt.Errorf("line %d: want a duration such as 30s", n.Line)
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		return fmt.Errorf("line %d: %q is not a non-negative duration (e.g. 30s, 2m)", n.Line, s)
	}
	*d = Duration(v)
	return nil
}

// D returns the time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Path finds a profile by name under root/scenarios/profiles, or takes
// name as a path when it ends in .yaml/.yml.
func Path(root, name string) string {
	if strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml") {
		return name
	}
	return filepath.Join(root, "scenarios", "profiles", name+".yaml")
}

// Load reads and validates a profile file (a name under
// root/scenarios/profiles, or a .yaml path); scenario paths are checked
// relative to root.
func Load(root, name string) (*Profile, error) {
	path := Path(root, name)
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		avail, _ := filepath.Glob(filepath.Join(root, "scenarios", "profiles", "*.yaml"))
		var names []string
		for _, a := range avail {
			names = append(names, strings.TrimSuffix(filepath.Base(a), ".yaml"))
		}
		return nil, fmt.Errorf("profile %q: no file %s (available: %s)", name, path, strings.Join(names, ", "))
	}
	if err != nil {
		return nil, fmt.Errorf("read profile: %w", err)
	}
	var p Profile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("profile %s: %w", path, err)
	}
	p.file = path
	if err := p.validate(root); err != nil {
		return nil, fmt.Errorf("profile %s: %w", path, err)
	}
	return &p, nil
}

func (p *Profile) validate(root string) error {
	if p.Name == "" {
		return errors.New("name is required")
	}
	if len(p.Backends) == 0 {
		p.Backends = AllBackends()
	}
	if _, err := ParseBackends(strings.Join(p.Backends, ",")); err != nil {
		return fmt.Errorf("backends: %w", err)
	}
	if len(p.Scenarios) == 0 && p.Capacity == nil {
		return errors.New("scenarios: list at least one {file: scenarios/NAME.yaml} (or give a capacity: block)")
	}
	if err := p.Server.validate(); err != nil {
		return err
	}
	if err := p.Capacity.validate(); err != nil {
		return err
	}
	if p.Capacity != nil {
		if _, err := os.Stat(Resolve(root, p.Capacity.Scenario)); err != nil {
			return fmt.Errorf("capacity.scenario %s: %w", p.Capacity.Scenario, err)
		}
	}
	for i, s := range p.Scenarios {
		if s.File == "" {
			return fmt.Errorf("scenarios[%d].file is required", i)
		}
		if _, err := os.Stat(Resolve(root, s.File)); err != nil {
			return fmt.Errorf("scenarios[%d].file %s: %w", i, s.File, err)
		}
		if s.Scale < 0 || s.RateLimit < 0 {
			return fmt.Errorf("scenarios[%d]: scale and rate_limit must not be negative", i)
		}
	}
	if p.Scale < 0 {
		return errors.New("scale must not be negative")
	}
	if p.Scale == 0 {
		p.Scale = 1
	}
	if p.Repetitions < 0 {
		return errors.New("repetitions must not be negative")
	}
	if p.Repetitions == 0 {
		p.Repetitions = 1
	}
	if p.WarmupRate < 0 {
		return errors.New("warmup_rate must not be negative")
	}
	if p.WarmupRate == 0 {
		p.WarmupRate = 10
	}
	if rl := p.RateLimit; rl != nil {
		if rl.Limit <= 0 {
			return errors.New("ratelimit.limit must be positive (requests per second per client)")
		}
		if rl.Below == 0 {
			rl.Below = 0.5
		}
		if rl.Above == 0 {
			rl.Above = 2
		}
		if rl.Below >= 1 || rl.Below < 0 || rl.Above <= 1 {
			return fmt.Errorf("ratelimit: below (%g) must be in [0,1) and above (%g) greater than 1: they are multiples of the limit", rl.Below, rl.Above)
		}
		if rl.Duration == 0 {
			rl.Duration = Duration(4 * time.Second)
		}
		if len(rl.Backends) > 0 {
			if _, err := ParseBackends(strings.Join(rl.Backends, ",")); err != nil {
				return fmt.Errorf("ratelimit.backends: %w", err)
			}
		}
	}
	if err := p.ReplicaSettings.validate(); err != nil {
		return err
	}
	if p.Gate.Runs < 0 {
		return errors.New("gate.runs must not be negative")
	}
	return p.parseFaults()
}

func Resolve(root, path string) string {
	if filepath.IsAbs(path) {
		return path
	}
	return filepath.Join(root, path)
}
