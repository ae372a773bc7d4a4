// Package store defines HAL9's persistence: users, API keys, neurons,
// signals with their hop traces, and neuron memories with full-text search.
// Implementations live in subpackages, one per database (sqlite, postgres),
// and all of them pass the contract suite in storetest.
package store

import (
	"context"
	"errors"
	"time"
)

// Errors every implementation returns (wrapped) so callers can map them to
// HTTP statuses without knowing the database.
var (
	// ErrNotFound: the record does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict: a unique key (username, email, id) is already taken.
	// Implementations return it as a *ConflictError naming the key.
	ErrConflict = errors.New("conflict")
	// ErrUnavailable: the database cannot be reached right now; retry later.
	ErrUnavailable = errors.New("store unavailable")
	// ErrTokenReused: a refresh token that was already exchanged was
	// presented again. Its whole family has just been revoked.
	ErrTokenReused = errors.New("refresh token already used")
	// ErrTokenRevoked: the refresh token's family was revoked (logout or an
	// earlier reuse) or the token expired.
	ErrTokenRevoked = errors.New("refresh token revoked")
)

// ConflictError is the ErrConflict of a unique key: errors.Is(err,
// ErrConflict) holds, and errors.As finds which key was taken.
type ConflictError struct {
	// Field is the column of the violated UNIQUE constraint ("username",
	// "email", "hash"); "" for a primary key or a key of several columns.
	Field string
	// Detail is the database's message.
	Detail string
}

func (e *ConflictError) Error() string { return ErrConflict.Error() + ": " + e.Detail }

// Is makes a *ConflictError an ErrConflict.
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }

// User is an account that can log in.
type User struct {
	ID           string
	Username     string
	Email        string
	PasswordHash string
	CreatedAt    time.Time
}

// APIKey authenticates a user without a password. Only its hash is stored;
// Prefix (the first characters of the key) lets a user tell keys apart.
type APIKey struct {
	ID         string
	UserID     string
	Name       string
	Prefix     string
	Hash       string
	CreatedAt  time.Time
	LastUsedAt time.Time // zero when never used
}

// Neuron is the persisted identity and state of one neuron.
type Neuron struct {
	ID        string
	Layer     string // "L1".."L5"
	State     string // "active", "degraded", "stopped"
	UpdatedAt time.Time
}

// Signal statuses.
const (
	SignalPending   = "pending"
	SignalProcessed = "processed"
	SignalFailed    = "failed"
)

// InterruptedError is the error FailPendingSignals records.
const InterruptedError = "not completed: the server processing it stopped; resubmit"

// Signal is one request that travelled through the neuron hierarchy.
type Signal struct {
	ID          string
	UserID      string // empty for API-key-less internal use
	Layer       string // entry layer, "L1".."L5"
	NeuronID    string // entry neuron
	Content     string
	Output      string
	Status      string // SignalPending, SignalProcessed, SignalFailed
	Error       string
	TokensIn    int
	TokensOut   int
	CostUSD     float64
	DurationMS  float64
	CreatedAt   time.Time // also the partition key in PostgreSQL
	CompletedAt time.Time // zero while pending
}

// Hop is one neuron's part in a signal's trace.
type Hop struct {
	SignalID   string
	Seq        int // 0-based order in the trace
	NeuronID   string
	Layer      string
	Cache      string // "hit" or "miss"
	TokensIn   int
	TokensOut  int
	CostUSD    float64
	DurationMS float64
	Error      string
}

// Memory is what a neuron remembers of a processed signal; searchable.
type Memory struct {
	ID        int64
	UserID    string // the signal's user: SaveSignal sets it from Signal.UserID
	NeuronID  string
	Layer     string
	SignalID  string
	Content   string
	CreatedAt time.Time
	Rank      float64 // search relevance, higher is better; 0 outside search
}

// RefreshToken is the server-side record of one refresh token. Tokens of one
// login form a family: each refresh retires the token presented and adds its
// successor, so only the newest token of a family is ever accepted.
type RefreshToken struct {
	ID        string // the token's jti
	FamilyID  string // the login it descends from
	UserID    string
	CreatedAt time.Time
	ExpiresAt time.Time
}

// LLMSpend is one bucket of LLM spend the servers' cost ledger keeps
// (server/llm StoredSpend): Scope "" is everyone, else a user id; Kind
// "minute" or "hour"; once Expires passes, the row is no longer read.
type LLMSpend struct {
	Scope   string
	Kind    string
	Start   time.Time
	Expires time.Time
	NanoUSD int64 // nano-dollars
}

// Store is HAL9's persistence. Every method is safe for concurrent use.
// Writes on the request path are group-committed: concurrent writers share
// one transaction and one WAL sync, and each returns once its commit is durable.
type Store interface {
	// Migrate applies the embedded migrations; idempotent.
	Migrate(ctx context.Context) error
	// Ping checks that the database answers.
	Ping(ctx context.Context) error
	// Close releases connections; acknowledged writes are durable before it returns.
	Close() error

	CreateUser(ctx context.Context, u User) error // ErrConflict (Field username or email) on a duplicate
	UserByID(ctx context.Context, id string) (User, error)
	UserByUsername(ctx context.Context, username string) (User, error)

	CreateAPIKey(ctx context.Context, k APIKey) error
	APIKeyByHash(ctx context.Context, hash string) (APIKey, error)
	ListAPIKeys(ctx context.Context, userID string) ([]APIKey, error)
	DeleteAPIKey(ctx context.Context, userID, id string) error // ErrNotFound when not the user's
	TouchAPIKey(ctx context.Context, id string, at time.Time) error

	UpsertNeurons(ctx context.Context, ns []Neuron) error
	ListNeurons(ctx context.Context) ([]Neuron, error)

	// SaveSignal inserts or replaces a signal (matched by ID and CreatedAt)
	// together with its hops and memories, in one transaction. An async
	// signal is saved pending first and saved again when it completes.
	SaveSignal(ctx context.Context, s Signal, hops []Hop, mems []Memory) error
	// GetSignal returns the signal and its hops ordered by Seq.
	GetSignal(ctx context.Context, id string) (Signal, []Hop, error)

	// FailPendingSignals marks every signal still pending that was created
	// before the given time as failed (error InterruptedError, CompletedAt
	// now) and returns how many it changed. Servers call it with a cut-off
	// far in the past: nothing else would ever finish those signals.
	FailPendingSignals(ctx context.Context, before time.Time) (int, error)
	// FailSignals marks those of the given signals that are still pending
	// as failed (error InterruptedError, CompletedAt now), in one write,
	// and returns how many it changed: a server whose drain deadline passed
	// fails the async signals it will never process.
	FailSignals(ctx context.Context, ids []string) (int, error)

	// CreateRefreshToken stores the first token of a new family (a login).
	CreateRefreshToken(ctx context.Context, t RefreshToken) error
	// RotateRefreshToken retires the token oldID and stores next, its
	// successor in the same family, atomically, and returns next.
	// next.FamilyID and next.UserID must be oldID's. A replay of oldID less
	// than grace after its rotation, while the successor that rotation
	// stored is unused, unexpired and its family not revoked, is a client
	// retrying after it lost the answer: nothing is written and that
	// successor is returned instead of next. Errors: ErrNotFound (unknown
	// token, or next does not belong to its family); ErrTokenRevoked (the
	// family was revoked, or the token expired before at); ErrTokenReused
	// (any other replay of a retired token: the whole family is revoked,
	// durably, before the error is returned).
	RotateRefreshToken(ctx context.Context, oldID string, next RefreshToken, at time.Time, grace time.Duration) (RefreshToken, error)
	// RevokeRefreshFamily revokes every token of the family (logout);
	// revoking a revoked family is not an error, an unknown one is ErrNotFound.
	RevokeRefreshFamily(ctx context.Context, familyID string, at time.Time) error
	// DeleteExpiredRefreshTokens removes tokens that expired before the
	// given time and returns how many.
	DeleteExpiredRefreshTokens(ctx context.Context, before time.Time) (int, error)

	// EnsureSecret returns the secret kept under name, storing candidate
	// first when there is none: the first caller wins, and every later one,
	// in any process on the same database, gets the same bytes.
	EnsureSecret(ctx context.Context, name string, candidate []byte) ([]byte, error)

	// AddLLMSpend adds each row's NanoUSD to the kept total of its (Scope,
	// Kind, Start), creating the row (with its Expires), all in one
	// transaction: the ledger writes its spend in aggregate, a few rows
	// every few seconds, never one write per LLM call.
	AddLLMSpend(ctx context.Context, rows []LLMSpend) error
	// LLMSpend returns the rows not expired at now (Expires after it):
	// everyone's (Scope "") only, or, with users, every scope's.
	LLMSpend(ctx context.Context, now time.Time, users bool) ([]LLMSpend, error)
	// DeleteLLMSpend removes the rows expired at now and returns how many.
	DeleteLLMSpend(ctx context.Context, now time.Time) (int, error)

	// SearchMemories runs a full-text query over userID's memories only;
	// results best first. An empty userID matches nothing (memories without
	// a user are never returned).
	SearchMemories(ctx context.Context, userID, query string, limit int) ([]Memory, error)
}
