package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func envFrom(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestParseConfig(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		check   func(t *testing.T, cfg serveConfig)
		wantErr string
	}{
		{"defaults", nil, nil, func(t *testing.T, c serveConfig) {
			if c.Addr != "127.0.0.1:8080" || c.AdminAddr != "127.0.0.1:9091" || c.RateLimit != 1000 || c.ShutdownTimeout != 60*time.Second ||
				c.DBMaxConns != 100 || c.DBMinConns != 10 || c.CacheStrategy != "aside" || c.LLM != "sim" || c.LLMModel != "claude-sonnet-4-5" ||
				c.EffectiveDatabaseURL() != "sqlite://data/hal9.db" {
				t.Fatalf("%+v (db %s)", c, c.EffectiveDatabaseURL())
			}
		}, ""},
		{"env", map[string]string{"HAL9_ADDR": ":9000", "HAL9_RATE_LIMIT": "0", "HAL9_LLM_LATENCY_SCALE": "0",
			"HAL9_LLM_ERROR_RATE": "0.25", "HAL9_LLM_RATE_LIMIT_RPM": "60", "HAL9_CACHE_STRATEGY": "behind", "HAL9_L1_TTL": "5s"}, nil,
			func(t *testing.T, c serveConfig) {
				if c.Addr != ":9000" || c.RateLimit != 0 || c.LLMLatencyScale != 0 || c.LLMErrorRate != 0.25 || c.LLMRateLimitRPM != 60 ||
					c.CacheStrategy != "behind" || c.L1TTL != 5*time.Second {
					t.Fatalf("%+v", c)
				}
			}, ""},
		{"flag wins", map[string]string{"HAL9_ADDR": ":9000", "HAL9_REDIS_URL": "redis://env:6379/0"}, []string{"--addr", ":9100", "--redis-url=redis://flag:6379/1"},
			func(t *testing.T, c serveConfig) {
				if c.Addr != ":9100" || c.RedisURL != "redis://flag:6379/1" {
					t.Fatalf("%+v", c)
				}
			}, ""},
		{"anthropic key env", map[string]string{"ANTHROPIC_API_KEY": "sk-plain"}, []string{"--llm", "anthropic"},
			func(t *testing.T, c serveConfig) {
				if c.AnthropicAPIKey != "sk-plain" {
					t.Fatalf("%+v", c)
				}
			}, ""},
		{"hal9 anthropic key wins", map[string]string{"ANTHROPIC_API_KEY": "sk-plain", "HAL9_ANTHROPIC_API_KEY": "sk-hal9"}, nil,
			func(t *testing.T, c serveConfig) {
				if c.AnthropicAPIKey != "sk-hal9" {
					t.Fatalf("%+v", c)
				}
			}, ""},
		{"bad env number", map[string]string{"HAL9_RATE_LIMIT": "fast"}, nil, nil, `HAL9_RATE_LIMIT="fast"`},
		{"bad env duration", map[string]string{"HAL9_SHUTDOWN_TIMEOUT": "60"}, nil, nil, "HAL9_SHUTDOWN_TIMEOUT"},
		{"env duration without unit", map[string]string{"HAL9_SHUTDOWN_TIMEOUT": "5"}, nil, nil, "use a duration with a unit, e.g. 60s"},
		{"flag duration without unit", nil, []string{"--shutdown-timeout", "5"}, nil, "use a duration with a unit, e.g. 60s"},
		{"flag llm-timeout without unit", nil, []string{"--llm-timeout=30"}, nil, `"30" has no unit: use a duration with a unit`},
		{"flag l1-ttl garbage", nil, []string{"--l1-ttl", "soon"}, nil, `"soon" is not a duration: use a duration with a unit`},
		{"env l5-ttl without unit", map[string]string{"HAL9_L5_TTL": "1"}, nil, nil, "HAL9_L5_TTL"},
		{"flag duration ok", nil, []string{"--shutdown-timeout", "5s", "--l1-ttl=1m"},
			func(t *testing.T, c serveConfig) {
				if c.ShutdownTimeout != 5*time.Second || c.L1TTL != time.Minute || c.ShutdownDelay != 1250*time.Millisecond {
					t.Fatalf("%+v", c)
				}
			}, ""},
		{"explicit delay kept", map[string]string{"HAL9_SHUTDOWN_DELAY": "1s"}, []string{"--shutdown-timeout", "5s"},
			func(t *testing.T, c serveConfig) {
				if c.ShutdownDelay != time.Second {
					t.Fatalf("%+v", c)
				}
			}, ""},
		{"capacity env", map[string]string{"HAL9_CAPACITY_RPS": "1077.5"}, nil,
			func(t *testing.T, c serveConfig) {
				if c.CapacityRPS != 1077.5 {
					t.Fatalf("%+v", c)
				}
			}, ""},
		{"capacity not a number", map[string]string{"HAL9_CAPACITY_RPS": "1k"}, nil, nil, `HAL9_CAPACITY_RPS="1k": not a valid value`},
		{"bad env secret redacted", map[string]string{"HAL9_DB_MAX_CONNS": "x"}, nil, nil, "--db-max-conns"},
		{"unknown flag", nil, []string{"--nope"}, nil, "flag provided but not defined"},
		{"stray argument", nil, []string{"extra"}, nil, `unexpected argument "extra"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, _, err := parseConfig("serve", tt.args, envFrom(tt.env), io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, serveConfig(cfg))
		})
	}
}

func TestEveryFlagHasEnv(t *testing.T) {
	_, fs, err := parseConfig("serve", nil, envFrom(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var usage bytes.Buffer
	fs.SetOutput(&usage)
	fs.Usage()
	n := 0
	for _, line := range strings.Split(usage.String(), "\n") {
		if strings.HasPrefix(line, "  --") {
			n++
			if !strings.Contains(line, "(HAL9_") {
				t.Errorf("no variable in %q", line)
			}
		}
	}
	if n < 25 {
		t.Fatalf("only %d flags in the usage", n)
	}
}

func TestRunCommands(t *testing.T) {
	dir := t.TempDir()
	db := "sqlite://" + filepath.Join(dir, "x", "hal9.db")
	tests := []struct {
		name     string
		args     []string
		env      map[string]string
		wantCode int
		wantOut  string
		wantErr  string
		notOut   string
	}{
		{"version", []string{"version"}, nil, 0, "hal9 dev", "", ""},
		{"help", []string{"--help"}, nil, 0, "commands:", "", ""},
		{"no command", nil, nil, 2, "", "usage: hal9", ""},
		{"unknown command", []string{"frobnicate"}, nil, 2, "", `unknown command "frobnicate"`, ""},
		{"config redacts", []string{"config", "--jwt-secret", strings.Repeat("s", 40), "--database-url", "postgres://u:hunter2@db:5432/hal9"},
			map[string]string{"ANTHROPIC_API_KEY": "sk-secret"}, 0, `"jwt-secret": "REDACTED"`, "", "hunter2"},
		{"config no secret leak", []string{"config"}, map[string]string{"HAL9_ANTHROPIC_API_KEY": "sk-secret"}, 0, `"anthropic-api-key": "REDACTED"`, "", "sk-secret"},
		{"config redacts a query password", []string{"config", "--database-url", "postgres://hal9@db:5432/hal9?password=hunter3&sslmode=require"},
			nil, 0, `"database-url": "postgres://hal9@db:5432/hal9?password=xxxxx\u0026sslmode=require"`, "", "hunter3"},
		{"config redacts an sslpassword", []string{"config"}, map[string]string{"HAL9_DATABASE_URL": "postgres://db/hal9?sslpassword=keypass4"},
			0, "sslpassword=xxxxx", "", "keypass4"},
		{"config redacts a redis query password", []string{"config", "--redis-url", "redis://db:6379/0?password=hunter5"},
			nil, 0, "password=xxxxx", "", "hunter5"},
		{"config default db", []string{"config", "--data-dir", dir}, nil, 0, filepath.Join(dir, "hal9.db"), "", ""},
		{"config invalid", []string{"config", "--llm-error-rate", "2"}, nil, 2, "", "--llm-error-rate (HAL9_LLM_ERROR_RATE) 2: must be within [0, 1]", ""},
		{"config invalid env", []string{"config"}, map[string]string{"HAL9_LLM_LATENCY_SCALE": "-1"}, 2, "", "HAL9_LLM_LATENCY_SCALE", ""},
		{"config unknown llm", []string{"config", "--llm", "gpt"}, nil, 2, "", "sim or anthropic", ""},
		{"config bad trusted proxy", []string{"config"}, map[string]string{"HAL9_TRUSTED_PROXIES": "127.0.0.1/32,proxy.internal"}, 2, "",
			`--trusted-proxies (HAL9_TRUSTED_PROXIES) "127.0.0.1/32,proxy.internal": "proxy.internal" is not an IP address or CIDR range`, ""},
		{"migrate", []string{"migrate", "--database-url", db}, nil, 0, "migrations applied", "", ""},
		{"serve bad url", []string{"serve", "--database-url", "mysql://x"}, nil, 2, "", "unknown scheme", ""},
		{"serve key=value dsn", []string{"serve", "--database-url", "host=db user=hal9 password=hunter6"}, nil, 2, "", "password=xxxxx", "hunter6"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := run(context.Background(), tt.args, &out, &errOut, envFrom(tt.env))
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d; stderr %s", code, tt.wantCode, errOut.String())
			}
			if tt.wantOut != "" && !strings.Contains(out.String(), tt.wantOut) {
				t.Errorf("stdout %q lacks %q", out.String(), tt.wantOut)
			}
			if tt.wantErr != "" && !strings.Contains(errOut.String(), tt.wantErr) {
				t.Errorf("stderr %q lacks %q", errOut.String(), tt.wantErr)
			}
			if tt.notOut != "" && strings.Contains(out.String()+errOut.String(), tt.notOut) {
				t.Errorf("output leaks %q", tt.notOut)
			}
			if strings.HasPrefix(tt.name, "config") && code == 0 {
				var m map[string]any
				if err := json.Unmarshal(out.Bytes(), &m); err != nil || m["rate-limit"] != 1000.0 || m["shutdown-timeout"] != "1m0s" {
					t.Errorf("config JSON: %v %s", err, out.String())
				}
			}
		})
	}
}
