// Package http is a workload of weighted plain HTTP requests against any
// target: each iteration sends one request chosen by weight and checks
// its status.
package http

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"time"

	"github.com/hal9-lab/hal9-lab/lab/load"
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
	var c Config
	if spec.Node != nil {
		if err := load.DecodeStrict(spec.File, spec.Node, "workload", &c); err != nil {
			return c, err
		}
	}
	return c, c.normalize(spec.File)
}

func (c *Config) normalize(file string) error {
	bad := func(i int, format string, a ...any) error {
		return fmt.Errorf("%s: workload.requests[%d]: %s", file, i, fmt.Sprintf(format, a...))
	}
	if len(c.Requests) == 0 {
		return fmt.Errorf("%s: workload (http): requests: at least one {method, path, weight} is required", file)
	}
	for i := range c.Requests {
		r := &c.Requests[i]
		if r.Method == "" {
			r.Method = http.MethodGet
		}
		r.Method = strings.ToUpper(r.Method)
		if !strings.HasPrefix(r.Path, "/") {
			return bad(i, "path %q must start with /", r.Path)
		}
		if r.Weight == 0 {
			r.Weight = 1
		}
		if r.Weight < 0 {
			return bad(i, "weight must be positive")
		}
		if r.Expect != 0 && (r.Expect < 100 || r.Expect > 599) {
			return bad(i, "expect %d is not an HTTP status", r.Expect)
		}
		if r.Name == "" {
			r.Name = r.Path
		}
	}
	if c.ThinkTime < 0 {
		return fmt.Errorf("%s: workload.think_time must not be negative", file)
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
	if err := cfg.normalize("workload"); err != nil {
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
func (w *Workload) Setup(_ context.Context, env *load.Env) error {
	w.seed = env.Seed
	return nil
}

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
