package lab

import (
	"errors"
	"strings"
	"testing"

	"github.com/hal9-lab/hal9-lab/lab/baseline"
)

// TestCheckPower: 4 against 4 can reach 0.05 (2/70); 3 against 4 cannot
// (2/35) and the error names the runs needed.
func TestCheckPower(t *testing.T) {
	tests := []struct {
		base, runs int
		want       string // "" = ok
	}{
		{4, 4, ""}, {5, 3, ""}, {4, 3, "use --runs 4 or more"}, {3, 3, "use --runs 5 or more"}, {5, 2, "use --runs 3 or more"},
	}
	for _, tt := range tests {
		err := CheckPower(tt.base, tt.runs, baseline.Alpha, "B.json")
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%d vs %d: %v", tt.base, tt.runs, err)
		case tt.want != "" && (err == nil || !errors.Is(err, ErrCannotJudge) || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%d vs %d: %v, want %q", tt.base, tt.runs, err, tt.want)
		}
	}
}
