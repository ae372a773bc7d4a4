package llm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// AnthropicOptions configure the Messages-API provider.
type AnthropicOptions struct {
	BaseURL    string // default https://api.anthropic.com
	APIKey     string
	Model      string // default DefaultModel
	MaxTokens  int    // default max_tokens when Request.MaxTokens is 0 (1024)
	HTTPClient *http.Client
}

// Anthropic calls Anthropic's Messages API (POST /v1/messages).
type Anthropic struct {
	opts     AnthropicOptions
	endpoint string
}

var _ Provider = (*Anthropic)(nil)

// AnthropicVersion is the anthropic-version header sent with every call.
const AnthropicVersion = "2023-06-01"

// NewAnthropic returns a provider for the Messages API.
func NewAnthropic(opts AnthropicOptions) *Anthropic {
	if opts.BaseURL == "" {
		opts.BaseURL = "https://api.anthropic.com"
	}
	if opts.Model == "" {
		opts.Model = DefaultModel
	}
	if opts.MaxTokens <= 0 {
		opts.MaxTokens = 1024
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{}
	}
	return &Anthropic{opts: opts, endpoint: strings.TrimRight(opts.BaseURL, "/") + "/v1/messages"}
}

type anthropicMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

type anthropicRequest struct {
	Model     string             `json:"model"`
	MaxTokens int                `json:"max_tokens"`
	System    string             `json:"system,omitempty"`
	Messages  []anthropicMessage `json:"messages"`
}

type anthropicResponse struct {
	Model   string `json:"model"`
	Content []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	} `json:"content"`
	Usage struct {
		InputTokens  int `json:"input_tokens"`
		OutputTokens int `json:"output_tokens"`
	} `json:"usage"`
}

type anthropicError struct {
	Error struct {
		Type    string `json:"type"`
		Message string `json:"message"`
	} `json:"error"`
}

// Complete sends one user message and returns the text blocks joined.
func (a *Anthropic) Complete(ctx context.Context, req Request) (Response, error) {
	start := time.Now()
	model := req.Model
	if model == "" {
		model = a.opts.Model
	}
	maxTokens := req.MaxTokens
	if maxTokens <= 0 {
		maxTokens = a.opts.MaxTokens
	}
	body, err := json.Marshal(anthropicRequest{
		Model: model, MaxTokens: maxTokens, System: req.System,
		Messages: []anthropicMessage{{Role: "user", Content: req.Prompt}},
	})
	if err != nil {
		return Response{}, fmt.Errorf("encode messages request: %w", err)
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, a.endpoint, bytes.NewReader(body))
	if err != nil {
		return Response{}, fmt.Errorf("build messages request for %s: %w", a.endpoint, err)
	}
	hreq.Header.Set("content-type", "application/json")
	hreq.Header.Set("x-api-key", a.opts.APIKey)
	hreq.Header.Set("anthropic-version", AnthropicVersion)

	hresp, err := a.opts.HTTPClient.Do(hreq)
	if err != nil {
		if ctx.Err() != nil {
			return Response{}, fmt.Errorf("post %s: %w", a.endpoint, ctx.Err())
		}
		return Response{}, fmt.Errorf("post %s: %w", a.endpoint, err)
	}
	defer hresp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(hresp.Body, 8<<20))
	if err != nil {
		if ctx.Err() != nil {
			return Response{}, fmt.Errorf("read response from %s: %w", a.endpoint, ctx.Err())
		}
		return Response{}, fmt.Errorf("read response from %s: %w", a.endpoint, err)
	}

	if hresp.StatusCode == http.StatusTooManyRequests {
		return Response{}, &RateLimitError{RetryAfter: parseRetryAfter(hresp.Header.Get("retry-after"))}
	}
	if hresp.StatusCode/100 != 2 {
		apiErr := &APIError{Status: hresp.StatusCode}
		var e anthropicError
		if json.Unmarshal(raw, &e) == nil && e.Error.Message != "" {
			apiErr.Type, apiErr.Message = e.Error.Type, e.Error.Message
		} else {
			apiErr.Message = strings.TrimSpace(string(raw[:min(len(raw), 200)]))
		}
		return Response{}, apiErr
	}

	var r anthropicResponse
	if err := json.Unmarshal(raw, &r); err != nil {
		return Response{}, fmt.Errorf("decode messages response from %s: %w", a.endpoint, err)
	}
	if r.Model == "" {
		r.Model = model
	}
	var text strings.Builder
	for _, c := range r.Content {
		if c.Type == "text" || c.Type == "" {
			text.WriteString(c.Text)
		}
	}
	return Response{
		Text:      text.String(),
		Model:     r.Model,
		TokensIn:  r.Usage.InputTokens,
		TokensOut: r.Usage.OutputTokens,
		CostUSD:   Cost(r.Model, r.Usage.InputTokens, r.Usage.OutputTokens),
		Duration:  time.Since(start),
	}, nil
}

// parseRetryAfter reads delta-seconds or an HTTP date; 0 when absent or bad.
func parseRetryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil && s >= 0 {
		return time.Duration(s * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0)
	}
	return 0
}

// errIsContext reports whether err is the context's own ending.
func errIsContext(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}
