package server

import (
	"bytes"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/hal9-lab/hal9-lab/server/neuron"
)

// FuzzDecodeSignalRequest: decoding never panics, and every input is either
// a valid request or a 4xx error with a code and a message.
func FuzzDecodeSignalRequest(f *testing.F) {
	f.Add("application/json", []byte(`{"content":"hello","layer":"L3"}`))
	f.Add("", []byte(`{"content":"x","layer":"L1","neuron_id":"l1-reflexive-1"}`))
	f.Add("application/json; charset=utf-8", []byte(`{"content":"x","layer":"L9"}`))
	f.Add("text/plain", []byte(`hello`))
	f.Add("application/json", []byte(`{"content":"x","layer":"L1"} {}`))
	f.Add("application/json", []byte(`{"content":1}`))
	f.Add("application/json", []byte("{\"content\":\"\xff\xfe\",\"layer\":\"L1\"}")) // invalid UTF-8
	f.Add("application/json", []byte(`null`))
	f.Add("application/json", []byte(`[{"content":"x","layer":"L1"}]`))
	f.Fuzz(func(t *testing.T, contentType string, body []byte) {
		req, e := DecodeSignalRequest(contentType, bytes.NewReader(body))
		if e != nil {
			if e.Status < 400 || e.Status > 499 || e.Code == "" || e.Msg == "" {
				t.Fatalf("not a 4xx error with code and message: %+v", e)
			}
			return
		}
		if !utf8.Valid(body) {
			t.Fatalf("accepted a body that is not valid UTF-8: %q", clip(string(body), 40))
		}
		if strings.TrimSpace(req.Content) == "" || len(req.Content) > MaxContentBytes || !utf8.ValidString(req.Content) {
			t.Fatalf("accepted bad content %q", clip(req.Content, 40))
		}
		if !neuron.ValidLayer(req.Layer) {
			t.Fatalf("accepted layer %q", req.Layer)
		}
	})
}
