package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/klauspost/compress/gzip"
	"github.com/valyala/fasthttp"
)

// Session is a started collection session as the SDK holds it.
type Session struct {
	CSID         string
	UserID       string
	Action       string
	CollectToken string
	ExpiresAt    int64
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
