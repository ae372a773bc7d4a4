// Package auth signs users up and in: bcrypt password hashes, HS256 JWT
// access and refresh tokens, and API keys stored only as SHA-256 hashes.
// It reads and writes through store.Store; turning its errors into HTTP
// responses is the server's job.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/mail"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
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

// ---- validation ----

func invalid(field, msg string) error {
	return fmt.Errorf("%w: %s: %s", ErrInvalidInput, field, msg)
}

// ValidateUsername: 3..64 characters of A-Z a-z 0-9 _ . -
func ValidateUsername(u string) error {
	if len(u) < 3 || len(u) > 64 {
		return invalid("username", fmt.Sprintf("must be 3 to 64 characters, got %d", utf8.RuneCountInString(u)))
	}
	for _, r := range u {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '.' || r == '-') {
			return invalid("username", fmt.Sprintf("may only contain letters A-Z a-z, digits, '_', '.' and '-'; found %q", r))
		}
	}
	return nil
}

// NormalizeEmail checks that e is a bare address (name@domain, no display
// name) and returns it lower-cased, the form stored and compared.
func NormalizeEmail(e string) (string, error) {
	if len(e) > 254 {
		return "", invalid("email", "must be at most 254 characters")
	}
	a, err := mail.ParseAddress(e)
	if err != nil || a.Address != e || a.Name != "" || !strings.Contains(e[strings.LastIndexByte(e, '@')+1:], ".") {
		return "", invalid("email", fmt.Sprintf("%q is not a valid address like name@example.com", e))
	}
	return strings.ToLower(e), nil
}

// ValidatePassword: at least 8 characters and at most 72 bytes (bcrypt's limit).
func ValidatePassword(p string) error {
	if n := utf8.RuneCountInString(p); n < MinPasswordChars {
		return fmt.Errorf("%w: %w: password: must be at least %d characters, got %d", ErrInvalidInput, ErrWeakPassword, MinPasswordChars, n)
	}
	if len(p) > MaxPasswordBytes {
		return invalid("password", fmt.Sprintf("must be at most %d bytes (bcrypt's limit), got %d", MaxPasswordBytes, len(p)))
	}
	return nil
}

// ---- users ----

// Register validates the input, hashes the password and creates the user.
// A taken username or email is a *TakenError (a store.ErrConflict).
func (s *Service) Register(ctx context.Context, username, email, password string) (store.User, error) {
	if err := ValidateUsername(username); err != nil {
		return store.User{}, err
	}
	email, err := NormalizeEmail(email)
	if err != nil {
		return store.User{}, err
	}
	if err := ValidatePassword(password); err != nil {
		return store.User{}, err
	}
	var hash []byte
	if err := s.hashes.do(ctx, func() { hash, err = bcrypt.GenerateFromPassword([]byte(password), s.opts.BcryptCost) }); err != nil {
		return store.User{}, fmt.Errorf("register %s: %w", username, err)
	}
	if err != nil {
		return store.User{}, fmt.Errorf("register %s: hash password: %w", username, err)
	}
	u := store.User{
		ID: uuid.NewString(), Username: username, Email: email, PasswordHash: string(hash),
		CreatedAt: s.opts.Now().UTC().Truncate(time.Microsecond),
	}
	if err := s.st.CreateUser(ctx, u); err != nil {
		if ce := (*store.ConflictError)(nil); errors.As(err, &ce) {
			switch ce.Field {
			case "email":
				return store.User{}, &TakenError{Field: "email", Value: email}
			case "username":
				return store.User{}, &TakenError{Field: "username", Value: username}
			}
			return store.User{}, &TakenError{}
		}
		return store.User{}, fmt.Errorf("register %s: %w", username, err)
	}
	return u, nil
}

// Login checks the password and issues a token pair. Unknown users and
// wrong passwords are the same ErrInvalidCredentials and take the same time.
func (s *Service) Login(ctx context.Context, username, password string) (Tokens, store.User, error) {
	if username == "" {
		return Tokens{}, store.User{}, invalid("username", "required")
	}
	if password == "" {
		return Tokens{}, store.User{}, invalid("password", "required")
	}
	u, err := s.st.UserByUsername(ctx, username)
	unknown := errors.Is(err, store.ErrNotFound)
	if err != nil && !unknown {
		return Tokens{}, store.User{}, fmt.Errorf("login %s: %w", username, err)
	}
	hash := s.dummy
	if !unknown {
		hash = []byte(u.PasswordHash)
	}
	var mismatch error
	if err := s.hashes.do(ctx, func() { mismatch = bcrypt.CompareHashAndPassword(hash, []byte(password)) }); err != nil {
		return Tokens{}, store.User{}, fmt.Errorf("login %s: %w", username, err)
	}
	switch {
	case unknown:
		return Tokens{}, store.User{}, s.fail(ReasonUnknownUser, ErrInvalidCredentials)
	case mismatch != nil:
		return Tokens{}, store.User{}, s.fail(ReasonBadPassword, ErrInvalidCredentials)
	}
	t, err := s.login(ctx, u)
	return t, u, err
}

// Refresh exchanges a refresh token for a new pair and retires it: each
// refresh token works once. Presenting a retired one again (a stolen copy)
// is refused and revokes every token of its login, so the thief's and the
// owner's sessions both end and the owner logs in again. Within
// Options.ReuseGrace of its rotation, while its successor is unused, it is
// a retry of a lost answer instead (OAuth 2.0 Security BCP, RFC 9700
// §4.14.2: a retry with the previous token must not end the login) and is
// answered with that same successor, re-signed from its record, and a
// fresh access token. The user must still exist; access tokens are refused
// here.
func (s *Service) Refresh(ctx context.Context, refreshToken string) (Tokens, error) {
	c, err := s.parseRefresh(refreshToken)
	if err != nil {
		return Tokens{}, err
	}
	u, err := s.st.UserByID(ctx, c.Subject)
	if errors.Is(err, store.ErrNotFound) {
		return Tokens{}, s.fail(ReasonUnknownUser, fmt.Errorf("%w: the token's user no longer exists", ErrInvalidToken))
	}
	if err != nil {
		return Tokens{}, fmt.Errorf("refresh: %w", err)
	}
	t, next, err := s.issue(u, c.Family)
	if err != nil {
		return Tokens{}, err
	}
	newest, err := s.st.RotateRefreshToken(ctx, c.ID, next, s.opts.Now().UTC().Truncate(time.Microsecond), s.opts.ReuseGrace)
	switch {
	case errors.Is(err, store.ErrTokenReused):
		s.log.Warn("refresh token reused: its login's tokens are revoked", "user_id", u.ID, "family", c.Family)
		return Tokens{}, s.fail(ReasonReused, fmt.Errorf("%w: this refresh token was already used, so every token of this login was revoked", ErrInvalidToken))
	case errors.Is(err, store.ErrTokenRevoked):
		return Tokens{}, s.fail(ReasonRevoked, fmt.Errorf("%w: this login was ended (logout, or a reused refresh token)", ErrInvalidToken))
	case errors.Is(err, store.ErrNotFound):
		return Tokens{}, s.fail(ReasonInvalidToken, fmt.Errorf("%w: unknown refresh token", ErrInvalidToken))
	case err != nil:
		return Tokens{}, fmt.Errorf("refresh: %w", err)
	}
	if newest.ID != next.ID {
		s.log.Info("refresh token retried within the reuse grace: answered with its successor", "user_id", u.ID, "family", c.Family)
		// The successor's own claims (jti, iat, exp) give back the very
		// token the lost answer carried.
		t.RefreshToken, _, err = s.signAs(u, TypeRefresh, newest.FamilyID, newest.ID, newest.CreatedAt, newest.ExpiresAt.Add(-ClockSkew))
		if err != nil {
			return Tokens{}, err
		}
	}
	return t, nil
}

// Logout ends the login a refresh token belongs to: that token and every
// other of its family stop working at once (access tokens already handed
// out stay valid until they expire, at most the access lifetime). Logging
// out twice is not an error.
func (s *Service) Logout(ctx context.Context, refreshToken string) error {
	c, err := s.parseRefresh(refreshToken)
	if err != nil {
		return err
	}
	err = s.st.RevokeRefreshFamily(ctx, c.Family, s.opts.Now().UTC().Truncate(time.Microsecond))
	if errors.Is(err, store.ErrNotFound) {
		return s.fail(ReasonInvalidToken, fmt.Errorf("%w: unknown refresh token", ErrInvalidToken))
	}
	if err != nil {
		return fmt.Errorf("logout: %w", err)
	}
	return nil
}

// parseRefresh checks a refresh token and that it names its family (tokens
// from before rotation do not: their holders log in again).
func (s *Service) parseRefresh(tok string) (*claims, error) {
	if tok == "" {
		return nil, s.fail(ReasonMissing, fmt.Errorf("%w: refresh_token is empty", ErrMissingCredentials))
	}
	c, err := s.parse(tok, TypeRefresh)
	if err != nil {
		return nil, err
	}
	if c.Family == "" || c.ID == "" {
		return nil, s.fail(ReasonInvalidToken, fmt.Errorf("%w: a refresh token without a family (issued before rotation)", ErrInvalidToken))
	}
	return c, nil
}

// ---- tokens ----

type claims struct {
	TokenType string `json:"token_type"`
	Username  string `json:"username,omitempty"`
	Family    string `json:"fam,omitempty"` // refresh tokens: the login they descend from
	jwt.RegisteredClaims
}

// login issues the first pair of a new login (a new refresh family).
func (s *Service) login(ctx context.Context, u store.User) (Tokens, error) {
	t, rt, err := s.issue(u, uuid.NewString())
	if err != nil {
		return Tokens{}, err
	}
	if err := s.st.CreateRefreshToken(ctx, rt); err != nil {
		return Tokens{}, fmt.Errorf("login %s: record refresh token: %w", u.Username, err)
	}
	return t, nil
}

// issue signs an access token and a refresh token of the family, and
// returns the refresh token's record for the store.
func (s *Service) issue(u store.User, family string) (Tokens, store.RefreshToken, error) {
	now := s.opts.Now()
	access, _, err := s.sign(u, TypeAccess, "", now, s.opts.AccessTTL)
	if err != nil {
		return Tokens{}, store.RefreshToken{}, err
	}
	refresh, id, err := s.sign(u, TypeRefresh, family, now, s.opts.RefreshTTL)
	if err != nil {
		return Tokens{}, store.RefreshToken{}, err
	}
	// The record outlives the token by the clock skew its check allows.
	rt := store.RefreshToken{ID: id, FamilyID: family, UserID: u.ID,
		CreatedAt: now.UTC().Truncate(time.Microsecond), ExpiresAt: now.Add(s.opts.RefreshTTL + ClockSkew).UTC().Truncate(time.Microsecond)}
	return Tokens{AccessToken: access, RefreshToken: refresh, ExpiresIn: int(s.opts.AccessTTL / time.Second)}, rt, nil
}

// sign returns a new token and its jti.
func (s *Service) sign(u store.User, typ, family string, now time.Time, ttl time.Duration) (string, string, error) {
	return s.signAs(u, typ, family, randomHex(12), now, now.Add(ttl))
}

// signAs signs the token with jti id issued at iat, expiring at exp.
func (s *Service) signAs(u store.User, typ, family, id string, iat, exp time.Time) (string, string, error) {
	c := claims{
		TokenType: typ,
		Username:  u.Username,
		Family:    family,
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    s.opts.Issuer,
			Subject:   u.ID,
			IssuedAt:  jwt.NewNumericDate(iat),
			ExpiresAt: jwt.NewNumericDate(exp),
			ID:        id,
		},
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(s.opts.Secret)
	if err != nil {
		return "", "", fmt.Errorf("sign %s token: %w", typ, err)
	}
	return tok, c.ID, nil
}

// parse verifies signature, algorithm, issuer, expiry and token type.
func (s *Service) parse(tok, wantType string) (*claims, error) {
	c := &claims{}
	_, err := s.parser.ParseWithClaims(tok, c, func(t *jwt.Token) (any, error) {
		if t.Method != jwt.SigningMethodHS256 { // belt and braces with WithValidMethods
			return nil, fmt.Errorf("unexpected signing method %v", t.Header["alg"])
		}
		return s.opts.Secret, nil
	})
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return nil, s.fail(ReasonExpired, ErrTokenExpired)
	case err != nil:
		return nil, s.fail(ReasonInvalidToken, fmt.Errorf("%w: %v", ErrInvalidToken, err))
	case c.Subject == "":
		return nil, s.fail(ReasonInvalidToken, fmt.Errorf("%w: no subject", ErrInvalidToken))
	case c.TokenType != wantType:
		return nil, s.fail(ReasonWrongType, fmt.Errorf("%w: a %q token where a %q token is required", ErrInvalidToken, c.TokenType, wantType))
	}
	return c, nil
}

// AuthenticateToken checks an access token (not a refresh token). A token
// already verified is answered from a small cache until it expires: access
// tokens are stateless, so this changes no answer and saves the HMAC and
// two JSON decodings on every request.
func (s *Service) AuthenticateToken(tok string) (Principal, error) {
	now := s.opts.Now()
	if p, ok := s.verified.get(tok, now); ok {
		return p, nil
	}
	c, err := s.parse(tok, TypeAccess)
	if err != nil {
		return Principal{}, err
	}
	p := Principal{UserID: c.Subject, Username: c.Username, Method: MethodToken}
	s.verified.put(tok, p, c.ExpiresAt.Time, now)
	return p, nil
}

// Authenticate identifies the caller of r from `Authorization: Bearer
// <access token>` or `X-API-Key: <key>` (an API key is also accepted as a
// Bearer credential). Neither: ErrMissingCredentials. Store outages come
// back as the store's error (ErrUnavailable), not as an auth failure.
func (s *Service) Authenticate(r *http.Request) (Principal, error) {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, cred, _ := strings.Cut(strings.TrimSpace(h), " ")
		cred = strings.TrimSpace(cred)
		if !strings.EqualFold(scheme, "Bearer") {
			return Principal{}, s.fail(ReasonInvalidToken, fmt.Errorf("%w: Authorization scheme %q not supported; use Bearer", ErrInvalidToken, scheme))
		}
		if cred == "" {
			return Principal{}, s.fail(ReasonMissing, fmt.Errorf("%w: empty Bearer token", ErrMissingCredentials))
		}
		if strings.HasPrefix(cred, APIKeyPrefix) {
			return s.AuthenticateAPIKey(r.Context(), cred)
		}
		return s.AuthenticateToken(cred)
	}
	if k := strings.TrimSpace(r.Header.Get("X-API-Key")); k != "" {
		return s.AuthenticateAPIKey(r.Context(), k)
	}
	return Principal{}, s.fail(ReasonMissing, ErrMissingCredentials)
}

// ---- API keys ----

// HashAPIKey is the stored form of a key: SHA-256, hex. (Keys carry 256
// random bits, so a fast hash is enough; bcrypt would cost every request.)
func HashAPIKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// AuthenticateAPIKey checks a key and records its use (at most once per
// TouchInterval).
func (s *Service) AuthenticateAPIKey(ctx context.Context, key string) (Principal, error) {
	if len(key) != apiKeyLen || !strings.HasPrefix(key, APIKeyPrefix) {
		return Principal{}, s.fail(ReasonBadAPIKey, fmt.Errorf("%w: malformed API key (want %s followed by 43 characters)", ErrInvalidToken, APIKeyPrefix))
	}
	k, err := s.st.APIKeyByHash(ctx, HashAPIKey(key))
	if errors.Is(err, store.ErrNotFound) {
		return Principal{}, s.fail(ReasonBadAPIKey, fmt.Errorf("%w: unknown or revoked API key", ErrInvalidToken))
	}
	if err != nil {
		return Principal{}, fmt.Errorf("authenticate API key: %w", err)
	}
	if now := s.opts.Now(); now.Sub(k.LastUsedAt) >= s.opts.TouchInterval {
		// Best effort: a failed touch must not fail the request.
		if err := s.st.TouchAPIKey(ctx, k.ID, now.UTC().Truncate(time.Microsecond)); err != nil && ctx.Err() == nil {
			s.log.Warn("record API key use", "key_id", k.ID, "err", err)
		}
	}
	return Principal{UserID: k.UserID, Method: MethodAPIKey, APIKeyID: k.ID}, nil
}

// CreateAPIKey makes a key for the user and returns it in full: the only
// time it is ever visible. The store keeps its hash and a short prefix.
func (s *Service) CreateAPIKey(ctx context.Context, userID, name string) (string, store.APIKey, error) {
	name = strings.TrimSpace(name)
	if name == "" || utf8.RuneCountInString(name) > 100 || !utf8.ValidString(name) {
		return "", store.APIKey{}, invalid("name", "must be 1 to 100 characters")
	}
	if userID == "" {
		return "", store.APIKey{}, invalid("user_id", "required")
	}
	raw := make([]byte, apiKeyBytes)
	if _, err := rand.Read(raw); err != nil {
		return "", store.APIKey{}, fmt.Errorf("create API key: %w", err)
	}
	key := APIKeyPrefix + base64.RawURLEncoding.EncodeToString(raw)
	k := store.APIKey{
		ID: uuid.NewString(), UserID: userID, Name: name,
		Prefix: key[:displayPrefixLen], Hash: HashAPIKey(key),
		CreatedAt: s.opts.Now().UTC().Truncate(time.Microsecond),
	}
	if err := s.st.CreateAPIKey(ctx, k); err != nil {
		return "", store.APIKey{}, fmt.Errorf("create API key for user %s: %w", userID, err)
	}
	return key, k, nil
}

// ListAPIKeys returns the user's keys (hashes included; do not show them).
func (s *Service) ListAPIKeys(ctx context.Context, userID string) ([]store.APIKey, error) {
	ks, err := s.st.ListAPIKeys(ctx, userID)
	if err != nil {
		return nil, fmt.Errorf("list API keys of user %s: %w", userID, err)
	}
	return ks, nil
}

// DeleteAPIKey revokes one of the user's keys; store.ErrNotFound when the
// key does not exist or is someone else's.
func (s *Service) DeleteAPIKey(ctx context.Context, userID, id string) error {
	if err := s.st.DeleteAPIKey(ctx, userID, id); err != nil {
		return fmt.Errorf("delete API key %s: %w", id, err)
	}
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b)
}
