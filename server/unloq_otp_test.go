package server

import (
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

// TestUnloqOTP: the user's one-time code on authenticate, from the seed of
// the activation's totpURI. After a denial a push needs it (APPROVAL.TOKEN);
// a right code lifts that and the push goes ahead; the same code again is
// refused; method OTP with the next code is approved at once, with the
// result token; a wrong code is refused and counted, and the fifth failure
// in a row locks the user.
func TestUnloqOTP(t *testing.T) {
	e := newUnloqEnv(t)
	key, err := otp.NewKeyFromURL(e.bob.totpURI)
	if err != nil {
		t.Fatalf("totpURI %q: %v", e.bob.totpURI, err)
	}
	code := func() string {
		c, err := totp.GenerateCode(key.Secret(), e.clock())
		if err != nil {
			t.Fatal(err)
		}
		return c
	}

	done := e.authenticateAsync("/authenticate", `{"email":"bob@example.com","method":"UNLOQ"}`)
	e.decide(e.devicePendingOne(), "deny")
	wantUnloqError(t, wait(t, done), 403, "APPROVAL.DENIED")
	wantUnloqError(t, e.unloq("POST", "/authenticate", `{"email":"bob@example.com","method":"UNLOQ"}`), 403, "APPROVAL.TOKEN")

	c1 := code()
	done = e.authenticateAsync("/authenticate", `{"email":"bob@example.com","method":"UNLOQ","token":"`+c1+`"}`)
	e.decide(e.devicePendingOne(), "approve")
	r := wait(t, done)
	var res unloqResult
	strictJSON(t, r, &res)
	if r.status != 200 || res.Result.UnloqID != "bob" || res.Result.Token == "" {
		t.Fatalf("push with the code after a denial: %s", r)
	}
	// Each code once: the same one again is refused, even as method OTP.
	wantUnloqError(t, e.unloq("POST", "/authenticate", `{"email":"bob@example.com","method":"OTP","token":"`+c1+`"}`), 403, "APPROVAL.TOKEN")

	e.advance(30 * time.Second)
	r = e.unloq("POST", "/authenticate", `{"email":"bob@example.com","method":"OTP","token":"`+code()+`"}`)
	res = unloqResult{}
	strictJSON(t, r, &res)
	if r.status != 200 || res.Result.UnloqID != "bob" || res.Result.Token == "" {
		t.Fatalf("method OTP with the next code: %s", r)
	}
	r = e.unloq("POST", "/token", `{"token":"`+res.Result.Token+`"}`)
	if r.status != 200 || !strings.Contains(string(r.body), `"method":"OTP"`) {
		t.Fatalf("the OTP result token: %s", r)
	}
	// Nothing is left pending for the device: the OTP approval was decided.
	if r := e.poll(e.bob, "0"); r.status != 200 || string(r.body) != `{"approvals":[]}` {
		t.Fatalf("device poll after OTP: %s", r)
	}

	// The accepted code ended the run of failures (the replay above was
	// one): four wrong codes leave the user unlocked, the fifth locks.
	for i := 0; i < 4; i++ {
		wantUnloqError(t, e.unloq("POST", "/authenticate", `{"email":"bob@example.com","method":"OTP","token":"000000"}`), 403, "APPROVAL.TOKEN")
	}
	r = e.unloq("POST", "/authenticate", `{"email":"bob@example.com","method":"OTP","token":"000000"}`)
	wantUnloqError(t, r, 423, "USER.LOCKED")
	if r.header["retry-after"] == "" {
		t.Fatalf("locked without Retry-After: %s", r)
	}
	e.advance(30 * time.Second)
	wantUnloqError(t, e.unloq("POST", "/authenticate", `{"email":"bob@example.com","method":"OTP","token":"`+code()+`"}`), 423, "USER.LOCKED")
}

// TestUnloqSettings: the organization's settings choose the message the
// phone shows (its UNLOQ template and variables, under the request's own
// fields) and the wait.
func TestUnloqSettings(t *testing.T) {
	e := newUnloqEnv(t)
	e.want(e.admin("PUT", "/admin/v1/settings", `{"approvals":{"unloqWaitSeconds":10},"messages":{"UNLOQ":"Sign in to $app at $desk from $ip?"},"variables":{"app":"Demo Bank","desk":"the front desk"}}`, ""), 200, "")
	done := e.authenticateAsync("/authenticate", `{"email":"bob@example.com","ip":"203.0.113.7","desk":"branch 12"}`)
	p := e.devicePendingOne()
	if p.Message != "Sign in to Demo Bank at branch 12 from 203.0.113.7?" {
		t.Errorf("the phone shows %q", p.Message)
	}
	if got := time.UnixMilli(p.ExpiresAt).Sub(time.UnixMilli(p.CreatedAt)); got != 10*time.Second {
		t.Errorf("the approval waits %v, want the settings' 10 s", got)
	}
	e.decide(p, "approve")
	if r := wait(t, done); r.status != 200 {
		t.Fatalf("approved: %s", r)
	}
}
