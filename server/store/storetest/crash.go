package storetest

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/hal9-lab/hal9-lab/server/store"
)

// Environment of the child process of Crash.
const (
	envCrashChild  = "HAL9_STORETEST_CRASH_CHILD"
	envCrashTarget = "HAL9_STORETEST_CRASH_TARGET"
)

// CrashOptions tune Crash.
type CrashOptions struct {
	Writers     int  // concurrent writers in the child (default 32)
	Acks        int  // acknowledged writes to wait for before the kill (default 400)
	WantBatches bool // the store group-commits: require batches of more than one write
}

// Crash is the durability test under a crash: a child process (this test
// binary, re-run for this test alone) opens the store at a target, runs
// many concurrent writers and prints each write it had acknowledged; the
// parent SIGKILLs it mid-stream (with commits in flight), opens the store
// again and requires every acknowledged write, hops and memory included.
//
// Call it first thing in a test: in the child it never returns. newTarget
// makes the database (a file path, a PostgreSQL URL) in the parent; open
// opens a store on a target in either process.
func Crash(t *testing.T, newTarget func(t *testing.T) string,
	open func(ctx context.Context, target string) (store.Store, error), o CrashOptions) {
	if o.Writers <= 0 {
		o.Writers = 32
	}
	if o.Acks <= 0 {
		o.Acks = 400
	}
	if os.Getenv(envCrashChild) == t.Name() {
		crashChild(open, os.Getenv(envCrashTarget), o)
		os.Exit(3) // not reached: the parent kills the child first
	}
	target := newTarget(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^"+t.Name()+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), envCrashChild+"="+t.Name(), envCrashTarget+"="+target)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acked := map[string]bool{}
	var batches, batched float64
	sc := bufio.NewScanner(out)
	for len(acked) < o.Acks && sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 2 && f[0] == "ack":
			acked[f[1]] = true
		case len(f) == 3 && f[0] == "batches":
			fmt.Sscan(f[1], &batches)
			fmt.Sscan(f[2], &batched)
		}
	}
	// Kill while the writers are still writing: commits are in flight.
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("kill the writer process: %v", err)
	}
	for sc.Scan() { // acks printed before the kill landed count too
		if f := strings.Fields(sc.Text()); len(f) == 2 && f[0] == "ack" {
			acked[f[1]] = true
		}
	}
	err = cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("the writer process ended by itself (%v) before the kill: it did not write long enough", err)
	}
	if len(acked) < o.Acks {
		t.Fatalf("only %d writes acknowledged before the child ended; want %d", len(acked), o.Acks)
	}
	if o.WantBatches && batched <= batches {
		t.Fatalf("the child committed %v writes in %v commits: no group commit happened", batched, batches)
	}
	t.Logf("%d writes acknowledged before SIGKILL; %v writes in %v commits", len(acked), batched, batches)

	s, err := open(ctx, target)
	if err != nil {
		t.Fatalf("reopen after the crash: %v", err)
	}
	defer s.Close()
	missing := 0
	for id := range acked {
		sg, hs, err := s.GetSignal(ctx, id)
		if err != nil || sg.Status != store.SignalProcessed || len(hs) != 3 {
			missing++
			if missing <= 5 {
				t.Errorf("acknowledged signal %s after the crash: %v, status %q, %d hops", id, err, sg.Status, len(hs))
			}
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d acknowledged writes lost", missing, len(acked))
	}
}

// crashChild writes until killed, printing "ack ID" after each write the
// store acknowledged and, every 50 acks, "batches COMMITS WRITES" from the
// store's hal9_db_batch_size.
func crashChild(open func(ctx context.Context, target string) (store.Store, error), target string, o CrashOptions) {
	ctx := context.Background()
	s, err := open(ctx, target)
	if err != nil {
		fmt.Fprintln(os.Stderr, "crash child: open:", err)
		os.Exit(2)
	}
	var mu sync.Mutex
	n := 0
	report := func(id string) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(os.Stdout, "ack %s\n", id) // os.Stdout is unbuffered: the line is out before the next write starts
		n++
		if n%50 == 0 {
			if c, ok := s.(interface{ Collector() prometheus.Collector }); ok {
				count, sum := batchStats(c.Collector())
				fmt.Fprintf(os.Stdout, "batches %d %d\n", count, sum)
			}
		}
	}
	deadline := time.Now().Add(90 * time.Second) // bounded even if no one kills us
	var wg sync.WaitGroup
	for w := range o.Writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Now().Before(deadline); i++ {
				id := fmt.Sprintf("crash-%d-%d", w, i)
				sg := signal(id, now())
				sg.Status, sg.CompletedAt, sg.Output = store.SignalProcessed, now(), "survived"
				mem := store.Memory{NeuronID: "n", Layer: "L1", SignalID: id, Content: "crash memory " + id, CreatedAt: now()}
				if err := s.SaveSignal(ctx, sg, hops(id, 3), []store.Memory{mem}); err != nil {
					fmt.Fprintln(os.Stderr, "crash child: save:", err)
					continue
				}
				report(id)
			}
		}()
	}
	wg.Wait()
	os.Exit(4)
}

func batchStats(c prometheus.Collector) (count, sum uint64) {
	ch := make(chan prometheus.Metric, 64)
	go func() { c.Collect(ch); close(ch) }()
	for m := range ch {
		if !strings.Contains(m.Desc().String(), `"hal9_db_batch_size"`) {
			continue
		}
		var d dto.Metric
		if m.Write(&d) == nil && d.Histogram != nil {
			count, sum = d.Histogram.GetSampleCount(), uint64(d.Histogram.GetSampleSum())
		}
	}
	return count, sum
}
