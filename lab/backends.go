package lab

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/hal9-lab/hal9-lab/lab/backend"
	"github.com/hal9-lab/hal9-lab/lab/infra"
	"github.com/hal9-lab/hal9-lab/lab/profile"
	"github.com/hal9-lab/hal9-lab/lab/report"
)

// eachBackend starts each backend of the run in turn, calls legs with it
// (i is its index in --backends) and stops it. A backend that cannot be had
// is skipped (the reason is recorded) unless --require-all; an interrupted
// run stops at the next backend and is not an error.
func (s *session) eachBackend(ctx context.Context, legs func(i int, b *backend.Backend)) error {
	for i, name := range s.opts.Backends {
		if ctx.Err() != nil {
			return nil
		}
		b, err := s.startBackend(ctx, name)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if b == nil {
			continue // skipped, reason recorded
		}
		legs(i, b)
		if err := b.Stop(ctx); err != nil {
			s.labError("stop %s infrastructure: %v", name, err)
		}
	}
	return nil
}

// startBackend starts the infrastructure of a backend: external URLs
// (HAL9_PG_DSN, HAL9_REDIS_URL), containers or local processes, as --infra
// says ("" tries them in that order). When it cannot be had the backend is
// skipped (nil, written in the report) unless RequireAll.
func (s *session) startBackend(ctx context.Context, name string) (*backend.Backend, error) {
	s.prog.setLeg(name)
	if name != profile.SQLite {
		s.prog.step("starting infrastructure (--infra %s)", orAuto(s.opts.Infra))
	}
	t := time.Now()
	b, err := backend.Start(ctx, name, backend.Options{Infra: s.infraOptions(name), PgBouncer: s.opts.PgBouncer, Replicas: s.opts.Replicas,
		Containers: s.opts.Server == ServerModeContainer, Receiver: s.side.recv, PyroscopeURL: s.opts.PyroscopeURL,
		Logger: s.log, Progress: s.prog.step})
	if err != nil {
		if stopErr := b.Stop(ctx); stopErr != nil {
			s.labError("stop %s infrastructure: %v", name, stopErr)
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		reason := err.Error()
		if s.opts.RequireAll {
			return nil, fmt.Errorf("backend %s cannot be had (--require-all): %s", name, reason)
		}
		s.prog.step("SKIPPED: %s", reason)
		s.mu.Lock()
		s.summary.Skipped = append(s.summary.Skipped, report.Skipped{Leg: name, Reason: reason})
		s.mu.Unlock()
		return nil, nil
	}
	if name == profile.SQLite {
		return b, nil
	}
	s.prog.step("infrastructure up (%s) in %s", b.Infra(), time.Since(t).Round(100*time.Millisecond))
	switch off, err := b.Durability(ctx); {
	case err != nil:
		s.labError("%s: %v", name, err)
	case len(off) > 0:
		s.noteDepartures(name, []string{fmt.Sprintf("PostgreSQL durability off (%s): an acknowledged commit may not be on disk yet, and commits cost less than in production", strings.Join(off, ", "))})
	}
	return b, nil
}

// infraOptions: which servers backend name has, the session's --infra (but
// local processes when a fault kills, stops or pauses PostgreSQL or
// Redis), and the profile's durability (production's unless it says
// postgres: {durable: false}).
func (s *session) infraOptions(name string) infra.Options {
	mode := infra.Mode(s.opts.Infra)
	if needsProcesses(s.plans) && (mode == infra.ModeAuto || mode == "auto") {
		mode = infra.ModeProcess
	}
	return infra.Options{Postgres: name == profile.Postgres || name == profile.PostgresRedis, Redis: name == profile.PostgresRedis,
		Mode: mode, Logger: s.log, Durable: s.opts.Profile.Postgres.IsDurable()}
}

func orAuto(m string) string {
	if m == "" {
		return "auto"
	}
	return m
}
