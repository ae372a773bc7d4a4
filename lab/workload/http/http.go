// Package http is a workload of weighted plain HTTP requests against any
// target: each iteration sends one request chosen by weight and checks
// its status.
package http

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hal9-lab/hal9-lab/lab/load"
	"github.com/hal9-lab/hal9-lab/lab/workload/internal/section"
)

// Config is the workload section of a scenario file (kind: http).
type Config struct {
	Kind      string        `yaml:"kind"`
	Requests  []Request     `yaml:"requests"`
	ThinkTime time.Duration `yaml:"think_time"`
}

// Request is one weighted request.
type Request struct {
	Method  string            `yaml:"method"` // default GET
	Path    string            `yaml:"path"`   // appended to the target: /api/v1/status
	Body    string            `yaml:"body"`
	Headers map[string]string `yaml:"headers"`
	Weight  float64           `yaml:"weight"` // default 1
	// Name tags the samples (default: the path); Expect is the status a
	// passing check wants (default: any status below 400).
	Name   string `yaml:"name"`
	Expect int    `yaml:"expect"`
}

// Decode reads and validates the workload section of a scenario file.
func Decode(spec load.WorkloadSpec) (Config, error) {
	return section.Decode[Config](spec)
}

// Normalize validates the config and fills its defaults; errors name the
// file and line of the offending key.
func (c *Config) Normalize(pos section.Pos) error {
	bad := func(i int, key, format string, a ...any) error {
		return fmt.Errorf("%s: workload.requests[%d]: %s", pos.At("requests", strconv.Itoa(i), key), i, fmt.Sprintf(format, a...))
	}
	if len(c.Requests) == 0 {
		return fmt.Errorf("%s: workload.requests: at least one {method, path, weight} is required", pos.At("requests"))
	}
	for i := range c.Requests {
		r := &c.Requests[i]
		if r.Method == "" {
			r.Method = http.MethodGet
		}
		r.Method = strings.ToUpper(r.Method)
		if !validMethod(r.Method) {
			return bad(i, "method", "method %q is not an HTTP method; use one of %s", r.Method, strings.Join(methods, ", "))
		}
		if !strings.HasPrefix(r.Path, "/") {
			return bad(i, "path", "path %q must start with /", r.Path)
		}
		if r.Weight == 0 {
			r.Weight = 1
		}
		if r.Weight < 0 {
			return bad(i, "weight", "weight must be positive")
		}
		if r.Expect != 0 && (r.Expect < 100 || r.Expect > 599) {
			return bad(i, "expect", "expect %d is not an HTTP status", r.Expect)
		}
		if r.Name == "" {
			r.Name = r.Path
		}
	}
	if c.ThinkTime < 0 {
		return fmt.Errorf("%s: workload.think_time must not be negative", pos.At("think_time"))
	}
	return nil
}

// Workload implements load.Workload.
type Workload struct {
	cfg  Config
	reqs []load.Request
	cum  []float64
	seed int64
}

// New builds the workload.
func New(cfg Config) (*Workload, error) {
	if err := cfg.Normalize(section.Pos{File: "workload"}); err != nil {
		return nil, err
	}
	w := &Workload{cfg: cfg}
	acc := 0.0
	for _, r := range cfg.Requests {
		h := http.Header{}
		for k, v := range r.Headers {
			h.Set(k, v)
		}
		if r.Body != "" && h.Get("Content-Type") == "" {
			h.Set("Content-Type", "application/json")
		}
		var body []byte
		if r.Body != "" {
			body = []byte(r.Body)
		}
		w.reqs = append(w.reqs, load.Request{Method: r.Method, Path: r.Path, Body: body, Header: h,
			Op: strings.ToLower(r.Method) + " " + r.Name, Name: r.Name, Discard: true})
		acc += r.Weight
		w.cum = append(w.cum, acc)
	}
	return w, nil
}

// Setup implements load.Workload.
// It probes the target first (GET of the base URL; any HTTP response will
// do): an unreachable target is a setup error, not a run of failures.
func (w *Workload) Setup(ctx context.Context, env *load.Env) error {
	w.seed = env.Seed
	return env.Probe(ctx, "/", false)
}

// methods are the ones a workload may send: RFC 9110's and PATCH. Any
// token would be legal HTTP, but a typo (GTE) would run a whole test of
// 405s, so only these are accepted.
var methods = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"}

func validMethod(m string) bool { return slices.Contains(methods, m) }

var (
	_ load.Workload = (*Workload)(nil)
	_ load.VU       = (*vu)(nil)
)

// NewVU implements load.Workload.
func (w *Workload) NewVU(id int) (load.VU, error) {
	return &vu{w: w, rng: rand.New(rand.NewPCG(uint64(w.seed), uint64(id)))}, nil
}

type vu struct {
	w   *Workload
	rng *rand.Rand
}

// Iteration sends one request.
func (v *vu) Iteration(ctx context.Context, it *load.Iter) error {
	i := 0
	if len(v.w.reqs) > 1 {
		x := v.rng.Float64() * v.w.cum[len(v.w.cum)-1]
		for i < len(v.w.cum)-1 && x >= v.w.cum[i] {
			i++
		}
	}
	r := &v.w.reqs[i]
	res, err := it.HTTP.Do(ctx, r)
	if err != nil {
		return err
	}
	want := v.w.cfg.Requests[i].Expect
	ok := res.Status < 400
	if want != 0 {
		ok = res.Status == want
	}
	it.Check(r.Op+" status", ok)
	return load.Sleep(ctx, v.w.cfg.ThinkTime)
}
