package load

import (
	"context"
	"fmt"
	"time"
)

// StartAt returns w with its Setup followed by a wait until at: the
// segments of a distributed test do their setup (users, tokens) first and
// then start their executors at one agreed instant. A Setup that ends after
// at returns at once; the summary's started time shows how late.
func StartAt(w Workload, at time.Time) Workload {
	return &startAt{Workload: w, at: at}
}

var _ Workload = (*startAt)(nil)

type startAt struct {
	Workload
	at time.Time
}

func (s *startAt) Setup(ctx context.Context, env *Env) error {
	if err := s.Workload.Setup(ctx, env); err != nil {
		return err
	}
	d := time.Until(s.at)
	if d > 0 && env.Logger != nil {
		env.Logger.Info("waiting for the agreed start", "start_at", s.at.UTC().Format(time.RFC3339Nano), "in", d.Round(time.Millisecond).String())
	}
	if err := Sleep(ctx, d); err != nil {
		return fmt.Errorf("waiting for --start-at %s: %w", s.at.UTC().Format(time.RFC3339), context.Cause(ctx))
	}
	return nil
}
