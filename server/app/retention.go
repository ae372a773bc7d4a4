package app

import (
	"context"
	"time"
)

// retainer is a store that can delete signals older than a cut-off
// (PostgreSQL drops whole monthly partitions, SQLite deletes rows).
type retainer interface {
	ApplyRetention(ctx context.Context, cutoff time.Time) (int64, error)
}

// RetentionCutoff is the first instant kept with --signal-retention N:
// the first day of the month N months before now's (UTC). Everything
// created before it is deleted; at least N whole months are kept.
func RetentionCutoff(now time.Time, months int) time.Time {
	now = now.UTC()
	return time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC).AddDate(0, -months, 0)
}

// startRetention applies --signal-retention now and every hour (next to
// the partition maintenance); 0 keeps signals forever.
func (a *Server) startRetention(ctx context.Context) {
	r, ok := a.Store.(retainer)
	if a.cfg.SignalRetentionMonths <= 0 || !ok {
		return
	}
	apply := func() {
		cutoff := RetentionCutoff(time.Now(), a.cfg.SignalRetentionMonths)
		n, err := r.ApplyRetention(ctx, cutoff)
		switch {
		case err != nil && ctx.Err() == nil:
			a.log.Warn("signal retention failed; retrying in an hour", "cutoff", cutoff, "error", err)
		case n > 0:
			a.log.Info("signal retention: deleted old signals", "signals", n, "cutoff", cutoff, "months", a.cfg.SignalRetentionMonths)
		}
	}
	a.bg.Add(1)
	go func() { defer a.bg.Done(); apply() }() // not in Open's way: it may delete a lot
	a.every(ctx, time.Hour, apply)
}
