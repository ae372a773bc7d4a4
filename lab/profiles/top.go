package profiles

import (
	"fmt"
	"sort"

	"github.com/google/pprof/profile"
)

// FuncShare is one function's flat value in a profile: the samples whose
// leaf frame is this function.
type FuncShare struct {
	Name  string  `json:"name"`
	Flat  int64   `json:"flat"`
	Share float64 `json:"share"` // Flat / total, 0..1
}

// FuncDelta is how much a function's flat share changed against a base.
type FuncDelta struct {
	Name      string  `json:"name"`
	BaseShare float64 `json:"base_share"`
	Share     float64 `json:"share"`
	Delta     float64 `json:"delta"` // Share - BaseShare, in share points (0..1)
}

// CPUSampleType and AllocSampleType are the sample types the lab ranks by.
const (
	CPUSampleType   = "cpu"         // nanoseconds on CPU
	AllocSampleType = "alloc_space" // bytes allocated
)

// flatByFunc sums the flat value of sampleType per leaf function. Inlined
// frames count for the innermost function (Line[0]).
func flatByFunc(p *profile.Profile, sampleType string) (map[string]int64, int64, error) {
	idx := -1
	for i, st := range p.SampleType {
		if st.Type == sampleType {
			idx = i
		}
	}
	if idx < 0 {
		have := make([]string, len(p.SampleType))
		for i, st := range p.SampleType {
			have[i] = st.Type
		}
		return nil, 0, fmt.Errorf("profile has no sample type %q (has %v)", sampleType, have)
	}
	flat := map[string]int64{}
	var total int64
	for _, s := range p.Sample {
		v := s.Value[idx]
		if v == 0 {
			continue
		}
		total += v
		name := "(unknown)"
		if len(s.Location) > 0 {
			loc := s.Location[0]
			switch {
			case len(loc.Line) > 0 && loc.Line[0].Function != nil:
				name = loc.Line[0].Function.Name
			case loc.Address != 0:
				name = fmt.Sprintf("0x%x", loc.Address)
			}
		}
		flat[name] += v
	}
	return flat, total, nil
}

// TopFunctions returns the n functions with the largest flat share of
// sampleType, largest first.
func TopFunctions(p *profile.Profile, sampleType string, n int) ([]FuncShare, error) {
	flat, total, err := flatByFunc(p, sampleType)
	if err != nil {
		return nil, err
	}
	out := make([]FuncShare, 0, len(flat))
	for name, v := range flat {
		out = append(out, FuncShare{Name: name, Flat: v, Share: share(v, total)})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Flat != out[j].Flat {
			return out[i].Flat > out[j].Flat
		}
		return out[i].Name < out[j].Name
	})
	if n > 0 && len(out) > n {
		out = out[:n]
	}
	return out, nil
}

// Diff returns the n functions whose flat share of sampleType grew most
// from base to cur (shares, not absolute values, so runs of different
// lengths compare). Only growing functions are listed.
func Diff(base, cur *profile.Profile, sampleType string, n int) ([]FuncDelta, error) {
	bf, bt, err := flatByFunc(base, sampleType)
	if err != nil {
		return nil, fmt.Errorf("base: %w", err)
	}
	cf, ct, err := flatByFunc(cur, sampleType)
	if err != nil {
		return nil, fmt.Errorf("current: %w", err)
	}
	var out []FuncDelta
	for name, v := range cf {
		d := FuncDelta{Name: name, BaseShare: share(bf[name], bt), Share: share(v, ct)}
		d.Delta = d.Share - d.BaseShare
		if d.Delta > 0 {
			out = append(out, d)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Delta != out[j].Delta {
			return out[i].Delta > out[j].Delta
		}
		return out[i].Name < out[j].Name
	})
	if n > 0 && len(out) > n {
		out = out[:n]
	}
	return out, nil
}

func share(v, total int64) float64 {
	if total == 0 {
		return 0
	}
	return float64(v) / float64(total)
}
