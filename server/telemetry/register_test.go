package telemetry

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestRegisterSharesAndRejectsConflicts(t *testing.T) {
	reg := prometheus.NewRegistry()
	newCounter := func() prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: "hal9_test_total", Help: "h"})
	}
	first := Register(reg, newCounter())
	second := Register(reg, newCounter())
	if first != second {
		t.Fatal("a second identical registration did not return the first collector")
	}
	defer func() {
		if recover() == nil {
			t.Fatal("a conflicting definition (same name, other help) did not panic")
		}
	}()
	Register(reg, prometheus.NewCounter(prometheus.CounterOpts{Name: "hal9_test_total", Help: "other"}))
}
