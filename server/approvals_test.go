package server

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base32"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/countersign/countersign/engine/approval"
	"github.com/countersign/countersign/engine/rules"
	"github.com/countersign/countersign/server/httpd"
	"github.com/countersign/countersign/store"
)

// approvalAnswer is GET /v1/approvals/{id}'s body.
type approvalAnswer struct {
	ApprovalID string `json:"approvalID"`
	Status     string `json:"status"`
	Factors    []struct {
		Factor, Result, Reason string
	} `json:"factors"`
	DecidedAt *int64 `json:"decidedAt"`
	DeviceID  string `json:"deviceID"`
	Receipt   *struct {
		Decision, Biometric, Timestamp, Signature string
	} `json:"receipt"`
}

type createdApproval struct {
	ApprovalID string `json:"approvalID"`
	Status     string `json:"status"`
	ExpiresAt  int64  `json:"expiresAt"`
	Interval   int    `json:"interval"`
	UserCode   string `json:"userCode"`
}

// approvalUser creates the user userID in e's organization, with a device
// activated through the store under a fresh Ed25519 key.
func (e *testEnv) approvalUser(userID string) (store.Device, ed25519.PrivateKey) {
	e.t.Helper()
	if _, err := e.db.CreateUser(e.org.ID, store.User{UserID: userID}); err != nil {
		e.t.Fatalf("create user: %v", err)
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		e.t.Fatal(err)
	}
	code, _, err := e.db.CreateActivationCode(e.org.ID, userID)
	if err != nil {
		e.t.Fatalf("activation code: %v", err)
	}
	dev, _, err := e.db.ActivateDevice([]byte(code), &store.DeviceActivation{
		PublicKey: pub, Platform: "ios", AppVersion: "1.0.0", Model: "test"})
	if err != nil {
		e.t.Fatalf("activate device: %v", err)
	}
	return dev, priv
}

func (e *testEnv) createApproval(body string, h ...string) response {
	e.t.Helper()
	return e.do(req{path: "/v1/approvals", body: []byte(body), headers: e.withKey(h...)})
}

func (e *testEnv) mustCreateApproval(body string) createdApproval {
	e.t.Helper()
	r := e.createApproval(body)
	if r.status != 201 {
		e.t.Fatalf("create approval: %v", r)
	}
	var c createdApproval
	if err := json.Unmarshal(r.body, &c); err != nil {
		e.t.Fatalf("create approval: %v: %s", err, r.body)
	}
	return c
}

func (e *testEnv) getApproval(id, query string) (response, approvalAnswer) {
	e.t.Helper()
	r := e.do(req{method: "GET", path: "/v1/approvals/" + id + query, headers: e.withKey()})
	var a approvalAnswer
	if r.status == 200 {
		if err := json.Unmarshal(r.body, &a); err != nil {
			e.t.Fatalf("approval answer: %v: %s", err, r.body)
		}
	}
	return r, a
}

// answerApproval applies the device's signed answer through the store, as
// the device surface does.
func (e *testEnv) answerApproval(id string, dev store.Device, priv ed25519.PrivateKey, d approval.Decision) approval.Effect {
	e.t.Helper()
	var a approval.Approval
	var u approval.UserState
	settings := approval.DefaultSettings()
	now := e.clock()
	eff, err := e.db.UpdateApproval(e.org.ID, id, &a, &u, func(a *approval.Approval, u *approval.UserState) (approval.Effect, error) {
		ts := now.UTC().Format(time.RFC3339)
		digest := approval.ValuesDigest(a.Values)
		msg := approval.AppendSignedBytes(nil, a.ID, &a.Challenge, d, rules.BiometricPass, ts, &digest)
		ans := approval.DeviceAnswer{Decision: d, Biometric: rules.BiometricPass, Timestamp: ts,
			Signature: base64.RawURLEncoding.EncodeToString(ed25519.Sign(priv, msg))}
		var res rules.Result
		rules.Evaluate(nil, &rules.Input{UserID: []byte(a.UserID), Biometric: rules.BiometricPass}, now, &res)
		device := approval.Device{ID: dev.ID, UserID: dev.UserID, PublicKey: dev.PublicKey[:]}
		return approval.Answer(a, u, &settings, &device, &ans, &res, now)
	})
	if err != nil {
		e.t.Fatalf("answer: %v", err)
	}
	return eff
}

const approvalBody = `{"userID":"alice","message":"Pay 35.00 EUR to Bob","values":[{"key":"amount","value":"35.00"},{"key":"payee","value":"Bob"}],"method":"push"}`

// TestApprovalLongPollWokenByDecision: a requester's long poll, held on a
// real socket, answers approved with the factors as soon as the device's
// signed answer is stored, not when its wait ends.
func TestApprovalLongPollWokenByDecision(t *testing.T) {
	e := newEnv(t)
	e.useTCP()
	dev, priv := e.approvalUser("alice")
	c := e.mustCreateApproval(approvalBody)
	if c.Status != "pending" || c.Interval != 2 || !strings.HasPrefix(c.ApprovalID, store.ApprovalIDPrefix) ||
		c.ExpiresAt != e.clock().Add(120*time.Second).UnixMilli() || c.UserCode != "" {
		t.Fatalf("created: %+v", c)
	}
	if r, a := e.getApproval(c.ApprovalID, ""); r.status != 200 || a.Status != "pending" || a.DecidedAt != nil || len(a.Factors) != 0 {
		t.Fatalf("before the answer: %v", r)
	}

	var wg sync.WaitGroup
	var held response
	var got approvalAnswer
	start := time.Now()
	wg.Add(1)
	go func() {
		defer wg.Done()
		held, got = e.getApproval(c.ApprovalID, "?wait=25")
	}()
	// Wait until the poll is held, so the wake (not the first read) answers.
	for deadline := time.Now().Add(5 * time.Second); e.srv.core.Hub().Held() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the long poll was never held")
		}
	}
	if eff := e.answerApproval(c.ApprovalID, dev, priv, approval.DecisionApprove); eff.Status != approval.StatusApproved {
		t.Fatalf("answer: %+v", eff)
	}
	// The device surface publishes its decisions; here the store was
	// written directly, so publish as it would.
	e.srv.core.Hub().Publish(httpd.TopicKey(httpd.TopicApproval, e.org.ID.String(), c.ApprovalID))
	wg.Wait()
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("the poll answered after %v: not woken", took)
	}
	if held.status != 200 || got.Status != "approved" || got.DeviceID != dev.ID || got.DecidedAt == nil ||
		*got.DecidedAt != e.clock().UnixMilli() || got.Receipt == nil || got.Receipt.Decision != "approve" {
		t.Fatalf("held poll: %v", held)
	}
	factors := map[string]string{}
	for _, f := range got.Factors {
		factors[f.Factor] = f.Result
	}
	if factors["biometric"] != "PASS" || factors["geo_fence"] != "SKIPPED" || len(factors) != 5 {
		t.Fatalf("factors: %s", held.body)
	}
	sig, err := base64.RawURLEncoding.DecodeString(got.Receipt.Signature)
	if err != nil || len(sig) != ed25519.SignatureSize {
		t.Fatalf("receipt signature %q: %v", got.Receipt.Signature, err)
	}
	// Decided: cancel is refused, naming the status.
	r := e.do(req{method: "POST", path: "/v1/approvals/" + c.ApprovalID + "/cancel", headers: e.withKey()})
	if r.status != 409 || r.errorCode() != "approval_not_pending" || !strings.Contains(r.errorMessage(), "approved") {
		t.Fatalf("cancel after approval: %v", r)
	}
}

// TestApprovalPollTimesOutPending: a wait with nothing decided answers
// pending after the wait, not before.
func TestApprovalPollTimesOutPending(t *testing.T) {
	e := newEnv(t)
	e.useTCP()
	e.approvalUser("alice")
	c := e.mustCreateApproval(approvalBody)
	start := time.Now()
	r, a := e.getApproval(c.ApprovalID, "?wait=1")
	if took := time.Since(start); took < 900*time.Millisecond || took > 10*time.Second {
		t.Fatalf("wait=1 answered after %v", took)
	}
	if r.status != 200 || a.Status != "pending" {
		t.Fatalf("timed out poll: %v", r)
	}
}

// TestApprovalPollAnsweredAtShutdown: a held poll is answered at once when
// the server shuts down, with the status it has.
func TestApprovalPollAnsweredAtShutdown(t *testing.T) {
	e := newEnv(t)
	e.useTCP()
	e.approvalUser("alice")
	c := e.mustCreateApproval(approvalBody)
	done := make(chan response, 1)
	go func() {
		r, _ := e.getApproval(c.ApprovalID, "?wait=25")
		done <- r
	}()
	for deadline := time.Now().Add(5 * time.Second); e.srv.core.Hub().Held() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the long poll was never held")
		}
	}
	start := time.Now()
	stopped := make(chan struct{})
	go func() { e.stop(); close(stopped) }()
	select {
	case r := <-done:
		if r.status != 200 || !strings.Contains(string(r.body), `"status":"pending"`) {
			t.Fatalf("poll at shutdown: %v", r)
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Fatalf("answered %v after shutdown began", took)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the held poll was not answered at shutdown")
	}
	<-stopped // stop goes on after the poll's answer; start must not race it
	e.start() // for the cleanup's stop
}

// TestApprovalCancel: cancel answers the cancelled approval, a poll reads
// it so, and a second cancel is refused.
func TestApprovalCancel(t *testing.T) {
	e := newEnv(t)
	e.useTCP()
	e.approvalUser("alice")
	c := e.mustCreateApproval(approvalBody)
	r := e.do(req{method: "POST", path: "/v1/approvals/" + c.ApprovalID + "/cancel", headers: e.withKey()})
	if r.status != 200 || !strings.Contains(string(r.body), `"status":"cancelled"`) {
		t.Fatalf("cancel: %v", r)
	}
	if r, a := e.getApproval(c.ApprovalID, "?wait=25"); r.status != 200 || a.Status != "cancelled" || a.DecidedAt == nil {
		t.Fatalf("after cancel: %v", r)
	}
	r = e.do(req{method: "POST", path: "/v1/approvals/" + c.ApprovalID + "/cancel", headers: e.withKey()})
	if r.status != 409 || r.errorCode() != "approval_not_pending" || !strings.Contains(r.errorMessage(), "cancelled") {
		t.Fatalf("second cancel: %v", r)
	}
}

// TestApprovalPendingLimit: the fourth pending approval of a user is
// refused 429 with a Retry-After of when the earliest pending one expires;
// a cancel frees a place.
func TestApprovalPendingLimit(t *testing.T) {
	e := newEnv(t)
	e.approvalUser("alice")
	var first createdApproval
	for i := range 3 {
		c := e.mustCreateApproval(approvalBody)
		if i == 0 {
			first = c
		}
		e.advance(10 * time.Second)
	}
	r := e.createApproval(approvalBody)
	// The first expires 120 s after its creation, 30 s ago.
	if r.status != 429 || r.errorCode() != "approval_limit" || r.header["retry-after"] != "90" {
		t.Fatalf("4th pending: %v (Retry-After %q)", r, r.header["retry-after"])
	}
	if !strings.Contains(r.errorMessage(), "pending") {
		t.Fatalf("4th pending message: %q", r.errorMessage())
	}
	if r := e.do(req{method: "POST", path: "/v1/approvals/" + first.ApprovalID + "/cancel", headers: e.withKey()}); r.status != 200 {
		t.Fatalf("cancel: %v", r)
	}
	e.mustCreateApproval(approvalBody)
}

// TestApprovalWindowLimit: past 10 approvals in 10 minutes the user is
// refused 429 until the oldest leaves the window.
func TestApprovalWindowLimit(t *testing.T) {
	e := newEnv(t)
	e.approvalUser("alice")
	for range 10 {
		c := e.mustCreateApproval(approvalBody)
		if r := e.do(req{method: "POST", path: "/v1/approvals/" + c.ApprovalID + "/cancel", headers: e.withKey()}); r.status != 200 {
			t.Fatalf("cancel: %v", r)
		}
		e.advance(time.Second)
	}
	r := e.createApproval(approvalBody)
	if r.status != 429 || r.errorCode() != "approval_limit" || r.header["retry-after"] != "590" ||
		!strings.Contains(r.errorMessage(), "last minutes") {
		t.Fatalf("11th in the window: %v (Retry-After %q)", r, r.header["retry-after"])
	}
}

// TestApprovalLockedUser: a user locked after five failures is refused 423
// with Retry-After until the lock ends.
func TestApprovalLockedUser(t *testing.T) {
	e := newEnv(t)
	e.approvalUser("alice")
	var u approval.UserState
	settings := approval.DefaultSettings()
	if err := e.db.UpdateUserState(e.org.ID, "alice", &u, func(u *approval.UserState) error {
		for range 5 {
			approval.RecordFailure(u, &settings, e.clock())
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	r := e.createApproval(approvalBody)
	if r.status != 423 || r.errorCode() != "user_locked" || r.header["retry-after"] != "900" {
		t.Fatalf("locked user: %v (Retry-After %q)", r, r.header["retry-after"])
	}
}

// TestApprovalTenancy: another organization's approval is answered exactly
// as a missing one, on every route, and its user is not found.
func TestApprovalTenancy(t *testing.T) {
	e := newEnv(t)
	e.approvalUser("alice")
	c := e.mustCreateApproval(approvalBody)
	_, otherKey, err := e.db.CreateOrg("other", nil)
	if err != nil {
		t.Fatal(err)
	}
	missing := store.ApprovalIDPrefix + strings.Repeat("a", 24)
	for _, id := range []string{c.ApprovalID, missing} {
		for _, rq := range []req{
			{method: "GET", path: "/v1/approvals/" + id},
			{method: "POST", path: "/v1/approvals/" + id + "/cancel"},
			{method: "POST", path: "/v1/approvals/" + id + "/otp", body: []byte(`{"code":"123456"}`)},
		} {
			rq.headers = []string{"apikey", otherKey}
			r := e.do(rq)
			if r.status != 404 || string(r.body) != `{"success":false,"errorMessage":"No approval with this id exists for this caller.","errorCode":"approval_not_found"}` {
				t.Errorf("%s %s as the other organization: %v", rq.method, rq.path, r)
			}
		}
	}
	r := e.createApproval(approvalBody, "apikey", otherKey)
	if r.status != 404 || r.errorCode() != "user_not_found" {
		t.Fatalf("other organization's user: %v", r)
	}
	// Still pending for its own organization: nothing was cancelled.
	if _, a := e.getApproval(c.ApprovalID, ""); a.Status != "pending" {
		t.Fatalf("own approval: %+v", a)
	}
}

// TestApprovalOTP: an OTP code is checked against the user's stored seed
// (made when a device was activated): a user without one is 409 naming the
// missing seed; the current code approves, once; the same code again is
// refused as invalid; a code to a push approval is refused for its method.
func TestApprovalOTP(t *testing.T) {
	e := newEnv(t)
	e.approvalUser("alice")
	if _, err := e.db.CreateUser(e.org.ID, store.User{UserID: "bob"}); err != nil {
		t.Fatal(err)
	}
	unseeded := e.mustCreateApproval(`{"userID":"bob","message":"Log in","method":"otp"}`)
	r := e.do(req{method: "POST", path: "/v1/approvals/" + unseeded.ApprovalID + "/otp", body: []byte(`{"code":"123456"}`), headers: e.withKey()})
	if r.status != 409 || r.errorCode() != "otp_seed_missing" || !strings.Contains(r.errorMessage(), "bob has no TOTP seed") {
		t.Fatalf("otp without a seed: %v", r)
	}
	seed, err := e.db.TOTPSeed(e.org.ID, "alice", nil)
	if err != nil {
		t.Fatal(err)
	}
	code, err := totp.GenerateCodeCustom(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(seed), e.clock(),
		totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		t.Fatal(err)
	}
	wrong := e.mustCreateApproval(`{"userID":"alice","message":"Log in","method":"otp"}`)
	bad := "000000"
	if code == bad {
		bad = "000001"
	}
	r = e.do(req{method: "POST", path: "/v1/approvals/" + wrong.ApprovalID + "/otp", body: []byte(`{"code":"` + bad + `"}`), headers: e.withKey()})
	if r.status != 401 || r.errorCode() != "otp_invalid" {
		t.Fatalf("wrong code: %v", r)
	}
	r = e.do(req{method: "POST", path: "/v1/approvals/" + wrong.ApprovalID + "/otp", body: []byte(`{"code":"` + code + `"}`), headers: e.withKey()})
	if r.status != 200 || !strings.Contains(string(r.body), `"status":"approved"`) || !strings.Contains(string(r.body), `"factor":"otp"`) {
		t.Fatalf("the current code: %v", r)
	}
	again := e.mustCreateApproval(`{"userID":"alice","message":"Log in","method":"otp"}`)
	r = e.do(req{method: "POST", path: "/v1/approvals/" + again.ApprovalID + "/otp", body: []byte(`{"code":"` + code + `"}`), headers: e.withKey()})
	if r.status != 401 || r.errorCode() != "otp_invalid" {
		t.Fatalf("the same code a second time: %v", r)
	}
	otp := again
	push := e.mustCreateApproval(approvalBody)
	r = e.do(req{method: "POST", path: "/v1/approvals/" + push.ApprovalID + "/otp", body: []byte(`{"code":"123456"}`), headers: e.withKey()})
	if r.status != 409 || r.errorCode() != "approval_wrong_method" {
		t.Fatalf("otp to a push approval: %v", r)
	}
	if _, a := e.getApproval(otp.ApprovalID, ""); a.Status != "pending" {
		t.Fatalf("otp approval after the refused code: %+v", a)
	}
}

// TestApprovalNumberMatchAndIP: numberMatch gives the requester a user
// code; the source IP is the request's ip, else the caller's address.
func TestApprovalNumberMatchAndIP(t *testing.T) {
	e := newEnv(t)
	e.useTCP()
	e.approvalUser("alice")
	c := e.mustCreateApproval(`{"userID":"alice","message":"m","method":"push","numberMatch":true,"ip":"203.0.113.7","expiresIn":60}`)
	if len(c.UserCode) != 2 || c.UserCode[0] < '0' || c.UserCode[0] > '9' || c.ExpiresAt != e.clock().Add(time.Minute).UnixMilli() {
		t.Fatalf("number match: %+v", c)
	}
	var a approval.Approval
	if err := e.db.Approval(e.org.ID, c.ApprovalID, &a); err != nil {
		t.Fatal(err)
	}
	if a.SourceIP.String() != "203.0.113.7" || a.UserCodeString() != c.UserCode {
		t.Fatalf("stored: ip %v code %q", a.SourceIP, a.UserCodeString())
	}
	c = e.mustCreateApproval(approvalBody)
	if err := e.db.Approval(e.org.ID, c.ApprovalID, &a); err != nil {
		t.Fatal(err)
	}
	if a.SourceIP.String() != "127.0.0.1" {
		t.Fatalf("caller's address: %v", a.SourceIP)
	}
}

// TestApprovalBadInput: every malformed request is a 4xx naming its
// problem, never a 5xx, and creates nothing.
func TestApprovalBadInput(t *testing.T) {
	e := newEnv(t)
	e.approvalUser("alice")
	id := e.mustCreateApproval(approvalBody).ApprovalID
	long := strings.Repeat("x", approval.MaxMessageLen+1)
	var manyValues []string
	for i := range approval.MaxValues + 1 {
		manyValues = append(manyValues, fmt.Sprintf(`{"key":"k%d","value":"v"}`, i))
	}
	cases := []struct {
		name   string
		method string
		path   string
		body   string
		status int
		code   string
	}{
		{"empty body", "POST", "/v1/approvals", "", 400, "empty_body"},
		{"not json", "POST", "/v1/approvals", `{"userID":`, 400, "invalid_json"},
		{"array", "POST", "/v1/approvals", `[]`, 400, "wrong_type"},
		{"no userID", "POST", "/v1/approvals", `{"message":"m","method":"push"}`, 400, "missing_field"},
		{"no method", "POST", "/v1/approvals", `{"userID":"alice","message":"m"}`, 400, "missing_field"},
		{"no message", "POST", "/v1/approvals", `{"userID":"alice","method":"push"}`, 400, "missing_field"},
		{"unknown field", "POST", "/v1/approvals", `{"userID":"alice","message":"m","method":"push","amount":1}`, 400, "unknown_field"},
		{"duplicate field", "POST", "/v1/approvals", `{"userID":"alice","userID":"bob","message":"m","method":"push"}`, 400, "duplicate_field"},
		{"method email", "POST", "/v1/approvals", `{"userID":"alice","message":"m","method":"email"}`, 400, "invalid_field"},
		{"method unknown", "POST", "/v1/approvals", `{"userID":"alice","message":"m","method":"sms"}`, 400, "invalid_field"},
		{"method number", "POST", "/v1/approvals", `{"userID":"alice","message":"m","method":1}`, 400, "wrong_type"},
		{"values as object", "POST", "/v1/approvals", `{"userID":"alice","message":"m","method":"push","values":{"amount":"1"}}`, 400, "wrong_type"},
		{"value a number", "POST", "/v1/approvals", `{"userID":"alice","message":"m","method":"push","values":[{"key":"amount","value":35}]}`, 400, "wrong_type"},
		{"value key missing", "POST", "/v1/approvals", `{"userID":"alice","message":"m","method":"push","values":[{"value":"1"}]}`, 400, "missing_field"},
		{"value key empty", "POST", "/v1/approvals", `{"userID":"alice","message":"m","method":"push","values":[{"key":"","value":"1"}]}`, 400, "invalid_field"},
		{"value key twice", "POST", "/v1/approvals", `{"userID":"alice","message":"m","method":"push","values":[{"key":"a","value":"1"},{"key":"a","value":"2"}]}`, 400, "invalid_field"},
		{"value with NUL", "POST", "/v1/approvals", `{"userID":"alice","message":"m","method":"push","values":[{"key":"a","value":"1\u0000"}]}`, 400, "invalid_field"},
		{"too many values", "POST", "/v1/approvals", `{"userID":"alice","message":"m","method":"push","values":[` + strings.Join(manyValues, ",") + `]}`, 400, "too_many_items"},
		{"message too long", "POST", "/v1/approvals", `{"userID":"alice","message":"` + long + `","method":"push"}`, 400, "invalid_field"},
		{"expiresIn short", "POST", "/v1/approvals", `{"userID":"alice","message":"m","method":"push","expiresIn":5}`, 400, "invalid_field"},
		{"expiresIn long", "POST", "/v1/approvals", `{"userID":"alice","message":"m","method":"push","expiresIn":3601}`, 400, "invalid_field"},
		{"expiresIn negative", "POST", "/v1/approvals", `{"userID":"alice","message":"m","method":"push","expiresIn":-10}`, 400, "invalid_field"},
		{"expiresIn fraction", "POST", "/v1/approvals", `{"userID":"alice","message":"m","method":"push","expiresIn":30.5}`, 400, "wrong_type"},
		{"numberMatch with otp", "POST", "/v1/approvals", `{"userID":"alice","message":"m","method":"otp","numberMatch":true}`, 400, "invalid_field"},
		{"bad ip", "POST", "/v1/approvals", `{"userID":"alice","message":"m","method":"push","ip":"300.1.1.1"}`, 400, "invalid_field"},
		{"ip with zone", "POST", "/v1/approvals", `{"userID":"alice","message":"m","method":"push","ip":"fe80::1%eth0"}`, 400, "invalid_field"},
		{"userID empty", "POST", "/v1/approvals", `{"userID":"","message":"m","method":"push"}`, 400, "invalid_field"},
		{"userID control", "POST", "/v1/approvals", `{"userID":"a\nb","message":"m","method":"push"}`, 400, "invalid_field"},
		{"unknown user", "POST", "/v1/approvals", `{"userID":"bob","message":"m","method":"push"}`, 404, "user_not_found"},
		{"id short", "GET", "/v1/approvals/apr_1", "", 404, "approval_not_found"},
		{"id uppercase", "GET", "/v1/approvals/apr_" + strings.ToUpper(id[4:]), "", 404, "approval_not_found"},
		{"id not base32", "GET", "/v1/approvals/apr_" + strings.Repeat("1", 24), "", 404, "approval_not_found"},
		{"id too long", "GET", "/v1/approvals/" + id + "a", "", 404, "approval_not_found"},
		{"extra segment", "GET", "/v1/approvals/" + id + "/x", "", 404, "route_not_found"},
		{"cancel by GET", "GET", "/v1/approvals/" + id + "/cancel", "", 405, "method_not_allowed"},
		{"wait letters", "GET", "/v1/approvals/" + id + "?wait=soon", "", 400, "invalid_field"},
		{"wait negative", "GET", "/v1/approvals/" + id + "?wait=-1", "", 400, "invalid_field"},
		{"wait huge", "GET", "/v1/approvals/" + id + "?wait=99999999", "", 400, "invalid_field"},
		{"get by POST", "POST", "/v1/approvals/" + id, `{}`, 405, "method_not_allowed"},
		{"create by GET", "GET", "/v1/approvals", "", 405, "method_not_allowed"},
		{"otp no code", "POST", "/v1/approvals/" + id + "/otp", `{}`, 400, "missing_field"},
		{"otp code number", "POST", "/v1/approvals/" + id + "/otp", `{"code":123456}`, 400, "wrong_type"},
		{"otp code short", "POST", "/v1/approvals/" + id + "/otp", `{"code":"12345"}`, 400, "invalid_field"},
		{"otp code letters", "POST", "/v1/approvals/" + id + "/otp", `{"code":"12a456"}`, 400, "invalid_field"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rq := req{method: tc.method, path: tc.path, headers: e.withKey()}
			if tc.body != "" || tc.method == "POST" {
				rq.body = []byte(tc.body)
			}
			r := e.do(rq)
			if r.status >= 500 || r.status != tc.status || r.errorCode() != tc.code || r.errorMessage() == "" {
				t.Fatalf("got %v, want %d %s", r, tc.status, tc.code)
			}
		})
	}
	// Only the first approval was created: its user has one pending.
	got, err := e.db.PendingApprovals(e.org.ID, "alice", nil)
	if err != nil || len(got) != 1 {
		t.Fatalf("pending after the bad requests: %d, %v", len(got), err)
	}
	// Without a key, each route is refused before reading anything.
	for _, p := range []string{"/v1/approvals", "/v1/approvals/" + id + "/cancel"} {
		if r := e.do(req{method: "POST", path: p, body: []byte(approvalBody)}); r.status != 401 || r.errorCode() != "invalid_api_key" {
			t.Fatalf("%s without a key: %v", p, r)
		}
	}
}
