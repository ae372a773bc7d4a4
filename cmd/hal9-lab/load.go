package main

import (
	"context"
	"errors"
)

// runLoad is a placeholder until its issue lands; it fails loudly.
func runLoad(ctx context.Context, args []string) error {
	return errors.New("load: not implemented yet")
}
