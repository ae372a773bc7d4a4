package capacity

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/google/pprof/profile"
)

// The pprof labels the server puts on its CPU samples (server/profilelabels.go).
const (
	LabelRoute = "route" // the route template, as hal9_http_requests_total's route label
	LabelLayer = "layer" // the entry layer of POST /api/v1/signals
)

// Counts are the server's requests over the same window as the profile:
// hal9_http_requests_total by route and hal9_signals_total by layer.
type Counts struct {
	ByRoute        map[string]float64 `json:"by_route"`
	SignalsByLayer map[string]float64 `json:"signals_by_layer,omitempty"`
}

// RouteDemand is one route's (or signal layer's) service demand on the
// server's CPU: CPU seconds per request from the labelled samples.
type RouteDemand struct {
	Name       string  `json:"name"` // login, register, signal L3, status, …
	Route      string  `json:"route"`
	Layer      string  `json:"layer,omitempty"`
	Requests   float64 `json:"requests"`
	Share      float64 `json:"share"` // of all requests (the mix)
	CPUSeconds float64 `json:"cpu_seconds"`
	BcryptS    float64 `json:"bcrypt_cpu_seconds"`
	DemandMS   float64 `json:"demand_ms"` // CPU ms per request
	// ContributionMS is Share × DemandMS: this route's part of the mix's
	// demand per request.
	ContributionMS float64 `json:"contribution_ms"`
}

// Demands is the service demand of the mix on the server's CPU and what
// the utilisation law (U = X × D, U ≤ cores) says about throughput.
type Demands struct {
	Routes []RouteDemand `json:"routes"`
	// Totals over the profile's window.
	Requests    float64 `json:"requests"`
	CPUSeconds  float64 `json:"cpu_seconds"`
	Unlabelled  float64 `json:"unlabelled_cpu_seconds"` // GC workers, connection handling, scrapes, …
	BcryptS     float64 `json:"bcrypt_cpu_seconds"`
	OverheadMS  float64 `json:"overhead_ms"`      // unlabelled CPU per request
	MixDemandMS float64 `json:"mix_demand_ms"`    // server CPU per request of the mix
	BcryptMS    float64 `json:"mix_bcrypt_ms"`    // of which bcrypt
	Bottleneck  string  `json:"bottleneck"`       // the route with the largest contribution
	BottleShare float64 `json:"bottleneck_share"` // its part of MixDemandMS
	Cores       int     `json:"cores"`
	// ServerMaxRPS is Cores / MixDemandMS: the most requests/s of this mix
	// the server's CPU could carry on a box of its own.
	ServerMaxRPS float64 `json:"server_max_rps"`
	// Other CPU per request on this machine: the load generator (the lab
	// itself) and local PostgreSQL/Redis processes (0: not measured).
	LoadGenMS float64 `json:"load_generator_ms,omitempty"`
	BackendMS float64 `json:"backend_ms,omitempty"`
	// MachineMaxRPS is Cores / (server + load generator + backends): the
	// bound on this machine, where they share the cores.
	MachineMaxRPS float64  `json:"machine_max_rps,omitempty"`
	KneeRPS       float64  `json:"knee_rps,omitempty"` // measured, for comparison
	Notes         []string `json:"notes,omitempty"`
}

// routeNames are the short names of the API's routes.
var routeNames = map[string]string{
	"/api/v1/auth/login": "login", "/api/v1/auth/register": "register", "/api/v1/auth/refresh": "refresh",
	"/api/v1/auth/profile": "profile", "/api/v1/signals": "signal", "/api/v1/signals/{id}": "signal read",
	"/api/v1/status": "status", "/api/v1/neurons": "neurons", "/api/v1/neurons/{id}": "neuron",
	"/api/v1/neurons/{id}/health": "neuron health", "/api/v1/metrics": "metrics", "/health": "health", "/readyz": "readyz",
}

// bcryptFrame tells a bcrypt frame (and the blowfish it runs on).
func bcryptFrame(fn string) bool {
	return strings.Contains(fn, "golang.org/x/crypto/bcrypt.") || strings.Contains(fn, "golang.org/x/crypto/blowfish.")
}

// ComputeDemands divides each route's labelled CPU time in p (a CPU
// profile covering the same window as c) by its request count. Signals
// are split by entry layer when the samples carry the layer label and c
// has the layer counts.
func ComputeDemands(p *profile.Profile, c Counts, cores int) (*Demands, error) {
	if p == nil {
		return nil, errors.New("service demand: no CPU profile (is the server sending profiles? --pyroscope-url)")
	}
	idx := -1
	for i, st := range p.SampleType {
		if st.Type == "cpu" {
			idx = i
		}
	}
	if idx < 0 {
		return nil, errors.New("service demand: the profile has no cpu sample type")
	}
	unit := 1e-9 // nanoseconds
	if p.SampleType[idx].Unit == "microseconds" {
		unit = 1e-6
	}
	d := &Demands{Cores: cores}
	type key struct{ route, layer string }
	cpu, bc := map[key]float64{}, map[key]float64{}
	for _, s := range p.Sample {
		v := float64(s.Value[idx]) * unit
		if v == 0 {
			continue
		}
		d.CPUSeconds += v
		isB := false
		for _, loc := range s.Location {
			for _, ln := range loc.Line {
				if ln.Function != nil && bcryptFrame(ln.Function.Name) {
					isB = true
				}
			}
		}
		if isB {
			d.BcryptS += v
		}
		route := first(s.Label[LabelRoute])
		if route == "" {
			d.Unlabelled += v
			continue
		}
		k := key{route, first(s.Label[LabelLayer])}
		if k.layer != "" && c.SignalsByLayer[k.layer] == 0 {
			k.layer = "" // no count to divide by: fold into the route
		}
		cpu[k] += v
		if isB {
			bc[k] += v
		}
	}
	for _, n := range c.ByRoute {
		d.Requests += n
	}
	if d.Requests == 0 {
		return nil, errors.New("service demand: no requests counted over the profile's window")
	}
	if d.CPUSeconds == 0 {
		return nil, errors.New("service demand: the CPU profile has no samples")
	}
	// Requests of a route with layers: what the layers do not cover stays
	// with the route itself.
	layered := map[string]float64{}
	for k := range cpu {
		if k.layer != "" {
			layered[k.route] += c.SignalsByLayer[k.layer]
		}
	}
	// CPU of a layered route spent before its layer was known (decoding
	// the request) goes to its layers in proportion to their requests.
	for k, v := range cpu {
		if k.layer != "" || layered[k.route] == 0 || c.ByRoute[k.route]-layered[k.route] > 0 {
			continue
		}
		delete(cpu, k)
		for kk := range cpu {
			if kk.route == k.route && kk.layer != "" {
				f := c.SignalsByLayer[kk.layer] / layered[k.route]
				cpu[kk] += v * f
				bc[kk] += bc[k] * f
			}
		}
	}
	for k, v := range cpu {
		n := c.ByRoute[k.route]
		if k.layer != "" {
			n = c.SignalsByLayer[k.layer]
		} else {
			n -= layered[k.route]
		}
		name := routeNames[k.route]
		if name == "" {
			name = k.route
		}
		if k.layer != "" {
			name += " " + k.layer
		}
		if n <= 0 {
			d.Notes = append(d.Notes, fmt.Sprintf("%s: %.2f CPU s with no request counted (left out of the demands)", name, v))
			d.Unlabelled += v
			continue
		}
		r := RouteDemand{Name: name, Route: k.route, Layer: k.layer, Requests: n, CPUSeconds: v, BcryptS: bc[k],
			DemandMS: v / n * 1000, Share: n / d.Requests}
		r.ContributionMS = r.Share * r.DemandMS
		d.Routes = append(d.Routes, r)
		d.MixDemandMS += r.ContributionMS
		d.BcryptMS += r.Share * bc[k] / n * 1000
	}
	sort.Slice(d.Routes, func(i, j int) bool { return d.Routes[i].ContributionMS > d.Routes[j].ContributionMS })
	d.OverheadMS = d.Unlabelled / d.Requests * 1000
	d.MixDemandMS += d.OverheadMS
	if len(d.Routes) > 0 {
		d.Bottleneck = d.Routes[0].Name
		d.BottleShare = d.Routes[0].ContributionMS / d.MixDemandMS
	}
	if d.MixDemandMS > 0 && cores > 0 {
		d.ServerMaxRPS = float64(cores) / (d.MixDemandMS / 1000)
	}
	if d.CPUSeconds > 0 && d.Unlabelled/d.CPUSeconds > 0.5 {
		d.Notes = append(d.Notes, fmt.Sprintf("%.0f%% of the CPU samples carry no route label: an older server build without pprof labels?", 100*d.Unlabelled/d.CPUSeconds))
	}
	return d, nil
}

// Machine adds the other processes' CPU per request on this machine (the
// load generator's and local backends', in CPU seconds over requests) and
// the utilisation law's bound when they share the cores.
func (d *Demands) Machine(loadGenS, backendS, requests float64) {
	if requests <= 0 {
		return
	}
	d.LoadGenMS = loadGenS / requests * 1000
	d.BackendMS = backendS / requests * 1000
	if total := d.MixDemandMS + d.LoadGenMS + d.BackendMS; total > 0 && d.Cores > 0 {
		d.MachineMaxRPS = float64(d.Cores) / (total / 1000)
	}
}

func first(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

// Fleet is the projection of the measured demands to seed 000's fleet: a
// model with its assumptions, not a promise.
type Fleet struct {
	BcryptCostMeasured   int      `json:"bcrypt_cost_measured"`
	BcryptCostProduction int      `json:"bcrypt_cost_production"`
	MixDemandMS          float64  `json:"mix_demand_ms"`        // measured
	ProductionDemandMS   float64  `json:"production_demand_ms"` // bcrypt scaled to production
	PodCPU               float64  `json:"pod_cpu"`              // cores per pod (seed 000: 1)
	TargetUtilisation    float64  `json:"target_utilisation"`   // the HPA's target (0.5)
	PerPodRPS            float64  `json:"per_pod_rps"`          // at the target
	SustainedRPS         float64  `json:"sustained_rps"`        // seed 000: 1,200
	PeakRPS              float64  `json:"peak_rps"`             // seed 000: 2,500
	PodsSustained        int      `json:"pods_sustained"`
	PodsPeak             int      `json:"pods_peak"`
	PodsSaturated        int      `json:"pods_saturated_sustained"` // at 100 % CPU
	SeedPods             int      `json:"seed_pods"`                // seed 000: 30
	HitRate              float64  `json:"cache_hit_rate"`
	CostPer1K            float64  `json:"cost_per_1k_usd"`
	MonthlyLLMUSD        float64  `json:"monthly_llm_usd"`
	SeedMonthlyLLMUSD    float64  `json:"seed_monthly_llm_usd"`
	Assumptions          []string `json:"assumptions"`
}

// FleetSeed holds seed 000's fleet and traffic.
type FleetSeed struct {
	SustainedRPS, PeakRPS float64
	Pods                  int
	PodCPU, Utilisation   float64
	BcryptCost            int
	MonthlyLLMUSD         float64
}

// DefaultFleetSeed is seed 000: 1,200 req/s sustained, 2,500 peak, 30 pods
// of 1 CPU autoscaled at 50 % CPU (seed 004's HPA), bcrypt cost 10 (the
// server's default), $3,000 a month of LLM after caching.
func DefaultFleetSeed() FleetSeed {
	return FleetSeed{SustainedRPS: 1200, PeakRPS: 2500, Pods: 30, PodCPU: 1, Utilisation: 0.5, BcryptCost: 10, MonthlyLLMUSD: 3000}
}

// Project scales the bcrypt part of the demand from the measured cost to
// the production one (cost c runs 2^c rounds: ×2^(10−c)), sizes the fleet
// and prices the LLM at the measured hit rate and cost per 1,000 requests.
func Project(d *Demands, bcryptCost int, hitRate, costPer1K float64, seed FleetSeed) *Fleet {
	f := &Fleet{BcryptCostMeasured: bcryptCost, BcryptCostProduction: seed.BcryptCost, MixDemandMS: d.MixDemandMS,
		PodCPU: seed.PodCPU, TargetUtilisation: seed.Utilisation, SustainedRPS: seed.SustainedRPS, PeakRPS: seed.PeakRPS,
		SeedPods: seed.Pods, HitRate: hitRate, CostPer1K: costPer1K, SeedMonthlyLLMUSD: seed.MonthlyLLMUSD}
	scale := math.Pow(2, float64(seed.BcryptCost-bcryptCost))
	f.ProductionDemandMS = d.MixDemandMS - d.BcryptMS + d.BcryptMS*scale
	if f.ProductionDemandMS > 0 {
		f.PerPodRPS = seed.PodCPU * seed.Utilisation / (f.ProductionDemandMS / 1000)
		f.PodsSustained = int(math.Ceil(seed.SustainedRPS / f.PerPodRPS))
		f.PodsPeak = int(math.Ceil(seed.PeakRPS / f.PerPodRPS))
		f.PodsSaturated = int(math.Ceil(seed.SustainedRPS * f.ProductionDemandMS / 1000 / seed.PodCPU))
	}
	f.MonthlyLLMUSD = costPer1K / 1000 * seed.SustainedRPS * 86400 * 30
	f.Assumptions = []string{
		fmt.Sprintf("a pod's CPU is one core of this machine (%d cores here); the server's CPU demand per request is the one measured here, at the measured mix and cache hit rate", d.Cores),
		fmt.Sprintf("bcrypt cost %d runs 2^%d rounds: the bcrypt part of the demand (%.2f of %.2f ms per request, from the profile's bcrypt and blowfish frames) is multiplied by 2^(%d−%d) = %g; the rest does not change",
			seed.BcryptCost, seed.BcryptCost, d.BcryptMS, d.MixDemandMS, seed.BcryptCost, bcryptCost, scale),
		fmt.Sprintf("pods run at the HPA's %.0f %% CPU target (seed 004); only the server's CPU counts: PostgreSQL, Redis, the load balancer and the LLM are elsewhere, and the LLM's latency costs no CPU", seed.Utilisation*100),
		"traffic spreads evenly over the pods, and one pod's throughput is its CPU divided by the demand (no contention between pods: the USL's σ and κ of one box are left out)",
		fmt.Sprintf("the LLM bill is the measured cost per 1,000 requests (simulated tokens × the price table, at the measured %.1f %% hit rate) × %.0f req/s × 30 days", hitRate*100, seed.SustainedRPS),
	}
	return f
}
