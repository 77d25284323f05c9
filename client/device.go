package client

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/valyala/fasthttp"
)

// The calls of the authenticator app's API (/v1/device): activation with
// an operator's code, the long poll of pending approvals, and the signed
// answer. The signed bytes are built here from DESIGN's description, not
// borrowed from the server, so a client built on this package checks the
// server's reading of the protocol rather than sharing its mistakes.

// Activation is POST /v1/device/activate's body less the code: what the
// app says about itself, and its Ed25519 public key.
type Activation struct {
	PublicKey  ed25519.PublicKey
	Platform   string // "ios" or "android"
	AppVersion string
	Model      string
	Jailbroken bool
	PushToken  string
}

// Device is an activated device: its id and user, and the token its calls
// carry (Authorization: Bearer csd_...).
type Device struct {
	DeviceID    string `json:"deviceID"`
	DeviceToken string `json:"deviceToken"`
	UserID      string `json:"userID"`
	// TOTPURI is the user's otpauth:// URI when the server answers one.
	TOTPURI string `json:"totpURI"`
}

// ActivateDevice asks POST /v1/device/activate with the operator's code.
func (c *Client) ActivateDevice(code string, a *Activation) (*Device, error) {
	const path = "/v1/device/activate"
	body := appendString([]byte(`{"activationCode":`), code)
	body = append(body, `,"publicKey":"`...)
	body = base64.RawURLEncoding.AppendEncode(body, a.PublicKey)
	body = append(body, `","platform":`...)
	body = appendString(body, a.Platform)
	body = append(body, `,"appVersion":`...)
	body = appendString(body, a.AppVersion)
	body = append(body, `,"model":`...)
	body = appendString(body, a.Model)
	body = append(body, `,"jailbroken":`...)
	body = strconv.AppendBool(body, a.Jailbroken)
	if a.PushToken != "" {
		body = append(body, `,"pushToken":`...)
		body = appendString(body, a.PushToken)
	}
	body = append(body, '}')
	r, err := c.Do("POST", path, body)
	if err != nil {
		return nil, err
	}
	if r.Status != fasthttp.StatusCreated {
		return nil, apiError(r)
	}
	d := &Device{}
	if err := json.Unmarshal(r.Body, d); err != nil {
		return nil, fmt.Errorf("POST %s: answer: %w", path, err)
	}
	return d, nil
}

// PendingApproval is an approval as the device is shown it.
type PendingApproval struct {
	ApprovalID  string  `json:"approvalID"`
	Message     string  `json:"message"`
	Values      []Value `json:"values"`
	IP          string  `json:"ip"`
	CreatedAt   int64   `json:"createdAt"`
	ExpiresAt   int64   `json:"expiresAt"`
	Challenge   string  `json:"challenge"`
	NumberMatch bool    `json:"numberMatch"`
}

// DeviceApprovals long-polls GET /v1/device/approvals?wait=N with the
// device token: the user's pending approvals as soon as there is one, or
// none after wait seconds.
func (c *Client) DeviceApprovals(token string, wait int) ([]PendingApproval, error) {
	path := "/v1/device/approvals?wait=" + strconv.Itoa(wait)
	r, err := c.doHeld("GET", path, nil, wait, Header{"Authorization", "Bearer " + token})
	if err != nil {
		return nil, err
	}
	if r.Status != fasthttp.StatusOK {
		return nil, apiError(r)
	}
	var out struct {
		Approvals []PendingApproval `json:"approvals"`
	}
	if err := json.Unmarshal(r.Body, &out); err != nil {
		return nil, fmt.Errorf("GET %s: answer: %w", path, err)
	}
	return out.Approvals, nil
}

// Location is where the device is when it answers.
type Location struct {
	Lat, Lon, AccuracyM float64
}

// DeviceAnswer is the user's answer to one approval.
type DeviceAnswer struct {
	Decision        string // "approve" or "deny"
	Biometric       string // "PASS" or "FAIL"
	BiometricMethod string // "face" or "fingerprint"
	Location        *Location
	Platform        string
	AppVersion      string
	Jailbroken      bool
	// Timestamp is RFC 3339, signed exactly as sent.
	Timestamp string
	// Number is the two digits the user picked under number matching.
	Number string
	// Signature is base64url (no padding); Sign fills it.
	Signature string
}

// SignedBytes are what the device signs for its answer to a (DESIGN
// "Users and devices"): "countersign-approval-v1", the approval id, the
// challenge as delivered, the decision, the biometric result and the
// timestamp, then the lowercase hex SHA-256 of the values (each key and
// value followed by a 0x00 byte, in the order delivered), joined by '\n'.
func SignedBytes(a *PendingApproval, ans *DeviceAnswer) []byte {
	h := sha256.New()
	for _, v := range a.Values {
		h.Write([]byte(v.Key))
		h.Write([]byte{0})
		h.Write([]byte(v.Value))
		h.Write([]byte{0})
	}
	b := []byte("countersign-approval-v1\n")
	for _, line := range [...]string{a.ApprovalID, a.Challenge, ans.Decision, ans.Biometric, ans.Timestamp} {
		b = append(b, line...)
		b = append(b, '\n')
	}
	return hex.AppendEncode(b, h.Sum(nil))
}

// Sign sets ans.Signature to key's signature of SignedBytes(a, ans).
func (ans *DeviceAnswer) Sign(key ed25519.PrivateKey, a *PendingApproval) {
	ans.Signature = base64.RawURLEncoding.EncodeToString(ed25519.Sign(key, SignedBytes(a, ans)))
}

// AppendJSON appends the answer's body to dst.
func (ans *DeviceAnswer) AppendJSON(dst []byte) []byte {
	dst = append(dst, `{"decision":`...)
	dst = appendString(dst, ans.Decision)
	dst = append(dst, `,"biometric":{"result":`...)
	dst = appendString(dst, ans.Biometric)
	if ans.BiometricMethod != "" {
		dst = append(dst, `,"method":`...)
		dst = appendString(dst, ans.BiometricMethod)
	}
	dst = append(dst, '}')
	if l := ans.Location; l != nil {
		dst = append(dst, `,"location":{"lat":`...)
		dst = strconv.AppendFloat(dst, l.Lat, 'f', -1, 64)
		dst = append(dst, `,"lon":`...)
		dst = strconv.AppendFloat(dst, l.Lon, 'f', -1, 64)
		dst = append(dst, `,"accuracyM":`...)
		dst = strconv.AppendFloat(dst, l.AccuracyM, 'f', -1, 64)
		dst = append(dst, '}')
	}
	if ans.Platform != "" || ans.AppVersion != "" || ans.Jailbroken {
		dst = append(dst, `,"device":{"platform":`...)
		dst = appendString(dst, ans.Platform)
		dst = append(dst, `,"appVersion":`...)
		dst = appendString(dst, ans.AppVersion)
		dst = append(dst, `,"jailbroken":`...)
		dst = strconv.AppendBool(dst, ans.Jailbroken)
		dst = append(dst, '}')
	}
	dst = append(dst, `,"timestamp":`...)
	dst = appendString(dst, ans.Timestamp)
	if ans.Number != "" {
		dst = append(dst, `,"number":`...)
		dst = appendString(dst, ans.Number)
	}
	dst = append(dst, `,"signature":`...)
	dst = appendString(dst, ans.Signature)
	return append(dst, '}')
}

// AnswerResult is the server's answer to a device answer that verified,
// whatever it decided.
type AnswerResult struct {
	ApprovalID string   `json:"approvalID"`
	Status     string   `json:"status"`
	Factors    []Factor `json:"factors"`
}

// AnswerApproval posts the device's answer (POST /v1/device/approvals/{id})
// with the device token. A refusal (bad signature, late, locked) is an
// *APIError naming it.
func (c *Client) AnswerApproval(token, id string, ans *DeviceAnswer) (*AnswerResult, error) {
	path := "/v1/device/approvals/" + id
	r, err := c.Do("POST", path, ans.AppendJSON(nil), Header{"Authorization", "Bearer " + token})
	if err != nil {
		return nil, err
	}
	if r.Status != fasthttp.StatusOK {
		return nil, apiError(r)
	}
	out := &AnswerResult{}
	if err := json.Unmarshal(r.Body, out); err != nil {
		return nil, fmt.Errorf("POST %s: answer: %w", path, err)
	}
	return out, nil
}
