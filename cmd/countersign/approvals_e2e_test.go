package main

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/countersign/countersign/client"
	"github.com/countersign/countersign/simulate"
)

// approvalsOrg is an organization served by the binary, as its operator
// (admin key) and its backend (API key) speak to it.
type approvalsOrg struct {
	t *testing.T
	c *client.Client
}

func newApprovalsOrg(t *testing.T, p *proc, cred credentials) *approvalsOrg {
	return &approvalsOrg{t: t, c: p.client(client.Config{CID: cred.CID, APIKey: cred.APIKey, AdminKey: cred.AdminKey})}
}

// enroll registers userID and activates a device for it.
func (o *approvalsOrg) enroll(userID string) *simulate.Enrolled {
	o.t.Helper()
	e, err := simulate.Enroll(o.c, userID)
	if err != nil {
		o.t.Fatalf("enroll %s: %v", userID, err)
	}
	return e
}

// ask creates a push approval of the transfer for userID.
func (o *approvalsOrg) ask(userID string) *client.CreatedApproval {
	o.t.Helper()
	a, err := o.c.CreateApproval(&client.ApprovalRequest{UserID: userID, Message: "Move EUR 35.00?",
		Values: []client.Value{{Key: "amount", Value: "35.00"}, {Key: "payee", Value: "6"}}})
	if err != nil {
		o.t.Fatalf("create an approval for %s: %v", userID, err)
	}
	return a
}

// pending long-polls the device's pending approvals until id is among them.
func (o *approvalsOrg) pending(e *simulate.Enrolled, id string) *client.PendingApproval {
	o.t.Helper()
	list, err := o.c.DeviceApprovals(e.Device.DeviceToken, 5)
	if err != nil {
		o.t.Fatalf("device long poll: %v", err)
	}
	for i := range list {
		if list[i].ApprovalID == id {
			return &list[i]
		}
	}
	o.t.Fatalf("the device's long poll lacks %s: %+v", id, list)
	return nil
}

// decide has the device answer id (adjusted by adjust before signing) while
// the requester long-polls it, and returns what the requester's long poll
// was answered.
func (o *approvalsOrg) decide(e *simulate.Enrolled, id string, adjust func(*client.DeviceAnswer)) *client.ApprovalStatus {
	o.t.Helper()
	held := o.hold(id)
	p := o.pending(e, id)
	ans := simulate.NewAnswer(e.Key, p, time.Now())
	if adjust != nil {
		adjust(ans)
		ans.Sign(e.Key, p)
	}
	if _, err := o.c.AnswerApproval(e.Device.DeviceToken, id, ans); err != nil {
		o.t.Fatalf("the device's answer to %s: %v", id, err)
	}
	return held()
}

// hold starts the requester's long poll of id and returns its answer's
// receiver.
func (o *approvalsOrg) hold(id string) func() *client.ApprovalStatus {
	type answer struct {
		st  *client.ApprovalStatus
		err error
	}
	ch := make(chan answer, 1)
	go func() {
		st, err := o.c.Approval(id, 25)
		ch <- answer{st, err}
	}()
	return func() *client.ApprovalStatus {
		o.t.Helper()
		a := <-ch
		if a.err != nil {
			o.t.Fatalf("the requester's long poll of %s: %v", id, a.err)
		}
		return a.st
	}
}

func apiErr(err error) *client.APIError {
	var ae *client.APIError
	if errors.As(err, &ae) {
		return ae
	}
	return &client.APIError{}
}

// TestServeApprovals plays DESIGN's approval flow against the binary over
// loopback: an operator creates a user and an activation code, a device
// activates, a backend asks for an approval and the device's long poll
// delivers it at once; approving, denying and failing are what the
// requester's long poll is answered; five failures lock the user across
// kill -9 and a restart; a revoked device is refused; another
// organization's approval, user and device answer exactly as missing ones.
func TestServeApprovals(t *testing.T) {
	data, cred := newOrg(t)
	r := countersign(t, nil, "org", "create", "--data", data, "--name", "other", "--json")
	if r.code != 0 {
		t.Fatalf("org create: %s", r.stderr)
	}
	cred2 := parseCredentials(t, r.stdout)
	addr := freeAddr(t)
	p := serve(t, data, addr)
	org, other := newApprovalsOrg(t, p, cred), newApprovalsOrg(t, p, cred2)

	alice := org.enroll("alice")
	if devs, err := org.c.UserDevices("alice"); err != nil || len(devs) != 1 || devs[0].DeviceID != alice.Device.DeviceID {
		t.Fatalf("alice's devices: %v %+v", err, devs)
	}

	// Delivery: the device is already waiting when the approval is created.
	type polled struct {
		list []client.PendingApproval
		at   time.Time
		err  error
	}
	pc := make(chan polled, 1)
	go func() {
		list, err := org.c.DeviceApprovals(alice.Device.DeviceToken, 25)
		pc <- polled{list, time.Now(), err}
	}()
	time.Sleep(200 * time.Millisecond)
	sent := time.Now()
	first := org.ask("alice")
	acked := time.Now()
	got := <-pc
	if got.err != nil || len(got.list) != 1 || got.list[0].ApprovalID != first.ApprovalID {
		t.Fatalf("the device's long poll: %v %+v", got.err, got.list)
	}
	t.Logf("delivery: the device's long poll answered %v after the create was sent, %v after it was acknowledged",
		got.at.Sub(sent), got.at.Sub(acked))
	if d := got.at.Sub(acked); d > 10*time.Millisecond {
		t.Errorf("the device's long poll answered %v after the approval was created, want <= 10ms", d)
	}
	pa := got.list[0]
	if pa.Message != "Move EUR 35.00?" || len(pa.Values) != 2 || pa.Values[0] != (client.Value{Key: "amount", Value: "35.00"}) || pa.Challenge == "" {
		t.Errorf("the approval as delivered: %+v", pa)
	}

	// Approve: every factor, and a receipt that verifies with the device key.
	st := org.decide(alice, first.ApprovalID, nil)
	if st.Status != "approved" || st.DeviceID != alice.Device.DeviceID || st.Receipt == nil {
		t.Fatalf("approved: %s", st.Raw)
	}
	for _, name := range []string{"biometric", "geo_fence", "time_window", "ip", "device"} {
		if f, ok := st.Factor(name); !ok || f.Result == "FAIL" || (name == "biometric" && f.Result != "PASS") {
			t.Errorf("approved: factor %s %+v in %s", name, f, st.Raw)
		}
	}
	signed := client.SignedBytes(&pa, &client.DeviceAnswer{Decision: st.Receipt.Decision, Biometric: st.Receipt.Biometric, Timestamp: st.Receipt.Timestamp})
	sig, _ := base64.RawURLEncoding.DecodeString(st.Receipt.Signature)
	if !ed25519.Verify(alice.Key.Public().(ed25519.PublicKey), signed, sig) {
		t.Errorf("the receipt does not verify with the device's public key: %s", st.Raw)
	}

	// The fence: inside it and during the window approved, outside it
	// failed naming geofencing.
	auth := simulate.NewAuthenticator(org.c, "")
	fenced := &simulate.AuthScenario{Name: "fenced", GeoFences: []string{"sim-fence"}, TimeWindow: []string{"sim-open"}}
	if _, err := org.c.PutRules(auth.Rules([]*simulate.AuthScenario{fenced})); err != nil {
		t.Fatalf("PUT /admin/v1/rules: %v", err)
	}
	user := auth.User(fenced)
	fe := org.enroll(user)
	if st := org.decide(fe, org.ask(user).ApprovalID, nil); st.Status != "approved" {
		t.Errorf("inside the fence, during the window: %s", st.Raw)
	}
	outside := org.decide(fe, org.ask(user).ApprovalID, func(a *client.DeviceAnswer) { a.Location.Lat += 0.05 })
	if f, _ := outside.Factor("geo_fence"); outside.Status != "failed" || f.Result != "FAIL" || !strings.Contains(f.Reason, "geofencing") {
		t.Errorf("outside the fence: %s", outside.Raw)
	}

	// A denial is final and is not a failure. Under otpAfterDenial it
	// holds the user to OTP approvals until a code of the user's
	// authenticator (the activation's totpURI) is accepted.
	if r, err := org.c.Do("PUT", "/admin/v1/settings", []byte(`{"approvals":{"otpAfterDenial":true}}`),
		client.Header{Name: "Authorization", Value: "Bearer " + cred.AdminKey}); err != nil || r.Status != 200 {
		t.Fatalf("PUT /admin/v1/settings: %v %d %s", err, r.Status, r.Body)
	}
	second := org.ask("alice")
	if st := org.decide(alice, second.ApprovalID, func(a *client.DeviceAnswer) { a.Decision = "deny" }); st.Status != "denied" || st.Receipt == nil || st.Receipt.Decision != "deny" {
		t.Fatalf("denied: %s", st.Raw)
	}
	if _, err := org.c.AnswerApproval(alice.Device.DeviceToken, second.ApprovalID, simulate.NewAnswer(alice.Key, &pa, time.Now())); apiErr(err).Code != "approval_not_pending" {
		t.Errorf("a second answer to a denied approval: %v", err)
	}
	if _, err := org.c.CreateApproval(&client.ApprovalRequest{UserID: "alice", Message: "again?", Method: "push"}); apiErr(err).Code != "otp_required" {
		t.Fatalf("a push approval after the denial: %v, want 403 otp_required", err)
	}
	otpAppr, err := org.c.CreateApproval(&client.ApprovalRequest{UserID: "alice", Message: "Log in with a code?", Method: "otp"})
	if err != nil {
		t.Fatalf("an OTP approval after the denial: %v", err)
	}
	key, err := otp.NewKeyFromURL(alice.Device.TOTPURI)
	if err != nil {
		t.Fatalf("totpURI %q: %v", alice.Device.TOTPURI, err)
	}
	code, err := totp.GenerateCode(key.Secret(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if st, err := org.c.ApprovalOTP(otpAppr.ApprovalID, code); err != nil || st.Status != "approved" {
		t.Fatalf("the OTP approval with the authenticator's code: %+v %v", st, err)
	}
	if again, err := org.c.CreateApproval(&client.ApprovalRequest{UserID: "alice", Message: "Log in with a code?", Method: "otp"}); err != nil {
		t.Fatal(err)
	} else if _, err := org.c.ApprovalOTP(again.ApprovalID, code); apiErr(err).Code != "otp_invalid" {
		t.Errorf("the same code twice: %v, want 401 otp_invalid", err)
	} else if _, err := org.c.CancelApproval(again.ApprovalID); err != nil {
		t.Fatal(err)
	}
	if c, err := org.c.CreateApproval(&client.ApprovalRequest{UserID: "alice", Message: "push again?", Method: "push"}); err != nil {
		t.Fatalf("a push approval after the accepted code: %v", err)
	} else if _, err := org.c.CancelApproval(c.ApprovalID); err != nil {
		t.Fatal(err)
	}

	// Five failures lock the user, and the lock survives kill -9.
	bob := org.enroll("bob")
	for i := 1; i <= 5; i++ {
		st := org.decide(bob, org.ask("bob").ApprovalID, func(a *client.DeviceAnswer) { a.Biometric = "FAIL" })
		if f, _ := st.Factor("biometric"); st.Status != "failed" || f.Result != "FAIL" {
			t.Fatalf("failure %d: %s", i, st.Raw)
		}
		u, err := org.c.GetUser("bob")
		if err != nil || u.Locked != (i == 5) {
			t.Fatalf("after failure %d: locked %v (%v), want %v", i, u.Locked, err, i == 5)
		}
	}
	locked := func(when string) {
		t.Helper()
		_, err := org.c.CreateApproval(&client.ApprovalRequest{UserID: "bob", Message: "again?"})
		if ae := apiErr(err); ae.Status != 423 || ae.Code != "user_locked" {
			t.Errorf("%s: an approval for the locked user: %v", when, err)
		}
	}
	locked("before the kill")
	pending := org.ask("alice") // stays pending across the kill
	if err := p.stop(syscall.SIGKILL); err == nil {
		t.Fatal("serve exited cleanly on SIGKILL")
	}
	p = serve(t, data, addr)
	org, other = newApprovalsOrg(t, p, cred), newApprovalsOrg(t, p, cred2)
	if u, err := org.c.GetUser("bob"); err != nil || !u.Locked {
		t.Fatalf("after kill -9 and a restart: bob locked %v (%v)", u, err)
	}
	locked("after the restart")

	// A revoked device's token and answers stop working at once.
	pp := org.pending(alice, pending.ApprovalID)
	if err := org.c.RevokeDevice(alice.Device.DeviceID); err != nil {
		t.Fatal(err)
	}
	if _, err := org.c.AnswerApproval(alice.Device.DeviceToken, pending.ApprovalID, simulate.NewAnswer(alice.Key, pp, time.Now())); apiErr(err).Code != "invalid_device_token" {
		t.Errorf("a revoked device's answer: %v", err)
	}
	if _, err := org.c.DeviceApprovals(alice.Device.DeviceToken, 0); apiErr(err).Code != "invalid_device_token" {
		t.Errorf("a revoked device's poll: %v", err)
	}
	if st, err := org.c.Approval(pending.ApprovalID, 0); err != nil || st.Status != "pending" {
		t.Errorf("the approval the revoked device answered: %v %v", st, err)
	}

	// Another organization's approval, user and device are answered exactly
	// as missing ones, byte for byte.
	missingApproval := pending.ApprovalID[:len(pending.ApprovalID)-4] + "aaaa"
	if missingApproval == pending.ApprovalID {
		missingApproval = pending.ApprovalID[:len(pending.ApprovalID)-4] + "bbbb"
	}
	apikey := client.Header{Name: "apikey", Value: cred2.APIKey}
	admin := client.Header{Name: "Authorization", Value: "Bearer " + cred2.AdminKey}
	for _, probe := range []struct {
		what, method, foreign, missing string
		body                           []byte
		h                              client.Header
	}{
		{"approval", "GET", "/v1/approvals/" + pending.ApprovalID, "/v1/approvals/" + missingApproval, nil, apikey},
		{"approval, held", "GET", "/v1/approvals/" + pending.ApprovalID + "?wait=1", "/v1/approvals/" + missingApproval + "?wait=1", nil, apikey},
		{"approval cancel", "POST", "/v1/approvals/" + pending.ApprovalID + "/cancel", "/v1/approvals/" + missingApproval + "/cancel", nil, apikey},
		{"user", "GET", "/admin/v1/users/alice", "/admin/v1/users/nobody", nil, admin},
		{"user unlock", "POST", "/admin/v1/users/bob/unlock", "/admin/v1/users/nobody/unlock", nil, admin},
		{"user's devices", "GET", "/admin/v1/users/alice/devices", "/admin/v1/users/nobody/devices", nil, admin},
		{"user's activation code", "POST", "/admin/v1/users/alice/activation-codes", "/admin/v1/users/nobody/activation-codes", nil, admin},
		{"device revoke", "DELETE", "/admin/v1/devices/" + bob.Device.DeviceID, "/admin/v1/devices/" + bob.Device.DeviceID[:len(bob.Device.DeviceID)-4] + "aaaa", nil, admin},
	} {
		f, err1 := other.c.Do(probe.method, probe.foreign, probe.body, probe.h)
		m, err2 := other.c.Do(probe.method, probe.missing, probe.body, probe.h)
		if err1 != nil || err2 != nil || f.Status != 404 || f.Status != m.Status || !bytes.Equal(f.Body, m.Body) {
			t.Errorf("%s of another organization: %d %s (%v), a missing one: %d %s (%v)", probe.what, f.Status, f.Body, err1, m.Status, m.Body, err2)
		}
	}
	for _, user := range []string{"alice", "nobody"} {
		_, err := other.c.CreateApproval(&client.ApprovalRequest{UserID: user, Message: "x"})
		if ae := apiErr(err); ae.Code != "user_not_found" {
			t.Errorf("another organization's approval for %s: %v", user, err)
		}
	}
	// The foreign calls changed nothing: bob is still locked, his device
	// active, the approval pending.
	if u, err := org.c.GetUser("bob"); err != nil || !u.Locked || u.Devices != 1 {
		t.Errorf("bob after the other organization's calls: %+v %v", u, err)
	}
	if st, err := org.c.Approval(pending.ApprovalID, 0); err != nil || st.Status != "pending" {
		t.Errorf("the approval after the other organization's cancel: %v %v", st, err)
	}
}

// TestServeSimulateAuthenticator plays the authenticator scenarios through
// 'countersign simulate --authenticator' (the expiry one, 10 s long, is
// played by TestReadmeCurl's pasted commands): a row per scenario, the
// rules scenarios skipped where the server serves no rules, and the count
// of outcomes not as expected last.
func TestServeSimulateAuthenticator(t *testing.T) {
	data, cred := newOrg(t)
	p := serve(t, data, freeAddr(t))
	names := "approve,deny,biometric-fail,outside-geofence,outside-time-window,bad-signature,number-match"
	r := countersign(t, nil, "simulate", "--authenticator", "--addr", p.addr, "--admin-key", cred.AdminKey, "--api-key", cred.APIKey, "--scenario", names)
	if r.code != 0 {
		t.Fatalf("simulate --authenticator: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	for _, name := range strings.Split(names, ",") {
		name = strings.ReplaceAll(name, "-", "_")
		want := " ok\n"
		i := strings.Index(r.stdout, "\n"+name+" ")
		if i < 0 {
			t.Errorf("no %s row in:\n%s", name, r.stdout)
			continue
		}
		row := r.stdout[i+1:]
		row = row[:strings.IndexByte(row, '\n')+1]
		if !strings.HasSuffix(row, want) {
			t.Errorf("%s: want a row ending %q, got %q", name, want, row)
		}
	}
	if !strings.Contains(r.stdout, "7 scenarios in ") || !strings.Contains(r.stdout, ", 0 skipped, 0 not as expected\n") {
		t.Errorf("the last line:\n%s", r.stdout)
	}
	for _, bad := range [][]string{
		{"simulate", "--authenticator", "--addr", p.addr, "--api-key", cred.APIKey},
		{"simulate", "--authenticator", "--addr", p.addr, "--admin-key", cred.AdminKey, "--api-key", cred.APIKey, "--scenario", "enroll"},
	} {
		if r := countersign(t, nil, bad...); r.code != 2 {
			t.Errorf("%v: exit %d, want 2 (usage)\n%s", bad, r.code, r.stderr)
		}
	}
	// The API key where the admin key belongs: the first request is
	// refused, and the command fails naming it.
	r = countersign(t, nil, "simulate", "--authenticator", "--addr", p.addr, "--admin-key", cred.APIKey, "--api-key", cred.APIKey, "--scenario", "deny")
	if r.code != 1 || !strings.Contains(r.stdout+r.stderr, "invalid_api_key") {
		t.Errorf("the API key as the admin key: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
}
