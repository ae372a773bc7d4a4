// Package loadtest has test helpers for the load engine and workloads: a
// loopback HTTP/1.1 server that answers every request with bytes prepared
// in advance and allocates nothing per request, so a benchmark in the same
// process counts the client's allocations alone (an httptest server adds
// a dozen of its own to every request).
package loadtest

import (
	"bufio"
	"bytes"
	"errors"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Respond picks the raw response (status line, header and body, as
// Response builds them) for a request's method and path (with its query).
// It must not keep the slices, nor allocate if the benchmark counts
// allocations.
type Respond func(method, path []byte) []byte

// Response builds a raw HTTP/1.1 response with a Content-Length. Header
// lines are "Name: value".
func Response(status int, body string, header ...string) []byte {
	var b strings.Builder
	b.WriteString("HTTP/1.1 " + strconv.Itoa(status) + " Status\r\n")
	for _, h := range header {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body)
	return []byte(b.String())
}

// Canned starts the server on 127.0.0.1 and returns its base URL; it
// stops when the test ends.
func Canned(tb testing.TB, respond Respond) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = true
			mu.Unlock()
			wg.Go(func() { serve(c, respond) })
		}
	})
	tb.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return "http://" + ln.Addr().String()
}

var errBadRequest = errors.New("bad request")

// serve answers the requests of one connection in order: request line,
// header up to the empty line, Content-Length bytes of body.
func serve(c net.Conn, respond Respond) {
	defer c.Close()
	br := bufio.NewReaderSize(c, 16<<10)
	var method, path []byte
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return
		}
		sp1 := bytes.IndexByte(line, ' ')
		sp2 := bytes.LastIndexByte(line, ' ')
		if sp1 < 0 || sp2 <= sp1 {
			return
		}
		method = append(method[:0], line[:sp1]...)
		path = append(path[:0], line[sp1+1:sp2]...)
		n, err := header(br)
		if err != nil {
			return
		}
		if _, err := br.Discard(n); err != nil {
			return
		}
		if _, err := c.Write(respond(method, path)); err != nil {
			return
		}
	}
}

// header reads the header lines and returns the Content-Length.
func header(br *bufio.Reader) (int, error) {
	n := 0
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return 0, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			return n, nil
		}
		const cl = "content-length:"
		if len(line) > len(cl) && bytes.EqualFold(line[:len(cl)], []byte(cl)) {
			v := bytes.TrimSpace(line[len(cl):])
			if len(v) == 0 || len(v) > 9 {
				return 0, errBadRequest
			}
			n = 0
			for _, d := range v {
				if d < '0' || d > '9' {
					return 0, errBadRequest
				}
				n = n*10 + int(d-'0')
			}
		}
	}
}
