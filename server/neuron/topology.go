// Package neuron holds HAL9's neuron hierarchy: the five layers, the
// topology (how many neurons each layer has), and the router that carries a
// signal down the layers, one LLM call per hop through a per-layer response
// cache, recording a trace and sending a backward signal up when a hop fails.
package neuron

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Layers lists the layers from the bottom (L1, reflexive) to the top (L5,
// strategic). A signal enters at some layer and flows down to L1.
var Layers = []string{"L1", "L2", "L3", "L4", "L5"}

// roles name what each layer does; they appear in neuron ids and prompts.
var roles = map[string]string{
	"L1": "reflexive",
	"L2": "implementation",
	"L3": "design",
	"L4": "planning",
	"L5": "strategic",
}

// ValidLayersText is the list shown in error messages.
const ValidLayersText = "L1, L2, L3, L4, L5"

// MaxNeuronsPerLayer bounds the topology so metric labels stay bounded.
const MaxNeuronsPerLayer = 64

// ValidLayer reports whether s is one of L1..L5 (exact spelling).
func ValidLayer(s string) bool { _, ok := roles[s]; return ok }

// LayerIndex returns 1..5 for L1..L5 and 0 for anything else.
func LayerIndex(s string) int {
	if !ValidLayer(s) {
		return 0
	}
	return int(s[1] - '0')
}

// Role returns the layer's role name ("design" for L3).
func Role(layer string) string { return roles[layer] }

// Topology maps a layer to its neuron count.
type Topology map[string]int

// DefaultTopology is two neurons per layer.
func DefaultTopology() Topology {
	t := Topology{}
	for _, l := range Layers {
		t[l] = 2
	}
	return t
}

// ParseTopology reads "L1=3,L2=2,..." on top of the default: layers not
// named keep two neurons. An empty string is the default.
func ParseTopology(s string) (Topology, error) {
	t := DefaultTopology()
	s = strings.TrimSpace(s)
	if s == "" {
		return t, nil
	}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		layer, n, ok := strings.Cut(part, "=")
		if !ok {
			return nil, fmt.Errorf("topology %q: entry %q must look like L3=2", s, part)
		}
		layer = strings.ToUpper(strings.TrimSpace(layer))
		if !ValidLayer(layer) {
			return nil, fmt.Errorf("topology %q: layer %q must be one of %s", s, layer, ValidLayersText)
		}
		count, err := strconv.Atoi(strings.TrimSpace(n))
		if err != nil {
			return nil, fmt.Errorf("topology %q: count for %s must be a whole number, got %q", s, layer, n)
		}
		t[layer] = count
	}
	return t, t.Validate()
}

// LoadTopologyFile reads a YAML file of the form
//
//	layers:
//	  L1: 3
//	  L5: 1
//
// on top of the default.
func LoadTopologyFile(path string) (Topology, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read topology file: %w", err)
	}
	var doc struct {
		Layers map[string]int `yaml:"layers"`
	}
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("topology file %s: %w (expected 'layers:' mapping L1..L5 to counts)", path, err)
	}
	t := DefaultTopology()
	for l, n := range doc.Layers {
		if !ValidLayer(l) {
			return nil, fmt.Errorf("topology file %s: layer %q must be one of %s", path, l, ValidLayersText)
		}
		t[l] = n
	}
	if err := t.Validate(); err != nil {
		return nil, fmt.Errorf("topology file %s: %w", path, err)
	}
	return t, nil
}

// Validate checks every layer has 1..MaxNeuronsPerLayer neurons.
func (t Topology) Validate() error {
	for _, l := range Layers {
		n, ok := t[l]
		if !ok {
			return fmt.Errorf("topology: layer %s is missing; every layer needs at least one neuron", l)
		}
		if n < 1 || n > MaxNeuronsPerLayer {
			return fmt.Errorf("topology: layer %s has %d neurons; use 1..%d", l, n, MaxNeuronsPerLayer)
		}
	}
	for l := range t {
		if !ValidLayer(l) {
			return fmt.Errorf("topology: layer %q must be one of %s", l, ValidLayersText)
		}
	}
	return nil
}

// String renders "L1=2,L2=2,L3=2,L4=2,L5=2".
func (t Topology) String() string {
	parts := make([]string, 0, len(Layers))
	for _, l := range Layers {
		parts = append(parts, fmt.Sprintf("%s=%d", l, t[l]))
	}
	return strings.Join(parts, ",")
}

// Spec is one neuron's identity.
type Spec struct {
	ID    string
	Layer string
}

// ID builds the id of the i-th (1-based) neuron of a layer: "l3-design-1".
func ID(layer string, i int) string {
	return fmt.Sprintf("l%d-%s-%d", LayerIndex(layer), Role(layer), i)
}

// Specs lists every neuron, by layer then number.
func (t Topology) Specs() []Spec {
	var out []Spec
	for _, l := range Layers {
		for i := 1; i <= t[l]; i++ {
			out = append(out, Spec{ID: ID(l, i), Layer: l})
		}
	}
	return out
}
