package main

import (
	"context"
	"errors"
)

// runReport is a placeholder until its issue lands; it fails loudly.
func runReport(ctx context.Context, args []string) error {
	return errors.New("report: not implemented yet")
}
