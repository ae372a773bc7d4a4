package ftsquery

import "testing"

func TestFTS5(t *testing.T) {
	cases := []struct{ in, want string }{
		{"", ""},
		{"   ", ""},
		{`"`, ""},
		{"quantum", `"quantum"`},
		{"quantum physics", `"quantum" "physics"`},
		{`a AND OR NOT`, `"a" "AND" "OR" "NOT"`},
		{`NEAR(a b)`, `"NEAR" "a" "b"`},
		{`col:quantum*`, `"col" "quantum"`},
		{`it's`, `"it" "s"`},
		{"café 日本語", `"café" "日本語"`},
		{"nul\x00byte", `"nul" "byte"`},
		{string([]byte{0xff, 'q'}), `"q"`},
		{"😀", ""},
	}
	for _, c := range cases {
		if got := FTS5(c.in); got != c.want {
			t.Errorf("FTS5(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestClean(t *testing.T) {
	if got := Clean(" a\x00b\xff "); got != "a b" {
		t.Fatalf("Clean = %q, want %q", got, "a b")
	}
}
