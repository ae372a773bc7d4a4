package load

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const goodScenario = `name: t
description: a test
workload:
  kind: hal9
  think_time: 1s
scenarios:
  ramp:
    executor: ramping-vus
    startVUs: 0
    stages:
      - {duration: 30s, target: 10}
      - {duration: 1m, target: 100}
    gracefulRampDown: 10s
  open:
    executor: ramping-arrival-rate
    startTime: 5s
    startRate: 10
    timeUnit: 1s
    preAllocatedVUs: 5
    maxVUs: 50
    maxWait: 2s
    stages:
      - duration: 1m
        target: 100
thresholds:
  http_req_duration: ["p(95)<500", "p(99)<1000"]
  http_req_failed:
    - threshold: rate<0.01
      abortOnFail: true
      delayAbortEval: 10s
  http_req_duration{op:signal}: p(99)<2000
`

func TestParseScenario(t *testing.T) {
	p, err := ParseScenario("good.yaml", []byte(goodScenario))
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "t" || p.Workload.Kind != "hal9" || len(p.Scenarios) != 2 || len(p.Thresholds) != 4 {
		t.Fatalf("plan = %+v", p)
	}
	r := p.Scenarios[0]
	if r.Name != "ramp" || r.Executor != RampingVUs || len(r.Stages) != 2 || r.Stages[1] != (Stage{time.Minute, 100}) ||
		r.GracefulRampDown != 10*time.Second || r.GracefulStop != DefaultGracefulStop {
		t.Errorf("ramp = %+v", r)
	}
	o := p.Scenarios[1]
	if o.StartTime != 5*time.Second || o.StartRate != 10 || o.MaxVUs != 50 || o.MaxWait != 2*time.Second {
		t.Errorf("open = %+v", o)
	}
	ab := p.Thresholds[2]
	if ab.Metric != "http_req_failed" || ab.Expr != "rate<0.01" || !ab.AbortOnFail || ab.DelayAbortEval != 10*time.Second || ab.Source != "good.yaml:28" {
		t.Errorf("abort threshold = %+v", ab)
	}
}

func TestParseScenarioErrors(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"unknown top key", "name: x\nworkload: {kind: hal9}\nscenario: {}\n", "bad.yaml:3: scenario: unknown key"},
		{"missing name", "workload: {kind: hal9}\nscenarios: {a: {executor: constant-vus, vus: 1, duration: 1s}}\n", "name: missing"},
		{"missing workload", "name: x\nscenarios: {a: {executor: constant-vus, vus: 1, duration: 1s}}\n", "workload: missing"},
		{"missing kind", "name: x\nworkload: {mix: {}}\nscenarios: {a: {executor: constant-vus, vus: 1, duration: 1s}}\n", "workload.kind: missing"},
		{"missing scenarios", "name: x\nworkload: {kind: hal9}\n", "scenarios: missing"},
		{"unknown executor", "name: x\nworkload: {kind: hal9}\nscenarios:\n  a:\n    executor: shared-iterations\n", `bad.yaml:5: scenarios.a.executor: unknown executor "shared-iterations"`},
		{"missing executor", "name: x\nworkload: {kind: hal9}\nscenarios:\n  a:\n    vus: 1\n", "scenarios.a.executor: missing"},
		{"key of another executor", "name: x\nworkload: {kind: hal9}\nscenarios:\n  a:\n    executor: constant-vus\n    vus: 2\n    rate: 5\n", "bad.yaml:7: scenarios.a.rate: unknown key for executor constant-vus"},
		{"typo", "name: x\nworkload: {kind: hal9}\nscenarios:\n  a:\n    executor: constant-vus\n    vus: 2\n    durration: 5s\n", "bad.yaml:7: scenarios.a.durration: unknown key"},
		{"bad duration", "name: x\nworkload: {kind: hal9}\nscenarios:\n  a:\n    executor: constant-vus\n    vus: 2\n    duration: 5 minutes\n", `bad.yaml:7: scenarios.a.duration: "5 minutes" is not a duration`},
		{"negative vus", "name: x\nworkload: {kind: hal9}\nscenarios:\n  a:\n    executor: constant-vus\n    vus: -2\n    duration: 5s\n", "scenarios.a.vus: must not be negative"},
		{"vus not a number", "name: x\nworkload: {kind: hal9}\nscenarios:\n  a:\n    executor: constant-vus\n    vus: many\n    duration: 5s\n", `bad.yaml:6: scenarios.a.vus: want a whole number, got "many"`},
		{"no vus", "name: x\nworkload: {kind: hal9}\nscenarios:\n  a:\n    executor: constant-vus\n    duration: 5s\n", "vus must be at least 1"},
		{"stage key", "name: x\nworkload: {kind: hal9}\nscenarios:\n  a:\n    executor: ramping-vus\n    stages:\n      - {duration: 5s, taget: 3}\n", "bad.yaml:7: scenarios.a.stages[0].taget: unknown key"},
		{"stage without target", "name: x\nworkload: {kind: hal9}\nscenarios:\n  a:\n    executor: ramping-vus\n    stages:\n      - {duration: 5s}\n", "needs both duration and target"},
		{"no stages", "name: x\nworkload: {kind: hal9}\nscenarios:\n  a:\n    executor: ramping-arrival-rate\n    maxVUs: 3\n", "stages: at least one"},
		{"arrival without VUs", "name: x\nworkload: {kind: hal9}\nscenarios:\n  a:\n    executor: constant-arrival-rate\n    rate: 5\n    duration: 3s\n", "preAllocatedVUs or maxVUs must be at least 1"},
		{"bad threshold", "name: x\nworkload: {kind: hal9}\nscenarios: {a: {executor: constant-vus, vus: 1, duration: 1s}}\nthresholds:\n  http_req_duration: [\"p(95)<fast\"]\n", `bad.yaml:5: threshold "p(95)<fast" on "http_req_duration": "fast" is not a number`},
		{"threshold key", "name: x\nworkload: {kind: hal9}\nscenarios: {a: {executor: constant-vus, vus: 1, duration: 1s}}\nthresholds:\n  http_reqs:\n    - {threshold: count>1, abortOnFial: true}\n", "bad.yaml:6: thresholds.http_reqs[0].abortOnFial: unknown key"},
		{"scenarios not a map", "name: x\nworkload: {kind: hal9}\nscenarios: [a, b]\n", "bad.yaml:3: scenarios: want a mapping"},
		{"duplicate", "name: x\nname: y\n", "bad.yaml:2: name: duplicate key"},
		{"too many vus", "name: x\nworkload: {kind: hal9}\nscenarios:\n  a:\n    executor: constant-vus\n    vus: 100000000\n    duration: 5s\n", "bad.yaml:6: scenarios.a.vus: 100000000 VUs is over the limit of 100000 per executor"},
		{"too many maxVUs", "name: x\nworkload: {kind: hal9}\nscenarios:\n  a:\n    executor: constant-arrival-rate\n    rate: 5\n    duration: 3s\n    maxVUs: 200000\n", "bad.yaml:8: scenarios.a.maxVUs: 200000 VUs is over the limit"},
		{"ramp target too high", "name: x\nworkload: {kind: hal9}\nscenarios:\n  a:\n    executor: ramping-vus\n    stages:\n      - {duration: 5s, target: 10}\n      - {duration: 5s, target: 1e7}\n", "bad.yaml:8: scenarios.a.stages[1].target: 10000000 VUs is over the limit"},
		{"rate too high", "name: x\nworkload: {kind: hal9}\nscenarios:\n  a:\n    executor: constant-arrival-rate\n    rate: 1e9\n    duration: 2s\n    preAllocatedVUs: 1\n", "bad.yaml:6: scenarios.a.rate: 1e+09 iterations/s is over the limit of 1000000 per executor"},
		{"rate per ms too high", "name: x\nworkload: {kind: hal9}\nscenarios:\n  a:\n    executor: constant-arrival-rate\n    rate: 5000\n    timeUnit: 1ms\n    duration: 2s\n    preAllocatedVUs: 1\n", "bad.yaml:6: scenarios.a.rate: 5e+06 iterations/s is over the limit"},
		{"arrival target too high", "name: x\nworkload: {kind: hal9}\nscenarios:\n  a:\n    executor: ramping-arrival-rate\n    maxVUs: 3\n    stages:\n      - {duration: 5s, target: 2e6}\n", "bad.yaml:8: scenarios.a.stages[0].target: 2e+06 iterations/s is over the limit"},
		{"not yaml", "name: [x\n", "bad.yaml"},
	}
	for _, tt := range tests {
		_, err := ParseScenario("bad.yaml", []byte(tt.yaml))
		if err == nil {
			t.Errorf("%s: no error", tt.name)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %q, want it to contain %q", tt.name, err, tt.want)
		}
	}
}

type strictCfg struct {
	Kind  string        `yaml:"kind"`
	Think time.Duration `yaml:"think_time"`
	Mix   *struct {
		Signal float64 `yaml:"signal"`
	} `yaml:"mix"`
	Reqs []struct {
		Path string `yaml:"path"`
	} `yaml:"requests"`
}

func TestDecodeStrict(t *testing.T) {
	y := "name: x\nworkload:\n  kind: k\n  think_time: 2s\n  mix: {signal: 3}\n  requests:\n    - path: /a\n    - pth: /b\nscenarios: {a: {executor: constant-vus, vus: 1, duration: 1s}}\n"
	p, err := ParseScenario("w.yaml", []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	var c strictCfg
	err = DecodeStrict(p.Workload.File, p.Workload.Node, "workload", &c)
	if err == nil || !strings.Contains(err.Error(), "w.yaml:8: workload.requests[1].pth: unknown key") {
		t.Fatalf("err = %v", err)
	}
	y = strings.Replace(y, "pth", "path", 1)
	y = strings.Replace(y, "2s", "2 seconds", 1)
	p, _ = ParseScenario("w.yaml", []byte(y))
	if err := DecodeStrict(p.Workload.File, p.Workload.Node, "workload", &c); err == nil || !strings.Contains(err.Error(), "w.yaml:4: workload.think_time") {
		t.Fatalf("err = %v", err)
	}
	y = strings.Replace(y, "2 seconds", "2s", 1)
	p, _ = ParseScenario("w.yaml", []byte(y))
	if err := DecodeStrict(p.Workload.File, p.Workload.Node, "workload", &c); err != nil || c.Think != 2*time.Second || c.Mix.Signal != 3 || len(c.Reqs) != 2 {
		t.Fatalf("decoded %+v, %v", c, err)
	}
}

// TestShippedScenarios loads every scenarios/*.yaml (and the benchmark
// ones in scenarios/bench/): they must parse and their thresholds must
// compile against the built-in metrics plus the HAL9 workload's custom ones.
func TestShippedScenarios(t *testing.T) {
	files, _ := filepath.Glob("../../scenarios/*.yaml")
	bench, _ := filepath.Glob("../../scenarios/bench/*.yaml")
	files = append(files, bench...)
	if len(files) == 0 {
		t.Fatal("no scenarios/*.yaml found: the shipped scenarios are missing")
	}
	for _, f := range files {
		p, err := ReadScenarioFile(f)
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		reg := NewRegistry()
		for _, n := range []string{"hal9_cache_hit", "hal9_signal_cache_hit"} {
			reg.New(n, Rate, Default)
		}
		for _, n := range []string{"hal9_llm_cost_usd", "hal9_llm_tokens"} {
			reg.New(n, Counter, Default)
		}
		if _, err := compileAll(p.Thresholds, reg.byName); err != nil {
			t.Errorf("%s: %v", f, err)
		}
		if b, _ := os.ReadFile(f); !strings.Contains(string(b), "description:") {
			t.Errorf("%s has no description", f)
		}
	}
}
