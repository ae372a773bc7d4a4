package capacity

import (
	"math"
	"testing"

	"github.com/google/pprof/profile"
)

// cpuProfile builds a CPU profile of samples (ns) with labels and frames.
func cpuProfile(samples ...struct {
	ns     int64
	labels map[string][]string
	fn     string
}) *profile.Profile {
	p := &profile.Profile{SampleType: []*profile.ValueType{{Type: "samples", Unit: "count"}, {Type: "cpu", Unit: "nanoseconds"}}}
	for i, s := range samples {
		f := &profile.Function{ID: uint64(i + 1), Name: s.fn}
		loc := &profile.Location{ID: uint64(i + 1), Line: []profile.Line{{Function: f}}}
		p.Function = append(p.Function, f)
		p.Location = append(p.Location, loc)
		p.Sample = append(p.Sample, &profile.Sample{Value: []int64{1, s.ns}, Location: []*profile.Location{loc}, Label: s.labels})
	}
	return p
}

type smp = struct {
	ns     int64
	labels map[string][]string
	fn     string
}

func TestComputeDemands(t *testing.T) {
	const s = int64(1e9)
	p := cpuProfile(
		smp{8 * s, map[string][]string{"route": {"/api/v1/auth/login"}}, "golang.org/x/crypto/blowfish.encryptBlock"},
		smp{1 * s, map[string][]string{"route": {"/api/v1/auth/login"}}, "encoding/json.Marshal"},
		smp{2 * s, map[string][]string{"route": {"/api/v1/signals"}, "layer": {"L3"}}, "main.x"},
		smp{1 * s, map[string][]string{"route": {"/api/v1/signals"}, "layer": {"L2"}}, "main.x"},
		smp{3 * s / 10, map[string][]string{"route": {"/api/v1/signals"}}, "main.decode"}, // before the layer label: split 1:2
		smp{1 * s, map[string][]string{"route": {"/api/v1/status"}}, "main.y"},
		smp{1 * s, nil, "runtime.gcBgMarkWorker"},
	)
	c := Counts{ByRoute: map[string]float64{"/api/v1/auth/login": 100, "/api/v1/signals": 300, "/api/v1/status": 600},
		SignalsByLayer: map[string]float64{"L3": 100, "L2": 200}}
	d, err := ComputeDemands(p, c, 2)
	if err != nil {
		t.Fatal(err)
	}
	near := func(what string, got, want float64) {
		t.Helper()
		if math.Abs(got-want) > 1e-9*math.Max(1, math.Abs(want)) {
			t.Errorf("%s = %v, want %v", what, got, want)
		}
	}
	by := map[string]RouteDemand{}
	for _, r := range d.Routes {
		by[r.Name] = r
	}
	near("login demand ms", by["login"].DemandMS, 90)         // 9 s / 100
	near("login bcrypt s", by["login"].BcryptS, 8)            //
	near("signal L3 demand ms", by["signal L3"].DemandMS, 21) // 2.1 s / 100
	near("signal L2 demand ms", by["signal L2"].DemandMS, 6)  // 1.2 s / 200
	if _, ok := by["signal"]; ok || len(d.Notes) > 0 {
		t.Errorf("the signal route's unlayered CPU must go to its layers: %+v, notes %v", by["signal"], d.Notes)
	}
	near("status demand ms", by["status"].DemandMS, 1e3/600)
	near("requests", d.Requests, 1000)
	near("overhead ms", d.OverheadMS, 1)       // 1 s / 1000
	near("mix demand ms", d.MixDemandMS, 14.3) // 14.3 CPU s / 1000 requests
	near("mix bcrypt ms", d.BcryptMS, 8)
	if d.Bottleneck != "login" || math.Abs(d.BottleShare-9.0/14.3) > 1e-9 {
		t.Errorf("bottleneck %s (%.3f), want login (%.3f)", d.Bottleneck, d.BottleShare, 9.0/14.3)
	}
	near("server max rps", d.ServerMaxRPS, 2/0.0143)
	d.Machine(3, 1, 1000) // 3 ms and 1 ms per request elsewhere
	near("machine max rps", d.MachineMaxRPS, 2/0.0183)

	f := Project(d, 4, 0.4, 0.5, DefaultFleetSeed())
	near("production demand ms", f.ProductionDemandMS, 6.3+8*64) // bcrypt × 2^6
	near("per pod rps", f.PerPodRPS, 0.5/(0.5183))
	if want := int(math.Ceil(1200 / (0.5 / 0.5183))); f.PodsSustained != want {
		t.Errorf("pods sustained %d, want %d", f.PodsSustained, want)
	}
	if f.PodsPeak < f.PodsSustained || f.PodsSaturated*2 < f.PodsSustained-1 {
		t.Errorf("pods peak %d, saturated %d, sustained %d", f.PodsPeak, f.PodsSaturated, f.PodsSustained)
	}
	near("monthly LLM", f.MonthlyLLMUSD, 0.5/1000*1200*86400*30)
	if len(f.Assumptions) < 4 {
		t.Errorf("assumptions %v", f.Assumptions)
	}

	if _, err := ComputeDemands(p, Counts{}, 2); err == nil {
		t.Error("no counts: want an error")
	}
	if _, err := ComputeDemands(nil, c, 2); err == nil {
		t.Error("no profile: want an error")
	}
}
