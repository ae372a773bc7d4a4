// Package redact hides secrets in what the server and the lab print.
// Both may import it; neither imports the other.
package redact

import (
	"net/url"
	"regexp"
	"strings"
)

const mask = "xxxxx"

// secretKeys are the connection parameters that hold a secret: libpq's and
// pgx's password and the client key's passphrase (sslpassword); go-redis
// reads password from the query too.
var secretKeys = map[string]bool{"password": true, "sslpassword": true}

// URL is raw with its passwords replaced by "xxxxx", for logs, error
// messages and reports: the password of the user info (url.URL.Redacted)
// and of the query (?password=, ?sslpassword=). A libpq key=value string
// ("host=db password=…") has its password values masked. A string that does
// not parse as a URL may hold a password in a place these cannot find, so
// it is not echoed.
func URL(raw string) string {
	if raw == "" {
		return ""
	}
	if !strings.Contains(raw, "://") && strings.Contains(raw, "=") {
		return keyValue(raw)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "<a URL that does not parse>"
	}
	if u.RawQuery != "" {
		parts := strings.Split(u.RawQuery, "&")
		for i, p := range parts {
			k, _, _ := strings.Cut(p, "=")
			if key, err := url.QueryUnescape(k); err == nil && secretKeys[strings.ToLower(key)] {
				parts[i] = k + "=" + mask
			}
		}
		u.RawQuery = strings.Join(parts, "&")
	}
	return u.Redacted()
}

// kvSecret is a secret parameter of a key=value connection string: its
// value is a single-quoted string (with \' and \\ escapes) or a word.
var kvSecret = regexp.MustCompile(`(?i)\b((?:ssl)?password\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s']*)`)

func keyValue(raw string) string {
	return kvSecret.ReplaceAllString(raw, "${1}"+mask)
}
