package server

import (
	"errors"
	"io"
	"net/http"
	"os"
	"sync"
	"time"
)

// bodyDeadline gives a request body d to arrive, counted from when the
// handler chain starts (the headers had the http.Server's
// ReadHeaderTimeout): a client that trickles its body is cut off with 408.
// The deadline is lifted as soon as the body has been read, because
// net/http cancels a request's context when a read deadline passes while
// the handler still runs (its background read of the connection fails):
// http.Server.ReadTimeout would cut a synchronous L5 signal that takes
// minutes. Requests without a body get no deadline at all.
func bodyDeadline(d time.Duration, next http.Handler) http.Handler {
	if d <= 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody {
			next.ServeHTTP(w, r)
			return
		}
		rc := http.NewResponseController(w)
		if rc.SetReadDeadline(time.Now().Add(d)) == nil {
			r.Body = &deadlineBody{ReadCloser: r.Body, lift: func() { rc.SetReadDeadline(time.Time{}) }}
		}
		next.ServeHTTP(w, r)
	})
}

// deadlineBody lifts the read deadline once the body is read (EOF), fails
// or is closed.
type deadlineBody struct {
	io.ReadCloser
	once sync.Once
	lift func()
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && !isTimeout(err) {
		b.once.Do(b.lift)
	}
	return n, err
}

func (b *deadlineBody) Close() error {
	b.once.Do(b.lift)
	return b.ReadCloser.Close()
}

// isTimeout reports a read cut by the body deadline.
func isTimeout(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }
