package server

import (
	"strings"
	"testing"
)

func TestDecodeSignalRequest(t *testing.T) {
	cases := []struct {
		name     string
		body     string
		wantCode string // "" when valid
		wantIn   string // substring of the message
	}{
		{"valid", `{"content":"hello","layer":"L3"}`, "", ""},
		{"invalid utf8 in content", "{\"content\":\"\xff\xfe\",\"layer\":\"L1\"}", CodeInvalidJSON, "not valid UTF-8 (byte 12)"},
		{"invalid utf8 outside strings", "{\"content\":\"x\",\"layer\":\"L1\"}\xc3", CodeInvalidJSON, "not valid UTF-8"},
		{"null body", `null`, CodeInvalidJSON, "a JSON object is required"},
		{"null body with spaces", " \n null ", CodeInvalidJSON, "a JSON object is required"},
		{"null fields", `{"content":null,"layer":null}`, CodeBadRequest, "content is required"},
		{"array body", `[1]`, CodeInvalidJSON, "not an array"},
		{"string body", `"x"`, CodeInvalidJSON, "not a string"},
		{"wrong field type", `{"content":5,"layer":"L1"}`, CodeInvalidJSON, `"content" must be a string, not a number`},
		{"object for string", `{"content":{},"layer":"L1"}`, CodeInvalidJSON, `not an object`},
		{"empty", ``, CodeInvalidJSON, "empty"},
		{"trailing", `{"content":"x","layer":"L1"} {}`, CodeInvalidJSON, "more data"},
		{"unicode ok", `{"content":"café ✓","layer":"L1"}`, "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, e := DecodeSignalRequest("application/json", strings.NewReader(c.body))
			switch {
			case c.wantCode == "" && e != nil:
				t.Fatalf("refused a valid body: %+v", e)
			case c.wantCode == "":
			case e == nil:
				t.Fatalf("accepted %q, want %s", c.body, c.wantCode)
			case e.Code != c.wantCode || !strings.Contains(e.Msg, c.wantIn):
				t.Fatalf("got %s %q, want %s containing %q", e.Code, e.Msg, c.wantCode, c.wantIn)
			}
		})
	}
}
