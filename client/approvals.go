package client

import (
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/valyala/fasthttp"
)

// Value is one value an approval shows the user and the device signs over
// (dynamic linking): the amount, the payee.
type Value struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// ApprovalRequest is POST /v1/approvals's body: a backend asks a user to
// approve on the registered device.
type ApprovalRequest struct {
	UserID  string
	Message string
	Values  []Value
	// Method is "push" (the device answers) or "otp" (the user's TOTP code).
	Method string
	// ExpiresIn is seconds until the approval expires; 0 is the
	// organization's default.
	ExpiresIn int
	// NumberMatch asks the device for the two digits the requester shows.
	NumberMatch bool
	// IP is the source IP the rules judge; "" is the caller's address.
	IP string
}

// AppendJSON appends the request body to dst.
func (r *ApprovalRequest) AppendJSON(dst []byte) []byte {
	dst = append(dst, `{"userID":`...)
	dst = appendString(dst, r.UserID)
	dst = append(dst, `,"message":`...)
	dst = appendString(dst, r.Message)
	if len(r.Values) > 0 {
		dst = append(dst, `,"values":`...)
		dst = appendValues(dst, r.Values)
	}
	dst = append(dst, `,"method":`...)
	method := r.Method
	if method == "" {
		method = "push"
	}
	dst = appendString(dst, method)
	if r.ExpiresIn != 0 {
		dst = append(dst, `,"expiresIn":`...)
		dst = strconv.AppendInt(dst, int64(r.ExpiresIn), 10)
	}
	if r.NumberMatch {
		dst = append(dst, `,"numberMatch":true`...)
	}
	if r.IP != "" {
		dst = append(dst, `,"ip":`...)
		dst = appendString(dst, r.IP)
	}
	return append(dst, '}')
}

func appendValues(dst []byte, values []Value) []byte {
	dst = append(dst, '[')
	for i, v := range values {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"key":`...)
		dst = appendString(dst, v.Key)
		dst = append(dst, `,"value":`...)
		dst = appendString(dst, v.Value)
		dst = append(dst, '}')
	}
	return append(dst, ']')
}

// CreatedApproval is the answer to POST /v1/approvals.
type CreatedApproval struct {
	ApprovalID string `json:"approvalID"`
	Status     string `json:"status"`
	ExpiresAt  int64  `json:"expiresAt"`
	Interval   int    `json:"interval"`
	// UserCode is the number the requester shows under number matching.
	UserCode string `json:"userCode"`
}

// Factor is one rule factor's outcome: biometric, geo_fence, time_window,
// ip or device; PASS, FAIL or SKIPPED with a reason.
type Factor struct {
	Factor string `json:"factor"`
	Result string `json:"result"`
	Reason string `json:"reason"`
}

// Receipt is the device's signed answer, kept so anyone holding the
// device's public key can verify what the user approved.
type Receipt struct {
	Decision  string `json:"decision"`
	Biometric string `json:"biometric"`
	Timestamp string `json:"timestamp"`
	Signature string `json:"signature"`
}

// ApprovalStatus is the requester's view of an approval
// (GET /v1/approvals/{id}).
type ApprovalStatus struct {
	ApprovalID string   `json:"approvalID"`
	Status     string   `json:"status"`
	Factors    []Factor `json:"factors"`
	DecidedAt  *int64   `json:"decidedAt"`
	DeviceID   string   `json:"deviceID"`
	Receipt    *Receipt `json:"receipt"`
	// Raw is the answer's exact body.
	Raw []byte `json:"-"`
}

// Factor returns the named factor's outcome, if the approval has it.
func (a *ApprovalStatus) Factor(name string) (Factor, bool) {
	for _, f := range a.Factors {
		if f.Factor == name {
			return f, true
		}
	}
	return Factor{}, false
}

// CreateApproval asks POST /v1/approvals with the API key.
func (c *Client) CreateApproval(r *ApprovalRequest) (*CreatedApproval, error) {
	const path = "/v1/approvals"
	resp, err := c.Do("POST", path, r.AppendJSON(nil), Header{"apikey", c.apiKey})
	if err != nil {
		return nil, err
	}
	if resp.Status != fasthttp.StatusCreated {
		return nil, apiError(resp)
	}
	out := &CreatedApproval{}
	if err := json.Unmarshal(resp.Body, out); err != nil {
		return nil, fmt.Errorf("POST %s: answer: %w", path, err)
	}
	return out, nil
}

// Approval reads GET /v1/approvals/{id}?wait=N: at once when wait is 0 or
// the approval is decided, else when it is decided or wait seconds pass.
// The exchange's timeout is stretched to cover the wait.
func (c *Client) Approval(id string, wait int) (*ApprovalStatus, error) {
	path := "/v1/approvals/" + id
	if wait > 0 {
		path += "?wait=" + strconv.Itoa(wait)
	}
	return c.approvalCall("GET", path, nil, wait)
}

// CancelApproval asks POST /v1/approvals/{id}/cancel.
func (c *Client) CancelApproval(id string) (*ApprovalStatus, error) {
	return c.approvalCall("POST", "/v1/approvals/"+id+"/cancel", nil, 0)
}

// ApprovalOTP answers an OTP approval with the user's code
// (POST /v1/approvals/{id}/otp).
func (c *Client) ApprovalOTP(id, code string) (*ApprovalStatus, error) {
	body := appendString([]byte(`{"code":`), code)
	return c.approvalCall("POST", "/v1/approvals/"+id+"/otp", append(body, '}'), 0)
}

func (c *Client) approvalCall(method, path string, body []byte, wait int) (*ApprovalStatus, error) {
	resp, err := c.doHeld(method, path, body, wait, Header{"apikey", c.apiKey})
	if err != nil {
		return nil, err
	}
	if resp.Status != fasthttp.StatusOK {
		return nil, apiError(resp)
	}
	out := &ApprovalStatus{Raw: resp.Body}
	if err := json.Unmarshal(resp.Body, out); err != nil {
		return nil, fmt.Errorf("%s %s: answer: %w", method, path, err)
	}
	return out, nil
}
