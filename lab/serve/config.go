package serve

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"time"
)

// Config runs `bin config ARGS`: the configuration those flags make with
// the lab's environment plus extra, as a JSON object, flag name → value.
func Config(ctx context.Context, bin string, args []string, extra map[string]string) (map[string]any, error) {
	return config(ctx, bin, args, extra, false)
}

// Defaults are the binaries' own defaults (`BIN config` without flags or
// HAL9_* variables, i.e. production's), read once per binary. Safe for
// concurrent use.
type Defaults struct {
	mu    sync.Mutex
	byBin map[string]map[string]any
}

// Of returns bin's defaults.
func (d *Defaults) Of(ctx context.Context, bin string) (map[string]any, error) {
	d.mu.Lock()
	def, ok := d.byBin[bin]
	d.mu.Unlock()
	if ok {
		return def, nil
	}
	def, err := config(ctx, bin, nil, nil, true)
	if err != nil {
		return nil, fmt.Errorf("the server's defaults: %w", err)
	}
	d.mu.Lock()
	if d.byBin == nil {
		d.byBin = map[string]map[string]any{}
	}
	d.byBin[bin] = def
	d.mu.Unlock()
	return def, nil
}

// config runs `bin config ARGS`; clean drops every HAL9_* (and
// ANTHROPIC_*) variable first.
func config(ctx context.Context, bin string, args []string, extra map[string]string, clean bool) (map[string]any, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"config"}, args...)...)
	for _, kv := range os.Environ() {
		if clean && (strings.HasPrefix(kv, "HAL9_") || strings.HasPrefix(kv, "ANTHROPIC_")) {
			continue
		}
		cmd.Env = append(cmd.Env, kv)
	}
	for k, v := range extra {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s config: %w: %s", bin, err, strings.TrimSpace(stderr.String()))
	}
	m := map[string]any{}
	if err := json.Unmarshal(out, &m); err != nil {
		return nil, fmt.Errorf("%s config: not a JSON object: %w", bin, err)
	}
	return m, nil
}

// notProduction are settings that differ from the defaults because the
// lab runs the server locally, not because it measures something else.
var notProduction = map[string]bool{
	"addr": true, "admin-addr": true, "data-dir": true, "database-url": true, "redis-url": true,
	"pyroscope-url": true, "jwt-secret": true, "log-level": true, "anthropic-api-key": true, "anthropic-url": true,
}

// Departures says in plain words how eff (the effective configuration of
// a server the lab starts) differs from def (the binary's defaults, i.e.
// production's).
func Departures(def, eff map[string]any) []string {
	var out []string
	str := func(v any) string { return fmt.Sprint(v) }
	keys := make([]string, 0, len(eff))
	for k := range eff {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if notProduction[k] {
			continue
		}
		e, d := str(eff[k]), str(def[k])
		if e == d {
			continue
		}
		switch k {
		case "bcrypt-cost":
			out = append(out, fmt.Sprintf("bcrypt cost %s instead of %s: a login or registration costs 2^(%s−%s) times less CPU than in production", e, d, d, e))
		case "rate-limit":
			if e == "0" {
				out = append(out, fmt.Sprintf("API rate limit off (production: %s req/s per client): every virtual user comes from 127.0.0.1, so a per-IP limit would throttle the load generator, not its users", d))
			} else {
				out = append(out, fmt.Sprintf("API rate limit %s req/s per client instead of %s", e, d))
			}
		case "auth-rate-limit":
			if e == "0" {
				out = append(out, "credential-route limiter off: every virtual user comes from 127.0.0.1")
			} else {
				out = append(out, fmt.Sprintf("credential-route limiter %s instead of %s", e, d))
			}
		case "http-max-conns-per-client":
			if e == "0" {
				out = append(out, fmt.Sprintf("connection cap per client IP off (production: %s open connections per client): every virtual user connects from 127.0.0.1 (or HAProxy)", d))
			} else {
				out = append(out, fmt.Sprintf("connection cap per client IP %s instead of %s", e, d))
			}
		case "shutdown-timeout":
			out = append(out, fmt.Sprintf("drain time on SIGTERM %s instead of %s (the lab waits less between legs)", e, d))
		case "llm-latency-scale":
			out = append(out, fmt.Sprintf("simulated LLM latency × %s (production's model: × %s)", e, d))
		default:
			out = append(out, fmt.Sprintf("--%s %s instead of %s", k, e, d))
		}
	}
	if str(eff["llm"]) == "sim" {
		out = append(out, "simulated LLM provider: no API calls; latency, tokens and cost are simulated (the price table applied to simulated tokens), and no provider rate limit or budget is met")
	}
	return out
}
