package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hal9-lab/hal9-lab/server/neuron"
)

// MaxBodyBytes bounds every request body (413 above it).
const MaxBodyBytes = 1 << 20

// MaxContentBytes bounds a signal's content.
const MaxContentBytes = 32 << 10

// apiError is a failure with its HTTP answer.
type apiError struct {
	Status     int
	Code       string
	Msg        string
	RetryAfter time.Duration // sent as Retry-After when > 0
}

func (e *apiError) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Msg) }

func (e *apiError) write(w http.ResponseWriter) {
	if e.RetryAfter > 0 {
		writeRetry(w, e.Status, e.Code, e.Msg, e.RetryAfter)
		return
	}
	writeError(w, e.Status, e.Code, e.Msg)
}

func badRequest(code, format string, args ...any) *apiError {
	return &apiError{Status: http.StatusBadRequest, Code: code, Msg: fmt.Sprintf(format, args...)}
}

// checkContentType accepts a missing Content-Type (clients like Go's
// http.Post with a nil type, or scripts) and any JSON media type
// (application/json, application/*+json), and refuses the rest with 415, so
// a form post or a text body gets a clear answer instead of a JSON syntax
// error.
func checkContentType(ct string) *apiError {
	if ct == "" {
		return nil
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err == nil && (mt == "application/json" || (strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json"))) {
		return nil
	}
	return &apiError{Status: http.StatusUnsupportedMediaType, Code: CodeUnsupportedMedia,
		Msg: fmt.Sprintf("Content-Type %q is not accepted; send the body as application/json", ct)}
}

// decodeJSON reads exactly one JSON object into dst, refusing invalid
// UTF-8, null, unknown fields, trailing data, and bodies over the limit set
// by the body-limit middleware (a *http.MaxBytesError from the reader).
func decodeJSON(contentType string, body io.Reader, dst any) *apiError {
	if e := checkContentType(contentType); e != nil {
		return e
	}
	raw, err := io.ReadAll(body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return tooLarge(mbe.Limit)
		}
		if isTimeout(err) {
			return &apiError{Status: http.StatusRequestTimeout, Code: CodeRequestTimeout,
				Msg: "the request body did not arrive within the server's read timeout (--http-read-timeout); send the body at once"}
		}
		return badRequest(CodeInvalidJSON, "could not read the request body: %v", err)
	}
	// encoding/json silently replaces invalid UTF-8 in strings with U+FFFD,
	// so it must be refused on the raw bytes, before decoding.
	if !utf8.Valid(raw) {
		return badRequest(CodeInvalidJSON, "the body is not valid UTF-8 (byte %d); send JSON text encoded as UTF-8", invalidUTF8At(raw))
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return jsonError(err, dst)
	}
	// A top-level null decodes without error and leaves dst empty.
	if bytes.HasPrefix(bytes.TrimLeft(raw, " \t\r\n"), []byte("null")) {
		return badRequest(CodeInvalidJSON, "the body is null; a JSON object is required, with the fields %s", fieldList(dst))
	}
	var extra json.RawMessage
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return tooLarge(mbe.Limit)
		}
		return badRequest(CodeInvalidJSON, "the body must hold exactly one JSON object; found more data after it")
	}
	return nil
}

// invalidUTF8At is the offset of the first byte that is not valid UTF-8.
func invalidUTF8At(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n <= 1 {
			return i
		}
		i += n
	}
	return len(b)
}

// article is "a" or "an" before a JSON kind ("an array", "a string").
func article(word string) string {
	if word != "" && strings.ContainsRune("aeiou", rune(word[0])) {
		return "an " + word
	}
	return "a " + word
}

func tooLarge(limit int64) *apiError {
	return &apiError{Status: http.StatusRequestEntityTooLarge, Code: CodePayloadTooLarge,
		Msg: fmt.Sprintf("request body is over the %d byte limit; send less", limit)}
}

func jsonError(err error, dst any) *apiError {
	var (
		syn *json.SyntaxError
		typ *json.UnmarshalTypeError
		mbe *http.MaxBytesError
	)
	switch {
	case errors.As(err, &mbe):
		return tooLarge(mbe.Limit)
	case errors.Is(err, io.EOF):
		return badRequest(CodeInvalidJSON, "request body is empty; send a JSON object with the fields %s", fieldList(dst))
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest(CodeInvalidJSON, "malformed JSON: the body ends in the middle of a value")
	case errors.As(err, &syn):
		return badRequest(CodeInvalidJSON, "malformed JSON at byte %d: %s", syn.Offset, syn.Error())
	case errors.As(err, &typ):
		if typ.Field == "" {
			return badRequest(CodeInvalidJSON, "the body must be a JSON object with the fields %s, not %s", fieldList(dst), article(typ.Value))
		}
		return badRequest(CodeInvalidJSON, "field %q must be %s, not %s", typ.Field, article(jsonKind(typ.Type)), article(typ.Value))
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.TrimPrefix(err.Error(), "json: unknown field ")
		return badRequest(CodeInvalidJSON, "unknown field %s; the accepted fields are %s", name, fieldList(dst))
	default:
		return badRequest(CodeInvalidJSON, "malformed JSON: %v", err)
	}
}

func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int64, reflect.Int32, reflect.Float64, reflect.Float32:
		return "number"
	default:
		return t.Kind().String()
	}
}

// fieldList names the JSON fields of the struct dst points to.
func fieldList(dst any) string {
	t := reflect.TypeOf(dst)
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil || t.Kind() != reflect.Struct {
		return "of the documented shape"
	}
	var names []string
	for i := range t.NumField() {
		tag := strings.Split(t.Field(i).Tag.Get("json"), ",")[0]
		if tag != "" && tag != "-" {
			names = append(names, tag)
		}
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

// SignalRequest is the body of POST /api/v1/signals.
type SignalRequest struct {
	Content  string `json:"content"`
	Layer    string `json:"layer"`
	NeuronID string `json:"neuron_id,omitempty"`
}

// DecodeSignalRequest decodes and validates a signal request: exactly one
// JSON object with content (not blank, at most 32 KiB), layer (L1..L5) and
// an optional neuron_id. Every failure is a 4xx *apiError; whether the
// neuron exists is checked later by the router.
func DecodeSignalRequest(contentType string, body io.Reader) (SignalRequest, *apiError) {
	var req SignalRequest
	if e := decodeJSON(contentType, body, &req); e != nil {
		return req, e
	}
	return req, req.validate()
}

func (req SignalRequest) validate() *apiError {
	switch {
	case strings.TrimSpace(req.Content) == "":
		return badRequest(CodeBadRequest, "content is required: a non-blank string up to %d bytes", MaxContentBytes)
	case len(req.Content) > MaxContentBytes:
		return &apiError{Status: http.StatusRequestEntityTooLarge, Code: CodePayloadTooLarge,
			Msg: fmt.Sprintf("content is %d bytes; the limit is %d", len(req.Content), MaxContentBytes)}
	case req.Layer == "":
		return badRequest(CodeInvalidLayer, "layer is required: one of %s", neuron.ValidLayersText)
	case !neuron.ValidLayer(req.Layer):
		return badRequest(CodeInvalidLayer, "layer must be one of %s, got %q", neuron.ValidLayersText, clip(req.Layer, 32))
	case len(req.NeuronID) > 128:
		return badRequest(CodeBadRequest, "neuron_id is too long; GET /api/v1/neurons lists the neuron ids")
	}
	return nil
}

// clip shortens user input quoted back in messages.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
