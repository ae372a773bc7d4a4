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
	"io"
	"net"
	"slices"
	"strconv"
	"sync"
	"testing"
)

// Request is what Respond sees of a request; its slices are valid during
// the call only.
type Request struct {
	Method, Path, Body []byte // Path with its query
	Header             []byte // the header lines as received
}

// Respond returns the raw response (status line, header and body, as
// Response builds them) to a request: bytes prepared in advance, or built
// by appending to scratch (the connection's own buffer, reused). It is
// called by many connections at once.
type Respond func(r Request, scratch []byte) []byte

// Response builds a raw HTTP/1.1 response with a Content-Length. Header
// lines are "Name: value".
func Response(status int, body string, header ...string) []byte {
	return AppendResponse(nil, status, header, []byte(body))
}

// AppendResponse appends a raw HTTP/1.1 response to dst: the status, the
// header lines, a Content-Length and the body, given in pieces (without
// allocating when dst has room).
func AppendResponse(dst []byte, status int, header []string, body ...[]byte) []byte {
	dst = append(dst, "HTTP/1.1 "...)
	dst = strconv.AppendInt(dst, int64(status), 10)
	dst = append(dst, " Status\r\n"...)
	for _, h := range header {
		dst = append(append(dst, h...), "\r\n"...)
	}
	n := 0
	for _, b := range body {
		n += len(b)
	}
	dst = append(dst, "Content-Length: "...)
	dst = strconv.AppendInt(dst, int64(n), 10)
	dst = append(dst, "\r\n\r\n"...)
	for _, b := range body {
		dst = append(dst, b...)
	}
	return dst
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
	var method, path, body, hdr []byte
	scratch := make([]byte, 0, 64<<10)
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
		n, h, err := header(br, hdr[:0])
		hdr = h
		if err != nil {
			return
		}
		body = slices.Grow(body[:0], n)[:n]
		if _, err := io.ReadFull(br, body); err != nil {
			return
		}
		if _, err := c.Write(respond(Request{Method: method, Path: path, Body: body, Header: hdr}, scratch[:0])); err != nil {
			return
		}
	}
}

// header reads the header lines, appending them to hdr, and returns the
// Content-Length.
func header(br *bufio.Reader, hdr []byte) (int, []byte, error) {
	n := 0
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return 0, hdr, err
		}
		hdr = append(hdr, line...)
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			return n, hdr, nil
		}
		const cl = "content-length:"
		if len(line) > len(cl) && bytes.EqualFold(line[:len(cl)], []byte(cl)) {
			v := bytes.TrimSpace(line[len(cl):])
			if len(v) == 0 || len(v) > 9 {
				return 0, hdr, errBadRequest
			}
			n = 0
			for _, d := range v {
				if d < '0' || d > '9' {
					return 0, hdr, errBadRequest
				}
				n = n*10 + int(d-'0')
			}
		}
	}
}
