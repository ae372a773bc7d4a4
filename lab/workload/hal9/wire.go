package hal9

import (
	"unicode/utf8"

	"github.com/valyala/fastjson"
)

// The VUs' request bodies are appended to a buffer of their own and their
// responses read in place with a parser of their own (fastjson, which
// validates the document as it parses it), so a request costs no
// allocation of encoding/json's maps and structs: the load generator's CPU
// per mix request went mostly to them.

// appendQuoted appends s as a JSON string.
func appendQuoted[T ~string | ~[]byte](dst []byte, s T) []byte {
	return append(appendEscaped(append(dst, '"'), s), '"')
}

// appendEscaped appends s escaped for the inside of a JSON string: quote,
// backslash and control characters escaped, invalid UTF-8 replaced by
// U+FFFD (as encoding/json does).
func appendEscaped[T ~string | ~[]byte](dst []byte, s T) []byte {
	const hex = "0123456789abcdef"
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			dst = append(dst, c)
			i++
			continue
		}
		if c < utf8.RuneSelf {
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(string(s[i:min(i+utf8.UTFMax, len(s))]))
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, "\ufffd"...)
		} else {
			dst = append(dst, s[i:i+size]...)
		}
		i += size
	}
	return dst
}

// str is the string field key of o (nil when missing or not a string).
func str(o *fastjson.Value, key string) []byte {
	return o.GetStringBytes(key)
}

// isString tells whether field key of o is a string.
func isString(o *fastjson.Value, key string) bool {
	v := o.Get(key)
	return v != nil && v.Type() == fastjson.TypeString
}

// isNumber tells whether field key of o is a number.
func isNumber(o *fastjson.Value, key string) bool {
	v := o.Get(key)
	return v != nil && v.Type() == fastjson.TypeNumber
}

// integer is field key of o when it is an integer.
func integer(o *fastjson.Value, key string) (int64, bool) {
	v := o.Get(key)
	if v == nil || v.Type() != fastjson.TypeNumber {
		return 0, false
	}
	n, err := v.Int64()
	return n, err == nil
}

// object parses body as a JSON object with the VU's parser; nil when it
// is not one. The values are valid until the next parse.
func (v *vu) object(body []byte) *fastjson.Value {
	o, err := v.parser.ParseBytes(body)
	if err != nil || o.Type() != fastjson.TypeObject {
		return nil
	}
	return o
}

// userOK is the shape of a user object: id, username (the one expected),
// email and created_at.
func userOK(u *fastjson.Value, username string) bool {
	return u != nil && len(str(u, "id")) > 0 && string(str(u, "username")) == username &&
		len(str(u, "email")) > 0 && len(str(u, "created_at")) > 0
}
