package durationflag_test

import (
	"flag"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/hal9-lab/hal9-lab/internal/durationflag"
)

func TestVar(t *testing.T) {
	for _, tt := range []struct {
		arg     string
		want    time.Duration
		wantErr string
	}{
		{"", 90 * time.Second, ""}, // the default
		{"60s", time.Minute, ""},
		{" 1m30s ", 90 * time.Second, ""},
		{"0", 0, ""},
		{"60", 0, `"60" has no unit: use a duration with a unit, e.g. 60s`},
		{"1.5", 0, `"1.5" has no unit`},
		{"soon", 0, `"soon" is not a duration: use a duration with a unit`},
		{"-1s", 0, `"-1s" must not be negative`},
	} {
		t.Run(tt.arg, func(t *testing.T) {
			fs := flag.NewFlagSet("t", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			var d time.Duration
			durationflag.Var(fs, &d, "step", 90*time.Second, "judged length")
			var args []string
			if tt.arg != "" {
				args = []string{"--step", tt.arg}
			}
			err := fs.Parse(args)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "-step") {
					t.Fatalf("err = %v, want the flag and %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || d != tt.want {
				t.Fatalf("--step %q = %v, %v; want %v", tt.arg, d, err, tt.want)
			}
		})
	}
}

func TestUsageAndGetter(t *testing.T) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	var d time.Duration
	durationflag.Var(fs, &d, "wait", 0, "how long")
	f := fs.Lookup("wait")
	if !strings.HasSuffix(f.Usage, durationflag.Hint) {
		t.Errorf("usage %q lacks the hint", f.Usage)
	}
	if err := fs.Parse([]string{"--wait", "2m"}); err != nil {
		t.Fatal(err)
	}
	if g, ok := f.Value.(flag.Getter); !ok || g.Get() != 2*time.Minute || f.Value.String() != "2m0s" {
		t.Errorf("value %v", f.Value)
	}
}
