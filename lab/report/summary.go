// Package report renders one lab run — legs × scenarios, server-side
// numbers, gate verdicts, profiles — from a single RunSummary into
// summary.json, report.md (CI job summary), junit.xml and one
// self-contained report.html with charts.
package report

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/hal9-lab/hal9-lab/lab/baseline"
	"github.com/hal9-lab/hal9-lab/lab/ledger"
	"github.com/hal9-lab/hal9-lab/lab/profiles"
)

// Version of the summary.json format.
const Version = 1

// RunSummary is everything one lab run measured; every report file is
// rendered from it, and `hal9-lab report DIR` re-renders from its JSON.
type RunSummary struct {
	Version     int              `json:"version"`
	Command     string           `json:"command"` // run, gate, baseline update
	Profile     string           `json:"profile"`
	StartedAt   time.Time        `json:"started_at"`
	EndedAt     time.Time        `json:"ended_at"`
	Commit      string           `json:"commit,omitempty"`
	Machine     baseline.Machine `json:"machine"`
	Interrupted bool             `json:"interrupted,omitempty"` // Ctrl-C: partial results
	Legs        []Leg            `json:"legs"`
	Skipped     []Skipped        `json:"skipped,omitempty"`
	LabErrors   []string         `json:"lab_errors,omitempty"`
	NoData      []NoData         `json:"no_data,omitempty"`
	// PrometheusChecked is how many queries --prometheus evaluated (0: off).
	PrometheusChecked int   `json:"prometheus_checked,omitempty"`
	Gate              *Gate `json:"gate,omitempty"`
	// History: the history check after the gate (history check --gate-report).
	History  *History              `json:"history,omitempty"`
	Profiles []profiles.LegSummary `json:"profiles,omitempty"`
	// Seed is the reference the cost projection is set beside.
	Seed Seed `json:"seed"`
	// Departures from production's settings, in plain words (settings.go).
	Departures []Departure `json:"departures,omitempty"`
}

// Seed holds the production numbers of seed 000 the report compares with.
type Seed struct {
	SustainedRPS      float64 `json:"sustained_rps"`        // 1,200 req/s
	MonthlyLLMCostUSD float64 `json:"monthly_llm_cost_usd"` // $3,000 after caching
}

// DefaultSeed is seed 000's production traffic and monthly LLM bill.
func DefaultSeed() Seed { return Seed{SustainedRPS: 1200, MonthlyLLMCostUSD: 3000} }

// Leg is one backend's run (one repetition of it in a gate).
type Leg struct {
	Name      string     `json:"name"`           // sqlite, postgres, postgres+redis
	Run       int        `json:"run"`            // 1-based repetition
	Role      string     `json:"role,omitempty"` // gate --against: candidate or reference
	Infra     string     `json:"infra,omitempty"`
	Database  string     `json:"database,omitempty"` // URL with the password removed
	Redis     bool       `json:"redis"`
	Scenarios []Scenario `json:"scenarios"`
	Server    Server     `json:"server"`
	Steps     []Step     `json:"steps,omitempty"`
	Error     string     `json:"error,omitempty"`
	// Replicas: several servers behind HAProxy (replicas.go); Connections:
	// a PostgreSQL leg's pools against max_connections.
	Replicas    *Replicas    `json:"replicas,omitempty"`
	Connections *Connections `json:"connections,omitempty"`
	// Containers: the leg's servers ran in containers (containers.go).
	Containers *Containers `json:"containers,omitempty"`
	// Faults are the leg's fault timeline and verdicts (faults.go).
	Faults []FaultResult `json:"faults,omitempty"`
	// Ledger is the acknowledgement-ledger check of the run (lab/ledger).
	Ledger   *ledger.Verdict `json:"ledger,omitempty"`
	Capacity *Capacity       `json:"capacity,omitempty"` // capacity.go
}

// Step is one orchestration step of a leg, timed.
type Step struct {
	Name       string  `json:"name"`
	DurationMS float64 `json:"duration_ms"`
	Error      string  `json:"error,omitempty"`
}

// Scenario is one scenario's result on one leg.
type Scenario struct {
	Name       string          `json:"name"`
	File       string          `json:"file,omitempty"`
	Passed     bool            `json:"passed"`
	Metrics    Metrics         `json:"metrics"`
	Thresholds []Threshold     `json:"thresholds,omitempty"`
	Checks     []Check         `json:"checks,omitempty"`
	Series     []Point         `json:"series,omitempty"`
	Server     Server          `json:"server"`       // the /metrics difference over this scenario
	K6         json.RawMessage `json:"k6,omitempty"` // the engine's k6-shaped summary, as is
	Warnings   []string        `json:"warnings,omitempty"`
	Error      string          `json:"error,omitempty"`
}

// Metrics are the client-side numbers of one scenario (times in ms).
type Metrics struct {
	HTTPReqs         float64 `json:"http_reqs"`
	Iterations       float64 `json:"iterations"`
	DurationS        float64 `json:"duration_s"`
	AchievedRPS      float64 `json:"achieved_rps"`
	PlannedRPS       float64 `json:"planned_rps,omitempty"` // open-model executors only
	ErrorRate        float64 `json:"error_rate"`
	Dropped          float64 `json:"dropped_iterations"`
	ChecksRate       float64 `json:"checks_rate"`
	ReqP50           float64 `json:"http_req_duration_p50"`
	ReqP95           float64 `json:"http_req_duration_p95"`
	ReqP99           float64 `json:"http_req_duration_p99"`
	IterP50          float64 `json:"iteration_response_time_p50"`
	IterP95          float64 `json:"iteration_response_time_p95"`
	IterP99          float64 `json:"iteration_response_time_p99"`
	VUsMax           float64 `json:"vus_max"`
	ClientCacheHit   float64 `json:"client_cache_hit_rate"` // hal9_cache_hit
	ClientCacheCount float64 `json:"client_cache_samples"`  // responses that carried X-HAL9-Cache
	ClientCostUSD    float64 `json:"client_cost_usd"`       // hal9_llm_cost_usd
	ClientTokens     float64 `json:"client_tokens"`         // hal9_llm_tokens
	Status429        float64 `json:"status_429,omitempty"`
	// Ops are the engine's per-operation numbers (and per layer where an
	// operation's requests addressed several): every op, whatever its
	// count; the gate keeps those with enough requests (readings.LegSamples).
	Ops []OpMetrics `json:"ops,omitempty"`
}

// OpMetrics are one operation's client-side numbers in a scenario (Op is
// "signal", or "signal:L3" for one layer of it); times in ms.
type OpMetrics struct {
	Op        string  `json:"op"`
	HTTPReqs  float64 `json:"http_reqs"`
	ErrorRate float64 `json:"error_rate"`
	ReqP50    float64 `json:"http_req_duration_p50"`
	ReqP95    float64 `json:"http_req_duration_p95"`
	ReqP99    float64 `json:"http_req_duration_p99"`
}

// Threshold is one k6 threshold's outcome.
type Threshold struct {
	Metric string `json:"metric"`
	Expr   string `json:"expr"`
	OK     bool   `json:"ok"`
}

// Check is one named check's pass/fail counts.
type Check struct {
	Name   string  `json:"name"`
	Passes float64 `json:"passes"`
	Fails  float64 `json:"fails"`
}

// Point is one second of a scenario's time series (T: Unix ms).
type Point struct {
	T       int64   `json:"t"`
	Reqs    float64 `json:"reqs"`
	Iters   float64 `json:"iters"`
	Errors  float64 `json:"errors"`
	P50     float64 `json:"p50"`
	P95     float64 `json:"p95"`
	P99     float64 `json:"p99"`
	VUs     float64 `json:"vus"`
	Planned float64 `json:"planned,omitempty"` // planned iterations/s (open model)
	Dropped float64 `json:"dropped,omitempty"`
}

// Server holds server-side numbers from the /metrics difference (and
// /proc for RSS and CPU when the server does not export process_*).
type Server struct {
	Requests        float64            `json:"requests"`
	RequestsByRoute map[string]float64 `json:"requests_by_route,omitempty"`
	Signals         float64            `json:"signals,omitempty"`
	CacheHitRate    float64            `json:"cache_hit_rate"` // LLM response cache, all tiers
	CacheLookups    float64            `json:"cache_lookups"`
	CacheByTier     map[string]float64 `json:"cache_hit_rate_by_tier,omitempty"`
	LLMRequests     float64            `json:"llm_requests"`
	TokensIn        float64            `json:"llm_tokens_in"`
	TokensOut       float64            `json:"llm_tokens_out"`
	CostUSD         float64            `json:"llm_cost_usd"`
	CostPer1K       float64            `json:"cost_per_1k_requests_usd"`
	MonthlyUSD      float64            `json:"monthly_projection_usd"` // at Seed.SustainedRPS
	PoolAcquires    float64            `json:"db_pool_acquires,omitempty"`
	PoolWaits       float64            `json:"db_pool_acquire_waits"`
	PoolWaitSeconds float64            `json:"db_pool_acquire_wait_seconds"`
	PeakRSSBytes    float64            `json:"peak_rss_bytes"`
	CPUSeconds      float64            `json:"cpu_seconds"`
	Status429       float64            `json:"status_429,omitempty"`
	Series          []ServerPoint      `json:"series,omitempty"`
	ExitCode        *int               `json:"exit_code,omitempty"`
	ShutdownMS      float64            `json:"shutdown_ms,omitempty"`
	Missing         []string           `json:"missing_metrics,omitempty"` // expected metrics not exported
}

// ServerPoint is one periodic scrape of the server during load.
type ServerPoint struct {
	T            int64   `json:"t"`
	CacheHitRate float64 `json:"cache_hit_rate"` // over the last interval
	CostUSD      float64 `json:"cost_usd"`       // cumulative since the scenario began
	RSSBytes     float64 `json:"rss_bytes"`
	CPUSeconds   float64 `json:"cpu_seconds"` // cumulative since the scenario began
}

// Skipped is a leg that could not run and why.
type Skipped struct {
	Leg    string `json:"leg"`
	Reason string `json:"reason"`
}

// NoData is a dashboard or rule query that returned nothing over the run.
type NoData struct {
	Source string `json:"source"` // dashboard panel or rule file
	Name   string `json:"name"`
	Expr   string `json:"expr"`
	Reason string `json:"reason,omitempty"`
}

// Gate is the verdict of `hal9-lab gate`.
type Gate struct {
	Mode       string              `json:"mode"` // baseline or against
	Against    string              `json:"against,omitempty"`
	Baseline   string              `json:"baseline,omitempty"` // file compared with
	Runs       int                 `json:"runs"`
	Comparison baseline.Comparison `json:"comparison"`
	Verdict    string              `json:"verdict"` // pass, regressed
	ExitCode   int                 `json:"exit_code"`
}

// Files written into a run directory.
const (
	SummaryFile  = "summary.json"
	MarkdownFile = "report.md"
	HTMLFile     = "report.html"
	JUnitFile    = "junit.xml"
)

// Load reads a summary.json.
func Load(path string) (*RunSummary, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read run summary: %w", err)
	}
	var s RunSummary
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("parse run summary %s: %w", path, err)
	}
	if s.Version != Version {
		return nil, fmt.Errorf("run summary %s has version %d, this tool renders %d", path, s.Version, Version)
	}
	return &s, nil
}

// WriteAll writes summary.json, report.md, junit.xml and report.html into
// dir and returns their paths.
func WriteAll(dir string, s *RunSummary) ([]string, error) {
	if s.Version == 0 {
		s.Version = Version
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create report dir %s: %w", dir, err)
	}
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode run summary: %w", err)
	}
	files := map[string][]byte{SummaryFile: append(data, '\n'), MarkdownFile: []byte(Markdown(s))}
	if files[JUnitFile], err = JUnit(s); err != nil {
		return nil, err
	}
	if files[HTMLFile], err = HTML(s); err != nil {
		return nil, err
	}
	var paths []string
	for _, name := range []string{SummaryFile, MarkdownFile, JUnitFile, HTMLFile} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, files[name], 0o644); err != nil {
			return paths, fmt.Errorf("write %s: %w", p, err)
		}
		paths = append(paths, p)
	}
	return paths, nil
}

// Render re-renders report.md, junit.xml and report.html from dir's
// summary.json.
func Render(dir string) ([]string, error) {
	s, err := Load(filepath.Join(dir, SummaryFile))
	if err != nil {
		return nil, err
	}
	return WriteAll(dir, s)
}

// Verdict is the run's one-word outcome: regressed, failed (thresholds
// or lab errors), interrupted, pass.
func (s *RunSummary) Verdict() string {
	switch {
	case s.Gate != nil && s.Gate.Verdict == string(baseline.Regressed):
		return "regressed"
	case s.Gate != nil && s.Gate.Verdict == string(baseline.Inconclusive):
		return "inconclusive"
	case s.Interrupted:
		return "interrupted"
	}
	for _, l := range s.Legs {
		if l.Error != "" || !l.Ledger.OK() || faultsFailed(l.Faults) {
			return "failed"
		}
		for _, sc := range l.Scenarios {
			if !sc.Passed {
				return "failed"
			}
		}
		if c := l.Capacity; c != nil && (c.Search == nil || !c.Search.Knee.Found) {
			return "failed" // no knee: the search could not run, or the start rate failed
		}
	}
	if len(s.LabErrors) > 0 {
		return "lab error"
	}
	if len(s.Legs) == 0 {
		return "nothing ran"
	}
	return "pass"
}
