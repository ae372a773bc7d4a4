package auth

// Tokens: the JWT access and refresh pairs, signing and parsing them.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/hal9-lab/hal9-lab/server/store"
)

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
