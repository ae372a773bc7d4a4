package load

import (
	"math"
	"testing"
	"time"
)

func TestRateScheduleCounts(t *testing.T) {
	s := time.Second
	tests := []struct {
		name   string
		start  float64
		stages []Stage
		want   float64 // ∫ r dt
	}{
		{"constant 100/s for 10s", 100, []Stage{{10 * s, 100}}, 1000},
		{"ramp 0→100 over 10s", 0, []Stage{{10 * s, 100}}, 500},
		{"ramp down 100→0", 100, []Stage{{10 * s, 0}}, 500},
		{"three stages", 10, []Stage{{30 * s, 10}, {60 * s, 100}, {120 * s, 1000}}, 300 + 55*60 + 550*120},
		{"fractional rate", 0.5, []Stage{{7 * s, 0.5}}, 3.5},
		{"zero stage in the middle", 50, []Stage{{2 * s, 0}, {3 * s, 0}, {2 * s, 50}}, 50 + 50},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs := NewRateSchedule(tt.start, tt.stages)
			if math.Abs(rs.Total()-tt.want) > 1e-6 {
				t.Fatalf("Total = %v, want %v", rs.Total(), tt.want)
			}
			// enumerate the schedule the way the executor does
			var n int64
			prev := time.Duration(-1)
			for {
				at, ok := rs.At(n)
				if !ok {
					break
				}
				if at < prev {
					t.Fatalf("iteration %d at %v before iteration %d at %v", n, at, n-1, prev)
				}
				if at >= rs.Duration()+time.Millisecond {
					t.Fatalf("iteration %d at %v after the end %v", n, at, rs.Duration())
				}
				// F(tᵢ) = i
				if f := rs.Integral(at); math.Abs(f-float64(n)) > 1e-3*math.Max(1, float64(n)*1e-3) && math.Abs(f-float64(n)) > 0.01 {
					t.Fatalf("F(t_%d) = %v", n, f)
				}
				prev = at
				n++
			}
			want := int64(math.Ceil(tt.want - 1e-9))
			if n != want || rs.Count() != want {
				t.Fatalf("scheduled %d iterations (Count %d), want %d", n, rs.Count(), want)
			}
		})
	}
}

func TestRateScheduleSpacing(t *testing.T) {
	// constant rate: exactly 1/r apart, k6's constant-arrival-rate
	rs := NewRateSchedule(4, []Stage{{Duration: time.Second, Target: 4}})
	for i, want := range []time.Duration{0, 250 * time.Millisecond, 500 * time.Millisecond, 750 * time.Millisecond} {
		got, ok := rs.At(int64(i))
		if !ok || (got-want).Abs() > time.Microsecond {
			t.Errorf("At(%d) = %v, %v; want %v", i, got, ok, want)
		}
	}
	if _, ok := rs.At(4); ok {
		t.Error("At(4) should be past the end")
	}
	// linear ramp 0→10/s over 1s: F(t) = 5t², so tᵢ = √(i/5)
	rs = NewRateSchedule(0, []Stage{{Duration: time.Second, Target: 10}})
	for i := int64(0); i < 5; i++ {
		got, _ := rs.At(i)
		want := time.Duration(math.Sqrt(float64(i)/5) * float64(time.Second))
		if (got - want).Abs() > time.Microsecond {
			t.Errorf("ramp At(%d) = %v, want %v", i, got, want)
		}
	}
}

func TestVUSchedule(t *testing.T) {
	s := VUSchedule{Start: 0, Stages: []Stage{{10 * time.Second, 10}, {5 * time.Second, 10}, {10 * time.Second, 0}}}
	tests := []struct {
		at   time.Duration
		want int
	}{
		{0, 0}, {999 * time.Millisecond, 0}, {time.Second, 1}, {5500 * time.Millisecond, 5}, {10 * time.Second, 10},
		{14 * time.Second, 10}, {15 * time.Second, 10}, {15500 * time.Millisecond, 10}, {16 * time.Second, 9},
		{24 * time.Second, 1}, {24500 * time.Millisecond, 1}, {25 * time.Second, 0},
	}
	for _, tt := range tests {
		if got := s.At(tt.at); got != tt.want {
			t.Errorf("At(%v) = %d, want %d", tt.at, got, tt.want)
		}
	}
	if s.Max() != 10 {
		t.Errorf("Max = %d", s.Max())
	}
	ch := s.Changes()
	if len(ch) != 20 {
		t.Fatalf("Changes: %d, want 20 (10 up, 10 down): %v", len(ch), ch)
	}
	// at each change the count really changes
	for _, c := range ch {
		if s.At(c-time.Millisecond) == s.At(c+time.Microsecond) {
			t.Errorf("no change at %v", c)
		}
	}
}

func TestSegmentsPartition(t *testing.T) {
	for _, n := range []int{1, 2, 3, 7} {
		for _, total := range []int{0, 1, 5, 10, 1001} {
			sum := 0
			for i := 1; i <= n; i++ {
				g := Segment{Index: i, Count: n}
				if n == 1 {
					g = Segment{}
				}
				sum += g.share(total)
				if int64(g.share(total)) != segmentCount(int64(total), g) {
					t.Fatalf("share and segmentCount disagree")
				}
				// local l ↦ global is owned and below total
				for l := 0; l < g.share(total); l++ {
					if j := g.global(l); j >= total || !g.owns(int64(j)) {
						t.Fatalf("segment %v: local %d → global %d", g, l, j)
					}
				}
			}
			if sum != total {
				t.Errorf("n=%d total=%d: shares sum to %d", n, total, sum)
			}
		}
	}
	for _, bad := range []string{"0/2", "3/2", "1", "a/b", "1/0"} {
		if _, err := ParseSegment(bad); err == nil {
			t.Errorf("ParseSegment(%q) accepted", bad)
		}
	}
	if g, err := ParseSegment("2/3"); err != nil || g.Index != 2 || g.Count != 3 {
		t.Errorf("ParseSegment(2/3) = %v, %v", g, err)
	}
}

func TestScaled(t *testing.T) {
	s := Scenario{Executor: RampingVUs, StartTime: 10 * time.Second,
		Stages: []Stage{{30 * time.Second, 10}, {time.Minute, 1000}, {30 * time.Second, 0}}}
	got := s.Scaled(0.01)
	want := []Stage{{time.Second, 1}, {time.Second, 10}, {time.Second, 0}}
	for i := range want {
		if got.Stages[i] != want[i] {
			t.Errorf("stage %d = %+v, want %+v", i, got.Stages[i], want[i])
		}
	}
	if got.StartTime != 100*time.Millisecond {
		t.Errorf("startTime = %v", got.StartTime)
	}
	a := Scenario{Executor: ConstantArrivalRate, Rate: 100, Duration: time.Minute, PreAllocatedVUs: 10, MaxVUs: 50}
	ga := a.Scaled(0.1)
	if ga.Rate != 10 || ga.Duration != 6*time.Second || ga.PreAllocatedVUs != 1 || ga.MaxVUs != 5 {
		t.Errorf("scaled arrival = %+v", ga)
	}
}
