package llm

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestSimulatedDeterministicOutput(t *testing.T) {
	a := NewSimulated(SimOptions{Seed: 1})
	b := NewSimulated(SimOptions{Seed: 2})
	req := Request{Layer: "L2", NeuronID: "impl-1", System: "be brief", Prompt: "build the router"}
	r1, err1 := a.Complete(context.Background(), req)
	r2, err2 := b.Complete(context.Background(), req)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	if r1.Text != r2.Text || r1.TokensOut != r2.TokensOut || r1.TokensIn != r2.TokensIn {
		t.Fatal("same request, different answers: caching would be meaningless")
	}
	req.Prompt = "build the cache"
	r3, _ := a.Complete(context.Background(), req)
	if r3.Text == r1.Text {
		t.Fatal("different prompts gave the same text")
	}
	if want := EstimateTokens("be brief") + EstimateTokens("build the router"); r1.TokensIn != want {
		t.Fatalf("tokens in %d, want %d", r1.TokensIn, want)
	}
}

func TestSimulatedTokensPerLayer(t *testing.T) {
	s := NewSimulated(SimOptions{})
	for _, layer := range Layers {
		p := layerProfiles[layer]
		for i := range 50 {
			r, err := s.Complete(context.Background(), Request{Layer: layer, Prompt: string(rune('a' + i))})
			if err != nil {
				t.Fatal(err)
			}
			if r.TokensOut < p.outMin || r.TokensOut > p.outMax {
				t.Fatalf("%s: %d output tokens outside %d..%d", layer, r.TokensOut, p.outMin, p.outMax)
			}
			if len(r.Text) < r.TokensOut*4 {
				t.Fatalf("%s: text %d chars for %d tokens", layer, len(r.Text), r.TokensOut)
			}
			if r.CostUSD != Cost(DefaultModel, r.TokensIn, r.TokensOut) || r.CostUSD == 0 {
				t.Fatalf("%s: cost %v", layer, r.CostUSD)
			}
		}
	}
	r, _ := s.Complete(context.Background(), Request{Layer: "L5", Prompt: "x", MaxTokens: 10})
	if r.TokensOut != 10 {
		t.Fatalf("MaxTokens 10: got %d", r.TokensOut)
	}
}

func TestSimulatedLatencyScaleZeroNeverSleeps(t *testing.T) {
	// A context already past its deadline: any sleep would return its error.
	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Millisecond))
	defer cancel()
	s := NewSimulated(SimOptions{LatencyScale: 0})
	for _, layer := range Layers {
		if _, err := s.Complete(ctx, Request{Layer: layer, Prompt: "x"}); err != nil {
			t.Fatalf("%s with scale 0: %v (it slept)", layer, err)
		}
	}
	// control: with a scale the same context ends the call.
	s = NewSimulated(SimOptions{LatencyScale: 1})
	if _, err := s.Complete(ctx, Request{Layer: "L1", Prompt: "x"}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("scale 1 with expired ctx: %v, want DeadlineExceeded", err)
	}
}

func TestSimulatedLayerMediansOrdered(t *testing.T) {
	for i := 1; i < len(Layers); i++ {
		if SimLatencyMedian(Layers[i-1]) >= SimLatencyMedian(Layers[i]) {
			t.Fatalf("%s not faster than %s", Layers[i-1], Layers[i])
		}
	}
}

func TestSimulatedErrorRate(t *testing.T) {
	const n = 2000
	for _, rate := range []float64{0, 0.05, 0.3} {
		s := NewSimulated(SimOptions{Seed: 42, ErrorRate: rate})
		fails := 0
		for range n {
			_, err := s.Complete(context.Background(), Request{Layer: "L1", Prompt: "x"})
			if err != nil {
				var ae *APIError
				if !errors.As(err, &ae) || ae.Status < 500 || ae.Status > 529 {
					t.Fatalf("injected %v, want *APIError 500..529", err)
				}
				fails++
			}
		}
		// binomial sd = sqrt(n p (1-p)) ≤ 20.5 for p = 0.3; allow 4 sd.
		if got := float64(fails); got < rate*n-82 || got > rate*n+82 {
			t.Errorf("rate %v: %d failures of %d", rate, fails, n)
		}
	}
}

func TestSimulatedRateLimit(t *testing.T) {
	s := NewSimulated(SimOptions{RateLimitRPM: 6}) // burst 1, one token per 10 s
	if _, err := s.Complete(context.Background(), Request{Layer: "L1"}); err != nil {
		t.Fatalf("first call: %v", err)
	}
	for range 3 {
		_, err := s.Complete(context.Background(), Request{Layer: "L1"})
		if !errors.Is(err, ErrRateLimited) {
			t.Fatalf("%v, want ErrRateLimited", err)
		}
		if d, ok := RetryAfter(err); !ok || d <= 0 || d > 10*time.Second {
			t.Fatalf("retry after %v %v", d, ok)
		}
	}
}

func TestPriceFor(t *testing.T) {
	for _, c := range []struct {
		model   string
		in, out float64
		ok      bool
	}{
		{"claude-opus-4-1", 0.015, 0.075, true},
		{"claude-sonnet-4-5", 0.003, 0.015, true},
		{"claude-3-5-haiku-latest", 0.00025, 0.00125, true},
		{"Claude-HAIKU", 0.00025, 0.00125, true},
		{"gpt-4", 0, 0, false},
		{"", 0, 0, false},
	} {
		in, out, ok := PriceFor(c.model)
		if in != c.in || out != c.out || ok != c.ok {
			t.Errorf("PriceFor(%q) = %v %v %v, want %v %v %v", c.model, in, out, ok, c.in, c.out, c.ok)
		}
	}
	if got, want := Cost("claude-sonnet-4-5", 1000, 2000), 0.003+0.03; abs(got-want) > 1e-12 {
		t.Fatalf("Cost = %v, want %v", got, want)
	}
}

// SetFaults changes a running provider's behaviour for the next calls and
// refuses values out of range.
func TestSimulatedSetFaults(t *testing.T) {
	s := NewSimulated(SimOptions{Seed: 1})
	ctx := context.Background()
	if _, err := s.Complete(ctx, Request{Layer: "L1", Prompt: "x"}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetFaults(SimFaults{ErrorRate: 1}); err != nil {
		t.Fatal(err)
	}
	var ae *APIError
	if _, err := s.Complete(ctx, Request{Layer: "L1", Prompt: "x"}); !errors.As(err, &ae) {
		t.Fatalf("error rate 1: %v, want an APIError", err)
	}
	if err := s.SetFaults(SimFaults{RateLimitRPM: 60}); err != nil {
		t.Fatal(err)
	}
	_, _ = s.Complete(ctx, Request{Layer: "L1", Prompt: "x"}) // the burst of one
	if _, err := s.Complete(ctx, Request{Layer: "L1", Prompt: "x"}); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("60 rpm, second call at once: %v, want ErrRateLimited", err)
	}
	if f := s.Faults(); f.RateLimitRPM != 60 || f.ErrorRate != 0 {
		t.Errorf("Faults() = %+v", f)
	}
	for _, bad := range []SimFaults{{ErrorRate: 1.5}, {ErrorRate: -0.1}, {LatencyScale: -1}, {LatencyScale: 1000}, {RateLimitRPM: -1}} {
		if err := s.SetFaults(bad); err == nil {
			t.Errorf("SetFaults(%+v) accepted", bad)
		}
	}
	// Concurrent changes and calls (run with -race).
	done := make(chan struct{})
	go func() {
		for i := range 200 {
			_ = s.SetFaults(SimFaults{ErrorRate: float64(i%2) / 2, RateLimitRPM: i % 3 * 600})
		}
		close(done)
	}()
	for range 200 {
		_, _ = s.Complete(ctx, Request{Layer: "L2", Prompt: "y"})
	}
	<-done
}
