package profile

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/hal9-lab/hal9-lab/lab/capacity"
)

// ServerSettings is a profile's server: block: settings of `hal9 serve`
// the lab passes as flags, validated here (env: stays for the rest).
// Unset keys keep the lab's defaults: the server's own, except the rate
// limits, which are off (every virtual user comes from 127.0.0.1).
type ServerSettings struct {
	BcryptCost      *int     `yaml:"bcrypt_cost"`       // --bcrypt-cost, 4..31
	LLMLatencyScale *float64 `yaml:"llm_latency_scale"` // --llm-latency-scale, 0..100
	LLMErrorRate    *float64 `yaml:"llm_error_rate"`    // --llm-error-rate, 0..1
	RateLimit       *float64 `yaml:"rate_limit"`        // --rate-limit of scenarios without their own; 0 off
	AuthRateLimit   *float64 `yaml:"auth_rate_limit"`   // --auth-rate-limit (the credential-route limiter), when the server has it; 0 off
	DBMaxConns      *int     `yaml:"db_max_conns"`      // --db-max-conns, 1..10000
	CacheMaxEntries *int     `yaml:"cache_max_entries"` // --cache-max-entries, ≥ 1
}

var serverKeys = []string{"bcrypt_cost", "llm_latency_scale", "llm_error_rate", "rate_limit", "auth_rate_limit", "db_max_conns", "cache_max_entries"}

// UnmarshalYAML refuses unknown keys naming the known ones.
func (s *ServerSettings) UnmarshalYAML(n *yaml.Node) error {
	if err := knownKeys(n, "server", serverKeys); err != nil {
		return err
	}
	type plain ServerSettings
	return n.Decode((*plain)(s))
}

func knownKeys(n *yaml.Node, block string, keys []string) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: %s: want a mapping of settings (known keys: %s)", n.Line, block, strings.Join(keys, ", "))
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := n.Content[i]; !slices.Contains(keys, k.Value) {
			return fmt.Errorf("line %d: %s.%s: unknown key (known keys: %s)", k.Line, block, k.Value, strings.Join(keys, ", "))
		}
	}
	return nil
}

func (s *ServerSettings) validate() error {
	if s == nil {
		return nil
	}
	inRange := func(key string, v *float64, lo, hi float64, hint string) error {
		if v != nil && (math.IsNaN(*v) || *v < lo || *v > hi) {
			return fmt.Errorf("server.%s: %v is out of range: want %g..%g (%s)", key, *v, lo, hi, hint)
		}
		return nil
	}
	f := func(p *int) *float64 {
		if p == nil {
			return nil
		}
		v := float64(*p)
		return &v
	}
	for _, err := range []error{
		inRange("bcrypt_cost", f(s.BcryptCost), 4, 31, "production is 10; 4 is the lowest bcrypt allows"),
		inRange("llm_latency_scale", s.LLMLatencyScale, 0, 100, "1 is the simulated LLM's own latency, 0 none"),
		inRange("llm_error_rate", s.LLMErrorRate, 0, 1, "a share of LLM calls"),
		inRange("rate_limit", s.RateLimit, 0, 1e9, "requests/s per client; 0 off"),
		inRange("auth_rate_limit", s.AuthRateLimit, 0, 1e9, "attempts/s per client on the credential routes; 0 off"),
		inRange("db_max_conns", f(s.DBMaxConns), 1, 10000, "production is 100"),
		inRange("cache_max_entries", f(s.CacheMaxEntries), 1, 1e9, "production is 50,000"),
	} {
		if err != nil {
			return err
		}
	}
	return nil
}

// Args are the flags of the block; has tells whether the server binary
// has a flag (the credential-route limiter is newer than some builds).
// Without auth_rate_limit the lab turns that limiter off when the binary
// has it: every virtual user comes from 127.0.0.1.
func (s *ServerSettings) Args(has func(flag string) bool) ([]string, error) {
	var out []string
	num := func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
	if s != nil {
		if s.BcryptCost != nil {
			out = append(out, "--bcrypt-cost", strconv.Itoa(*s.BcryptCost))
		}
		if s.LLMLatencyScale != nil {
			out = append(out, "--llm-latency-scale", num(*s.LLMLatencyScale))
		}
		if s.LLMErrorRate != nil {
			out = append(out, "--llm-error-rate", num(*s.LLMErrorRate))
		}
		if s.DBMaxConns != nil {
			out = append(out, "--db-max-conns", strconv.Itoa(*s.DBMaxConns))
		}
		if s.CacheMaxEntries != nil {
			out = append(out, "--cache-max-entries", strconv.Itoa(*s.CacheMaxEntries))
		}
	}
	auth := 0.0
	if s != nil && s.AuthRateLimit != nil {
		auth = *s.AuthRateLimit
		if !has("auth-rate-limit") {
			return nil, fmt.Errorf("server.auth_rate_limit: this server binary has no --auth-rate-limit flag (an older build?); drop the key")
		}
	}
	if has("auth-rate-limit") {
		out = append(out, "--auth-rate-limit", num(auth))
	}
	// The same for the cap on connections per client address: the load's
	// virtual users all connect from one address.
	if has("http-max-conns-per-client") {
		out = append(out, "--http-max-conns-per-client", "0")
	}
	// The lab stops its servers when no load runs, and HAProxy in front of
	// replicas retries a refused request elsewhere: no pause before draining.
	if has("shutdown-delay") {
		out = append(out, "--shutdown-delay", "0s")
	}
	return out, nil
}

// PostgresSettings is a profile's postgres: block.
type PostgresSettings struct {
	// Durable keeps production durability (fsync, synchronous_commit,
	// full_page_writes on, data on disk); nil means true. false opts out
	// and every report says so.
	Durable *bool `yaml:"durable"`
}

// UnmarshalYAML refuses unknown keys.
func (p *PostgresSettings) UnmarshalYAML(n *yaml.Node) error {
	if err := knownKeys(n, "postgres", []string{"durable"}); err != nil {
		return err
	}
	type plain PostgresSettings
	return n.Decode((*plain)(p))
}

// IsDurable is the block's durability, true by default.
func (p PostgresSettings) IsDurable() bool { return p.Durable == nil || *p.Durable }

// CapacitySpec is a profile's capacity: block: a knee search on every leg
// (after the scenarios, if any), with the search's knobs.
type CapacitySpec struct {
	// Scenario gives the workload and, unless slo is set, the SLO.
	Scenario        string `yaml:"scenario"`
	capacity.Params `yaml:",inline"`
}

var capacityKeys = []string{"scenario", "slo", "start_rate", "growth", "ceiling", "precision", "max_steps", "no_retry", "step", "settle", "max_vus", "cooldown"}

// UnmarshalYAML refuses unknown keys and reads durations as Go durations.
func (c *CapacitySpec) UnmarshalYAML(n *yaml.Node) error {
	if err := knownKeys(n, "capacity", capacityKeys); err != nil {
		return err
	}
	var raw struct {
		Scenario  string   `yaml:"scenario"`
		SLO       []string `yaml:"slo"`
		StartRate float64  `yaml:"start_rate"`
		Growth    float64  `yaml:"growth"`
		Ceiling   float64  `yaml:"ceiling"`
		Precision float64  `yaml:"precision"`
		MaxSteps  int      `yaml:"max_steps"`
		NoRetry   bool     `yaml:"no_retry"`
		Step      Duration `yaml:"step"`
		Settle    Duration `yaml:"settle"`
		MaxVUs    int      `yaml:"max_vus"`
		Cooldown  Duration `yaml:"cooldown"`
	}
	if err := n.Decode(&raw); err != nil {
		return err
	}
	c.Scenario = raw.Scenario
	c.Params = capacity.Params{SLO: raw.SLO, StartRate: raw.StartRate, Growth: raw.Growth, Ceiling: raw.Ceiling, Precision: raw.Precision,
		MaxSteps: raw.MaxSteps, NoRetry: raw.NoRetry, Step: raw.Step.D(), Settle: raw.Settle.D(), MaxVUs: raw.MaxVUs, Cooldown: raw.Cooldown.D()}
	return nil
}

func (c *CapacitySpec) validate() error {
	if c == nil {
		return nil
	}
	if c.Scenario == "" {
		return fmt.Errorf("capacity.scenario is required: the scenario file whose workload (and thresholds, unless capacity.slo) the search uses")
	}
	p := c.Params
	p.Defaults()
	if err := p.Validate(); err != nil {
		return fmt.Errorf("capacity: %w", err)
	}
	return nil
}
