// Package ftsquery turns free text typed by a user into something a
// full-text engine accepts without a syntax error.
package ftsquery

import (
	"strings"
	"unicode"
)

// Clean makes s safe to hand to a database as text: valid UTF-8, no NUL
// bytes (PostgreSQL rejects both), surrounding space trimmed.
func Clean(s string) string {
	s = strings.ToValidUTF8(s, " ")
	s = strings.ReplaceAll(s, "\x00", " ")
	return strings.TrimSpace(s)
}

// Terms splits s into the words a unicode61-style tokenizer would index:
// runs of letters, digits and combining marks. Everything else (quotes,
// operators, punctuation, emoji) only separates words.
func Terms(s string) []string {
	return strings.FieldsFunc(Clean(s), func(r rune) bool {
		return !(unicode.IsLetter(r) || unicode.IsNumber(r) || unicode.IsMark(r))
	})
}

// FTS5 returns an FTS5 MATCH expression requiring every term of s, each
// quoted so that words like AND, OR, NOT and NEAR are plain words, never
// operators. It returns "" when s holds no words (the caller then skips
// the query: an empty MATCH is itself a syntax error).
func FTS5(s string) string {
	terms := Terms(s)
	if len(terms) == 0 {
		return ""
	}
	var b strings.Builder
	for i, t := range terms {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteByte('"')
		b.WriteString(t) // letters, digits and marks only: no quote to escape
		b.WriteByte('"')
	}
	return b.String()
}
