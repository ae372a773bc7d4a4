package history

import (
	"math"
	"slices"
)

// Hampel identifier's parameters: a night farther than spikeSigmas robust
// standard deviations from the median of the nights around it (spikeHalf
// on each side, fewer at the ends) is a bad night.
const (
	spikeHalf   = 2
	spikeSigmas = 4
)

// despike returns the indices of x that are not bad nights (Hampel 1974:
// farther from the median of their neighbourhood, themselves included,
// than spikeSigmas robust standard deviations), so that one bad night,
// however bad, cannot make a change point: the check searches the nights
// that remain. The spread is estimated from successive differences
// (1.4826 × their MAD / √2), which a step in the level does not inflate. A
// step that stays is kept: most of each of its nights' neighbourhood is at
// its own level (the newest night of a step is set aside until a second
// follows, as MinSize would anyway).
func despike(x []float64) (kept []int) {
	kept = make([]int, 0, len(x))
	sigma := 0.0
	if len(x) >= 4 {
		d := make([]float64, len(x)-1)
		for i := range d {
			d[i] = x[i+1] - x[i]
		}
		sigma = 1.4826 * mad(d) / math.Sqrt2
	}
	nb := make([]float64, 0, 2*spikeHalf+1)
	for i := range x {
		nb = append(nb[:0], x[max(0, i-spikeHalf):min(len(x), i+spikeHalf+1)]...)
		if sigma > 0 && math.Abs(x[i]-median(nb)) > spikeSigmas*sigma {
			continue
		}
		kept = append(kept, i)
	}
	return kept
}

// mad is the median absolute deviation from the median.
func mad(v []float64) float64 {
	c := slices.Clone(v)
	m := median(c)
	for i := range c {
		c[i] = math.Abs(v[i] - m)
	}
	return median(c)
}
