package lab

import (
	"context"
	"log/slog"

	"github.com/hal9-lab/hal9-lab/lab/infra"
)

// infraEnv is what a backend needs from lab/infra: base URLs the lab
// creates per-run databases on, how they were had, and how to stop them.
type infraEnv struct {
	PostgresURL, RedisURL string
	Mode                  string
	Stop                  func(context.Context) error
}

// startInfra starts what backend needs (nothing for sqlite) through
// lab/infra: external URLs (HAL9_PG_DSN, HAL9_REDIS_URL), containers or
// local processes, as mode says ("" tries them in that order).
func startInfra(ctx context.Context, backend, mode string, log *slog.Logger) (*infraEnv, error) {
	needPG := backend == Postgres || backend == PostgresRedis
	needRedis := backend == PostgresRedis
	if !needPG && !needRedis {
		return &infraEnv{Mode: "none", Stop: func(context.Context) error { return nil }}, nil
	}
	env, err := infra.Start(ctx, infra.Options{Postgres: needPG, Redis: needRedis, Mode: infra.Mode(mode), Logger: log})
	if err != nil {
		return nil, err
	}
	return &infraEnv{PostgresURL: env.PostgresURL, RedisURL: env.RedisURL, Mode: env.Mode.String(), Stop: env.Stop}, nil
}
