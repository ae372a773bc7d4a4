// Package auth signs users up and in: bcrypt password hashes, HS256 JWT
// access and refresh tokens, and API keys stored only as SHA-256 hashes.
// It reads and writes through store.Store; turning its errors into HTTP
// responses is the server's job.
package auth

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/bcrypt"

	"github.com/hal9-lab/hal9-lab/server/store"
)

// Errors, wrapped with a message that names the field or the reason.
var (
	// ErrInvalidCredentials: unknown username or wrong password (deliberately not saying which).
	ErrInvalidCredentials = errors.New("invalid username or password")
	// ErrInvalidToken: a token or API key that is malformed, forged, expired, of the wrong type or revoked.
	ErrInvalidToken = errors.New("invalid token")
	// ErrTokenExpired is an ErrInvalidToken whose only fault is its age.
	ErrTokenExpired = fmt.Errorf("%w: expired", ErrInvalidToken)
	// ErrMissingCredentials: neither Authorization: Bearer nor X-API-Key was sent.
	ErrMissingCredentials = errors.New("missing credentials: send Authorization: Bearer <token> or X-API-Key: <key>")
	// ErrWeakPassword: the password is too short. It is also an ErrInvalidInput.
	ErrWeakPassword = errors.New("weak password")
	// ErrInvalidInput: a field failed validation; the message names it.
	ErrInvalidInput = errors.New("invalid input")
	// ErrBusy: every bcrypt worker and queue place is taken; the login or
	// registration was refused at once instead of queueing (retry shortly).
	ErrBusy = errors.New("password hashing is at capacity")
)

// TakenError is Register's refusal of a username or email already
// registered. It is a store.ErrConflict; its message names the field.
type TakenError struct {
	Field string // "username" or "email"; "" when the store did not say which
	Value string
}

func (e *TakenError) Error() string {
	switch e.Field {
	case "email":
		return "email: " + e.Value + " is already registered"
	case "username":
		return "username: " + e.Value + " is taken"
	}
	return "username or email already registered"
}

// Is makes a *TakenError a store.ErrConflict.
func (e *TakenError) Is(target error) bool { return target == store.ErrConflict }

// Failure is a refused credential. Reason is the label it is counted under
// in hal9_auth_failures_total (ReasonExpired, ReasonWrongType, …), for
// callers that explain the refusal; the message and the sentinel errors
// (errors.Is) are Err's.
type Failure struct {
	Reason string
	Err    error
}

func (f *Failure) Error() string { return f.Err.Error() }
func (f *Failure) Unwrap() error { return f.Err }

// FailureReason is the Reason of a *Failure in err's chain, "" if none.
func FailureReason(err error) string {
	if f := (*Failure)(nil); errors.As(err, &f) {
		return f.Reason
	}
	return ""
}

// Defaults from the seeds (HAL9's production values).
const (
	DefaultAccessTTL     = 15 * time.Minute
	DefaultRefreshTTL    = 7 * 24 * time.Hour
	DefaultIssuer        = "hal9"
	DefaultTouchInterval = time.Minute
	MinSecretLen         = 32
	// ClockSkew is how far iat, nbf and exp may be off between the server
	// that signed a token and the one checking it (replicas' clocks).
	ClockSkew = 30 * time.Second

	// APIKeyPrefix starts every API key.
	APIKeyPrefix = "hal9_"
	// apiKeyBytes of randomness, base64url without padding: 43 characters.
	apiKeyBytes      = 32
	apiKeyLen        = len(APIKeyPrefix) + 43
	displayPrefixLen = len(APIKeyPrefix) + 6
	// MaxPasswordBytes is bcrypt's input limit; longer passwords are refused
	// rather than silently truncated.
	MaxPasswordBytes = 72
	MinPasswordChars = 8
)

// The refresh reuse grace (Options.ReuseGrace): the default covers a
// client's retry after a timeout or a dropped mobile connection, and two
// tabs refreshing at once, while a thief replaying a stolen token later
// still revokes the login; longer than the maximum would blunt that.
const (
	DefaultReuseGrace = 10 * time.Second
	MaxReuseGrace     = time.Minute
)

// Token types, in the token_type claim.
const (
	TypeAccess  = "access"
	TypeRefresh = "refresh"
)

// Authentication methods in Principal.Method.
const (
	MethodToken  = "token"
	MethodAPIKey = "api_key"
)

// Failure reasons, the fixed label set of hal9_auth_failures_total.
const (
	ReasonMissing      = "missing"
	ReasonInvalidToken = "invalid_token"
	ReasonExpired      = "expired"
	ReasonWrongType    = "wrong_type"
	ReasonBadPassword  = "bad_password"
	ReasonUnknownUser  = "unknown_user"
	ReasonBadAPIKey    = "bad_api_key"
	ReasonReused       = "reused"  // a retired refresh token presented again
	ReasonRevoked      = "revoked" // a refresh token of a logged-out or revoked family
)

var reasons = []string{ReasonMissing, ReasonInvalidToken, ReasonExpired, ReasonWrongType, ReasonBadPassword, ReasonUnknownUser,
	ReasonBadAPIKey, ReasonReused, ReasonRevoked}

// Options configure a Service. Secret is required; the rest have defaults.
type Options struct {
	Secret     []byte        // HS256 key, at least 32 bytes
	AccessTTL  time.Duration // default 15m
	RefreshTTL time.Duration // default 7 days
	BcryptCost int           // default bcrypt.DefaultCost (10); tests use bcrypt.MinCost
	Issuer     string        // iss claim, default "hal9"
	// TouchInterval: an API key's LastUsedAt is written at most this often
	// (default 1m), so authenticating is not a database write per request.
	TouchInterval time.Duration
	// ReuseGrace: a refresh token presented again less than this after it
	// was rotated, while its successor is unused, is a client retrying a
	// lost answer and gets that successor again (0: none, every replay
	// revokes the login). The server's default is DefaultReuseGrace.
	ReuseGrace time.Duration
	// HashWorkers bcrypt hashes or comparisons run at once (default
	// GOMAXPROCS); HashQueue more may wait for one (default: as many as
	// the workers get through in about DefaultHashQueueWait, measured at
	// start). Past both, Login and Register return ErrBusy at once.
	HashWorkers, HashQueue int
	Now                    func() time.Time // default time.Now; tests inject a clock
	Logger                 *slog.Logger     // default: discard
}

// Tokens is what Login and Refresh hand out.
type Tokens struct {
	AccessToken  string
	RefreshToken string
	ExpiresIn    int // seconds until AccessToken expires
}

// Principal is who made a request.
type Principal struct {
	UserID   string
	Username string // set for tokens; empty for API keys (look the user up if needed)
	Method   string // MethodToken or MethodAPIKey
	APIKeyID string // set for MethodAPIKey
}

// Service implements registration, login, tokens and API keys.
type Service struct {
	st       store.Store
	opts     Options
	hashes   *hashPool
	verified tokenCache
	failures *prometheus.CounterVec
	dummy    []byte // a bcrypt hash compared against for unknown users, so both paths cost the same
	parser   *jwt.Parser
	log      *slog.Logger
}

// NewService checks opts and registers hal9_auth_failures_total{reason} on
// reg (nil: not registered).
func NewService(st store.Store, opts Options, reg prometheus.Registerer) (*Service, error) {
	if st == nil {
		return nil, errors.New("auth: nil store")
	}
	if len(opts.Secret) < MinSecretLen {
		return nil, fmt.Errorf("auth: JWT secret is %d bytes, need at least %d (e.g. `openssl rand -hex 32`)", len(opts.Secret), MinSecretLen)
	}
	if opts.AccessTTL == 0 {
		opts.AccessTTL = DefaultAccessTTL
	}
	if opts.RefreshTTL == 0 {
		opts.RefreshTTL = DefaultRefreshTTL
	}
	if opts.AccessTTL < time.Second || opts.RefreshTTL < time.Second {
		return nil, fmt.Errorf("auth: token lifetimes must be at least 1s (access %v, refresh %v)", opts.AccessTTL, opts.RefreshTTL)
	}
	if opts.BcryptCost == 0 {
		opts.BcryptCost = bcrypt.DefaultCost
	}
	if opts.BcryptCost < bcrypt.MinCost || opts.BcryptCost > bcrypt.MaxCost {
		return nil, fmt.Errorf("auth: bcrypt cost %d outside %d..%d", opts.BcryptCost, bcrypt.MinCost, bcrypt.MaxCost)
	}
	if opts.Issuer == "" {
		opts.Issuer = DefaultIssuer
	}
	if opts.TouchInterval <= 0 {
		opts.TouchInterval = DefaultTouchInterval
	}
	if opts.ReuseGrace < 0 || opts.ReuseGrace > MaxReuseGrace {
		return nil, fmt.Errorf("auth: refresh reuse grace %v outside 0..%v (a longer one lets a stolen token be replayed unnoticed for longer)", opts.ReuseGrace, MaxReuseGrace)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	opts.Secret = append([]byte(nil), opts.Secret...)

	began := time.Now()
	dummy, err := bcrypt.GenerateFromPassword([]byte("timing-equaliser"), opts.BcryptCost)
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	hashes, err := newHashPool(opts.HashWorkers, opts.HashQueue, time.Since(began), reg)
	if err != nil {
		return nil, err
	}
	log.Debug("password hashing pool", "workers", cap(hashes.run), "queue", cap(hashes.admit)-cap(hashes.run), "bcrypt_cost", opts.BcryptCost)
	failures := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "hal9_auth_failures_total",
		Help: "Failed authentications by reason (missing, invalid_token, expired, wrong_type, bad_password, unknown_user, bad_api_key).",
	}, []string{"reason"})
	if reg != nil {
		if err := reg.Register(failures); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return nil, fmt.Errorf("auth: register metrics: %w", err)
			}
			failures = are.ExistingCollector.(*prometheus.CounterVec)
		}
	}
	for _, r := range reasons { // every reason exported from the start, at 0
		failures.WithLabelValues(r)
	}
	return &Service{
		st: st, opts: opts, hashes: hashes, failures: failures, dummy: dummy, log: log,
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}), // no alg confusion, no "none"
			jwt.WithIssuer(opts.Issuer),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(),
			jwt.WithLeeway(ClockSkew),
			jwt.WithTimeFunc(opts.Now),
		),
	}, nil
}

// fail counts a refused credential and tags err with the reason.
func (s *Service) fail(reason string, err error) error {
	s.failures.WithLabelValues(reason).Inc()
	return &Failure{Reason: reason, Err: err}
}
