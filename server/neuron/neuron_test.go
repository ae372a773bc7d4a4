package neuron

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/hal9-lab/hal9-lab/server/llm"
)

func TestParseTopology(t *testing.T) {
	tests := []struct {
		in      string
		want    string
		wantErr string
	}{
		{"", "L1=2,L2=2,L3=2,L4=2,L5=2", ""},
		{"L1=3,l5=1", "L1=3,L2=2,L3=2,L4=2,L5=1", ""},
		{" L3 = 4 ", "L1=2,L2=2,L3=4,L4=2,L5=2", ""},
		{"L6=1", "", "must be one of L1, L2, L3, L4, L5"},
		{"L1", "", "must look like L3=2"},
		{"L1=x", "", "whole number"},
		{"L1=0", "", "use 1..64"},
		{"L2=65", "", "use 1..64"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseTopology(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.String() != tt.want {
				t.Fatalf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func TestLoadTopologyFile(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, body, want, wantErr string
	}{
		{"ok", "layers:\n  L1: 3\n  L5: 1\n", "L1=3,L2=2,L3=2,L4=2,L5=1", ""},
		{"bad layer", "layers:\n  L9: 3\n", "", "must be one of"},
		{"unknown field", "neurons: 3\n", "", "expected 'layers:'"},
		{"zero", "layers:\n  L2: 0\n", "", "use 1..64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "_")+".yaml")
			if err := os.WriteFile(p, []byte(tt.body), 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := LoadTopologyFile(p)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got.String() != tt.want {
				t.Fatalf("got %v %v, want %s", got, err, tt.want)
			}
		})
	}
}

func TestSpecsIDs(t *testing.T) {
	specs := DefaultTopology().Specs()
	if len(specs) != 10 || specs[0].ID != "l1-reflexive-1" || specs[5].ID != "l3-design-2" || specs[9].ID != "l5-strategic-2" {
		t.Fatalf("specs = %+v", specs)
	}
}

// fakeProvider answers "out(<prompt>)" and can be told to fail on a layer.
type fakeProvider struct {
	mu     sync.Mutex
	calls  int
	failOn string
}

func (p *fakeProvider) Complete(_ context.Context, req llm.Request) (llm.Response, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls++
	if req.Layer == p.failOn {
		return llm.Response{}, llm.ErrCircuitOpen
	}
	return llm.Response{Text: req.Layer + ">" + req.Prompt, TokensIn: 10, TokensOut: 5, CostUSD: 0.001}, nil
}

// mapCache is a single-tier cache without TTLs.
type mapCache struct {
	mu sync.Mutex
	m  map[string][]byte
}

func (c *mapCache) GetOrLoad(ctx context.Context, layer, key string, ttl time.Duration, load func(context.Context) ([]byte, error)) ([]byte, CacheResult, error) {
	c.mu.Lock()
	v, ok := c.m[key]
	c.mu.Unlock()
	if ok {
		return v, CacheResult{Hit: true, Tier: "process"}, nil
	}
	v, err := load(ctx)
	if err != nil {
		return nil, CacheResult{}, err
	}
	c.mu.Lock()
	c.m[key] = v
	c.mu.Unlock()
	return v, CacheResult{}, nil
}

// testKey is a hop's cache key: one per layer, neuron and content.
func testKey(layer, neuronID, content string) string {
	return layer + "\x00" + neuronID + "\x00" + content
}

func TestRouterProcess(t *testing.T) {
	p := &fakeProvider{}
	m := NewMetrics(prometheus.NewRegistry())
	r, err := NewRouter(Options{Provider: p, Cache: &mapCache{m: map[string][]byte{}}, Key: testKey, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	res, err := r.Process(context.Background(), Input{Content: "hello", Layer: "L3"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Hops) != 3 || res.Hops[0].Layer != "L3" || res.Hops[2].Layer != "L1" {
		t.Fatalf("hops = %+v", res.Hops)
	}
	if res.Output != "L1>L2>L3>hello" || res.CacheSummary() != "miss" || res.CostUSD < 0.0029 || res.TokensIn != 30 {
		t.Fatalf("result = %+v (%s)", res, res.CacheSummary())
	}
	again, err := r.Process(context.Background(), Input{Content: "hello", Layer: "L3"})
	if err != nil {
		t.Fatal(err)
	}
	if again.CacheSummary() != "hit" || again.CostUSD != 0 || again.TokensIn != 0 || again.Output != res.Output || p.calls != 3 {
		t.Fatalf("repeat = %+v calls=%d", again, p.calls)
	}
	for i := range res.Hops {
		if res.Hops[i].NeuronID != again.Hops[i].NeuronID {
			t.Fatalf("repeat visited other neurons: %v vs %v", res.Hops, again.Hops)
		}
	}
	// entering at L2 with the same content reaches the same L1 neuron but
	// with a different prompt: partial is impossible here, a miss at L2.
	st := r.Stats()
	if st.Processed != 2 || st.Layers["L3"].CacheHits["process"] != 1 || st.CacheHitRate != 0.5 {
		t.Fatalf("stats = %+v", st)
	}
	if got := testutil.ToFloat64(m.signals.WithLabelValues("L3", "processed")); got != 2 {
		t.Fatalf("hal9_signals_total{L3,processed} = %v", got)
	}
}

func TestRouterBackwardOnError(t *testing.T) {
	p := &fakeProvider{failOn: "L2"}
	r, err := NewRouter(Options{Provider: p, Metrics: NewMetrics(prometheus.NewRegistry())})
	if err != nil {
		t.Fatal(err)
	}
	res, err := r.Process(context.Background(), Input{Content: "x", Layer: "L4"})
	var he *HopError
	if !errors.As(err, &he) || he.Layer != "L2" || !errors.Is(err, llm.ErrCircuitOpen) {
		t.Fatalf("err = %v", err)
	}
	// L4, L3 forward ok, L2 forward failed, then backward to L3 and L4.
	want := []struct{ layer, dir string }{{"L4", Forward}, {"L3", Forward}, {"L2", Forward}, {"L3", Backward}, {"L4", Backward}}
	if len(res.Hops) != len(want) {
		t.Fatalf("hops = %+v", res.Hops)
	}
	for i, w := range want {
		if res.Hops[i].Layer != w.layer || res.Hops[i].Direction != w.dir {
			t.Fatalf("hop %d = %+v, want %v", i, res.Hops[i], w)
		}
	}
	if res.Hops[2].Error == "" || res.Hops[4].Error == "" || res.CostUSD < 0.0019 {
		t.Fatalf("errors not recorded: %+v", res)
	}
	if r.Stats().Layers["L4"].Failed != 1 {
		t.Fatalf("stats = %+v", r.Stats())
	}
}

func TestRouterValidate(t *testing.T) {
	r, err := NewRouter(Options{Provider: &fakeProvider{}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		in      Input
		wantErr string
	}{
		{Input{Layer: "L3"}, ""},
		{Input{Layer: "L3", NeuronID: "l3-design-2"}, ""},
		{Input{Layer: "L7"}, "layer must be one of L1, L2, L3, L4, L5"},
		{Input{Layer: "l3"}, "layer must be one of"},
		{Input{Layer: "L3", NeuronID: "nope"}, "does not exist"},
		{Input{Layer: "L3", NeuronID: "l2-implementation-1"}, "belongs to layer L2"},
	}
	for _, tt := range tests {
		_, err := r.Entry(tt.in)
		var ie *InputError
		if tt.wantErr == "" {
			if err != nil {
				t.Errorf("%+v: %v", tt.in, err)
			}
			continue
		}
		if !errors.As(err, &ie) || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("%+v: err = %v, want %q", tt.in, err, tt.wantErr)
		}
	}
}

func TestNeuronDegradedAndCollector(t *testing.T) {
	p := &fakeProvider{failOn: "L1"}
	state := "closed"
	r, _ := NewRouter(Options{Topology: Topology{"L1": 1, "L2": 1, "L3": 1, "L4": 1, "L5": 1}, Provider: p,
		BreakerState: func(l string) string {
			if l == "L5" {
				return state
			}
			return "closed"
		}})
	for range 3 {
		r.Process(context.Background(), Input{Content: "c", Layer: "L1"})
	}
	n, _ := r.Neuron("l1-reflexive-1")
	if n.State != StateDegraded || n.Failed != 3 {
		t.Fatalf("neuron = %+v", n)
	}
	state = "open"
	if up, down := r.Up(); up || strings.Join(down, ",") != "L1,L5" {
		t.Fatalf("up = %v down = %v", up, down)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(r.Collector())
	if n, err := testutil.GatherAndCount(reg, "hal9_neuron_up", "hal9_neurons"); err != nil || n != 5+10 {
		t.Fatalf("collector series = %d %v", n, err)
	}
}

// ctxProvider fails the way a real provider does when its caller leaves.
type ctxProvider struct{ err error }

func (p ctxProvider) Complete(ctx context.Context, req llm.Request) (llm.Response, error) {
	if p.err != nil {
		return llm.Response{}, p.err
	}
	<-ctx.Done()
	return llm.Response{}, ctx.Err()
}

// TestBlamelessFailures: a client that left, or a spent LLM budget, fails
// the signal without counting against the neuron: it stays active.
func TestBlamelessFailures(t *testing.T) {
	topo := Topology{"L1": 1, "L2": 1, "L3": 1, "L4": 1, "L5": 1}
	for _, c := range []struct {
		name       string
		p          llm.Provider
		wantStatus string
	}{
		{"client canceled", ctxProvider{}, "canceled"},
		{"budget spent", ctxProvider{err: &llm.BudgetError{Window: "hour", RetryAfter: time.Minute}}, "failed"},
	} {
		t.Run(c.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			r, err := NewRouter(Options{Topology: topo, Provider: c.p, Metrics: NewMetrics(reg)})
			if err != nil {
				t.Fatal(err)
			}
			for range 5 {
				ctx, cancel := context.WithCancel(context.Background())
				if c.wantStatus == "canceled" {
					cancel()
				}
				if _, err := r.Process(ctx, Input{Content: "c", Layer: "L1"}); err == nil {
					t.Fatal("Process succeeded")
				}
				cancel()
			}
			n, _ := r.Neuron("l1-reflexive-1")
			if n.State != StateActive || n.Failed != 0 {
				t.Fatalf("neuron after blameless failures: %+v, want active with 0 failures", n)
			}
			if up, _ := r.Up(); !up {
				t.Fatal("a layer went down")
			}
			if got := testutil.ToFloat64(r.opts.Metrics.signals.WithLabelValues("L1", c.wantStatus)); got != 5 {
				t.Fatalf("hal9_signals_total{status=%q} = %v, want 5", c.wantStatus, got)
			}
		})
	}
}
