package hal9

// The workload section of a scenario file: the mix, the catalogue, the
// layers, and their validation.

import (
	"fmt"
	"math"
	"time"

	"github.com/hal9-lab/hal9-lab/lab/load"
	"github.com/hal9-lab/hal9-lab/lab/workload/internal/section"
)

// Config is the workload section of a scenario file (kind: hal9).
type Config struct {
	Kind string `yaml:"kind"`
	// Mix weights the operations; when mix is given, operations it leaves
	// out get 0. Default: seed 002's 40/20/20/15/5, with 4 of the 40
	// signals async and 1 of the 15 auth flows an API-key creation.
	Mix *Mix `yaml:"mix"`
	// Catalogue is the popularity model of signal contents (catalogue.go).
	Catalogue *Catalogue `yaml:"catalogue"`
	// RepeatRatio, HotSet and ZipfS were the older model (a Zipf hot set
	// plus unique contents); they are refused with a message that says
	// what to write instead.
	RepeatRatio *float64 `yaml:"repeat_ratio"`
	HotSet      int      `yaml:"hot_set"`
	ZipfS       *float64 `yaml:"zipf_s"`
	// ThinkTime is slept at the end of each iteration (the original test
	// used 1 s). Leave it 0 for arrival-rate scenarios.
	ThinkTime time.Duration `yaml:"think_time"`
	// Layers are the entry layers of signals, chosen uniformly (default
	// L2, L3, L4).
	Layers []string `yaml:"layers"`
	// SharedUser makes every VU use one user, logged in once in setup:
	// one rate-limit identity for the whole test (the ratelimit scenario).
	SharedUser bool `yaml:"shared_user"`
}

// Mix are the operation weights (any scale: 40/20/20/15/5 or 0.4/…).
type Mix struct {
	Signal  float64 `yaml:"signal"`
	Status  float64 `yaml:"status"`
	Neurons float64 `yaml:"neurons"`
	Auth    float64 `yaml:"auth"`
	Metrics float64 `yaml:"metrics"`
	// AsyncSignal: POST /api/v1/signals?async=true (202), then GET the
	// signal until it is done. APIKey: POST /api/v1/auth/api-keys (201).
	AsyncSignal float64 `yaml:"async_signal"`
	APIKey      float64 `yaml:"api_key"`
}

// weights in the order of ops.
func (m *Mix) weights() [nOps]float64 {
	return [nOps]float64{m.Signal, m.Status, m.Neurons, m.Auth, m.Metrics, m.AsyncSignal, m.APIKey}
}

// DefaultMix is seed 002's traffic mix (40/20/20/15/5), with small shares
// of async signals and API keys so every kind of acknowledged write occurs.
var DefaultMix = Mix{Signal: 36, AsyncSignal: 4, Status: 20, Neurons: 20, Auth: 14, APIKey: 1, Metrics: 5}

var validLayers = map[string]bool{"L1": true, "L2": true, "L3": true, "L4": true, "L5": true}

// Decode reads and validates the workload section of a scenario file.
func Decode(spec load.WorkloadSpec) (Config, error) {
	return section.Decode[Config](spec)
}

// Normalize validates the config and fills its defaults; errors name the
// file and line of the offending key.
func (c *Config) Normalize(pos section.Pos) error {
	bad := func(key, format string, a ...any) error {
		return fmt.Errorf("%s: workload.%s: %s", pos.At(key), key, fmt.Sprintf(format, a...))
	}
	if c.Mix == nil {
		m := DefaultMix
		c.Mix = &m
	}
	m := c.Mix
	total := 0.0
	for _, w := range m.weights() {
		if w < 0 {
			return bad("mix", "weights must not be negative")
		}
		total += w
	}
	if total <= 0 {
		return bad("mix", "at least one of signal, async_signal, status, neurons, auth, api_key, metrics must be positive")
	}
	for _, old := range []string{"repeat_ratio", "hot_set", "zipf_s"} {
		if pos.Has(old) || (old == "repeat_ratio" && c.RepeatRatio != nil) || (old == "hot_set" && c.HotSet != 0) || (old == "zipf_s" && c.ZipfS != nil) {
			return bad(old, "the hot-set model (repeat_ratio, hot_set, zipf_s) is replaced by a prompt catalogue with Zipf popularity, whose tail is the unique traffic: "+
				"write catalogue: {size_per_layer: %d, zipf_s: %g} instead (a larger catalogue or a smaller zipf_s repeats less; see docs/load.md)", DefaultCatalogueSize, DefaultZipfS)
		}
	}
	if c.Catalogue == nil {
		c.Catalogue = &Catalogue{}
	}
	cat := c.Catalogue
	if cat.SizePerLayer == 0 && !pos.HasPath("catalogue", "size_per_layer") {
		cat.SizePerLayer = DefaultCatalogueSize
	}
	if cat.SizePerLayer < 1 || cat.SizePerLayer > maxCatalogueSize {
		return bad("catalogue", "size_per_layer must be 1..%d, got %d (omit it for the default %d)", maxCatalogueSize, cat.SizePerLayer, DefaultCatalogueSize)
	}
	if cat.ZipfS == nil {
		z := DefaultZipfS
		cat.ZipfS = &z
	}
	if z := *cat.ZipfS; z < 0 || z > 10 || math.IsNaN(z) {
		return bad("catalogue", "zipf_s must be in 0..10 (0: all prompts equally likely; 1: web-like popularity), got %v", z)
	}
	if c.ThinkTime < 0 {
		return bad("think_time", "must not be negative")
	}
	if len(c.Layers) == 0 {
		c.Layers = []string{"L2", "L3", "L4"}
	}
	for _, l := range c.Layers {
		if !validLayers[l] {
			return bad("layers", "%q is not a layer; use L1..L5", l)
		}
	}
	return nil
}
