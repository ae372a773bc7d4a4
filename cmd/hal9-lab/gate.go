package main

import (
	"context"
	"errors"
)

// runGate is a placeholder until its issue lands; it fails loudly.
func runGate(ctx context.Context, args []string) error {
	return errors.New("gate: not implemented yet")
}
