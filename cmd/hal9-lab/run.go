package main

import (
	"context"
	"errors"
)

// runRun is a placeholder until its issue lands; it fails loudly.
func runRun(ctx context.Context, args []string) error {
	return errors.New("run: not implemented yet")
}
