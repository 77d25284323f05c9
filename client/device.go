package client

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Phone is an authenticator app on the device API (/v1/device): its
// Ed25519 key and the device token its activation was answered with. It
// is what simulations and tests use to play the user's phone: it long-polls
// the user's pending approvals and answers each signed, as the app does.
type Phone struct {
	c        *Client
	Key      ed25519.PrivateKey
	Token    string
	DeviceID string
	UserID   string
}

// PendingApproval is one approval delivered to a phone, as the poll
// answers it.
type PendingApproval struct {
	ApprovalID  string        `json:"approvalID"`
	Message     string        `json:"message"`
	Values      []PendingItem `json:"values"`
	IP          string        `json:"ip"`
	CreatedAt   int64         `json:"createdAt"`
	ExpiresAt   int64         `json:"expiresAt"`
	Challenge   string        `json:"challenge"`
	NumberMatch bool          `json:"numberMatch"`
}

// PendingItem is one value an approval shows (dynamic linking).
type PendingItem struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// ActivateDevice activates a new phone, with a fresh Ed25519 key, by an
// operator's one-time activation code.
func (c *Client) ActivateDevice(activationCode string) (*Phone, error) {
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	body := []byte(`{"activationCode":` + strconv.Quote(activationCode) + `,"publicKey":"` +
		base64.RawURLEncoding.EncodeToString(pub) + `","platform":"ios","appVersion":"2.1.0","model":"countersign-phone","jailbroken":false,"pushToken":""}`)
	r, err := c.Do("POST", "/v1/device/activate", body)
	if err != nil {
		return nil, err
	}
	if r.Status != 201 {
		return nil, apiError(r)
	}
	var a struct {
		DeviceID    string `json:"deviceID"`
		DeviceToken string `json:"deviceToken"`
		UserID      string `json:"userID"`
	}
	if err := json.Unmarshal(r.Body, &a); err != nil {
		return nil, fmt.Errorf("client: activation answer: %w", err)
	}
	return &Phone{c: c, Key: key, Token: a.DeviceToken, DeviceID: a.DeviceID, UserID: a.UserID}, nil
}

func (p *Phone) bearer() Header { return Header{Name: "Authorization", Value: "Bearer " + p.Token} }

// Poll long-polls the phone's pending approvals for up to wait (whole
// seconds); the client's Timeout must be longer.
func (p *Phone) Poll(wait time.Duration) ([]PendingApproval, error) {
	r, err := p.c.Do("GET", "/v1/device/approvals?wait="+strconv.Itoa(int(wait/time.Second)), nil, p.bearer())
	if err != nil {
		return nil, err
	}
	if r.Status != 200 {
		return nil, apiError(r)
	}
	var list struct {
		Approvals []PendingApproval `json:"approvals"`
	}
	if err := json.Unmarshal(r.Body, &list); err != nil {
		return nil, fmt.Errorf("client: poll answer: %w", err)
	}
	return list.Approvals, nil
}

// Answer sends the user's decision ("approve" or "deny") on a, with a
// passing face check, signed at now over the bytes DESIGN gives (the id,
// challenge, decision, biometric result, timestamp and the values' digest).
// It returns the approval's status after the answer.
func (p *Phone) Answer(a *PendingApproval, decision string, now time.Time) (string, error) {
	ts := now.UTC().Format(time.RFC3339)
	h := sha256.New()
	for _, v := range a.Values {
		h.Write([]byte(v.Key))
		h.Write([]byte{0})
		h.Write([]byte(v.Value))
		h.Write([]byte{0})
	}
	msg := strings.Join([]string{"countersign-approval-v1", a.ApprovalID, a.Challenge, decision, "PASS", ts,
		hex.EncodeToString(h.Sum(nil))}, "\n")
	sig := base64.RawURLEncoding.EncodeToString(ed25519.Sign(p.Key, []byte(msg)))
	body := []byte(`{"decision":` + strconv.Quote(decision) + `,"biometric":{"result":"PASS","method":"face"},` +
		`"device":{"platform":"ios","appVersion":"2.1.0","jailbroken":false},"timestamp":"` + ts +
		`","signature":"` + sig + `"}`)
	r, err := p.c.Do("POST", "/v1/device/approvals/"+a.ApprovalID, body, p.bearer())
	if err != nil {
		return "", err
	}
	if r.Status != 200 {
		return "", apiError(r)
	}
	var st struct {
		Status string `json:"status"`
	}
	if err := json.Unmarshal(r.Body, &st); err != nil {
		return "", fmt.Errorf("client: answer: %w", err)
	}
	return st.Status, nil
}
