package llm

import (
	"errors"
	"fmt"
	"time"
)

var (
	// ErrRateLimited: the provider refused the call for rate; retry later.
	// Errors carrying a Retry-After are *RateLimitError, which matches this
	// with errors.Is.
	ErrRateLimited = errors.New("llm: rate limited")
	// ErrTimeout: the Guard's per-call timeout fired (the caller's own
	// deadline is reported as the context's error instead).
	ErrTimeout = errors.New("llm: call timed out")
	// ErrCircuitOpen: the layer's circuit breaker is open (or half-open with
	// its trial calls in flight); the provider was not called.
	ErrCircuitOpen = errors.New("llm: circuit breaker open")
	// ErrBudgetExceeded: the Ledger's budget is spent (or what is left
	// cannot hold the call's worst case) and Budgets.Enforce is on.
	// Errors carrying the details are *BudgetError.
	ErrBudgetExceeded = errors.New("llm: cost budget exceeded")
	// ErrUserLimit: this user's share of the budget is spent, or the user
	// has its cap of calls in flight (Budgets.Enforce on); other users'
	// calls still pass. Errors carrying the details are *UserLimitError.
	ErrUserLimit = errors.New("llm: over this user's limit")
	// ErrUnknownLayer: Request.Layer is not one of L1..L5.
	ErrUnknownLayer = errors.New("llm: unknown layer (want L1, L2, L3, L4 or L5)")
)

// RateLimitError is a 429 with the provider's Retry-After (0 when unknown).
type RateLimitError struct {
	RetryAfter time.Duration
}

func (e *RateLimitError) Error() string {
	if e.RetryAfter > 0 {
		return fmt.Sprintf("llm: rate limited (retry after %s)", e.RetryAfter)
	}
	return "llm: rate limited"
}

// Unwrap makes errors.Is(err, ErrRateLimited) true.
func (e *RateLimitError) Unwrap() error { return ErrRateLimited }

// RetryAfter returns the Retry-After carried by a rate-limit error, a
// budget error or a user-limit error.
func RetryAfter(err error) (time.Duration, bool) {
	var rl *RateLimitError
	if errors.As(err, &rl) && rl.RetryAfter > 0 {
		return rl.RetryAfter, true
	}
	var be *BudgetError
	if errors.As(err, &be) && be.RetryAfter > 0 {
		return be.RetryAfter, true
	}
	var ue *UserLimitError
	if errors.As(err, &ue) && ue.RetryAfter > 0 {
		return ue.RetryAfter, true
	}
	return 0, false
}

// APIError is a provider failure with its HTTP status (simulated: 500..529).
type APIError struct {
	Status  int
	Type    string // the provider's error type, e.g. "overloaded_error"
	Message string
}

func (e *APIError) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("llm: provider error %d", e.Status)
	}
	return fmt.Sprintf("llm: provider error %d: %s", e.Status, e.Message)
}
