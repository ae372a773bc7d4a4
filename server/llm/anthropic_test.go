package llm

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// messagesAPI is an in-test server speaking the Messages API; handle decides
// the answer after the request was checked.
func messagesAPI(t *testing.T, handle func(w http.ResponseWriter, req anthropicRequest)) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/messages" {
			http.Error(w, "wrong route "+r.Method+" "+r.URL.Path, http.StatusNotFound)
			return
		}
		if r.Header.Get("x-api-key") != "sk-test" || r.Header.Get("anthropic-version") != "2023-06-01" ||
			!strings.HasPrefix(r.Header.Get("content-type"), "application/json") {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"type":"error","error":{"type":"authentication_error","message":"bad headers"}}`))
			return
		}
		var req anthropicRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		handle(w, req)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestAnthropic(t *testing.T) {
	var got anthropicRequest
	cases := []struct {
		name   string
		handle func(w http.ResponseWriter, req anthropicRequest)
		ctx    func() (context.Context, context.CancelFunc)
		check  func(t *testing.T, resp Response, err error)
	}{
		{
			name: "success",
			handle: func(w http.ResponseWriter, req anthropicRequest) {
				got = req
				_, _ = w.Write([]byte(`{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929",
					"content":[{"type":"text","text":"Hello"},{"type":"text","text":", world"}],
					"stop_reason":"end_turn","usage":{"input_tokens":1200,"output_tokens":300}}`))
			},
			check: func(t *testing.T, resp Response, err error) {
				if err != nil {
					t.Fatal(err)
				}
				if resp.Text != "Hello, world" || resp.TokensIn != 1200 || resp.TokensOut != 300 {
					t.Fatalf("response %+v", resp)
				}
				if want := 1.2*0.003 + 0.3*0.015; abs(resp.CostUSD-want) > 1e-12 {
					t.Fatalf("cost %v, want %v", resp.CostUSD, want)
				}
				if got.Model != "claude-sonnet-4-5" || got.MaxTokens != 256 || got.System != "sys" ||
					len(got.Messages) != 1 || got.Messages[0].Role != "user" || got.Messages[0].Content != "hi" {
					t.Fatalf("request sent %+v", got)
				}
			},
		},
		{
			name: "429 keeps retry-after",
			handle: func(w http.ResponseWriter, _ anthropicRequest) {
				w.Header().Set("retry-after", "7")
				w.WriteHeader(http.StatusTooManyRequests)
				_, _ = w.Write([]byte(`{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}`))
			},
			check: func(t *testing.T, _ Response, err error) {
				if d, ok := RetryAfter(err); !errors.Is(err, ErrRateLimited) || !ok || d != 7*time.Second {
					t.Fatalf("%v (retry after %v), want ErrRateLimited with 7s", err, d)
				}
			},
		},
		{
			name: "500 with error message",
			handle: func(w http.ResponseWriter, _ anthropicRequest) {
				w.WriteHeader(529)
				_, _ = w.Write([]byte(`{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`))
			},
			check: func(t *testing.T, _ Response, err error) {
				var ae *APIError
				if !errors.As(err, &ae) || ae.Status != 529 || ae.Message != "Overloaded" || ae.Type != "overloaded_error" {
					t.Fatalf("%v, want APIError 529 Overloaded", err)
				}
			},
		},
		{
			name: "400 plain body",
			handle: func(w http.ResponseWriter, _ anthropicRequest) {
				http.Error(w, "nope", http.StatusBadRequest)
			},
			check: func(t *testing.T, _ Response, err error) {
				var ae *APIError
				if !errors.As(err, &ae) || ae.Status != 400 || ae.Message != "nope" {
					t.Fatalf("%v, want APIError 400 nope", err)
				}
			},
		},
		{
			name: "malformed JSON",
			handle: func(w http.ResponseWriter, _ anthropicRequest) {
				_, _ = w.Write([]byte(`{"content":[{"type":"text","text":"x"}`))
			},
			check: func(t *testing.T, _ Response, err error) {
				if err == nil || !strings.Contains(err.Error(), "decode messages response") {
					t.Fatalf("%v, want a decode error", err)
				}
			},
		},
		{
			name: "ctx timeout",
			handle: func(w http.ResponseWriter, _ anthropicRequest) {
				time.Sleep(300 * time.Millisecond)
				_, _ = w.Write([]byte(`{}`))
			},
			ctx: func() (context.Context, context.CancelFunc) {
				return context.WithTimeout(context.Background(), 20*time.Millisecond)
			},
			check: func(t *testing.T, _ Response, err error) {
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("%v, want context.DeadlineExceeded", err)
				}
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv := messagesAPI(t, c.handle)
			a := NewAnthropic(AnthropicOptions{BaseURL: srv.URL + "/", APIKey: "sk-test", MaxTokens: 256})
			ctx, cancel := context.Background(), context.CancelFunc(func() {})
			if c.ctx != nil {
				ctx, cancel = c.ctx()
			}
			defer cancel()
			resp, err := a.Complete(ctx, Request{Layer: "L2", System: "sys", Prompt: "hi"})
			c.check(t, resp, err)
		})
	}
}

func TestAnthropicThroughGuardTimesOut(t *testing.T) {
	srv := messagesAPI(t, func(w http.ResponseWriter, _ anthropicRequest) {
		time.Sleep(300 * time.Millisecond)
	})
	g := NewGuard(NewAnthropic(AnthropicOptions{BaseURL: srv.URL, APIKey: "sk-test"}), GuardOptions{Timeout: 20 * time.Millisecond})
	if _, err := g.Complete(context.Background(), Request{Layer: "L1", Prompt: "x"}); !errors.Is(err, ErrTimeout) {
		t.Fatalf("%v, want ErrTimeout", err)
	}
}
