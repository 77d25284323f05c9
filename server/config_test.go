package server

import (
	"crypto/ed25519"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/countersign/countersign/store"
)

// nativeApproval creates a native approval over /v1/approvals.
func (e *adminEnv) nativeApproval(body string) response {
	e.t.Helper()
	return e.do(req{method: "POST", path: "/v1/approvals", body: []byte(body), headers: []string{"apikey", e.apiKey}})
}

// pendingFor polls the phone's pending approvals at once and returns the
// one with id.
func (e *adminEnv) pendingFor(p phone, id string) devicePending {
	e.t.Helper()
	r := e.poll(p, "0")
	e.want(r, 200, "")
	var list devicePoll
	strictJSON(e.t, r, &list)
	for _, a := range list.Approvals {
		if a.ApprovalID == id {
			return a
		}
	}
	e.t.Fatalf("approval %s not delivered: %s", id, r)
	return devicePending{}
}

func createdID(t *testing.T, r response) string {
	t.Helper()
	var c createdApproval
	strictJSON(t, r, &c)
	return c.ApprovalID
}

// TestConfigEndToEnd over a loopback socket: the rules an operator PUTs
// decide the device's answer to a native approval (outside the fence:
// failed, geo_fence, "geofencing"); the settings' maxPending and
// otpAfterDenial hold the next approvals (429 approval_limit, 403
// otp_required, then method otp); the activation's totpURI provisions the
// seed whose code the OTP route accepts once.
func TestConfigEndToEnd(t *testing.T) {
	e := newDeviceEnv(t)
	p := e.activatePhone("ann")
	ts := e.clock().UTC().Format(time.RFC3339)

	// A fence in New York; the phone answers from Amsterdam.
	r := e.admin("PUT", "/admin/v1/rules", `{"geoFences":[{"id":"nyc","name":"New York office","lat":40.7128,"lon":-74.006,"radiusMeters":1000}]}`, "")
	if r.status != 200 || string(r.body) != `{"version":1}` {
		t.Fatalf("PUT rules: %v", r)
	}
	r = e.nativeApproval(`{"userID":"ann","message":"Pay 35.00","method":"push"}`)
	e.want(r, 201, "")
	id := createdID(t, r)
	r = e.answer(p, id, signedAnswer(p.key, e.pendingFor(p, id), "approve", "PASS", ts, ""))
	e.want(r, 200, "")
	var ans deviceAnswered
	strictJSON(t, r, &ans)
	fenced := false
	for _, f := range ans.Factors {
		if f.Factor == "geo_fence" && f.Result == "FAIL" && strings.Contains(f.Reason, "geofencing") {
			fenced = true
		}
	}
	if ans.Status != "failed" || !fenced {
		t.Fatalf("answer outside the fence: %s", r)
	}

	// maxPending 1, then otpAfterDenial.
	e.want(e.admin("PUT", "/admin/v1/settings", `{"approvals":{"maxPending":1,"otpAfterDenial":true}}`, ""), 200, "")
	r = e.nativeApproval(`{"userID":"ann","message":"Log in","method":"push"}`)
	e.want(r, 201, "")
	id = createdID(t, r)
	e.want(e.nativeApproval(`{"userID":"ann","message":"Log in again","method":"push"}`), 429, "approval_limit")
	r = e.answer(p, id, signedAnswer(p.key, e.pendingFor(p, id), "deny", "PASS", ts, ""))
	e.want(r, 200, "")
	e.want(e.nativeApproval(`{"userID":"ann","message":"Log in","method":"push"}`), 403, "otp_required")
	r = e.nativeApproval(`{"userID":"ann","message":"Log in","method":"otp"}`)
	e.want(r, 201, "")
	otpID := createdID(t, r)

	key, err := otp.NewKeyFromURL(p.totpURI)
	if err != nil || key.Issuer() != "acme" || key.AccountName() != "ann" {
		t.Fatalf("totpURI %q: %v", p.totpURI, err)
	}
	code, err := totp.GenerateCode(key.Secret(), e.clock())
	if err != nil {
		t.Fatal(err)
	}
	otpAnswer := func(id string) response {
		return e.do(req{method: "POST", path: "/v1/approvals/" + id + "/otp", body: []byte(`{"code":"` + code + `"}`), headers: []string{"apikey", e.apiKey}})
	}
	r = otpAnswer(otpID)
	if r.status != 200 || !strings.Contains(string(r.body), `"status":"approved"`) {
		t.Fatalf("the authenticator's code: %v", r)
	}
	// The accepted code lifted the OTP requirement; the same code is not
	// accepted again.
	r = e.nativeApproval(`{"userID":"ann","message":"Log in","method":"otp"}`)
	e.want(r, 201, "")
	e.want(otpAnswer(createdID(t, r)), 401, "otp_invalid")

	// The settings' expiry and numberMatch are the defaults of the next
	// approval; a request's own expiresIn still wins.
	e.want(e.admin("PUT", "/admin/v1/settings", `{"approvals":{"expirySeconds":60,"numberMatch":true}}`, ""), 200, "")
	r = e.nativeApproval(`{"userID":"ann","message":"Pay","method":"push"}`)
	e.want(r, 201, "")
	var c createdApproval
	strictJSON(t, r, &c)
	if c.ExpiresAt != e.clock().Add(60*time.Second).UnixMilli() || len(c.UserCode) != 2 {
		t.Fatalf("under expirySeconds 60 and numberMatch: %s", r)
	}
	r = e.nativeApproval(`{"userID":"ann","message":"Pay","method":"push","expiresIn":300}`)
	e.want(r, 201, "")
	strictJSON(t, r, &c)
	if c.ExpiresAt != e.clock().Add(300*time.Second).UnixMilli() {
		t.Fatalf("expiresIn 300: %s", r)
	}

	// lockoutFailures 1: one answer signed with another key locks the user.
	e.want(e.admin("PUT", "/admin/v1/settings", `{"approvals":{"lockoutFailures":1,"lockoutMinutes":5}}`, ""), 200, "")
	_, forged, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	e.want(e.answer(p, c.ApprovalID, signedAnswer(forged, e.pendingFor(p, c.ApprovalID), "approve", "PASS", ts, "")), 422, "answer_bad_signature")
	r = e.nativeApproval(`{"userID":"ann","message":"Pay","method":"push"}`)
	if r.status != 423 || r.errorCode() != "user_locked" || r.header["retry-after"] != "300" {
		t.Fatalf("after one failure under lockoutFailures 1: %s (Retry-After %q)", r, r.header["retry-after"])
	}
}

// TestConfigKeys: an admin key creates a backend key that works, lists it
// without the key, revokes it (refused 401 from then on) and cannot revoke
// itself (409 key_in_use).
func TestConfigKeys(t *testing.T) {
	e := newAdminEnv(t)
	r := e.admin("POST", "/admin/v1/keys", `{"name":"payments","scope":"backend"}`, "")
	e.want(r, 201, "")
	var created struct {
		ID, Key, Scope, Name string
	}
	strictJSON(t, r, &created)
	if created.ID != store.APIKeyIDOf([]byte(created.Key)) || created.Scope != "backend" || created.Name != "payments" {
		t.Fatalf("created %s", r)
	}
	e.want(e.do(req{method: "POST", path: "/v1/approvals", body: []byte(`{"userID":"nobody","message":"m","method":"push"}`),
		headers: []string{"apikey", created.Key}}), 404, "user_not_found")
	r = e.admin("GET", "/admin/v1/keys", "", "")
	e.want(r, 200, "")
	if !strings.Contains(string(r.body), `"id":"`+created.ID+`","prefix":"`+created.Key[:8]+`","name":"payments","scope":"backend"`) ||
		strings.Contains(string(r.body), created.Key) {
		t.Fatalf("listing %s", r)
	}
	e.want(e.admin("DELETE", "/admin/v1/keys/"+created.ID, "", e.otherAdmin), 404, "key_not_found")
	e.want(e.admin("DELETE", "/admin/v1/keys/"+created.ID, "", ""), 204, "")
	e.want(e.do(req{method: "POST", path: "/v1/approvals", body: []byte(`{"userID":"nobody","message":"m","method":"push"}`),
		headers: []string{"apikey", created.Key}}), 401, "invalid_api_key")
	e.want(e.admin("DELETE", "/admin/v1/keys/"+store.APIKeyIDOf([]byte(e.adminKey)), "", ""), 409, "key_in_use")
	// An admin key made over the API can revoke the first.
	r = e.admin("POST", "/admin/v1/keys", `{"name":"ops","scope":"admin"}`, "")
	e.want(r, 201, "")
	strictJSON(t, r, &created)
	e.want(e.admin("DELETE", "/admin/v1/keys/"+store.APIKeyIDOf([]byte(e.adminKey)), "", created.Key), 204, "")
	e.want(e.admin("GET", "/admin/v1/keys", "", ""), 401, "invalid_api_key")
}
