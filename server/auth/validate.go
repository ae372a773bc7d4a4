package auth

// Validation of what users send: usernames, emails and passwords.

import (
	"fmt"
	"net/mail"
	"strings"
	"unicode/utf8"
)

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
