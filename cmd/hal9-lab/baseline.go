package main

import (
	"context"
	"errors"
)

// runBaseline is a placeholder until its issue lands; it fails loudly.
func runBaseline(ctx context.Context, args []string) error {
	return errors.New("baseline: not implemented yet")
}
