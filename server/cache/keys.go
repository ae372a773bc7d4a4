package cache

import (
	"crypto/sha256"
	"encoding/hex"
	"time"
)

// Key patterns (seed 002), all under the hal9: prefix so a shared Redis can
// be inspected and cleaned by prefix.
const Prefix = "hal9:"

// LLMKey is the response-cache key of one hop: hal9:llm:{layer}:{neuron}:{hash}
// with the first 32 hex digits of sha256(content).
func LLMKey(layer, neuronID, content string) string {
	return Prefix + "llm:" + layer + ":" + neuronID + ":" + hash32(content)
}

// NeuronStateKey is hal9:neuron:{id}:state.
func NeuronStateKey(id string) string { return Prefix + "neuron:" + id + ":state" }

// SignalKey is hal9:signal:{id}.
func SignalKey(id string) string { return Prefix + "signal:" + id }

// MemorySearchKey is hal9:memory:search:{user}:{hash of query}. Memories
// are private to their user, so the user is part of the key: one user's
// cached results are never served to another. Put everything else that
// changes the answer (the limit too) into query, e.g. "q=cache&limit=10".
func MemorySearchKey(userID, query string) string {
	return Prefix + "memory:search:" + userID + ":" + hash32(query)
}

func hash32(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:16])
}

// RecordTTL is how long a signal or neuron-state record is cached (not
// from the seeds; short enough that a missed invalidation heals quickly).
const RecordTTL = 10 * time.Minute

// DefaultTTLs returns the response-cache TTL per layer: L2 10 min, L3 5 min,
// L4 2 min (seed 004); L1 30 s and L5 1 min are ours and configurable (the
// returned map is a fresh copy the caller may change).
func DefaultTTLs() map[string]time.Duration {
	return map[string]time.Duration{
		"L1": 30 * time.Second,
		"L2": 10 * time.Minute,
		"L3": 5 * time.Minute,
		"L4": 2 * time.Minute,
		"L5": time.Minute,
	}
}
