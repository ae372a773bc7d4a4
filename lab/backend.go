package lab

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/hal9-lab/hal9-lab/lab/infra"
	"github.com/hal9-lab/hal9-lab/lab/profile"
	"github.com/hal9-lab/hal9-lab/lab/report"
)

// Backend is a started backend shared by the runs of its legs: the
// servers lab/infra gave it (none for SQLite).
type Backend struct {
	Name string
	env  *infra.Env // nil for SQLite
	pg   pgBudget   // PostgreSQL's connection budget and PgBouncer (pgconns.go)
	// --server container (servercontainer.go): the session its servers
	// run in (the env's, or one of its own: ownCtrs), and the profile
	// receiver on that network.
	ctrs    *infra.ContainerSession
	ownCtrs bool
	recvURL string
	recvSrv *http.Server
}

// Infra says how the backend's servers were had: lab/infra's mode, or
// "none" for SQLite.
func (b *Backend) Infra() string {
	if b.env == nil {
		return "none"
	}
	return b.env.Mode.String()
}

// StartBackend starts the infrastructure of a backend. When it cannot be
// had the leg is skipped (written in the report) unless RequireAll.
func (s *Session) StartBackend(ctx context.Context, name string) (*Backend, error) {
	s.prog.setLeg(name)
	if name != profile.SQLite {
		s.prog.step("starting infrastructure (--infra %s)", orAuto(s.opts.Infra))
	}
	t := time.Now()
	b := &Backend{Name: name}
	// External URLs (HAL9_PG_DSN, HAL9_REDIS_URL), containers or local
	// processes, as --infra says ("" tries them in that order).
	needPG, needRedis := name == profile.Postgres || name == profile.PostgresRedis, name == profile.PostgresRedis
	var err error
	if needPG || needRedis {
		b.env, err = infra.Start(ctx, s.infraOptions(needPG, needRedis))
	}
	if err == nil && needPG {
		err = s.connectionBudget(ctx, b)
	}
	if err == nil {
		err = s.containerBackend(ctx, b)
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		reason := err.Error()
		if s.opts.RequireAll {
			return nil, fmt.Errorf("backend %s cannot be had (--require-all): %s", name, reason)
		}
		s.prog.step("SKIPPED: %s", reason)
		s.summary.Skipped = append(s.summary.Skipped, report.Skipped{Leg: name, Reason: reason})
		return nil, nil
	}
	if name != profile.SQLite {
		s.prog.step("infrastructure up (%s) in %s", b.Infra(), time.Since(t).Round(100*time.Millisecond))
	}
	if needPG {
		off, err := infra.PostgresDurability(ctx, b.env.PostgresURL)
		switch {
		case err != nil:
			s.LabError("%s: %v", name, err)
		case len(off) > 0:
			s.noteDepartures(name, []string{fmt.Sprintf("PostgreSQL durability off (%s): an acknowledged commit may not be on disk yet, and commits cost less than in production", strings.Join(off, ", "))})
		}
	}
	return b, nil
}

// eachBackend starts each backend of the run in turn, calls legs with it
// (i is its index in --backends) and stops it. A backend that cannot be had
// is skipped (the reason is recorded) unless --require-all; an interrupted
// run stops at the next backend and is not an error.
func (s *Session) eachBackend(ctx context.Context, legs func(i int, b *Backend)) error {
	for i, name := range s.opts.Backends {
		if ctx.Err() != nil {
			return nil
		}
		b, err := s.StartBackend(ctx, name)
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
			s.LabError("stop %s infrastructure: %v", name, err)
		}
	}
	return nil
}

// Stop stops the backend's infrastructure.
func (b *Backend) Stop(ctx context.Context) error {
	if b == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 60*time.Second)
	defer cancel()
	err := b.stopContainers(ctx)
	if b.env == nil {
		return err
	}
	if b.pg.bouncer != nil {
		err = errors.Join(err, b.pg.bouncer.Close(ctx))
	}
	return errors.Join(err, b.env.Stop(ctx))
}

func orAuto(m string) string {
	if m == "" {
		return "auto"
	}
	return m
}
