package profiles

import (
	"fmt"

	"github.com/google/pprof/profile"
)

// LegSummary is what the report shows of one leg's profiles.
type LegSummary struct {
	Leg       string            `json:"leg"`
	Files     map[string]string `json:"files,omitempty"`   // type → file name under profiles/
	Uploads   map[string]int    `json:"uploads,omitempty"` // type → uploads merged
	TopCPU    []FuncShare       `json:"top_cpu,omitempty"`
	TopAlloc  []FuncShare       `json:"top_alloc,omitempty"`
	GrewCPU   []FuncDelta       `json:"grew_cpu,omitempty"`   // vs the baseline profile
	GrewAlloc []FuncDelta       `json:"grew_alloc,omitempty"` // vs the baseline profile
	Flames    []Flame           `json:"flames,omitempty"`     // flame graph pages under profiles/
	Notes     []string          `json:"notes,omitempty"`
}

// BaselineFunc returns the baseline profile of a leg and type, or nil.
type BaselineFunc func(leg, typ string) *profile.Profile

// Summarize ranks leg's functions by CPU and by allocated bytes (top n)
// and, where base returns a profile, lists the functions whose share grew.
func (r *Receiver) Summarize(leg string, base BaselineFunc, n int) LegSummary {
	s := LegSummary{Leg: leg, Files: map[string]string{}, Uploads: map[string]int{}}
	for _, typ := range r.Types(leg) {
		s.Files[typ] = FileName(leg, typ)
		s.Uploads[typ] = r.Uploads(leg, typ)
	}
	rank := func(typ, sampleType string) ([]FuncShare, []FuncDelta) {
		p := r.Profile(leg, typ)
		if p == nil {
			s.Notes = append(s.Notes, fmt.Sprintf("no %s profile received (pyroscope-go uploads every 15 s, so a shorter leg may have none; or the server runs without --pyroscope-url)", typ))
			return nil, nil
		}
		top, err := TopFunctions(p, sampleType, n)
		if err != nil {
			s.Notes = append(s.Notes, fmt.Sprintf("%s profile: %v", typ, err))
			return nil, nil
		}
		if base == nil {
			return top, nil
		}
		bp := base(leg, typ)
		if bp == nil {
			return top, nil
		}
		grew, err := Diff(bp, p, sampleType, n)
		if err != nil {
			s.Notes = append(s.Notes, fmt.Sprintf("%s profile diff: %v", typ, err))
		}
		return top, grew
	}
	s.TopCPU, s.GrewCPU = rank("cpu", CPUSampleType)
	s.TopAlloc, s.GrewAlloc = rank("heap", AllocSampleType)
	return s
}
