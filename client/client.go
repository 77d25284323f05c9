// Package client is the Go client of countersign's HTTP surfaces, as a
// client SDK and a backend speak them: sessions and their events with the
// client id and collect token, validate and the decision reads with the API
// key. It encodes request bodies by appending, decodes answers into typed
// structs, and retries the answers that say "ask again later" (202
// processing, 429, 503) after the delay the server advertises.
//
// It imports no countersign package, so whatever uses it (the load harness,
// the simulators, tests of the server) sees countersign only over HTTP, as a
// customer does. native.go and approvals.go hold the calls of the native
// /v1 API, device.go those of the authenticator app's (/v1/device, with the
// signed bytes of an answer), admin.go the operator's (/admin/v1): one file
// per surface, so that no program speaks HTTP to countersign by hand.
package client

import (
	"cmp"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/valyala/fasthttp"
)

// Config says where countersign runs and as which organization the client
// SDK and backend speak.
type Config struct {
	// Addr is the server's base URL ("http://127.0.0.1:8080") or host:port.
	Addr string
	// CID is the organization's publishable client id (the SDK's credential).
	CID string
	// APIKey is the organization's secret API key (the backend's credential).
	APIKey string
	// AdminKey is the organization's admin key (the operator's credential,
	// /admin/v1 only).
	AdminKey string
	// Gzip compresses event bodies (Content-Encoding: gzip).
	Gzip bool
	// TLS is used for https addresses; nil uses the system roots.
	TLS *tls.Config
	// Timeout bounds one HTTP exchange; 0 means 10 s.
	Timeout time.Duration
	// MaxWait bounds how long a call keeps retrying 202 processing, 429 and
	// 503 answers; 0 means 30 s.
	MaxWait time.Duration
	// MaxConns bounds the connections kept to the server; 0 means 64. A
	// program holding many long polls at once needs one per poll.
	MaxConns int
	// Dial replaces TCP dialing (tests use in-memory listeners); nil dials.
	Dial func(addr string) (net.Conn, error)
}

// Client is a client SDK and a backend in one: it starts sessions and
// streams their evidence with the client id and collect token, and calls
// validate with the API key. Safe for concurrent use.
type Client struct {
	base     string
	cid      string
	apiKey   string
	adminKey string
	gzip     bool
	timeout  time.Duration
	maxWait  time.Duration
	hc       *fasthttp.Client
}

// ErrWaitExceeded is returned when a call was still answered 202 processing,
// 429 or 503 after Config.MaxWait.
var ErrWaitExceeded = errors.New("client: server still busy after the maximum wait")

// APIError is an answer other than the route's success status. Code and
// Message come from countersign's error envelope when the body is one.
type APIError struct {
	Status  int
	Code    string
	Message string
	Body    []byte
}

func (e *APIError) Error() string {
	if e.Code != "" {
		return fmt.Sprintf("HTTP %d %s: %s", e.Status, e.Code, e.Message)
	}
	return fmt.Sprintf("HTTP %d: %.200s", e.Status, e.Body)
}

// ErrNoAddress is returned by NewClient when Config.Addr is empty.
var ErrNoAddress = errors.New("client: no server address")

// NewClient returns a client for cfg.
func NewClient(cfg Config) (*Client, error) {
	base := strings.TrimRight(cfg.Addr, "/")
	if base == "" {
		return nil, ErrNoAddress
	}
	if !strings.HasPrefix(base, "http://") && !strings.HasPrefix(base, "https://") {
		base = "http://" + base
	}
	c := &Client{
		base:     base,
		cid:      cfg.CID,
		apiKey:   cfg.APIKey,
		adminKey: cfg.AdminKey,
		gzip:     cfg.Gzip,
		timeout:  cfg.Timeout,
		maxWait:  cfg.MaxWait,
	}
	if c.timeout <= 0 {
		c.timeout = 10 * time.Second
	}
	if c.maxWait <= 0 {
		c.maxWait = 30 * time.Second
	}
	c.hc = &fasthttp.Client{
		Name:            "countersign-client",
		TLSConfig:       cfg.TLS,
		Dial:            cfg.Dial,
		MaxConnsPerHost: cmp.Or(cfg.MaxConns, 64),
		// A held request (a long poll) answers only after its wait; each
		// exchange is bounded by DoTimeout, this only by the longest hold.
		ReadTimeout:  c.timeout + MaxHold,
		WriteTimeout: c.timeout,
	}
	return c, nil
}

// Response is one raw HTTP answer, body already decompressed.
type Response struct {
	Status      int
	Body        []byte
	ContentType string
	RetryAfter  string // the Retry-After header, if any
}

// Header is one request header.
type Header struct{ Name, Value string }

// Do sends one request and returns the answer, whatever its status. It is the
// building block of the typed calls, exported for tests that probe errors.
func (c *Client) Do(method, path string, body []byte, headers ...Header) (Response, error) {
	return c.doHeld(method, path, body, 0, headers...)
}

// MaxHold is the longest wait a held request (a long poll) may ask for:
// the server holds one for at most 30 s.
const MaxHold = 30 * time.Second

// doHeld is Do for a request the server may hold for wait seconds before
// it answers: the exchange's timeout is the client's plus the wait.
func (c *Client) doHeld(method, path string, body []byte, wait int, headers ...Header) (Response, error) {
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(c.base + path)
	req.Header.SetMethod(method)
	req.Header.Set("Accept-Encoding", "gzip")
	if body != nil {
		req.Header.SetContentType("application/json")
		req.SetBodyRaw(body)
	}
	for _, h := range headers {
		req.Header.Set(h.Name, h.Value)
	}
	timeout := c.timeout + min(time.Duration(wait)*time.Second, MaxHold)
	if err := c.hc.DoTimeout(req, resp, timeout); err != nil {
		return Response{}, fmt.Errorf("%s %s: %w", method, path, err)
	}
	b, err := resp.BodyUncompressed()
	if err != nil {
		return Response{}, fmt.Errorf("%s %s: decompress answer: %w", method, path, err)
	}
	return Response{
		Status:      resp.StatusCode(),
		Body:        append([]byte(nil), b...),
		ContentType: string(resp.Header.ContentType()),
		RetryAfter:  string(resp.Header.Peek("Retry-After")),
	}, nil
}

// apiError turns an unexpected answer into an *APIError.
func apiError(r Response) error {
	e := &APIError{Status: r.Status, Body: r.Body}
	var env struct {
		ErrorMessage string `json:"errorMessage"`
		ErrorCode    string `json:"errorCode"`
	}
	if json.Unmarshal(r.Body, &env) == nil {
		e.Code, e.Message = env.ErrorCode, env.ErrorMessage
	}
	return e
}

// retryDelay is how long to wait before retrying a busy answer: the body's
// retryAfterMS, else the Retry-After header, else 100 ms.
func retryDelay(r Response) time.Duration {
	var p struct {
		RetryAfterMS int `json:"retryAfterMS"`
	}
	if json.Unmarshal(r.Body, &p) == nil && p.RetryAfterMS > 0 {
		return time.Duration(p.RetryAfterMS) * time.Millisecond
	}
	if s, err := strconv.Atoi(strings.TrimSpace(r.RetryAfter)); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	return 100 * time.Millisecond
}

// doRetry sends a request again while it is answered with one of busy
// statuses, honouring the advertised delay, until ctx ends or MaxWait passes.
// It returns the last answer and how many busy answers preceded it.
func (c *Client) doRetry(ctx context.Context, busy func(int) bool, method, path string, body []byte, headers ...Header) (Response, int, error) {
	deadline := time.Now().Add(c.maxWait)
	for n := 0; ; n++ {
		r, err := c.Do(method, path, body, headers...)
		if err != nil || !busy(r.Status) {
			return r, n, err
		}
		d := retryDelay(r)
		if time.Now().Add(d).After(deadline) {
			return r, n, fmt.Errorf("%s %s: %w (last answer HTTP %d)", method, path, ErrWaitExceeded, r.Status)
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return r, n, ctx.Err()
		case <-t.C:
		}
	}
}

func overloaded(status int) bool {
	return status == fasthttp.StatusTooManyRequests || status == fasthttp.StatusServiceUnavailable
}

// appendString appends s as a JSON string. Invalid UTF-8 is replaced by
// U+FFFD so the body is always valid JSON.
func appendString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				dst = append(dst, '\\', c)
			case c == '\n':
				dst = append(dst, '\\', 'n')
			case c == '\r':
				dst = append(dst, '\\', 'r')
			case c == '\t':
				dst = append(dst, '\\', 't')
			case c < 0x20:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, `\ufffd`...)
		} else {
			dst = append(dst, s[i:i+size]...)
		}
		i += size
	}
	return append(dst, '"')
}
