package app

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// headerTimeout bounds the arrival of a request's headers: the body's
// read timeout, but never more than 10 s (headers are small).
func headerTimeout(read time.Duration) time.Duration {
	if read <= 0 || read > 10*time.Second {
		return 10 * time.Second
	}
	return read
}

// stage is one step of the shutdown with its share of --shutdown-timeout.
type stage struct {
	name  string
	share float64 // of the whole timeout; the shares add up to 1
	run   func(ctx context.Context) error
}

// runStages runs the stages in order within total. Stage i must end by
// start + total − the shares of the stages after it: time a stage leaves
// unused passes to the next, a stage never eats into what is kept for the
// later ones, and the last ends by start + total. now is the clock (tests
// pass a fake one); each stage gets a context with its deadline.
func runStages(now func() time.Time, total time.Duration, stages []stage) []error {
	start := now()
	end := start.Add(total)
	var errs []error
	for i, st := range stages {
		rest := 0.0
		for _, later := range stages[i+1:] {
			rest += later.share
		}
		deadline := end.Add(-time.Duration(rest * float64(total)))
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		err := st.run(ctx)
		cancel()
		if err != nil {
			errs = append(errs, fmt.Errorf("shutdown stage %s: %w", st.name, err))
		}
	}
	return errs
}

// shutdownStages are the steps of a graceful shutdown: readiness 503 and a
// pause (--shutdown-delay, at most a quarter of the whole) so load
// balancers stop sending; the API stops accepting and drains its in-flight
// requests; queued async signals finish (those cut off are saved failed);
// write-behind queues flush, the admin listener closes, Redis and the store
// close. The shares split what follows the pause 45/35/20.
func (a *Server) shutdownStages() []stage {
	total := a.cfg.ShutdownTimeout
	pause := min(a.cfg.ShutdownDelay, total/4)
	p := float64(pause) / float64(total)
	rest := 1 - p
	return []stage{
		{"readiness", p, func(ctx context.Context) error {
			a.HTTP.BeginShutdown()
			select {
			case <-time.After(pause):
			case <-ctx.Done():
			}
			return nil
		}},
		{"api", 0.45 * rest, func(ctx context.Context) error {
			if a.apiSrv == nil {
				return nil
			}
			if err := a.apiSrv.Shutdown(ctx); err != nil {
				a.apiSrv.Close()
				return fmt.Errorf("drain API requests: %w", err)
			}
			return nil
		}},
		{"async", 0.35 * rest, a.HTTP.DrainAsync},
		{"flush", 0.20 * rest, func(ctx context.Context) error {
			err := a.Close(ctx)
			if a.adminSrv != nil {
				if serr := a.adminSrv.Shutdown(ctx); serr != nil && !errors.Is(serr, http.ErrServerClosed) {
					a.adminSrv.Close()
				}
			}
			return err
		}},
	}
}

// Shutdown runs the graceful shutdown in stages (see shutdownStages),
// within --shutdown-timeout in all.
func (a *Server) Shutdown() error {
	start := time.Now()
	a.log.Info("shutting down", "timeout", a.cfg.ShutdownTimeout.String(), "delay", min(a.cfg.ShutdownDelay, a.cfg.ShutdownTimeout/4).String())
	err := errors.Join(runStages(time.Now, a.cfg.ShutdownTimeout, a.shutdownStages())...)
	a.log.Info("shut down", "took_ms", time.Since(start).Milliseconds(), "error", err)
	return err
}
