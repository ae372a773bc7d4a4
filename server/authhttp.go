package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/hal9-lab/hal9-lab/server/auth"
	"github.com/hal9-lab/hal9-lab/server/store"
)

// limitKey is the rate-limit identity of an authenticated caller: the API
// key it used, else its user.
func limitKey(p *auth.Principal) string {
	if p.APIKeyID != "" {
		return "key:" + p.APIKeyID
	}
	return "user:" + p.UserID
}

// requireAuth authenticates the request (Bearer token or X-API-Key) and
// puts the principal into the request state; 401 otherwise.
func (s *Server) requireAuth(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, err := s.d.Auth.Authenticate(r)
		if err != nil {
			// A failed authentication is charged to the client IP's
			// bucket: otherwise a flood of bad keys or tokens is never
			// limited (the per-identity limit runs after auth).
			if s.rl != nil && !errors.Is(err, store.ErrUnavailable) {
				if ok, wait := s.rl.allow("ip:" + clientOf(clientIP(r))); !ok {
					writeRetry(w, http.StatusTooManyRequests, CodeRateLimited,
						fmt.Sprintf("too many failed authentications from this address (limit %g requests per second); retry after the Retry-After delay with valid credentials", float64(s.rl.limit)), wait)
					return
				}
			}
			switch {
			case errors.Is(err, store.ErrUnavailable):
				s.storeError(w, r, "authenticate", err)
			case errors.Is(err, auth.ErrMissingCredentials):
				w.Header().Set("WWW-Authenticate", `Bearer realm="hal9"`)
				writeError(w, http.StatusUnauthorized, CodeUnauthorized,
					"authentication required: send Authorization: Bearer <access_token> (from POST /api/v1/auth/login) or X-API-Key: <key>")
			case errors.Is(err, auth.ErrInvalidToken), errors.Is(err, auth.ErrInvalidCredentials):
				w.Header().Set("WWW-Authenticate", `Bearer realm="hal9", error="invalid_token"`)
				writeError(w, http.StatusUnauthorized, CodeUnauthorized, authFailure(err))
			default:
				s.storeError(w, r, "authenticate", err)
			}
			return
		}
		stateFrom(r.Context()).principal = &p
		next(w, r)
	}
}

// UserJSON is a user as the API shows it (never the password hash).
type UserJSON struct {
	ID        string    `json:"id"`
	Username  string    `json:"username"`
	Email     string    `json:"email"`
	CreatedAt time.Time `json:"created_at"`
}

func userJSON(u store.User) UserJSON {
	return UserJSON{ID: u.ID, Username: u.Username, Email: u.Email, CreatedAt: u.CreatedAt}
}

type registerRequest struct {
	Username string `json:"username"`
	Email    string `json:"email"`
	Password string `json:"password"`
}

func (s *Server) register(w http.ResponseWriter, r *http.Request) {
	var req registerRequest
	if e := decodeJSON(r.Header.Get("Content-Type"), r.Body, &req); e != nil {
		e.write(w)
		return
	}
	var missing []string
	for _, f := range []struct{ name, v string }{{"username", req.Username}, {"email", req.Email}, {"password", req.Password}} {
		if f.v == "" {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		writeError(w, http.StatusBadRequest, CodeBadRequest, "missing "+strings.Join(missing, ", ")+"; register needs username, email and password (8+ characters)")
		return
	}
	u, err := s.d.Auth.Register(r.Context(), req.Username, req.Email, req.Password)
	if err != nil {
		s.authError(w, r, "register", err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"user": userJSON(u)})
}

type loginRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// TokenResponse is the answer of login (with user) and refresh.
type TokenResponse struct {
	AccessToken  string    `json:"access_token"`
	RefreshToken string    `json:"refresh_token"`
	TokenType    string    `json:"token_type"`
	ExpiresIn    int       `json:"expires_in"`
	User         *UserJSON `json:"user,omitempty"`
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	var req loginRequest
	if e := decodeJSON(r.Header.Get("Content-Type"), r.Body, &req); e != nil {
		e.write(w)
		return
	}
	if req.Username == "" || req.Password == "" {
		writeError(w, http.StatusBadRequest, CodeBadRequest, "username and password are required")
		return
	}
	slot, ok, wait := s.takeLoginSlot(r.Context(), req.Username, clientOf(clientIP(r)))
	if !ok {
		s.credLimited.WithLabelValues("user").Inc()
		writeRetry(w, http.StatusTooManyRequests, CodeRateLimited,
			fmt.Sprintf("too many failed logins for this username from this address (limit %s); retry after the Retry-After delay (other addresses are not affected)", slot.lim), wait)
		return
	}
	t, u, err := s.d.Auth.Login(r.Context(), req.Username, req.Password)
	if err != nil {
		if errors.Is(err, auth.ErrInvalidCredentials) {
			s.loginFailed(r.Context(), req.Username)
		} else {
			s.giveBack(r.Context(), slot) // not a failed guess: the password was never checked
		}
		s.authError(w, r, "login", err)
		return
	}
	s.giveBack(r.Context(), slot)
	uj := userJSON(u)
	writeJSON(w, http.StatusOK, TokenResponse{AccessToken: t.AccessToken, RefreshToken: t.RefreshToken,
		TokenType: "Bearer", ExpiresIn: t.ExpiresIn, User: &uj})
}

type refreshRequest struct {
	RefreshToken string `json:"refresh_token"`
}

func (s *Server) refresh(w http.ResponseWriter, r *http.Request) {
	var req refreshRequest
	if e := decodeJSON(r.Header.Get("Content-Type"), r.Body, &req); e != nil {
		e.write(w)
		return
	}
	if req.RefreshToken == "" {
		writeError(w, http.StatusBadRequest, CodeBadRequest, "refresh_token is required: the refresh_token from POST /api/v1/auth/login")
		return
	}
	t, err := s.d.Auth.Refresh(r.Context(), req.RefreshToken)
	if err != nil {
		s.authError(w, r, "refresh", err)
		return
	}
	writeJSON(w, http.StatusOK, TokenResponse{AccessToken: t.AccessToken, RefreshToken: t.RefreshToken,
		TokenType: "Bearer", ExpiresIn: t.ExpiresIn})
}

// logout ends the login of a refresh token: every refresh token of it
// stops working (access tokens run out within their 15 minutes).
func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	var req refreshRequest
	if e := decodeJSON(r.Header.Get("Content-Type"), r.Body, &req); e != nil {
		e.write(w)
		return
	}
	if req.RefreshToken == "" {
		writeError(w, http.StatusBadRequest, CodeBadRequest, "refresh_token is required: the latest refresh_token of the login to end")
		return
	}
	if err := s.d.Auth.Logout(r.Context(), req.RefreshToken); err != nil {
		s.authError(w, r, "logout", err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) profile(w http.ResponseWriter, r *http.Request) {
	p := stateFrom(r.Context()).principal
	u, err := s.userOf(r.Context(), p)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			writeError(w, http.StatusUnauthorized, CodeUnauthorized, "the account of this token no longer exists")
			return
		}
		s.storeError(w, r, "read profile", err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"user": userJSON(u)})
}

func (s *Server) userOf(ctx context.Context, p *auth.Principal) (store.User, error) {
	return s.d.Store.UserByID(ctx, p.UserID)
}

type apiKeyRequest struct {
	Name string `json:"name"`
}

// APIKeyJSON is an API key as listed (never the key or its hash).
type APIKeyJSON struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	Prefix     string     `json:"prefix"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
}

func apiKeyJSON(k store.APIKey) APIKeyJSON {
	out := APIKeyJSON{ID: k.ID, Name: k.Name, Prefix: k.Prefix, CreatedAt: k.CreatedAt}
	if !k.LastUsedAt.IsZero() {
		t := k.LastUsedAt
		out.LastUsedAt = &t
	}
	return out
}

func (s *Server) createAPIKey(w http.ResponseWriter, r *http.Request) {
	p := stateFrom(r.Context()).principal
	var req apiKeyRequest
	if e := decodeJSON(r.Header.Get("Content-Type"), r.Body, &req); e != nil {
		e.write(w)
		return
	}
	if strings.TrimSpace(req.Name) == "" || len(req.Name) > 100 {
		writeError(w, http.StatusBadRequest, CodeBadRequest, "name is required: 1..100 characters to tell the key apart")
		return
	}
	key, k, err := s.d.Auth.CreateAPIKey(r.Context(), p.UserID, req.Name)
	if err != nil {
		s.authError(w, r, "create api key", err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"key": key, "api_key": apiKeyJSON(k),
		"note": "store the key now: only its hash is kept"})
}

func (s *Server) listAPIKeys(w http.ResponseWriter, r *http.Request) {
	p := stateFrom(r.Context()).principal
	ks, err := s.d.Auth.ListAPIKeys(r.Context(), p.UserID)
	if err != nil {
		s.authError(w, r, "list api keys", err)
		return
	}
	out := make([]APIKeyJSON, len(ks))
	for i, k := range ks {
		out[i] = apiKeyJSON(k)
	}
	writeJSON(w, http.StatusOK, map[string]any{"api_keys": out, "count": len(out)})
}

func (s *Server) deleteAPIKey(w http.ResponseWriter, r *http.Request) {
	p := stateFrom(r.Context()).principal
	id := r.PathValue("id")
	if err := s.d.Auth.DeleteAPIKey(r.Context(), p.UserID, id); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			writeError(w, http.StatusNotFound, CodeNotFound, fmt.Sprintf("no API key %q of yours; GET /api/v1/auth/api-keys lists them", clip(id, 64)))
			return
		}
		s.authError(w, r, "delete api key", err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// authFailure is the 401 message of a rejected access token or API key:
// auth's precise reason (expired, a refresh token used as an access token,
// malformed or unknown API key, bad signature) and how to fix it.
func authFailure(err error) string {
	var hint string
	switch auth.FailureReason(err) {
	case auth.ReasonExpired:
		hint = "get a new access token with POST /api/v1/auth/refresh or log in again"
	case auth.ReasonWrongType:
		hint = "send the access_token from POST /api/v1/auth/login, not the refresh_token"
	case auth.ReasonBadAPIKey:
		hint = "create a key with POST /api/v1/auth/api-keys and send it whole in X-API-Key"
	default:
		hint = "log in again (POST /api/v1/auth/login) and send Authorization: Bearer <access_token>"
	}
	return "authentication failed: " + err.Error() + "; " + hint
}

// authError maps the errors of server/auth to answers.
func (s *Server) authError(w http.ResponseWriter, r *http.Request, what string, err error) {
	var taken *auth.TakenError
	switch {
	case errors.Is(err, auth.ErrInvalidCredentials):
		w.Header().Set("WWW-Authenticate", `Bearer realm="hal9"`)
		writeError(w, http.StatusUnauthorized, CodeUnauthorized, "invalid username or password")
	case errors.Is(err, auth.ErrInvalidToken):
		w.Header().Set("WWW-Authenticate", `Bearer realm="hal9", error="invalid_token"`)
		writeError(w, http.StatusUnauthorized, CodeUnauthorized, "the refresh token was rejected: "+err.Error()+"; log in again")
	case errors.Is(err, auth.ErrMissingCredentials):
		writeError(w, http.StatusBadRequest, CodeBadRequest, err.Error())
	case errors.Is(err, auth.ErrBusy):
		writeRetry(w, http.StatusServiceUnavailable, CodeUnavailable,
			"the server is checking as many passwords as it can; retry after the Retry-After delay", time.Second)
	case errors.Is(err, auth.ErrInvalidInput): // ErrWeakPassword too
		writeError(w, http.StatusBadRequest, CodeBadRequest, err.Error())
	case errors.As(err, &taken):
		writeError(w, http.StatusConflict, CodeConflict, taken.Error()+"; log in or pick another")
	default:
		s.storeError(w, r, what, err)
	}
}
