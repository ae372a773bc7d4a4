package redact

import "testing"

func TestURL(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"postgres://hal9:s3cret@db:5432/hal9?sslmode=disable", "postgres://hal9:xxxxx@db:5432/hal9?sslmode=disable"},
		{"redis://:pw@127.0.0.1:6379/0", "redis://:xxxxx@127.0.0.1:6379/0"},
		{"postgres://hal9@db/hal9", "postgres://hal9@db/hal9"},
		{"sqlite://./data/hal9.db", "sqlite://./data/hal9.db"},
		{"postgres://u:p@[::1:5432/x", "<a URL that does not parse>"},
	} {
		if got := URL(tc.in); got != tc.want {
			t.Errorf("URL(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
