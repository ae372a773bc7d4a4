package lab

import (
	"net/http"
	"net/http/httptest"
)

// newTextServer serves body as a Prometheus text exposition.
func newTextServer(body string) *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		_, _ = w.Write([]byte(body))
	}))
}
