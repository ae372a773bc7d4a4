package history

import (
	"slices"
	"testing"
)

func TestDespike(t *testing.T) {
	flat := noise(1, 30, 100, 1)
	all := func(n int) []int {
		out := make([]int, n)
		for i := range out {
			out[i] = i
		}
		return out
	}
	without := func(n int, drop ...int) []int {
		return slices.DeleteFunc(all(n), func(i int) bool { return slices.Contains(drop, i) })
	}
	spiked := func(at int, v float64) []float64 {
		x := slices.Clone(flat)
		x[at] = v
		return x
	}
	step := slices.Clone(flat)
	for i := 15; i < 30; i++ {
		step[i] += 20 // 20 σ
	}
	cases := []struct {
		name string
		x    []float64
		want []int
	}{
		{"flat", flat, all(30)},
		{"a spike inside", spiked(10, 150), without(30, 10)},
		{"a spike on the last night", spiked(29, 150), without(30, 29)},
		{"a spike on the first night", spiked(0, 50), without(30, 0)},
		{"a step that stays, however large", step, all(30)},
		{"the first night of a step is a bad night until a second follows", step[:16], without(16, 15)},
		{"too short to judge", []float64{1, 100, 1}, all(3)},
		{"constant", make([]float64, 10), all(10)},
	}
	for _, c := range cases {
		if got := despike(c.x); !slices.Equal(got, c.want) {
			t.Errorf("%s: kept %v, want %v", c.name, got, c.want)
		}
	}
}
