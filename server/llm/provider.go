// Package llm provides the language-model side of a neuron: the Provider
// interface, a simulated provider (latency, tokens, prices, rate limits,
// failures), a real Messages-API provider, a guard (timeout and circuit
// breaker) around any provider, and the cost ledger with its budgets.
package llm

import (
	"context"
	"time"
)

// Request is one completion asked of a model.
type Request struct {
	Model     string // empty means the provider's default
	Layer     string // "L1".."L5": latency profile and metric label
	NeuronID  string
	System    string
	Prompt    string
	MaxTokens int
}

// Response is a completion with its accounting.
type Response struct {
	Text      string
	Model     string
	TokensIn  int
	TokensOut int
	CostUSD   float64
	Duration  time.Duration
}

// Provider completes prompts.
type Provider interface {
	Complete(ctx context.Context, req Request) (Response, error)
}

type userKey struct{}

// WithUser names the user an LLM call is made for: the Guard charges the
// call to that user's share of the budget and call cap.
func WithUser(ctx context.Context, userID string) context.Context {
	return context.WithValue(ctx, userKey{}, userID)
}

// UserFrom is the user WithUser named, "" when none.
func UserFrom(ctx context.Context) string {
	u, _ := ctx.Value(userKey{}).(string)
	return u
}
