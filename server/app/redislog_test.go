package app

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"testing"

	"github.com/redis/go-redis/v9"
)

func TestRedisLogger(t *testing.T) {
	// Compiles only if the adapter satisfies go-redis's logger interface;
	// never called here: the logger is process-wide.
	_ = func() { redis.SetLogger(RedisLogger{}) }
	cases := []struct {
		format    string
		args      []any
		wantLevel string // "" when not logged at info level and above
		wantMsg   string
	}{
		{"redis: connection pool: failed to dial after %d attempts: %v", []any{5, "dial tcp 127.0.0.1:1: connect: connection refused"}, "WARN",
			"connection pool: failed to dial after 5 attempts: dial tcp 127.0.0.1:1: connect: connection refused"},
		{"redis: auto mode fallback: %s", []any{"resp2"}, "DEBUG", "auto mode fallback: resp2"},
	}
	for _, c := range cases {
		var buf bytes.Buffer
		l := RedisLogger{Log: slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))}
		l.Printf(context.Background(), c.format, c.args...)
		var rec map[string]any
		if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
			t.Fatalf("not one JSON line: %q: %v", buf.String(), err)
		}
		if rec["level"] != c.wantLevel || rec["detail"] != c.wantMsg || rec["component"] != "go-redis" {
			t.Errorf("logged %v, want level %s detail %q", rec, c.wantLevel, c.wantMsg)
		}
	}
	RedisLogger{}.Printf(context.Background(), "no logger: %d", 1) // must not panic
}
