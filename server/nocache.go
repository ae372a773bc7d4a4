package server

import (
	"context"
	"errors"
	"net/http"
	"strings"
)

// noCache reports a request's Cache-Control: no-cache (or no-store): read
// the record from the store, not from the cache in front of it.
func noCache(r *http.Request) bool {
	for _, v := range r.Header.Values("Cache-Control") {
		for _, d := range strings.Split(v, ",") {
			switch strings.ToLower(strings.TrimSpace(d)) {
			case "no-cache", "no-store":
				return true
			}
		}
	}
	return false
}

// storeTimedOut: the store call ran out of the server's own time (the
// client is still there), so the database stopped answering.
func storeTimedOut(r *http.Request, err error) bool {
	return errors.Is(err, context.DeadlineExceeded) && r.Context().Err() == nil
}
