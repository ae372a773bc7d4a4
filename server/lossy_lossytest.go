//go:build lossytest

package server

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/hal9-lab/hal9-lab/server/neuron"
	"github.com/hal9-lab/hal9-lab/server/store"
)

// lossyAck makes this test-only build answer a synchronous signal 200
// BEFORE its store write, which follows a second later: a SIGKILL in
// between loses acknowledged signals. It exists to show that the lab's
// acknowledgement-ledger check catches such a loss (lab/faults'
// TestLedgerCatchesLossyServer). Build with `go build -tags lossytest`.
const lossyAck = true

// lossyDelay is how long an acknowledged signal waits for its write.
const lossyDelay = time.Second

func (s *Server) ackBeforeSave(w http.ResponseWriter, sig store.Signal, res neuron.Result, perr error, hops []store.Hop, mems []store.Memory) {
	if perr != nil {
		llmError(perr).write(w)
		return
	}
	writeJSON(w, http.StatusOK, response(sig, res.CacheSummary(), traceOf(res.Hops)))
	go func() {
		time.Sleep(lossyDelay)
		_ = s.save(context.Background(), sig, hops, mems)
	}()
}

func init() {
	fmt.Fprintln(os.Stderr, "hal9: LOSSY TEST BUILD (-tags lossytest): signals are acknowledged before they are written; never run this build for real")
}
