// Package redact hides secrets in what the server and the lab print.
// Both may import it; neither imports the other.
package redact

import "net/url"

// URL is raw with its password replaced by "xxxxx" (url.URL.Redacted), for
// logs, error messages and reports. A string that does not parse as a URL
// may hold a password in a place Redacted cannot find, so it is not echoed.
func URL(raw string) string {
	if raw == "" {
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "<a URL that does not parse>"
	}
	return u.Redacted()
}
