package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hal9-lab/hal9-lab/server/store"
)

// Retention checks a store's signal retention (--signal-retention): apply
// deletes the signals created before the cut-off with their hops and
// memories, and keeps the rest.
func Retention(t *testing.T, s store.Store, apply func(context.Context, time.Time) (int64, error)) {
	t.Helper()
	ctx := context.Background()
	if err := s.CreateUser(ctx, store.User{ID: "ret-u", Username: "ret", Email: "ret@x", PasswordHash: "h", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	old := time.Date(2024, 1, 15, 12, 0, 0, 0, time.UTC)
	now := time.Now().UTC().Truncate(time.Microsecond)
	for _, sg := range []store.Signal{
		{ID: "ret-old-1", CreatedAt: old}, {ID: "ret-old-2", CreatedAt: old.AddDate(0, 1, 0)}, {ID: "ret-new", CreatedAt: now},
	} {
		sg.UserID, sg.Layer, sg.NeuronID, sg.Content, sg.Status, sg.CompletedAt = "ret-u", "L2", "n", "retention "+sg.ID, store.SignalProcessed, sg.CreatedAt
		hops := []store.Hop{{SignalID: sg.ID, Seq: 0, NeuronID: "n", Layer: "L2", Cache: "miss"}}
		mems := []store.Memory{{NeuronID: "n", Layer: "L2", SignalID: sg.ID, Content: "zebracrossing " + sg.ID, CreatedAt: sg.CreatedAt}}
		if err := s.SaveSignal(ctx, sg, hops, mems); err != nil {
			t.Fatal(err)
		}
	}
	cutoff := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC).AddDate(0, -1, 0)
	n, err := apply(ctx, cutoff)
	if err != nil {
		t.Fatalf("apply retention before %s: %v", cutoff, err)
	}
	if n != 2 {
		t.Errorf("retention removed %d signals, want 2", n)
	}
	for _, id := range []string{"ret-old-1", "ret-old-2"} {
		if _, _, err := s.GetSignal(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("signal %s from before the cut-off: %v, want ErrNotFound", id, err)
		}
	}
	if _, hops, err := s.GetSignal(ctx, "ret-new"); err != nil || len(hops) != 1 {
		t.Errorf("the recent signal: %v, %d hops", err, len(hops))
	}
	mems, err := s.SearchMemories(ctx, "ret-u", "zebracrossing", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(mems) != 1 || mems[0].SignalID != "ret-new" {
		t.Errorf("memories after retention: %+v, want only ret-new's", mems)
	}
	if n, err := apply(ctx, cutoff); err != nil || n != 0 {
		t.Errorf("second pass: %d, %v; want 0, nil", n, err)
	}
}
