package load_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hal9-lab/hal9-lab/lab/load"
)

// writeSegment writes DIR/name/summary.json as a segment's run would.
func writeSegment(t *testing.T, dir, name string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := load.WriteSummary(filepath.Join(dir, name, "summary.json"), &load.Summary{}); err != nil {
		t.Fatal(err)
	}
}

func TestAwaitSummaries(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	writeSegment(t, dir, "segment-0")
	writeSegment(t, dir, "segment-1")
	if sums, err := load.AwaitSummaries(ctx, dir, 2, 0, time.Millisecond, nil); err != nil || len(sums) != 2 {
		t.Fatalf("two of two: %d, %v", len(sums), err)
	}
	if sums, err := load.AwaitSummaries(ctx, dir, 0, 0, time.Millisecond, nil); err != nil || len(sums) != 2 {
		t.Fatalf("any number: %d, %v", len(sums), err)
	}
	var told []int
	if _, err := load.AwaitSummaries(ctx, dir, 3, 50*time.Millisecond, 10*time.Millisecond, func(n int) { told = append(told, n) }); err == nil ||
		!strings.Contains(err.Error(), "2 of 3 summaries") || len(told) != 1 || told[0] != 2 {
		t.Errorf("two of three: %v (told %v)", err, told)
	}
	// The third appears while it waits.
	go func() {
		time.Sleep(50 * time.Millisecond)
		writeSegment(t, dir, "segment-2")
	}()
	if sums, err := load.AwaitSummaries(ctx, dir, 3, 10*time.Second, 10*time.Millisecond, nil); err != nil || len(sums) != 3 {
		t.Fatalf("the late third: %d, %v", len(sums), err)
	}
	if _, err := load.AwaitSummaries(ctx, dir, 2, 0, time.Millisecond, nil); err == nil || !strings.Contains(err.Error(), "remove the stale ones") {
		t.Errorf("three where two are expected: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "segment-2", "summary.json"), []byte("{"), 0o644)
	if _, err := load.AwaitSummaries(ctx, dir, 3, 30*time.Millisecond, 10*time.Millisecond, nil); err == nil || !strings.Contains(err.Error(), "read summary") {
		t.Errorf("a summary that never parses: %v", err)
	}
	if _, err := load.AwaitSummaries(ctx, filepath.Join(dir, "nope"), 0, 0, time.Millisecond, nil); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("no directory: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := load.AwaitSummaries(cctx, dir, 5, time.Minute, time.Millisecond, nil); err == nil || !strings.Contains(err.Error(), "waiting for summaries") {
		t.Errorf("cancelled: %v", err)
	}
}
