package llm

import "strings"

// DefaultModel is the model used when none is configured (sonnet class).
const DefaultModel = "claude-sonnet-4-5"

// price is dollars per 1,000 tokens.
type price struct{ in, out float64 }

// prices by model family, from the original HAL9 source (seeds README).
var prices = []struct {
	family string
	p      price
}{
	{"opus", price{0.015, 0.075}},
	{"sonnet", price{0.003, 0.015}},
	{"haiku", price{0.00025, 0.00125}},
}

// PriceFor returns the dollars per 1K input and output tokens for a model,
// matched by family name anywhere in the model string ("claude-3-5-haiku-…",
// "claude-sonnet-4-5", "opus"), case-insensitively. ok is false for models of
// no known family; their calls cost 0.
func PriceFor(model string) (inPer1K, outPer1K float64, ok bool) {
	m := strings.ToLower(model)
	for _, f := range prices {
		if strings.Contains(m, f.family) {
			return f.p.in, f.p.out, true
		}
	}
	return 0, 0, false
}

// Cost is the dollar cost of a call with the given token counts.
func Cost(model string, tokensIn, tokensOut int) float64 {
	in, out, _ := PriceFor(model)
	return float64(tokensIn)/1000*in + float64(tokensOut)/1000*out
}
