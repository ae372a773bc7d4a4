package server

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"
)

// Error codes: stable strings clients can switch on. The HTTP status goes
// with the code; the message says what was wrong and how to fix it.
const (
	CodeBadRequest       = "bad_request"        // 400: a field is missing or invalid
	CodeInvalidJSON      = "invalid_json"       // 400: the body is not one JSON object of the documented shape
	CodeInvalidLayer     = "invalid_layer"      // 400: layer is not L1..L5
	CodeUnsupportedMedia = "unsupported_media"  // 415: Content-Type is set and is not JSON
	CodePayloadTooLarge  = "payload_too_large"  // 413: body over 1 MiB (or content over 32 KiB)
	CodeUnauthorized     = "unauthorized"       // 401: missing, bad, expired, reused or revoked credentials
	CodeRequestTimeout   = "request_timeout"    // 408: the body did not arrive within --http-read-timeout
	CodeForbidden        = "forbidden"          // 403
	CodeNotFound         = "not_found"          // 404: unknown route or record
	CodeMethodNotAllowed = "method_not_allowed" // 405: the route exists with other methods (see Allow)
	CodeConflict         = "conflict"           // 409: username or email taken
	CodeRateLimited      = "rate_limited"       // 429: see Retry-After
	CodeUnavailable      = "unavailable"        // 503: the database is unreachable, the server is shutting down, or password checks are at capacity
	CodeLLMUnavailable   = "llm_unavailable"    // 503: the LLM breaker is open, rate limited, or failing
	CodeBudgetExceeded   = "budget_exceeded"    // 503: the LLM cost budget is spent (cached answers still flow)
	CodeQueueFull        = "queue_full"         // 503: async queue full
	CodeInternal         = "internal"           // 500
)

type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// writeError writes {"error":{"code","message"}} with the status.
func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, errorBody{errorDetail{Code: code, Message: msg}})
}

// writeRetry is writeError with a Retry-After header (whole seconds, ≥ 1).
func writeRetry(w http.ResponseWriter, status int, code, msg string, after time.Duration) {
	w.Header().Set("Retry-After", retryAfterSeconds(after))
	writeError(w, status, code, msg)
}

func retryAfterSeconds(d time.Duration) string {
	s := int((d + time.Second - 1) / time.Second)
	if s < 1 {
		s = 1
	}
	return strconv.Itoa(s)
}

// writeJSON encodes v; an encoding failure is a programming error and is
// answered as 500 before anything is written.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		b = []byte(`{"error":{"code":"internal","message":"encode response"}}`)
		status = http.StatusInternalServerError
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}
