package history

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/hal9-lab/hal9-lab/lab/baseline"
)

// Kind says what a value is.
type Kind string

const (
	// Absolute values are the metric as measured (ms, req/s, a rate).
	Absolute Kind = "absolute"
	// Ratio values are a gate candidate's value divided by the reference
	// run interleaved with it (--against): the machine cancels out.
	Ratio Kind = "ratio"
)

// Key names one metric of one scenario of one leg; Op is "" for the
// scenario's aggregate and an operation's name for its own series.
type Key struct {
	Leg      string `json:"leg"`
	Scenario string `json:"scenario"`
	Op       string `json:"op"`
	Metric   string `json:"metric"`
}

func (k Key) String() string {
	s := k.Leg + "/" + k.Scenario
	if k.Op != "" {
		s += "/" + k.Op
	}
	return s + "/" + k.Metric
}

// keyOf is the one place a gate sample's key becomes a history key.
func keyOf(k baseline.Key) Key {
	return Key{Leg: k.Leg, Scenario: k.Scenario, Op: k.Op, Metric: k.Metric}
}

// Value is one measured number of a run.
type Value struct {
	Key
	Kind Kind `json:"kind"`
	// Repetition is the gate's or baseline's run number (1-based); a
	// series' point for the night is the median over repetitions.
	Repetition int     `json:"repetition"`
	Value      float64 `json:"value"`
}

// Run is one night of the history: a lab run, gate or baseline update, or
// the rows of an imported CSV that share time, commit, machine and profile.
type Run struct {
	ID      string    `json:"id"`
	Time    time.Time `json:"time"`
	Commit  string    `json:"commit"`
	Profile string    `json:"profile"`
	// Command: run, gate, baseline update; csv for imported rows.
	Command string `json:"command"`
	// Machine is the fingerprint absolute values are grouped by; the
	// parts are kept when known (a summary's, not a CSV's).
	Machine   string           `json:"machine"`
	Host      baseline.Machine `json:"host"`
	Reference string           `json:"reference,omitempty"` // gate --against: the reference commit
	Source    string           `json:"source"`              // the summary.json or CSV it came from
	Values    []Value          `json:"values"`
}

// Fingerprint is the machine a run's absolute numbers belong to: CPU
// model, cores, Go version and kernel (numbers measured on two
// fingerprints are never put in one series).
func Fingerprint(m baseline.Machine) string {
	parts := []string{m.CPUModel, fmt.Sprintf("%d cores", m.Cores), m.GoVersion}
	if m.Kernel != "" {
		parts = append(parts, m.OS+" "+m.Kernel)
	}
	if m.CPUModel == "" {
		parts[0] = "unknown CPU"
	}
	return strings.Join(parts, " · ")
}

// runID names a run by what makes it that run, so adding the same
// summary or CSV twice is noticed.
func runID(parts ...string) string {
	h := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return hex.EncodeToString(h[:10])
}
