package main

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"
)

// TestDurationFlags: every duration flag of hal9-lab says how to write a
// duration when given a bare number (flag.Duration said "parse error").
func TestDurationFlags(t *testing.T) {
	noEnv := func(string) string { return "" }
	for _, tt := range []struct {
		name string
		run  func() error
	}{
		{"capacity --step", func() error {
			_, _, err := parseCapacityArgs([]string{"x.yaml", "--target", "http://h", "--step", "60"}, noEnv)
			return err
		}},
		{"capacity --settle", func() error {
			_, _, err := parseCapacityArgs([]string{"x.yaml", "--target", "http://h", "--settle", "60"}, noEnv)
			return err
		}},
		{"capacity --cooldown", func() error {
			_, _, err := parseCapacityArgs([]string{"x.yaml", "--target", "http://h", "--cooldown", "60"}, noEnv)
			return err
		}},
		{"load --start-late-max", func() error {
			_, err := parseLoadArgs([]string{"x.yaml", "--target", "http://h", "--start-late-max", "60"}, noEnv, time.Now())
			return err
		}},
		{"load merge --wait", func() error {
			_, _, err := parseMergeArgs([]string{"--dir", "d", "--expect", "2", "--wait", "60"})
			return err
		}},
		{"load kubernetes --start-in", func() error {
			return runLoadKubernetes([]string{"--segments", "2", "--out", t.TempDir(), "--start-in", "60"}, io.Discard)
		}},
		{"load kubernetes --merge-wait", func() error {
			return runLoadKubernetes([]string{"--segments", "2", "--out", t.TempDir(), "--merge-wait", "60"}, io.Discard)
		}},
		{"bench engine --duration", func() error { return runBench(context.Background(), []string{"engine", "--duration", "60"}) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.run()
			if err == nil || !strings.Contains(err.Error(), `"60" has no unit: use a duration with a unit, e.g. 60s`) {
				t.Errorf("err = %v, want it to say how to write a duration", err)
			}
		})
	}
}
