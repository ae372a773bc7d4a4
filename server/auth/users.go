package auth

// Users: registration, login (with its failure limits), refresh and logout.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"golang.org/x/crypto/bcrypt"

	"github.com/hal9-lab/hal9-lab/server/store"
)

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
