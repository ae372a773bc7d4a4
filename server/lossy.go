//go:build !lossytest

package server

import (
	"net/http"

	"github.com/hal9-lab/hal9-lab/server/neuron"
	"github.com/hal9-lab/hal9-lab/server/store"
)

// lossyAck is a constant false in every build but a `-tags lossytest`
// test binary (lossy_lossytest.go), so the compiler drops the branch that
// uses it: no flag, variable or environment can make a production build
// answer before its store write.
const lossyAck = false

// ackBeforeSave exists only in lossytest builds; never called here.
func (s *Server) ackBeforeSave(http.ResponseWriter, store.Signal, neuron.Result, error, []store.Hop, []store.Memory) {
	panic("ackBeforeSave outside a lossytest build")
}
