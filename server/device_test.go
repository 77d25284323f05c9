package server

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/countersign/countersign/engine/approval"
	"github.com/countersign/countersign/server/httpd"
	"github.com/countersign/countersign/store"
)

// deviceActivation is POST /v1/device/activate's answer, decoded strictly.
type deviceActivation struct {
	DeviceID    string `json:"deviceID"`
	DeviceToken string `json:"deviceToken"`
	UserID      string `json:"userID"`
	TOTPURI     string `json:"totpURI"`
}

type devicePending struct {
	ApprovalID string `json:"approvalID"`
	Message    string `json:"message"`
	Values     []struct {
		Key   string `json:"key"`
		Value string `json:"value"`
	} `json:"values"`
	IP          string `json:"ip"`
	CreatedAt   int64  `json:"createdAt"`
	ExpiresAt   int64  `json:"expiresAt"`
	Challenge   string `json:"challenge"`
	NumberMatch bool   `json:"numberMatch"`
}

type devicePoll struct {
	Approvals []devicePending `json:"approvals"`
}

type deviceAnswered struct {
	ApprovalID string `json:"approvalID"`
	Status     string `json:"status"`
	Factors    []struct {
		Factor string `json:"factor"`
		Result string `json:"result"`
		Reason string `json:"reason"`
	} `json:"factors"`
}

// phone is an authenticator app: its Ed25519 key and the token activation
// gave it.
type phone struct {
	key     ed25519.PrivateKey
	token   string
	id      string
	totpURI string // the activation's provisioning URI of the user's TOTP seed
}

// newDeviceEnv is the admin test server (loopback socket) with a user ann.
func newDeviceEnv(t *testing.T) *adminEnv {
	e := newAdminEnv(t)
	e.want(e.admin("POST", "/admin/v1/users", `{"userID":"ann"}`, ""), 201, "")
	return e
}

// activationCode asks the operator's API for a code for userID, checking
// its form and its expiry.
func (e *adminEnv) activationCode(userID string) string {
	e.t.Helper()
	r := e.admin("POST", "/admin/v1/users/"+userID+"/activation-codes", "", "")
	e.want(r, 201, "")
	var ac struct {
		ActivationCode string `json:"activationCode"`
		ExpiresAt      int64  `json:"expiresAt"`
	}
	strictJSON(e.t, r, &ac)
	if want := e.clock().Add(store.ActivationCodeTTL).UnixMilli(); ac.ExpiresAt != want || !strings.HasPrefix(ac.ActivationCode, store.ActivationCodePrefix) {
		e.t.Fatalf("activation code %+v, want expiry %d", ac, want)
	}
	return ac.ActivationCode
}

// activatePhone activates a new phone for userID over /v1/device/activate.
func (e *adminEnv) activatePhone(userID string) phone {
	e.t.Helper()
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		e.t.Fatal(err)
	}
	body := fmt.Sprintf(`{"activationCode":%q,"publicKey":%q,"platform":"ios","appVersion":"2.1.0","model":"iPhone15,2","jailbroken":false,"pushToken":"apns-1"}`,
		e.activationCode(userID), base64.RawURLEncoding.EncodeToString(pub))
	r := e.do(req{method: "POST", path: "/v1/device/activate", body: []byte(body)})
	e.want(r, 201, "")
	var a deviceActivation
	strictJSON(e.t, r, &a)
	if a.UserID != userID || !strings.HasPrefix(a.DeviceToken, store.DeviceTokenPrefix) || !strings.HasPrefix(a.DeviceID, store.DeviceIDPrefix) {
		e.t.Fatalf("activation answered %+v", a)
	}
	d, err := e.db.Device(e.org.ID, a.DeviceID)
	if err != nil || !ed25519.PublicKey(d.PublicKey[:]).Equal(pub) || d.Platform != "ios" || d.PushToken != "apns-1" {
		e.t.Fatalf("stored device %+v, %v", d, err)
	}
	return phone{key: key, token: a.DeviceToken, id: a.DeviceID, totpURI: a.TOTPURI}
}

// createApproval stores a pending push approval for userID of org as the
// approval surfaces do, and publishes the user's topic.
func (e *adminEnv) createApproval(org store.OrgID, userID string, numberMatch bool, edit ...func(*approval.Request)) *approval.Approval {
	e.t.Helper()
	id, err := e.db.NewApprovalID()
	if err != nil {
		e.t.Fatal(err)
	}
	s := approval.DefaultSettings()
	rq := approval.Request{ID: id, UserID: userID, Message: "Pay Acme 35.00?", Method: approval.MethodPush, NumberMatch: numberMatch,
		Values: []approval.Value{{Key: "amount", Value: "35.00"}, {Key: "payee", Value: "NL91ABNA0417164300"}}}
	for _, f := range edit {
		f(&rq)
	}
	a := new(approval.Approval)
	if err := approval.New(a, &rq, &s, e.clock(), rand.Reader); err != nil {
		e.t.Fatal(err)
	}
	err = e.db.CreateApproval(org, a, func(u *approval.UserState, adm *approval.Admission) error {
		adm.Method = a.Method
		_, err := approval.Admit(u, &s, adm, e.clock())
		return err
	})
	if err != nil {
		e.t.Fatal(err)
	}
	e.publishUser(org, userID)
	return a
}

func (e *adminEnv) publishUser(org store.OrgID, userID string) {
	e.srv.core.Hub().Publish(httpd.TopicKey(httpd.TopicUserApprovals, org.String(), userID))
}

// poll is the app's long poll.
func (e *adminEnv) poll(p phone, wait string) response {
	e.t.Helper()
	return e.do(req{method: "GET", path: "/v1/device/approvals?wait=" + wait, headers: []string{"Authorization", "Bearer " + p.token}})
}

// signedAnswer is the answer body the app sends for a, signed with key
// over DESIGN's signed bytes, built here line by line as the app does.
func signedAnswer(key ed25519.PrivateKey, a devicePending, decision, biometric, timestamp, number string) string {
	h := sha256.New()
	for _, v := range a.Values {
		h.Write([]byte(v.Key))
		h.Write([]byte{0})
		h.Write([]byte(v.Value))
		h.Write([]byte{0})
	}
	msg := strings.Join([]string{"countersign-approval-v1", a.ApprovalID, a.Challenge, decision, biometric, timestamp,
		fmt.Sprintf("%x", h.Sum(nil))}, "\n")
	sig := base64.RawURLEncoding.EncodeToString(ed25519.Sign(key, []byte(msg)))
	num := ""
	if number != "" {
		num = fmt.Sprintf(`,"number":%q`, number)
	}
	return fmt.Sprintf(`{"decision":%q,"biometric":{"result":%q,"method":"face"},"location":{"lat":52.37,"lon":4.89,"accuracyM":12},`+
		`"device":{"platform":"ios","appVersion":"2.1.0","jailbroken":false},"timestamp":%q%s,"signature":%q}`,
		decision, biometric, timestamp, num, sig)
}

func (e *adminEnv) answer(p phone, id, body string) response {
	e.t.Helper()
	return e.do(req{method: "POST", path: "/v1/device/approvals/" + id, body: []byte(body), headers: []string{"Authorization", "Bearer " + p.token}})
}

// waitHeld waits until n requests are held on the hub.
func (e *adminEnv) waitHeld(n int) {
	e.t.Helper()
	for deadline := time.Now().Add(5 * time.Second); e.srv.core.Hub().Held() != n; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			e.t.Fatalf("held %d, want %d", e.srv.core.Hub().Held(), n)
		}
	}
}

// pollOne polls while a approval is created and published, and returns
// the one approval delivered and how long after the publish it came.
func (e *adminEnv) pollOne(p phone, create func() *approval.Approval) (devicePending, *approval.Approval, time.Duration) {
	e.t.Helper()
	type got struct {
		r  response
		at time.Time
	}
	done := make(chan got, 1)
	go func() {
		r := e.poll(p, "25")
		done <- got{r, time.Now()}
	}()
	e.waitHeld(1)
	a := create()
	published := time.Now()
	var g got
	select {
	case g = <-done:
	case <-time.After(10 * time.Second):
		e.t.Fatal("the long poll did not answer after the publish")
	}
	e.want(g.r, 200, "")
	var list devicePoll
	strictJSON(e.t, g.r, &list)
	if len(list.Approvals) != 1 || list.Approvals[0].ApprovalID != a.ID {
		e.t.Fatalf("poll delivered %s, want %s alone", g.r, a.ID)
	}
	return list.Approvals[0], a, g.at.Sub(published)
}

// TestDeviceEndToEnd: an operator creates a user and an activation code,
// the app activates with a real Ed25519 key, an approval created through
// the store is delivered by the long poll, and the signed answers approve,
// deny and (with a bad signature) are refused and counted; a revoked
// device is refused.
func TestDeviceEndToEnd(t *testing.T) {
	e := newDeviceEnv(t)
	p := e.activatePhone("ann")
	ts := e.clock().UTC().Format(time.RFC3339)

	// Approve.
	got, a, latency := e.pollOne(p, func() *approval.Approval { return e.createApproval(e.org.ID, "ann", false) })
	t.Logf("long poll answered %v after the publish", latency)
	if got.Message != a.Message || len(got.Values) != 2 || got.Values[0].Key != "amount" || got.Values[1].Value != "NL91ABNA0417164300" ||
		got.Challenge != base64.RawURLEncoding.EncodeToString(a.Challenge[:]) || got.NumberMatch ||
		got.CreatedAt != a.CreatedAt.UnixMilli() || got.ExpiresAt != a.ExpiresAt.UnixMilli() || got.IP != "" {
		t.Fatalf("delivered %+v for %+v", got, a)
	}
	r := e.answer(p, a.ID, signedAnswer(p.key, got, "approve", "PASS", ts, ""))
	e.want(r, 200, "")
	var ans deviceAnswered
	strictJSON(t, r, &ans)
	if ans.ApprovalID != a.ID || ans.Status != "approved" || len(ans.Factors) == 0 || ans.Factors[0].Factor != "biometric" || ans.Factors[0].Result != "PASS" {
		t.Fatalf("approve answered %s", r)
	}
	var stored approval.Approval
	if err := e.db.Approval(e.org.ID, a.ID, &stored); err != nil || stored.Status != approval.StatusApproved || stored.DeviceID != p.id ||
		!stored.VerifyReceipt(p.key.Public().(ed25519.PublicKey)) {
		t.Fatalf("stored %+v, %v: want approved with a receipt that verifies", stored, err)
	}
	// A second answer to the decided approval is refused, and is no failure.
	e.want(e.answer(p, a.ID, signedAnswer(p.key, got, "approve", "PASS", ts, "")), 409, "approval_not_pending")

	// Deny.
	got, a, _ = e.pollOne(p, func() *approval.Approval { return e.createApproval(e.org.ID, "ann", false) })
	r = e.answer(p, a.ID, signedAnswer(p.key, got, "deny", "PASS", ts, ""))
	e.want(r, 200, "")
	strictJSON(t, r, &ans)
	if ans.Status != "denied" {
		t.Fatalf("deny answered %s", r)
	}

	// A bad signature: an altered value no longer matches what was signed.
	got, a, _ = e.pollOne(p, func() *approval.Approval { return e.createApproval(e.org.ID, "ann", false) })
	altered := got
	altered.Values = append(altered.Values[:0:0], got.Values...)
	altered.Values[0].Value = "3500.00"
	r = e.answer(p, a.ID, signedAnswer(p.key, altered, "approve", "PASS", ts, ""))
	e.want(r, 422, "answer_bad_signature")
	var u approval.UserState
	if err := e.db.UserState(e.org.ID, "ann", &u); err != nil || u.Failures != 1 {
		t.Fatalf("after a bad signature the user state is %+v, %v: want one failure", u, err)
	}
	if err := e.db.Approval(e.org.ID, a.ID, &stored); err != nil || stored.Status != approval.StatusPending {
		t.Fatalf("a refused answer decided the approval: %+v, %v", stored, err)
	}
	// A stale timestamp is refused and counted too; the real answer then
	// still approves (the approval stayed pending), which ends the run.
	stale := e.clock().Add(-10 * time.Minute).UTC().Format(time.RFC3339)
	e.want(e.answer(p, a.ID, signedAnswer(p.key, got, "approve", "PASS", stale, "")), 422, "answer_bad_timestamp")
	if err := e.db.UserState(e.org.ID, "ann", &u); err != nil || u.Failures != 2 {
		t.Fatalf("after a stale answer the user state is %+v, %v: want two failures", u, err)
	}
	r = e.answer(p, a.ID, signedAnswer(p.key, got, "approve", "FAIL", ts, ""))
	e.want(r, 200, "")
	strictJSON(t, r, &ans)
	if ans.Status != "failed" || ans.Factors[0].Result != "FAIL" {
		t.Fatalf("a biometric FAIL answered %s, want failed", r)
	}

	// Number matching: the right number approves.
	got, a, _ = e.pollOne(p, func() *approval.Approval { return e.createApproval(e.org.ID, "ann", true) })
	if !got.NumberMatch {
		t.Fatalf("delivered %+v without numberMatch", got)
	}
	r = e.answer(p, a.ID, signedAnswer(p.key, got, "approve", "PASS", ts, string(a.UserCode[:])))
	e.want(r, 200, "")
	strictJSON(t, r, &ans)
	if ans.Status != "approved" || ans.Factors[len(ans.Factors)-1].Factor != "number_match" {
		t.Fatalf("number match answered %s", r)
	}

	// Revoked: the token stops working at once, on both routes.
	e.want(e.admin("DELETE", "/admin/v1/devices/"+p.id, "", ""), 204, "")
	e.want(e.poll(p, "0"), 401, "invalid_device_token")
	e.want(e.answer(p, a.ID, signedAnswer(p.key, got, "approve", "PASS", ts, "")), 401, "invalid_device_token")
}

// TestDeviceUserDeleted: once the operator deletes a user, the very next
// call of the user's device is refused, though its token was just used;
// the user made again with the same id and a new phone, the new phone
// works and the old one stays refused.
func TestDeviceUserDeleted(t *testing.T) {
	e := newDeviceEnv(t)
	p := e.activatePhone("ann")
	e.want(e.poll(p, "0"), 200, "")
	e.want(e.admin("DELETE", "/admin/v1/users/ann", "", ""), 204, "")
	e.want(e.poll(p, "0"), 401, "invalid_device_token")
	ts := e.clock().UTC().Format(time.RFC3339)
	e.want(e.answer(p, "apr_doesnotexist", signedAnswer(p.key, devicePending{ApprovalID: "apr_doesnotexist"}, "approve", "PASS", ts, "")),
		401, "invalid_device_token")

	e.want(e.admin("POST", "/admin/v1/users", `{"userID":"ann"}`, ""), 201, "")
	again := e.activatePhone("ann")
	e.want(e.poll(again, "0"), 200, "")
	e.want(e.poll(p, "0"), 401, "invalid_device_token")
	e.want(e.admin("DELETE", "/admin/v1/devices/"+again.id, "", ""), 204, "")
	e.want(e.poll(again, "0"), 401, "invalid_device_token")
}

// TestDeviceTenancy: a device sees only its own user's approvals, and
// another user's approval id, in its organization or another, is answered
// exactly as one that does not exist, and changes nothing.
func TestDeviceTenancy(t *testing.T) {
	e := newDeviceEnv(t)
	e.want(e.admin("POST", "/admin/v1/users", `{"userID":"bob"}`, ""), 201, "")
	e.want(e.admin("POST", "/admin/v1/users", `{"userID":"ann"}`, e.otherAdmin), 201, "")
	p := e.activatePhone("ann")
	bobs := e.createApproval(e.org.ID, "bob", false)
	foreign := e.createApproval(e.other.ID, "ann", false)

	r := e.poll(p, "0")
	e.want(r, 200, "")
	if string(r.body) != `{"approvals":[]}` {
		t.Fatalf("ann's device saw %s", r)
	}
	ts := e.clock().UTC().Format(time.RFC3339)
	missing := e.answer(p, "apr_doesnotexist", signedAnswer(p.key, devicePending{ApprovalID: "apr_doesnotexist"}, "approve", "PASS", ts, ""))
	e.want(missing, 404, "approval_not_found")
	for _, a := range []*approval.Approval{bobs, foreign} {
		pa := devicePending{ApprovalID: a.ID, Challenge: base64.RawURLEncoding.EncodeToString(a.Challenge[:])}
		r := e.answer(p, a.ID, signedAnswer(p.key, pa, "approve", "PASS", ts, ""))
		if r.status != missing.status || string(r.body) != string(missing.body) {
			t.Errorf("another user's approval answered %s, a missing one %s", r, missing)
		}
	}
	var st approval.Approval
	if err := e.db.Approval(e.org.ID, bobs.ID, &st); err != nil || st.Status != approval.StatusPending {
		t.Errorf("bob's approval after ann's answer: %+v, %v", st, err)
	}
}

// TestDevicePollTimeout: a long poll with nothing pending answers an empty
// list once wait has passed, not before.
func TestDevicePollTimeout(t *testing.T) {
	e := newDeviceEnv(t)
	p := e.activatePhone("ann")
	start := time.Now()
	r := e.poll(p, "1")
	took := time.Since(start)
	e.want(r, 200, "")
	if string(r.body) != `{"approvals":[]}` || took < time.Second || took > 5*time.Second {
		t.Fatalf("poll of wait=1 answered %s after %v", r, took)
	}
	// A publish for nothing (another approval's change) does not end it.
	done := make(chan response, 1)
	go func() { done <- e.poll(p, "1") }()
	e.waitHeld(1)
	e.publishUser(e.org.ID, "ann")
	if r := <-done; string(r.body) != `{"approvals":[]}` {
		t.Fatalf("poll answered %s", r)
	}
}

// TestDevicePollShutdown: shutting the server down answers a held poll at
// once, with an empty list, instead of waiting out its wait.
func TestDevicePollShutdown(t *testing.T) {
	e := newDeviceEnv(t)
	p := e.activatePhone("ann")
	done := make(chan response, 1)
	go func() { done <- e.poll(p, "25") }()
	e.waitHeld(1)
	start := time.Now()
	stopped := make(chan struct{})
	go func() { e.stop(); close(stopped) }()
	select {
	case r := <-done:
		if r.status != 200 || string(r.body) != `{"approvals":[]}` {
			t.Fatalf("held poll at shutdown answered %s", r)
		}
		t.Logf("held poll answered %v after Shutdown", time.Since(start))
	case <-time.After(5 * time.Second):
		t.Fatal("shutdown did not answer the held poll")
	}
	<-stopped // stop goes on after the poll's answer; the cleanup must not race it
}

// pendingOf is a as the long poll delivers it, for signing.
func pendingOf(a *approval.Approval) devicePending {
	p := devicePending{ApprovalID: a.ID, Challenge: base64.RawURLEncoding.EncodeToString(a.Challenge[:])}
	for _, v := range a.Values {
		p.Values = append(p.Values, struct {
			Key   string `json:"key"`
			Value string `json:"value"`
		}{v.Key, v.Value})
	}
	return p
}

// TestDeviceRefusals: an answer after the expiry is refused and counted
// (and marks the approval expired), an OTP approval takes no device
// answer, and five failures lock the user, whose next answer is refused
// however well signed.
func TestDeviceRefusals(t *testing.T) {
	e := newDeviceEnv(t)
	p := e.activatePhone("ann")
	state := func() approval.UserState {
		var u approval.UserState
		if err := e.db.UserState(e.org.ID, "ann", &u); err != nil {
			t.Fatal(err)
		}
		return u
	}

	otp := e.createApproval(e.org.ID, "ann", false, func(r *approval.Request) { r.Method = approval.MethodOTP })
	r := e.poll(p, "0")
	if string(r.body) != `{"approvals":[]}` {
		t.Fatalf("the poll delivered an OTP approval: %s", r)
	}
	ts := e.clock().UTC().Format(time.RFC3339)
	e.want(e.answer(p, otp.ID, signedAnswer(p.key, pendingOf(otp), "approve", "PASS", ts, "")), 409, "approval_wrong_method")

	late := e.createApproval(e.org.ID, "ann", false)
	e.advance(time.Duration(approval.DefaultSettings().ExpirySeconds+1) * time.Second)
	ts = e.clock().UTC().Format(time.RFC3339)
	e.want(e.answer(p, late.ID, signedAnswer(p.key, pendingOf(late), "approve", "PASS", ts, "")), 410, "answer_late")
	if u := state(); u.Failures != 1 {
		t.Fatalf("after a late answer: %+v, want one failure", u)
	}
	var st approval.Approval
	if err := e.db.Approval(e.org.ID, late.ID, &st); err != nil || st.Status != approval.StatusExpired {
		t.Fatalf("late approval %+v, %v: want expired", st, err)
	}

	a := e.createApproval(e.org.ID, "ann", false)
	bad := signedAnswer(p.key, pendingOf(late), "approve", "PASS", ts, "") // signed for another approval
	for range 4 {
		e.want(e.answer(p, a.ID, bad), 422, "answer_bad_signature")
	}
	if u := state(); u.Failures != 5 || u.LockedUntil.IsZero() {
		t.Fatalf("after five failures: %+v, want locked", u)
	}
	e.want(e.answer(p, a.ID, signedAnswer(p.key, pendingOf(a), "approve", "PASS", ts, "")), 423, "user_locked")
	e.want(e.admin("POST", "/admin/v1/users/ann/unlock", "", ""), 200, "")
	r = e.answer(p, a.ID, signedAnswer(p.key, pendingOf(a), "approve", "PASS", ts, ""))
	e.want(r, 200, "")
	if !strings.Contains(string(r.body), `"status":"approved"`) {
		t.Fatalf("after the unlock: %s", r)
	}
}

// TestDeviceActivationLimit: a user has at most store.MaxDevicesPerUser
// active devices; one more activation is 409 too_many_devices and leaves
// its code unused, so that once an operator revokes a device the same code
// activates.
func TestDeviceActivationLimit(t *testing.T) {
	e := newDeviceEnv(t) // ann exists
	var phones []phone
	for range store.MaxDevicesPerUser {
		phones = append(phones, e.activatePhone("ann"))
	}
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	body := fmt.Sprintf(`{"activationCode":%q,"publicKey":%q,"platform":"android","appVersion":"2.1.0"}`,
		e.activationCode("ann"), base64.RawURLEncoding.EncodeToString(pub))
	activate := req{method: "POST", path: "/v1/device/activate", body: []byte(body)}
	e.want(e.do(activate), 409, "too_many_devices")
	e.want(e.admin("DELETE", "/admin/v1/devices/"+phones[0].id, "", ""), 204, "")
	e.want(e.do(activate), 201, "")
	e.want(e.do(activate), 404, "activation_code_not_found") // used now
}
