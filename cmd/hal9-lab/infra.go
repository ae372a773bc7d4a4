package main

import (
	"context"
	"errors"
)

// runInfra is a placeholder until its issue lands; it fails loudly.
func runInfra(ctx context.Context, args []string) error {
	return errors.New("infra: not implemented yet")
}
