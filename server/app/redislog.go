package app

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
)

// RedisLogger routes go-redis's own log lines (plain-text "redis: …
// failed to dial" on stderr by default) into the JSON log: failures at
// warn, the rest at debug. go-redis's logger is process-wide, so the binary
// installs it once at start with redis.SetLogger(app.RedisLogger{Log: log});
// a library must not.
type RedisLogger struct{ Log *slog.Logger }

// Printf implements go-redis's internal.Logging.
func (l RedisLogger) Printf(ctx context.Context, format string, v ...any) {
	if l.Log == nil {
		return
	}
	if ctx == nil {
		ctx = context.Background()
	}
	msg := strings.TrimPrefix(strings.TrimSpace(fmt.Sprintf(format, v...)), "redis: ")
	level := slog.LevelDebug
	low := strings.ToLower(msg)
	for _, w := range []string{"fail", "error", "broken", "timeout", "refused", "unable"} {
		if strings.Contains(low, w) {
			level = slog.LevelWarn
			break
		}
	}
	l.Log.Log(ctx, level, "redis client", "component", "go-redis", "detail", msg)
}
