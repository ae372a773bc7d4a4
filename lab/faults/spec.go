// Package faults breaks things on purpose while the lab's load runs: the
// `faults:` timeline of scenario and profile files (spec.go), the
// in-process TCP proxy between the server and each backend that injects
// network faults (proxy.go, toxiproxy as a library), the actions on Redis,
// PostgreSQL, the server and its simulated LLM (run.go), the recording of
// every request's outcome (recorder.go), and the per-fault numbers and
// verdicts (analyze.go). The acknowledgement ledger and its verification
// are lab/ledger.
package faults

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Targets of faults.
const (
	Redis    = "redis"
	Postgres = "postgres"
	Network  = "network"
	LLM      = "llm"
	Server   = "server"
)

// Spec is one fault of a timeline:
//
//	faults:
//	  - {at: 30s, duration: 70s, target: redis, kind: kill}
//	  - {at: 2m, duration: 20s, target: network, kind: latency, backend: postgres, latency: 200ms, jitter: 50ms}
//	  - {at: 3m, duration: 70s, target: llm, kind: rate-limit, rpm: 6}
//	  - {at: 5m, duration: 10s, target: server, kind: sigkill, replica: 0}
//
// At is the offset from the start of the scenario's load; Duration how
// long the fault lasts (the time a stopped thing stays down before the
// lab brings it back).
type Spec struct {
	At       time.Duration
	Duration time.Duration
	Target   string
	Kind     string
	// Replica picks the server (and its proxies and admin listener) when
	// the lab runs several; 0 is the first.
	Replica int
	// network: which backend's link (postgres, redis); latency and jitter
	// (latency), kbps (bandwidth, KB/s), after (reset: how long a
	// connection lives before it is reset).
	Backend string
	Latency time.Duration
	Jitter  time.Duration
	KBps    int64
	After   time.Duration
	// llm: rate (error-rate, 0..1), scale (latency-scale), rpm (rate-limit).
	Rate  float64
	Scale float64
	RPM   int
	// Alert overrides the alert meant for the fault ("none": no alert).
	Alert *string
	// File and Line locate the fault in its file, for messages.
	File string
	Line int
}

// kind describes one target/kind: the options it takes and whether it
// needs a duration.
type kind struct {
	options []string // beyond at, duration, target, kind, replica, alert
	// duration: "required" (the outage's length), "zero" (instant), "any"
	// (0: restart at once).
	duration string
	about    string
}

var kinds = map[string]map[string]kind{
	Redis: {
		"kill":       {nil, "required", "SIGKILL redis-server, start it again after duration"},
		"stop-start": {nil, "required", "stop redis-server cleanly (SIGTERM), start it again after duration"},
		"pause":      {nil, "required", "SIGSTOP redis-server, SIGCONT after duration"},
	},
	Postgres: {
		"restart": {nil, "zero", "a fast, clean stop (SIGINT) and an immediate start"},
		"crash":   {nil, "any", "SIGKILL the postmaster, start again after duration (crash recovery)"},
		"stop":    {nil, "required", "a fast, clean stop, start again after duration"},
		"pause":   {nil, "required", "SIGSTOP the postmaster and its backends, SIGCONT after duration"},
	},
	Network: {
		"latency":   {[]string{"backend", "latency", "jitter"}, "required", "delay every reply from the backend by latency ± jitter"},
		"reset":     {[]string{"backend", "after"}, "required", "reset every connection to the backend (after its first 'after' of life)"},
		"blackhole": {[]string{"backend"}, "required", "stop all data to and from the backend; connections stay open"},
		"bandwidth": {[]string{"backend", "kbps"}, "required", "cap the backend's replies at kbps KB/s"},
	},
	LLM: {
		"error-rate":    {[]string{"rate"}, "required", "the simulated LLM fails this share of calls (5xx)"},
		"latency-scale": {[]string{"scale"}, "required", "the simulated LLM's latency multiplied by scale"},
		"rate-limit":    {[]string{"rpm"}, "required", "the simulated LLM answers 429 past rpm calls per minute"},
	},
	Server: {
		"sigterm":    {nil, "any", "SIGTERM the server (graceful shutdown), start it again after duration"},
		"sigkill":    {nil, "any", "SIGKILL the server, start it again after duration"},
		"port-taken": {nil, "zero", "at start: the server's API port is taken by another process"},
	},
}

var commonKeys = []string{"at", "duration", "target", "kind", "replica", "alert"}

// Name is a short human name: "postgres crash at 1m0s for 20s".
func (s Spec) Name() string {
	what := s.Target + " " + s.Kind
	if s.Backend != "" {
		what = "network " + s.Kind + " to " + s.Backend
	}
	if s.Replica > 0 {
		what += fmt.Sprintf(" (replica %d)", s.Replica)
	}
	out := what + " at " + s.At.String()
	if s.Duration > 0 {
		out += " for " + s.Duration.String()
	}
	return out
}

// Options are the kind's settings, for the report.
func (s Spec) Options() map[string]string {
	o := map[string]string{}
	for _, k := range kinds[s.Target][s.Kind].options {
		switch k {
		case "backend":
			o[k] = s.Backend
		case "latency":
			o[k] = s.Latency.String()
		case "jitter":
			o[k] = s.Jitter.String()
		case "kbps":
			o[k] = strconv.FormatInt(s.KBps, 10)
		case "after":
			o[k] = s.After.String()
		case "rate":
			o[k] = strconv.FormatFloat(s.Rate, 'g', -1, 64)
		case "scale":
			o[k] = strconv.FormatFloat(s.Scale, 'g', -1, 64)
		case "rpm":
			o[k] = strconv.Itoa(s.RPM)
		}
	}
	if len(o) == 0 {
		return nil
	}
	return o
}

// End is when the fault is taken away.
func (s Spec) End() time.Duration { return s.At + s.Duration }

// Parse reads a `faults:` sequence; file names it in errors. Every
// problem of a single fault is reported with its line.
func Parse(file string, n *yaml.Node) ([]Spec, error) {
	if n == nil {
		return nil, nil
	}
	if n.Kind != yaml.SequenceNode {
		return nil, fmt.Errorf("%s:%d: faults: want a list of {at, duration, target, kind, …}", file, n.Line)
	}
	var out []Spec
	for i, fn := range n.Content {
		s, err := parseOne(file, fn)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: faults[%d]: %w", file, fn.Line, i, err)
		}
		out = append(out, s)
	}
	return out, nil
}

func parseOne(file string, n *yaml.Node) (Spec, error) {
	s := Spec{File: file, Line: n.Line}
	if n.Kind != yaml.MappingNode {
		return s, fmt.Errorf("want a mapping such as {at: 30s, duration: 70s, target: redis, kind: kill}")
	}
	vals := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		vals[n.Content[i].Value] = n.Content[i+1]
	}
	str := func(k string) string {
		if v := vals[k]; v != nil {
			return v.Value
		}
		return ""
	}
	s.Target, s.Kind = str("target"), str("kind")
	ks, ok := kinds[s.Target]
	if !ok {
		return s, fmt.Errorf("target %q: want one of %s", s.Target, strings.Join(slices.Sorted(maps.Keys(kinds)), ", "))
	}
	k, ok := ks[s.Kind]
	if !ok {
		return s, fmt.Errorf("kind %q for target %s: want one of %s", s.Kind, s.Target, strings.Join(slices.Sorted(maps.Keys(ks)), ", "))
	}
	allowed := append(append([]string{}, commonKeys...), k.options...)
	for key := range vals {
		if !slices.Contains(allowed, key) {
			return s, fmt.Errorf("key %q does not apply to %s %s faults (they take %s)", key, s.Target, s.Kind, strings.Join(allowed, ", "))
		}
	}
	var err error
	dur := func(key string) time.Duration {
		v := vals[key]
		if v == nil || err != nil {
			return 0
		}
		d, e := time.ParseDuration(v.Value)
		if e != nil {
			err = fmt.Errorf("%s %q: want a duration such as 30s or 1m30s", key, v.Value)
		} else if d < 0 {
			err = fmt.Errorf("%s %s must not be negative", key, v.Value)
		}
		return d
	}
	s.At, s.Duration = dur("at"), dur("duration")
	s.Latency, s.Jitter, s.After = dur("latency"), dur("jitter"), dur("after")
	if err != nil {
		return s, err
	}
	if vals["at"] == nil {
		return s, fmt.Errorf("at is required: the offset from the start of the load, e.g. at: 30s")
	}
	num := func(key string, into any) {
		v := vals[key]
		if v == nil || err != nil {
			return
		}
		if e := v.Decode(into); e != nil {
			err = fmt.Errorf("%s %q: want a number", key, v.Value)
		}
	}
	num("replica", &s.Replica)
	num("kbps", &s.KBps)
	num("rate", &s.Rate)
	num("scale", &s.Scale)
	num("rpm", &s.RPM)
	if err != nil {
		return s, err
	}
	if v := vals["alert"]; v != nil {
		a := v.Value
		s.Alert = &a
	}
	s.Backend = str("backend")
	return s, s.check(k)
}

// check validates one fault on its own.
func (s Spec) check(k kind) error {
	switch k.duration {
	case "required":
		if s.Duration <= 0 {
			return fmt.Errorf("%s %s needs a duration > 0 (how long the fault lasts)", s.Target, s.Kind)
		}
	case "zero":
		if s.Duration != 0 {
			hint := ""
			if s.Kind == "restart" {
				hint = "; use kind: stop for an outage that lasts"
			}
			return fmt.Errorf("%s %s is instantaneous: drop duration (%s)%s", s.Target, s.Kind, s.Duration, hint)
		}
	}
	if s.Replica < 0 {
		return fmt.Errorf("replica %d must not be negative (0 is the first server)", s.Replica)
	}
	if (s.Target == Redis || s.Target == Postgres) && s.Replica != 0 {
		return fmt.Errorf("replica does not apply to %s faults: the replicas share it", s.Target)
	}
	switch s.Target {
	case Network:
		if s.Backend != Postgres && s.Backend != Redis {
			return fmt.Errorf("network %s needs backend: postgres or redis (the link between the server and that backend)", s.Kind)
		}
		switch s.Kind {
		case "latency":
			if s.Latency <= 0 {
				return fmt.Errorf("network latency needs latency > 0, e.g. latency: 200ms")
			}
			if s.Jitter > s.Latency {
				return fmt.Errorf("jitter %s must not exceed latency %s", s.Jitter, s.Latency)
			}
		case "bandwidth":
			if s.KBps <= 0 {
				return fmt.Errorf("network bandwidth needs kbps > 0 (KB/s), e.g. kbps: 16")
			}
		}
	case LLM:
		switch s.Kind {
		case "error-rate":
			if !(s.Rate > 0 && s.Rate <= 1) {
				return fmt.Errorf("llm error-rate needs rate in (0, 1], e.g. rate: 0.5")
			}
		case "latency-scale":
			if !(s.Scale > 0 && s.Scale <= 100) {
				return fmt.Errorf("llm latency-scale needs scale in (0, 100], e.g. scale: 5")
			}
		case "rate-limit":
			if s.RPM <= 0 {
				return fmt.Errorf("llm rate-limit needs rpm > 0 (calls per minute before 429s), e.g. rpm: 6")
			}
		}
	case Server:
		if s.Kind == "port-taken" && s.At != 0 {
			return fmt.Errorf("server port-taken happens at start: at must be 0s")
		}
	}
	if s.Alert != nil && *s.Alert != "none" && !strings.HasPrefix(*s.Alert, "HAL9") {
		return fmt.Errorf("alert %q: name an alert of alerts/hal9.rules.yml (HAL9…) or none", *s.Alert)
	}
	return nil
}

// Have is what a leg offers faults.
type Have struct {
	Redis, Postgres bool
	// Processes: the lab started PostgreSQL and Redis as local processes
	// (it can kill, stop and pause them).
	Processes bool
	// Started: the lab started the server (it can signal and restart it,
	// take its port and put proxies before its backends). False for
	// `hal9-lab load --target`.
	Started  bool
	Replicas int // servers (1 until the lab runs replicas)
}

// Validate checks a timeline against the scenario's length (end, the
// scaled load's last start) and what the leg has.
func Validate(specs []Spec, end time.Duration, h Have) error {
	if h.Replicas < 1 {
		h.Replicas = 1
	}
	for i, s := range specs {
		where := fmt.Sprintf("%s:%d: %s", s.File, s.Line, s.Name())
		if !h.Started && s.Target != LLM {
			return fmt.Errorf("%s: against a server the lab did not start only LLM faults can be injected (through --admin-url); %s faults need the lab to run the server and its backends (hal9-lab run)", where, s.Target)
		}
		if s.Target == Server && s.Kind == "port-taken" {
			continue // at start, before the load
		}
		if s.End() > end {
			return fmt.Errorf("%s: ends at %s, past the end of the scenario's load (%s): move it earlier or shorten it", where, s.End(), end)
		}
		if s.Replica >= h.Replicas {
			return fmt.Errorf("%s: replica %d, but the leg runs %d server(s) (replica 0..%d)", where, s.Replica, h.Replicas, h.Replicas-1)
		}
		backend := s.Target
		if s.Target == Network {
			backend = s.Backend
		}
		switch {
		case backend == Redis && !h.Redis:
			return fmt.Errorf("%s: this leg has no Redis (run it on the postgres+redis backend)", where)
		case backend == Postgres && !h.Postgres:
			return fmt.Errorf("%s: this leg has no PostgreSQL (run it on the postgres or postgres+redis backend)", where)
		case (s.Target == Redis || s.Target == Postgres) && !h.Processes:
			return fmt.Errorf("%s: %s faults need the lab's own local processes (--infra process): it kills, stops and pauses them", where, s.Target)
		}
		for _, o := range specs[:i] {
			if o.Target == Server && o.Kind == "port-taken" {
				continue
			}
			if sameThing(o, s) && o.At < s.End() && s.At < o.End() {
				return fmt.Errorf("%s: overlaps %s (line %d) on the same target: one fault per target at a time", where, o.Name(), o.Line)
			}
		}
	}
	return nil
}

func sameThing(a, b Spec) bool {
	ta, tb := a.Target, b.Target
	if ta == Network {
		ta += a.Backend
	}
	if tb == Network {
		tb += b.Backend
	}
	return ta == tb && a.Replica == b.Replica
}

// Sorted returns the specs by start time.
func Sorted(specs []Spec) []Spec {
	out := append([]Spec(nil), specs...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].At < out[j].At })
	return out
}

// Scaled multiplies offsets and durations by f (the scenario's --scale).
func Scaled(specs []Spec, f float64) []Spec {
	if f == 1 || f <= 0 {
		return specs
	}
	out := make([]Spec, len(specs))
	for i, s := range specs {
		s.At = time.Duration(float64(s.At) * f).Round(time.Millisecond)
		s.Duration = time.Duration(float64(s.Duration) * f).Round(time.Millisecond)
		out[i] = s
	}
	return out
}

// Describe lists every target and kind with what it does (docs, errors).
func Describe() string {
	var b strings.Builder
	for _, t := range slices.Sorted(maps.Keys(kinds)) {
		for _, k := range slices.Sorted(maps.Keys(kinds[t])) {
			info := kinds[t][k]
			fmt.Fprintf(&b, "%s %s: %s", t, k, info.about)
			if len(info.options) > 0 {
				fmt.Fprintf(&b, " (options: %s)", strings.Join(info.options, ", "))
			}
			b.WriteString("\n")
		}
	}
	return b.String()
}
