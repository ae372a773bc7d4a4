package app

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/hal9-lab/hal9-lab/server/store"
	"github.com/hal9-lab/hal9-lab/server/store/sqlite"
)

// TestStartFailsLeftoverPending: a signal left pending by an earlier run (a
// crash after the 202) is marked failed when the server starts, once it is
// older than Config.PendingMaxAge (the longest a live one can wait and run); a younger one may belong to another live server
// sharing the database and is left alone.
func TestStartFailsLeftoverPending(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "hal9.db"))
	if err != nil {
		t.Fatal(err)
	}
	left := store.Signal{ID: "0193a000-0000-7000-8000-000000000001", UserID: "u", Layer: "L1", NeuronID: "l1-reflexive-1",
		Content: "cut by a crash", Status: store.SignalPending, CreatedAt: time.Now().Add(-testConfig(t).PendingMaxAge() - time.Minute).UTC()}
	if err := st.SaveSignal(ctx, left, nil, nil); err != nil {
		t.Fatal(err)
	}
	young := left
	young.ID, young.CreatedAt = "0193a000-0000-7000-8000-000000000002", time.Now().Add(-time.Minute).UTC()
	if err := st.SaveSignal(ctx, young, nil, nil); err != nil {
		t.Fatal(err)
	}
	st.Close()

	a := startApp(t, func(c *Config) { c.DataDir = dir })
	got, _, err := a.app.Store.GetSignal(ctx, left.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != store.SignalFailed || got.Error != store.InterruptedError {
		t.Fatalf("leftover pending signal after start: status %q error %q; want failed %q", got.Status, got.Error, store.InterruptedError)
	}
	if got, _, err := a.app.Store.GetSignal(ctx, young.ID); err != nil || got.Status != store.SignalPending {
		t.Fatalf("a signal pending for a minute (maybe another server's) = %q, %v; want it left pending", got.Status, err)
	}
}
