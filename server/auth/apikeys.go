package auth

// API keys: created and listed per user, stored only as SHA-256 hashes.

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/hal9-lab/hal9-lab/server/store"
)

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
