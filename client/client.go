// Package client is the Go client of countersign's HTTP surfaces, as a
// client SDK and a backend speak them: sessions and their events with the
// client id and collect token, validate and the decision reads with the API
// key. It encodes request bodies by appending, decodes answers into typed
// structs, and retries the answers that say "ask again later" (202
// processing, 429, 503) after the delay the server advertises. It imports no
// countersign package, so whatever uses it (the load harness, the
// simulators, tests of the server) sees countersign only over HTTP, as a
// customer does.
package client

import (
	"bytes"
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

	"github.com/klauspost/compress/gzip"
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
	// Gzip compresses event bodies (Content-Encoding: gzip).
	Gzip bool
	// TLS is used for https addresses; nil uses the system roots.
	TLS *tls.Config
	// Timeout bounds one HTTP exchange; 0 means 10 s.
	Timeout time.Duration
	// MaxWait bounds how long a call keeps retrying 202 processing, 429 and
	// 503 answers; 0 means 30 s.
	MaxWait time.Duration
	// Dial replaces TCP dialing (tests use in-memory listeners); nil dials.
	Dial func(addr string) (net.Conn, error)
}

// Client is a client SDK and a backend in one: it starts sessions and
// streams their evidence with the client id and collect token, and calls
// validate with the API key. Safe for concurrent use.
type Client struct {
	base    string
	cid     string
	apiKey  string
	gzip    bool
	timeout time.Duration
	maxWait time.Duration
	hc      *fasthttp.Client
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
		base:    base,
		cid:     cfg.CID,
		apiKey:  cfg.APIKey,
		gzip:    cfg.Gzip,
		timeout: cfg.Timeout,
		maxWait: cfg.MaxWait,
	}
	if c.timeout <= 0 {
		c.timeout = 10 * time.Second
	}
	if c.maxWait <= 0 {
		c.maxWait = 30 * time.Second
	}
	c.hc = &fasthttp.Client{
		Name:            "countersign-sdk-simulator",
		TLSConfig:       cfg.TLS,
		Dial:            cfg.Dial,
		MaxConnsPerHost: 64,
		ReadTimeout:     c.timeout,
		WriteTimeout:    c.timeout,
	}
	return c, nil
}

// Session is a started collection session as the SDK holds it.
type Session struct {
	CSID         string
	UserID       string
	Action       string
	CollectToken string
	ExpiresAt    int64
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
	if err := c.hc.DoTimeout(req, resp, c.timeout); err != nil {
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

// CreateSession starts a session (POST /v1/sessions with x-client-id).
func (c *Client) CreateSession(csid, userID, action string) (*Session, error) {
	body := appendString([]byte(`{"csid":`), csid)
	body = append(body, `,"userID":`...)
	body = appendString(body, userID)
	body = append(body, `,"action":`...)
	body = appendString(body, action)
	body = append(body, '}')
	r, err := c.Do("POST", "/v1/sessions", body, Header{"x-client-id", c.cid})
	if err != nil {
		return nil, err
	}
	if r.Status != fasthttp.StatusCreated {
		return nil, apiError(r)
	}
	var out struct {
		CSID         string `json:"csid"`
		CollectToken string `json:"collectToken"`
		ExpiresAt    int64  `json:"expiresAt"`
	}
	if err := json.Unmarshal(r.Body, &out); err != nil {
		return nil, fmt.Errorf("POST /v1/sessions: answer: %w", err)
	}
	return &Session{CSID: out.CSID, UserID: userID, Action: action, CollectToken: out.CollectToken, ExpiresAt: out.ExpiresAt}, nil
}

// Field is one form value the SDK collected. Value is a raw JSON token, so a
// simulation can send the amount as "35.00" (a string) or 35 (a number).
type Field struct {
	Key   string
	Value string
	TS    int64
}

// Frame is one frame's evidence as a device's face model reports it.
type Frame struct {
	Seq       uint64
	TS        int64 // unix milliseconds, device clock
	Type      string
	Faces     int
	DocType   string // document frames: "driver_license", "passport", "id_card"
	Quality   float32
	Liveness  float32
	Embedding []float32
}

// Events is one POST /v1/sessions/{csid}/events body.
type Events struct {
	Fields []Field
	Frames []Frame
	Final  bool
}

// AppendJSON appends the events body to dst.
func (e *Events) AppendJSON(dst []byte) []byte {
	dst = append(dst, '{')
	if len(e.Fields) > 0 {
		dst = append(dst, `"fields":[`...)
		for i, f := range e.Fields {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, `{"key":`...)
			dst = appendString(dst, f.Key)
			dst = append(dst, `,"value":`...)
			dst = append(dst, f.Value...)
			if f.TS != 0 {
				dst = append(dst, `,"ts":`...)
				dst = strconv.AppendInt(dst, f.TS, 10)
			}
			dst = append(dst, '}')
		}
		dst = append(dst, "],"...)
	}
	if len(e.Frames) > 0 {
		dst = append(dst, `"frames":[`...)
		for i := range e.Frames {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = e.Frames[i].appendJSON(dst)
		}
		dst = append(dst, "],"...)
	}
	dst = append(dst, `"final":`...)
	dst = strconv.AppendBool(dst, e.Final)
	return append(dst, '}')
}

func (f *Frame) appendJSON(dst []byte) []byte {
	dst = append(dst, `{"seq":`...)
	dst = strconv.AppendUint(dst, f.Seq, 10)
	dst = append(dst, `,"ts":`...)
	dst = strconv.AppendInt(dst, f.TS, 10)
	dst = append(dst, `,"type":`...)
	dst = appendString(dst, f.Type)
	if f.Type != "document" || f.Faces != 0 {
		dst = append(dst, `,"faces":`...)
		dst = strconv.AppendInt(dst, int64(f.Faces), 10)
	}
	if f.DocType != "" {
		dst = append(dst, `,"docType":`...)
		dst = appendString(dst, f.DocType)
	}
	dst = append(dst, `,"quality":`...)
	dst = strconv.AppendFloat(dst, float64(f.Quality), 'f', -1, 32)
	dst = append(dst, `,"liveness":`...)
	dst = strconv.AppendFloat(dst, float64(f.Liveness), 'f', -1, 32)
	dst = append(dst, `,"embedding":"`...)
	dst = AppendEmbedding(dst, f.Embedding)
	return append(dst, `"}`...)
}

// Accepted is the answer to an events post.
type Accepted struct {
	Fields  int `json:"fields"`
	Frames  int `json:"frames"`
	Pending int `json:"-"`
}

// SendEvents posts events to the session (x-client-id and x-collect-token),
// gzip-compressed when the client was configured so. A 429 or 503 is retried
// after the advertised delay.
func (c *Client) SendEvents(ctx context.Context, s *Session, e *Events) (Accepted, error) {
	body := e.AppendJSON(nil)
	headers := []Header{{"x-client-id", c.cid}, {"x-collect-token", s.CollectToken}}
	if c.gzip {
		var zb bytes.Buffer
		zw := gzip.NewWriter(&zb)
		if _, err := zw.Write(body); err != nil {
			return Accepted{}, err
		}
		if err := zw.Close(); err != nil {
			return Accepted{}, err
		}
		body = zb.Bytes()
		headers = append(headers, Header{"Content-Encoding", "gzip"})
	}
	path := "/v1/sessions/" + s.CSID + "/events"
	r, _, err := c.doRetry(ctx, overloaded, "POST", path, body, headers...)
	if err != nil {
		return Accepted{}, err
	}
	if r.Status != fasthttp.StatusAccepted {
		return Accepted{}, apiError(r)
	}
	var out struct {
		Accepted Accepted `json:"accepted"`
		Pending  int      `json:"pending"`
	}
	if err := json.Unmarshal(r.Body, &out); err != nil {
		return Accepted{}, fmt.Errorf("POST %s: answer: %w", path, err)
	}
	out.Accepted.Pending = out.Pending
	return out.Accepted, nil
}

// Item is one sessionData entry of a validate request; Value is a raw JSON
// token.
type Item struct {
	Key      string
	Value    string
	Synonyms []string
}

// ValidateRequest is the backend's question for one action.
type ValidateRequest struct {
	CSID         string
	UserID       string
	Action       string
	SessionData  []Item
	IsEnrollment bool
	// IdempotencyKey, when set, is sent as the Idempotency-Key header.
	IdempotencyKey string
}

// AppendJSON appends the validate body (with the organization's cid) to dst.
func (r *ValidateRequest) AppendJSON(dst []byte, cid string) []byte {
	dst = append(dst, `{"cid":`...)
	dst = appendString(dst, cid)
	dst = append(dst, `,"csid":`...)
	dst = appendString(dst, r.CSID)
	dst = append(dst, `,"userID":`...)
	dst = appendString(dst, r.UserID)
	dst = append(dst, `,"action":`...)
	dst = appendString(dst, r.Action)
	dst = append(dst, `,"additionalData":{"sessionData":[`...)
	for i, it := range r.SessionData {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"key":`...)
		dst = appendString(dst, it.Key)
		dst = append(dst, `,"value":`...)
		dst = append(dst, it.Value...)
		dst = append(dst, `,"synonyms":[`...)
		for j, s := range it.Synonyms {
			if j > 0 {
				dst = append(dst, ',')
			}
			dst = appendString(dst, s)
		}
		dst = append(dst, "]}"...)
	}
	dst = append(dst, `]},"isEnrollment":`...)
	dst = strconv.AppendBool(dst, r.IsEnrollment)
	return append(dst, '}')
}

// Decision is a validate answer.
type Decision struct {
	Success        bool       `json:"success"`
	VerifiedAction bool       `json:"verifiedAction"`
	DecisionID     string     `json:"decisionID"`
	Indicators     Indicators `json:"indicators"`
	IVScore        int        `json:"ivScore"`
	// Raw is the answer's exact body.
	Raw []byte `json:"-"`
	// Polls is how many 202 processing answers preceded the decision.
	Polls int `json:"-"`
}

// Indicators are the decision's evidence, as DESIGN names them.
type Indicators struct {
	ValuesCollected        bool                   `json:"iv_is_values_collected"`
	ValuesMatch            bool                   `json:"iv_is_values_match"`
	MatchDetails           map[string]MatchDetail `json:"iv_values_match_details"`
	BiometricsCollected    bool                   `json:"iv_is_biometrics_collected"`
	BiometricsMatch        bool                   `json:"iv_is_biometrics_match"`
	Liveness               bool                   `json:"iv_liveness"`
	PolicyViolations       PolicyViolations       `json:"iv_policy_violations"`
	BiometricsInfo         []BiometricsInfo       `json:"iv_biometrics_info"`
	UserEnrolled           bool                   `json:"iv_user_enrolled"`
	SpoofDetected          bool                   `json:"iv_spoof_detected"`
	IDVMatching            bool                   `json:"idv_matching"`
	DriverLicenseCollected bool                   `json:"driverLicenseCollected"`
	IDLiveLiveness         bool                   `json:"idlive_liveness"`
	RegularLiveness        bool                   `json:"regular_liveness"`
}

// MatchDetail is the outcome of one sessionData item.
type MatchDetail struct {
	Matched bool    `json:"matched"`
	Field   *string `json:"field"`
	Reason  string  `json:"reason"`
}

// BiometricsInfo is one iv_biometrics_info entry: the frames of one type.
type BiometricsInfo struct {
	Type           string  `json:"type"`
	Frames         int     `json:"frames"`
	Verified       int     `json:"verified"`
	MeanSimilarity float64 `json:"meanSimilarity"`
	MeanLiveness   float64 `json:"meanLiveness"`
	FirstTs        int64   `json:"firstTs"`
	LastTs         int64   `json:"lastTs"`
}

// PolicyViolations is iv_policy_violations.
type PolicyViolations struct {
	Violations     []Violation `json:"violations"`
	HasViolations  bool        `json:"has_violations"`
	TotalFrames    int         `json:"total_frames"`
	VerifiedFrames int         `json:"verified_frames"`
}

// Violation is one kind of policy violation seen in the session.
type Violation struct {
	Type     string `json:"type"`
	Count    int    `json:"count"`
	FirstSeq uint64 `json:"firstSeq"`
}

// Violation returns the violation of the given type, if the decision has one.
func (d *Decision) Violation(kind string) (Violation, bool) {
	for _, v := range d.Indicators.PolicyViolations.Violations {
		if v.Type == kind {
			return v, true
		}
	}
	return Violation{}, false
}

// ViolationNames lists the decision's violation types, comma-separated.
func (d *Decision) ViolationNames() string {
	var b strings.Builder
	for i, v := range d.Indicators.PolicyViolations.Violations {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(v.Type)
	}
	return b.String()
}

// Validate asks POST /v1/validate (apikey header) and, while the server
// answers 202 processing (or sheds load with 429/503), asks again after the
// delay it advertises.
func (c *Client) Validate(ctx context.Context, req *ValidateRequest) (*Decision, error) {
	body := req.AppendJSON(nil, c.cid)
	headers := []Header{{"apikey", c.apiKey}}
	if req.IdempotencyKey != "" {
		headers = append(headers, Header{"Idempotency-Key", req.IdempotencyKey})
	}
	busy := func(s int) bool { return s == fasthttp.StatusAccepted || overloaded(s) }
	r, polls, err := c.doRetry(ctx, busy, "POST", "/v1/validate", body, headers...)
	if err != nil {
		return nil, err
	}
	if r.Status != fasthttp.StatusOK {
		return nil, apiError(r)
	}
	d := &Decision{Raw: r.Body, Polls: polls}
	if err := json.Unmarshal(r.Body, d); err != nil {
		return nil, fmt.Errorf("POST /v1/validate: answer: %w", err)
	}
	return d, nil
}

// GetSession reads GET /v1/sessions/{csid} with the API key and returns the
// raw answer.
func (c *Client) GetSession(csid string) (Response, error) {
	return c.Do("GET", "/v1/sessions/"+csid, nil, Header{"apikey", c.apiKey})
}

// GetDecision reads GET /v1/decisions/{id} with the API key and returns the
// raw answer.
func (c *Client) GetDecision(id string) (Response, error) {
	return c.Do("GET", "/v1/decisions/"+id, nil, Header{"apikey", c.apiKey})
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
