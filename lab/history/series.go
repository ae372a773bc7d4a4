package history

import (
	"cmp"
	"slices"
	"time"

	"github.com/hal9-lab/hal9-lab/lab/baseline"
	"gonum.org/v1/gonum/stat"
)

// MovingReference is the Group of the ratio points whose reference is
// not shared by enough nights to make a series (gate --against HEAD~1:
// each night has its own): shown, not judged.
const MovingReference = "moving reference"

// SeriesID names one series: a metric of one profile, as absolute values
// on one machine (Group: its fingerprint) or as ratios to one reference
// (Group: the reference commit).
type SeriesID struct {
	Profile string `json:"profile"`
	Key
	Kind  Kind   `json:"kind"`
	Group string `json:"series"`
}

// Point is one night of a series: the median over its repetitions.
type Point struct {
	RunID  string    `json:"run"`
	Time   time.Time `json:"time"`
	Commit string    `json:"commit"`
	Value  float64   `json:"value"`
	N      int       `json:"n"` // repetitions
}

// Series is one metric night after night, oldest first.
type Series struct {
	SeriesID
	Unit   string  `json:"unit,omitempty"`
	Points []Point `json:"points"`
	// Judged is false for series shown but not checked: too short, or
	// ratios to references that move from night to night.
	Judged bool `json:"judged"`
}

// BuildSeries turns runs into series. A night's point is the median of its
// repetitions. Ratios (gate --against) make one series per reference
// commit; a series of at least minPoints of them is judged, and the nights
// it covers are left out of that metric's absolute series: the interleaved
// reference cancels what a machine fingerprint cannot see (a noisy
// neighbour, a slower runner of the same CPU model). Absolute values make
// one series per machine fingerprint, never mixing machines.
func BuildSeries(runs []Run, minPoints int) []Series {
	type runKey struct {
		run string
		key Key
	}
	byID := map[SeriesID]*Series{}
	add := func(id SeriesID, p Point) {
		s := byID[id]
		if s == nil {
			s = &Series{SeriesID: id, Unit: seriesUnit(id)}
			byID[id] = s
		}
		s.Points = append(s.Points, p)
	}
	runs = slices.Clone(runs)
	slices.SortStableFunc(runs, func(a, b Run) int { return cmp.Or(a.Time.Compare(b.Time), cmp.Compare(a.ID, b.ID)) })
	points := func(r Run, kind Kind) map[Key]Point {
		vals := map[Key][]float64{}
		for _, v := range r.Values {
			if v.Kind == kind {
				vals[v.Key] = append(vals[v.Key], v.Value)
			}
		}
		out := map[Key]Point{}
		for k, vs := range vals {
			out[k] = Point{RunID: r.ID, Time: r.Time, Commit: r.Commit, Value: median(vs), N: len(vs)}
		}
		return out
	}
	// Ratios first: per reference, then the short ones pooled for display.
	for _, r := range runs {
		for k, p := range points(r, Ratio) {
			add(SeriesID{Profile: r.Profile, Key: k, Kind: Ratio, Group: r.Reference}, p)
		}
	}
	covered := map[runKey]bool{}
	var short []*Series
	for id, s := range byID {
		if len(s.Points) < minPoints {
			short = append(short, s)
			delete(byID, id)
			continue
		}
		s.Judged = true
		for _, p := range s.Points {
			covered[runKey{p.RunID, id.Key}] = true
		}
	}
	for _, s := range short {
		for _, p := range s.Points {
			add(SeriesID{Profile: s.Profile, Key: s.Key, Kind: Ratio, Group: MovingReference}, p)
		}
	}
	for _, r := range runs {
		for k, p := range points(r, Absolute) {
			if !covered[runKey{r.ID, k}] {
				add(SeriesID{Profile: r.Profile, Key: k, Kind: Absolute, Group: r.Machine}, p)
			}
		}
	}
	out := make([]Series, 0, len(byID))
	for _, s := range byID {
		if s.Kind == Absolute {
			s.Judged = len(s.Points) >= minPoints
		}
		slices.SortStableFunc(s.Points, func(a, b Point) int { return cmp.Or(a.Time.Compare(b.Time), cmp.Compare(a.RunID, b.RunID)) })
		out = append(out, *s)
	}
	slices.SortFunc(out, func(a, b Series) int { return compareIDs(a.SeriesID, b.SeriesID) })
	return out
}

func compareIDs(a, b SeriesID) int {
	return cmp.Or(cmp.Compare(a.Profile, b.Profile), cmp.Compare(a.Leg, b.Leg), cmp.Compare(a.Scenario, b.Scenario),
		cmp.Compare(a.Op, b.Op), cmp.Compare(a.Metric, b.Metric), cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Group, b.Group))
}

func seriesUnit(id SeriesID) string {
	if id.Kind == Ratio {
		return "× reference"
	}
	return baseline.Unit(id.Metric)
}

// median of values (sorted in place).
func median(vs []float64) float64 {
	if len(vs) == 0 {
		return 0
	}
	slices.Sort(vs)
	if len(vs)%2 == 1 {
		return vs[len(vs)/2]
	}
	return stat.Mean(vs[len(vs)/2-1:len(vs)/2+1], nil)
}
