package loadbench

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestParseWrk(t *testing.T) {
	out := []byte(`Running 8s test @ http://127.0.0.1:40000/
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.02ms  600.00us  20.00ms   90.00%
    Req/Sec    30.00k     2.00k   40.00k    70.00%
  480123 requests in 8.00s, 60.00MB read
Requests/sec:  60015.38
Transfer/sec:      7.50MB
`)
	if n, err := parseWrk(out); err != nil || n != 480123 {
		t.Errorf("parseWrk = %v, %v; want 480123", n, err)
	}
	if _, err := parseWrk([]byte("unable to connect to 127.0.0.1:1 Connection refused")); err == nil {
		t.Error("an output without a count parsed")
	}
}

func TestParseVegeta(t *testing.T) {
	rep := []byte(`{"latencies":{"total":1},"requests":1000,"rate":125.1,"throughput":120.2,"success":0.98,"status_codes":{"0":20,"200":980},"errors":["connection refused"]}`)
	if n, err := parseVegeta(rep); err != nil || n != 980 {
		t.Errorf("parseVegeta = %v, %v; want the 980 responses", n, err)
	}
	if _, err := parseVegeta([]byte(`{"requests":5,"status_codes":{"0":5}}`)); err == nil {
		t.Error("a report without responses parsed")
	}
}

func TestEndpoint(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	r, w := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- Endpoint(ctx, w) }()
	url, err := bufio.NewReader(r).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	url = strings.TrimSpace(url)
	go io.Copy(io.Discard, r)
	res, err := http.Get(url + "/anything")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if string(b) != "ok\n" || res.Header.Get("Content-Type") != "text/plain" {
		t.Errorf("GET / = %q (%s)", b, res.Header.Get("Content-Type"))
	}
	ep := &endpoint{url: url}
	c, err := ep.cpu(ctx)
	if err != nil || c <= 0 {
		t.Errorf("cpu = %v, %v", c, err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Endpoint: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("Endpoint did not stop with its context")
	}
}

func TestTable(t *testing.T) {
	res := &Result{Options: Options{Connections: 64, Duration: 8 * time.Second}, LoadBefore: "1 1 1", LoadAfter: "2 2 2", EndpointPID: 7}
	for _, c := range []struct {
		name string
		rps  []float64
		cpu  time.Duration
	}{{"engine", []float64{80, 100, 90}, 4 * time.Second}, {"wrk", []float64{100, 110, 120}, 2 * time.Second}} {
		cl := Client{Name: c.name}
		for _, x := range c.rps {
			cl.Rounds = append(cl.Rounds, Round{Requests: x * 8, RPS: x, CPU: c.cpu, ServerCPU: time.Second})
		}
		res.Clients = append(res.Clients, cl)
	}
	var b strings.Builder
	res.WriteTable(&b)
	lines := strings.Split(b.String(), "\n")
	engine := strings.Fields(lines[2])
	// client, 3 rounds, median, × wrk, req/CPU-s, × wrk, client µs, server µs
	if len(engine) != 10 || engine[4] != "90" || engine[5] != "0.82" || engine[6] != "180" || engine[7] != "0.41" {
		t.Errorf("engine row %q", lines[2])
	}
	if v, _ := strconv.ParseFloat(engine[8], 64); v != 5555.56 { // 4 s / 720 requests
		t.Errorf("client µs/req = %v", engine[8])
	}
}
