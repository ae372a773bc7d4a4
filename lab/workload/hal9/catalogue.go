package hal9

import (
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
)

// Catalogue is the popularity model of the prompts users send: per entry
// layer, a catalogue of SizePerLayer distinct prompts, prompt k (k = 1 …
// SizePerLayer) asked with probability ∝ 1/k^ZipfS (Zipf's law: a few
// prompts very popular, a long tail asked rarely). There is no separate
// "unique" share: the tail is the unique traffic. The server's cache hit
// rate then follows from this popularity, the request rate and the
// response cache's TTLs per layer (seed 004: L2 10 min, L3 5 min, L4
// 2 min): prompt k is hit while a cached answer lives, so a hit rate
// rises with traffic, as in production.
type Catalogue struct {
	// SizePerLayer is the number of distinct prompts per layer (default
	// 10,000).
	SizePerLayer int `yaml:"size_per_layer"`
	// ZipfS is the Zipf exponent, ≥ 0 (default 1: web-like popularity;
	// 0: every prompt equally likely; larger: more concentrated).
	ZipfS *float64 `yaml:"zipf_s"`
}

// Default catalogue.
const (
	DefaultCatalogueSize = 10_000
	DefaultZipfS         = 1.0
	maxCatalogueSize     = 1_000_000_000
)

// zipf draws k in 1…n with P(k) ∝ 1/k^s, s ≥ 0, in O(1) time and memory
// for any n: Hörmann and Derflinger's rejection-inversion ("Rejection-
// inversion to generate variates from monotone discrete distributions",
// 1996), as Apache Commons Math implements it for any s > 0 (math/rand's
// Zipf needs s > 1); s = 0 is uniform.
type zipf struct {
	n, s               float64
	hX1, hN, threshold float64
}

func newZipf(n int, s float64) *zipf {
	z := &zipf{n: float64(n), s: s}
	if s == 0 {
		return z
	}
	z.hX1 = z.hIntegral(1.5) - 1
	z.hN = z.hIntegral(z.n + 0.5)
	z.threshold = 2 - z.hIntegralInverse(z.hIntegral(2.5)-z.h(2))
	return z
}

// sample returns k in 1…n.
func (z *zipf) sample(rng *rand.Rand) int {
	if z.s == 0 {
		return 1 + rng.IntN(int(z.n))
	}
	for {
		u := z.hN + rng.Float64()*(z.hX1-z.hN)
		x := z.hIntegralInverse(u)
		k := math.Floor(x + 0.5)
		if k < 1 {
			k = 1
		} else if k > z.n {
			k = z.n
		}
		if k-x <= z.threshold || u >= z.hIntegral(k+0.5)-z.h(k) {
			return int(k)
		}
	}
}

func (z *zipf) h(x float64) float64 { return math.Exp(-z.s * math.Log(x)) }

// hIntegral is H(x) = ∫ h = (x^(1−s) − 1)/(1 − s), ln x at s = 1.
func (z *zipf) hIntegral(x float64) float64 {
	lx := math.Log(x)
	return helper2((1-z.s)*lx) * lx
}

func (z *zipf) hIntegralInverse(x float64) float64 {
	t := x * (1 - z.s)
	if t < -1 {
		t = -1 // numerical safety near the bound
	}
	return math.Exp(helper1(t) * x)
}

// helper1 is ln(1+x)/x, helper2 (e^x − 1)/x, both 1 at 0.
func helper1(x float64) float64 {
	if math.Abs(x) > 1e-8 {
		return math.Log1p(x) / x
	}
	return 1 - x/2
}

func helper2(x float64) float64 {
	if math.Abs(x) > 1e-8 {
		return math.Expm1(x) / x
	}
	return 1 + x/2
}

// appendPrompt appends catalogue entry k of a layer: the same text for
// the same seed, layer and k, in every run ("L3 prompt 42: " and 6 to 15
// words).
func appendPrompt(dst []byte, seed int64, layer string, k int) []byte {
	var src rand.PCG
	src.Seed(uint64(seed), uint64(k)<<8|uint64(layerIndex(layer)))
	rng := rand.New(&src)
	dst = append(dst, layer...)
	dst = append(dst, " prompt "...)
	dst = strconv.AppendInt(dst, int64(k), 10)
	dst = append(dst, ": "...)
	for i := range 6 + rng.IntN(10) {
		if i > 0 {
			dst = append(dst, ' ')
		}
		dst = append(dst, words[rng.IntN(len(words))]...)
	}
	return dst
}

var words = strings.Fields(`plan route deploy cache neuron layer signal budget latency rollout
	review scale queue index shard replica strategy vision tactic design implement measure
	alert profile memory search cost token model breaker pool`)

func layerIndex(l string) int {
	if len(l) == 2 && l[0] == 'L' && l[1] >= '1' && l[1] <= '5' {
		return int(l[1] - '0')
	}
	return 0
}
