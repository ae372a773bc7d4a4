package load

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// ReadSummaries reads the summaries of a test's segments, for
// MergeSummaries.
func ReadSummaries(files []string) ([]*Summary, error) {
	var sums []*Summary
	for _, f := range files {
		s, err := ReadSummary(f)
		if err != nil {
			return nil, err
		}
		sums = append(sums, s)
	}
	return sums, nil
}

// AwaitSummaries reads DIR/*/summary.json (what `hal9-lab load --out
// DIR/NAME` writes) once there are expect of them (any number when expect
// is 0), polling every poll for up to wait: the segments of a distributed
// test finish apart. A file that does not parse yet is retried until the
// deadline. waiting is told once when it has to wait.
func AwaitSummaries(ctx context.Context, dir string, expect int, wait, poll time.Duration, waiting func(found int)) ([]*Summary, error) {
	if fi, err := os.Stat(dir); err != nil && wait == 0 {
		return nil, fmt.Errorf("--dir %s: %w", dir, err)
	} else if err == nil && !fi.IsDir() {
		return nil, fmt.Errorf("--dir %s is not a directory", dir)
	}
	deadline := time.Now().Add(wait)
	announced := false
	for {
		files, err := filepath.Glob(filepath.Join(dir, "*", "summary.json"))
		if err != nil {
			return nil, fmt.Errorf("--dir %s: %w", dir, err)
		}
		sort.Strings(files)
		var readErr error
		if expect > 0 && len(files) > expect {
			return nil, fmt.Errorf("%d summaries in %s, expected %d: %s; remove the stale ones or give the test a new run id",
				len(files), dir, expect, strings.Join(files, ", "))
		}
		if (expect == 0 && len(files) > 0) || (expect > 0 && len(files) == expect) {
			sums, err := ReadSummaries(files)
			if err == nil {
				return sums, nil
			}
			readErr = err
		}
		if !time.Now().Before(deadline) {
			switch {
			case readErr != nil:
				return nil, readErr
			case len(files) == 0 && expect == 0:
				return nil, fmt.Errorf("no summaries in %s/*/summary.json", dir)
			default:
				return nil, fmt.Errorf("after %s, %d of %d summaries in %s/*/summary.json%s; a segment failed or has not finished: read its pod's log",
					wait, len(files), expect, dir, listed(files))
			}
		}
		if !announced && waiting != nil {
			waiting(len(files))
			announced = true
		}
		t := time.NewTimer(min(poll, time.Until(deadline)))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("waiting for summaries: %w", context.Cause(ctx))
		case <-t.C:
		}
	}
}

func listed(files []string) string {
	if len(files) == 0 {
		return ""
	}
	return " (" + strings.Join(files, ", ") + ")"
}
