package faults

import (
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func parse(t *testing.T, src string) ([]Spec, error) {
	t.Helper()
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(src), &n); err != nil {
		t.Fatal(err)
	}
	return Parse("f.yaml", n.Content[0])
}

func TestParse(t *testing.T) {
	specs, err := parse(t, `
- {at: 30s, duration: 75s, target: redis, kind: kill}
- {at: 1m, duration: 20s, target: network, kind: latency, backend: postgres, latency: 200ms, jitter: 50ms}
- {at: 2m, duration: 10s, target: llm, kind: rate-limit, rpm: 6, alert: none}
- {at: 0s, target: server, kind: port-taken}
- {at: 3m, target: postgres, kind: restart}
`)
	if err != nil {
		t.Fatal(err)
	}
	if len(specs) != 5 || specs[1].Latency != 200*time.Millisecond || specs[1].Backend != "postgres" || specs[2].RPM != 6 || *specs[2].Alert != "none" {
		t.Fatalf("%+v", specs)
	}
	if got := specs[1].Name(); got != "network latency to postgres at 1m0s for 20s" {
		t.Errorf("name %q", got)
	}
	if o := specs[1].Options(); o["latency"] != "200ms" || o["jitter"] != "50ms" {
		t.Errorf("options %v", o)
	}
	if specs[1].Line != 3 {
		t.Errorf("line %d, want 3", specs[1].Line)
	}
}

func TestParseErrors(t *testing.T) {
	for _, c := range []struct{ src, want string }{
		{`{at: 1s}`, "want a list"},
		{`- {at: 1s, duration: 1s, target: mysql, kind: kill}`, `target "mysql": want one of llm, network, postgres, redis, server`},
		{`- {at: 1s, duration: 1s, target: redis, kind: explode}`, `kind "explode" for target redis: want one of kill, pause, stop-start`},
		{`- {at: -1s, duration: 1s, target: redis, kind: kill}`, "at -1s must not be negative"},
		{`- {duration: 1s, target: redis, kind: kill}`, "at is required"},
		{`- {at: 1s, target: redis, kind: kill}`, "needs a duration > 0"},
		{`- {at: 1s, duration: 5s, target: postgres, kind: restart}`, "use kind: stop"},
		{`- {at: 1s, duration: soon, target: redis, kind: kill}`, `duration "soon": want a duration`},
		{`- {at: 1s, duration: 1s, target: redis, kind: kill, latency: 5ms}`, `key "latency" does not apply to redis kill faults`},
		{`- {at: 1s, duration: 1s, target: network, kind: latency, latency: 5ms}`, "needs backend: postgres or redis"},
		{`- {at: 1s, duration: 1s, target: network, kind: latency, backend: postgres}`, "needs latency > 0"},
		{`- {at: 1s, duration: 1s, target: network, kind: latency, backend: redis, latency: 1ms, jitter: 5ms}`, "jitter 5ms must not exceed latency"},
		{`- {at: 1s, duration: 1s, target: network, kind: bandwidth, backend: redis}`, "needs kbps > 0"},
		{`- {at: 1s, duration: 1s, target: llm, kind: error-rate, rate: 2}`, "rate in (0, 1]"},
		{`- {at: 1s, duration: 1s, target: llm, kind: latency-scale}`, "scale in (0, 100]"},
		{`- {at: 1s, duration: 1s, target: llm, kind: rate-limit, rpm: x}`, `rpm "x": want a number`},
		{`- {at: 5s, target: server, kind: port-taken}`, "at must be 0s"},
		{`- {at: 1s, duration: 1s, target: redis, kind: kill, replica: 1}`, "replica does not apply to redis"},
		{`- {at: 1s, duration: 1s, target: server, kind: sigkill, replica: -1}`, "must not be negative"},
		{`- {at: 1s, duration: 1s, target: llm, kind: error-rate, rate: 1, alert: Paging}`, `alert "Paging"`},
	} {
		_, err := parse(t, c.src)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s:\n  error %v\n  want %q", c.src, err, c.want)
		}
	}
}

func TestValidate(t *testing.T) {
	all := Have{Redis: true, Postgres: true, Processes: true, Started: true, Replicas: 1}
	for _, c := range []struct {
		src  string
		end  time.Duration
		have Have
		want string
	}{
		{`- {at: 50s, duration: 20s, target: redis, kind: kill}`, time.Minute, all, "ends at 1m10s, past the end of the scenario's load (1m0s)"},
		{`- {at: 10s, duration: 20s, target: redis, kind: kill}`, time.Minute, Have{Postgres: true, Processes: true, Started: true}, "this leg has no Redis"},
		{`- {at: 10s, duration: 20s, target: network, kind: blackhole, backend: postgres}`, time.Minute, Have{Started: true}, "this leg has no PostgreSQL"},
		{`- {at: 10s, duration: 20s, target: postgres, kind: stop}`, time.Minute, Have{Postgres: true, Started: true}, "need the lab's own local processes"},
		{`- {at: 10s, duration: 20s, target: server, kind: sigkill, replica: 1}`, time.Minute, all, "replica 1, but the leg runs 1 server(s)"},
		{`- {at: 10s, duration: 20s, target: redis, kind: kill}`, time.Minute, Have{}, "only LLM faults can be injected (through --admin-url)"},
		{"- {at: 10s, duration: 20s, target: redis, kind: kill}\n- {at: 20s, duration: 5s, target: redis, kind: pause}", time.Minute, all, "overlaps redis kill at 10s for 20s"},
	} {
		specs, err := parse(t, c.src)
		if err != nil {
			t.Fatal(err)
		}
		err = Validate(specs, c.end, c.have)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s:\n  error %v\n  want %q", c.src, err, c.want)
		}
	}
	ok, _ := parse(t, "- {at: 10s, duration: 20s, target: redis, kind: kill}\n- {at: 10s, duration: 20s, target: llm, kind: error-rate, rate: 0.5}\n- {at: 0s, target: server, kind: port-taken}")
	if err := Validate(ok, time.Minute, all); err != nil {
		t.Errorf("faults on different targets may overlap: %v", err)
	}
	llm, _ := parse(t, "- {at: 10s, duration: 20s, target: llm, kind: error-rate, rate: 0.5}")
	if err := Validate(llm, time.Minute, Have{}); err != nil {
		t.Errorf("LLM faults against a server the lab did not start: %v", err)
	}
	if s := Scaled(ok, 0.5); s[0].At != 5*time.Second || s[0].Duration != 10*time.Second {
		t.Errorf("scaled: %+v", s[0])
	}
}
