package server

import (
	"context"
	"errors"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hal9-lab/hal9-lab/server/auth"
	"github.com/hal9-lab/hal9-lab/server/store"
)

// authAdapter turns *auth.Service into an Authenticator, classifying its
// errors with the server's sentinels (the message stays auth's).
type authAdapter struct{ s *auth.Service }

func newAuthenticator(st store.Store, secret []byte, bcryptCost int, reg prometheus.Registerer) (Authenticator, error) {
	s, err := auth.NewService(st, auth.Options{Secret: secret, BcryptCost: bcryptCost}, reg)
	if err != nil {
		return nil, err
	}
	return authAdapter{s}, nil
}

// classified is err, also matching kind with errors.Is.
type classified struct {
	kind error
	err  error
}

func (c *classified) Error() string   { return c.err.Error() }
func (c *classified) Unwrap() []error { return []error{c.kind, c.err} }

func classify(err error) error {
	if err == nil {
		return nil
	}
	for _, m := range []struct{ from, to error }{
		{auth.ErrWeakPassword, ErrWeakPassword},
		{auth.ErrInvalidInput, ErrInvalidInput},
		{auth.ErrInvalidCredentials, ErrInvalidCredentials},
		{auth.ErrMissingCredentials, ErrMissingCredentials},
		{auth.ErrInvalidToken, ErrInvalidToken},
	} {
		if errors.Is(err, m.from) {
			return &classified{kind: m.to, err: err}
		}
	}
	return err
}

func (a authAdapter) Register(ctx context.Context, username, email, password string) (store.User, error) {
	u, err := a.s.Register(ctx, username, email, password)
	return u, classify(err)
}

func (a authAdapter) Login(ctx context.Context, username, password string) (Tokens, store.User, error) {
	t, u, err := a.s.Login(ctx, username, password)
	return Tokens(t), u, classify(err)
}

func (a authAdapter) Refresh(ctx context.Context, tok string) (Tokens, error) {
	t, err := a.s.Refresh(ctx, tok)
	return Tokens(t), classify(err)
}

func (a authAdapter) Authenticate(r *http.Request) (Principal, error) {
	p, err := a.s.Authenticate(r)
	if err != nil {
		return Principal{}, classify(err)
	}
	return Principal{UserID: p.UserID, Username: p.Username, APIKeyID: p.APIKeyID}, nil
}

func (a authAdapter) CreateAPIKey(ctx context.Context, userID, name string) (string, store.APIKey, error) {
	k, rec, err := a.s.CreateAPIKey(ctx, userID, name)
	return k, rec, classify(err)
}

func (a authAdapter) ListAPIKeys(ctx context.Context, userID string) ([]store.APIKey, error) {
	ks, err := a.s.ListAPIKeys(ctx, userID)
	return ks, classify(err)
}

func (a authAdapter) DeleteAPIKey(ctx context.Context, userID, id string) error {
	return classify(a.s.DeleteAPIKey(ctx, userID, id))
}
