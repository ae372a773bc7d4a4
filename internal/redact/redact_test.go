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
		// Passwords in the query, as libpq and pgx accept them.
		{"postgres://hal9@db/hal9?password=s3cret&sslmode=require", "postgres://hal9@db/hal9?password=xxxxx&sslmode=require"},
		{"postgres://db/hal9?sslmode=verify-full&sslpassword=keypass&user=hal9", "postgres://db/hal9?sslmode=verify-full&sslpassword=xxxxx&user=hal9"},
		{"postgresql://u:p@db/x?PASSWORD=a%26b", "postgresql://u:xxxxx@db/x?PASSWORD=xxxxx"},
		{"redis://db:6379/0?password=pw", "redis://db:6379/0?password=xxxxx"},
		// key=value connection strings (libpq's other form).
		{"host=db user=hal9 password=s3cret dbname=hal9", "host=db user=hal9 password=xxxxx dbname=hal9"},
		{"host=db password = 's3 cr\\'et' sslpassword=kp sslmode=require", "host=db password = xxxxx sslpassword=xxxxx sslmode=require"},
		{"user=hal9 dbname=hal9", "user=hal9 dbname=hal9"},
	} {
		if got := URL(tc.in); got != tc.want {
			t.Errorf("URL(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
