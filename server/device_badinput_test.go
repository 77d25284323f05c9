package server

import (
	"strings"
	"testing"
	"time"

	"github.com/countersign/countersign/engine/approval"
)

// TestDeviceBadInputs sends malformed, hostile and merely wrong requests to
// /v1/device and checks each gets the 4xx it should, in the native
// envelope with a sentence, never a 5xx, and that none decided the pending
// approval, counted a failure or registered a device.
func TestDeviceBadInputs(t *testing.T) {
	e := newDeviceEnv(t)
	p := e.activatePhone("ann")
	a := e.createApproval(e.org.ID, "ann", false)
	code := e.activationCode("ann")
	ts := e.clock().UTC().Format(time.RFC3339)
	good := signedAnswer(p.key, pendingOf(a), "approve", "PASS", ts, "")
	with := func(old, new string) string { return strings.Replace(good, old, new, 1) }
	activation := `{"activationCode":"` + code + `","publicKey":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","platform":"ios","appVersion":"2.1.0"}`
	// Each case changes the first match of old: the replaced text must be
	// in the key or fields, never possibly in the random activation code.
	act := func(old, new string) string { return strings.Replace(activation, old, new, 1) }
	answerPath, pollPath, activatePath := "/v1/device/approvals/"+a.ID, "/v1/device/approvals", "/v1/device/activate"
	bearer := "Bearer " + p.token

	cases := []struct {
		name, method, path, body, auth string
		status                         int
		code                           string
	}{
		{"answer: empty body", "POST", answerPath, "", bearer, 400, "empty_body"},
		{"answer: not JSON", "POST", answerPath, `{"decision":`, bearer, 400, "invalid_json"},
		{"answer: an array", "POST", answerPath, `[` + good + `]`, bearer, 400, "wrong_type"},
		{"answer: trailing data", "POST", answerPath, good + `{}`, bearer, 400, "trailing_data"},
		{"answer: decision twice", "POST", answerPath, `{"decision":"deny",` + good[1:], bearer, 400, "duplicate_field"},
		{"answer: unknown field", "POST", answerPath, with(`"timestamp"`, `"approved":true,"timestamp"`), bearer, 400, "unknown_field"},
		{"answer: no signature", "POST", answerPath, `{"decision":"approve","biometric":{"result":"PASS"},"timestamp":"` + ts + `"}`, bearer, 400, "missing_field"},
		{"answer: no biometric", "POST", answerPath, `{"decision":"approve","timestamp":"` + ts + `","signature":"x"}`, bearer, 400, "missing_field"},
		{"answer: decision yes", "POST", answerPath, with(`"approve"`, `"yes"`), bearer, 400, "invalid_field"},
		{"answer: decision in capitals", "POST", answerPath, with(`"approve"`, `"APPROVE"`), bearer, 400, "invalid_field"},
		{"answer: biometric pass", "POST", answerPath, with(`"PASS"`, `"pass"`), bearer, 400, "invalid_field"},
		{"answer: biometric a bool", "POST", answerPath, with(`{"result":"PASS","method":"face"}`, `true`), bearer, 400, "wrong_type"},
		{"answer: biometric method iris", "POST", answerPath, with(`"face"`, `"iris"`), bearer, 400, "invalid_field"},
		{"answer: latitude out of range", "POST", answerPath, with(`"lat":52.37`, `"lat":91`), bearer, 400, "invalid_field"},
		{"answer: longitude a string", "POST", answerPath, with(`"lon":4.89`, `"lon":"4.89"`), bearer, 400, "wrong_type"},
		{"answer: negative accuracy", "POST", answerPath, with(`"accuracyM":12`, `"accuracyM":-1`), bearer, 400, "invalid_field"},
		{"answer: jailbroken a string", "POST", answerPath, with(`"jailbroken":false`, `"jailbroken":"no"`), bearer, 400, "wrong_type"},
		{"answer: app version with a newline", "POST", answerPath, with(`"appVersion":"2.1.0"`, `"appVersion":"2.1\n0"`), bearer, 400, "invalid_field"},
		{"answer: number of three digits", "POST", answerPath, with(`"timestamp"`, `"number":"470","timestamp"`), bearer, 400, "invalid_field"},
		{"answer: timestamp a number", "POST", answerPath, with(`"timestamp":"`+ts+`"`, `"timestamp":1763800000`), bearer, 400, "wrong_type"},
		{"answer: invalid UTF-8", "POST", answerPath, with(`"face"`, "\"fa\xffce\""), bearer, 400, "invalid_utf8"},
		{"answer: over the limit", "POST", answerPath, with(`"face"`, `"`+strings.Repeat("f", 5000)+`"`), bearer, 413, "body_too_large"},
		{"answer: deep nesting", "POST", answerPath, strings.Repeat("[", 100) + strings.Repeat("]", 100), bearer, 400, "nesting_too_deep"},
		{"answer: id too long", "POST", "/v1/device/approvals/" + strings.Repeat("a", 600), good, bearer, 404, "approval_not_found"},
		{"answer: GET", "GET", answerPath, "", bearer, 405, "method_not_allowed"},
		{"answer: an admin key", "POST", answerPath, good, "Bearer " + e.adminKey, 401, "invalid_device_token"},
		{"answer: the backend key", "POST", answerPath, good, "Bearer " + e.apiKey, 401, "invalid_device_token"},
		{"answer: a bare token", "POST", answerPath, good, p.token, 401, "invalid_device_token"},
		{"answer: a token one character off", "POST", answerPath, good, offByOne(bearer), 401, "invalid_device_token"},
		{"poll: wait a word", "GET", pollPath + "?wait=soon", "", bearer, 400, "invalid_field"},
		{"poll: wait negative", "GET", pollPath + "?wait=-1", "", bearer, 400, "invalid_field"},
		{"poll: wait huge", "GET", pollPath + "?wait=99999999999", "", bearer, 400, "invalid_field"},
		{"poll: POST", "POST", pollPath, `{}`, bearer, 405, "method_not_allowed"},
		{"poll: no token", "GET", pollPath, "", "", 401, "invalid_device_token"},
		{"activate: empty body", "POST", activatePath, "", "", 400, "empty_body"},
		{"activate: key standard base64", "POST", activatePath, act("VS_7Ty", "VS/7Ty"), "", 400, "invalid_field"},
		{"activate: key of 31 bytes", "POST", activatePath, act("11qYAYKx", "11qYAY"), "", 400, "invalid_field"},
		{"activate: platform upper case", "POST", activatePath, act(`"ios"`, `"iOS"`), "", 400, "invalid_field"},
		{"activate: appVersion empty", "POST", activatePath, act(`"2.1.0"`, `""`), "", 400, "invalid_field"},
		{"activate: appVersion too long", "POST", activatePath, act(`"2.1.0"`, `"`+strings.Repeat("9", 33)+`"`), "", 400, "invalid_field"},
		{"activate: model with a control", "POST", activatePath, act(`}`, `,"model":"i\u0007"}`), "", 400, "invalid_field"},
		{"activate: pushToken too long", "POST", activatePath, act(`}`, `,"pushToken":"`+strings.Repeat("t", 1025)+`"}`), "", 400, "invalid_field"},
		{"activate: code a number", "POST", activatePath, act(`"`+code+`"`, `7`), "", 400, "wrong_type"},
		{"activate: code of another form", "POST", activatePath, act(code, "csa_"+strings.Repeat("A", 300)), "", 404, "activation_code_not_found"},
		{"device: a path of no route", "GET", "/v1/device/approvals/" + a.ID + "/x", "", bearer, 404, "route_not_found"},
	}
	for _, c := range cases {
		q := req{method: c.method, path: c.path}
		if c.auth != "" {
			q.headers = []string{"Authorization", c.auth}
		}
		if c.body != "" || c.code == "empty_body" {
			q.body = []byte(c.body)
		}
		r := e.do(q)
		if r.status >= 500 || r.status != c.status || r.errorCode() != c.code || r.errorMessage() == "" {
			t.Errorf("%s: got %s, want %d %s", c.name, r, c.status, c.code)
		}
	}

	var st approval.Approval
	var u approval.UserState
	if err := e.db.Approval(e.org.ID, a.ID, &st); err != nil || st.Status != approval.StatusPending {
		t.Errorf("a refused request decided the approval: %+v, %v", st, err)
	}
	if err := e.db.UserState(e.org.ID, "ann", &u); err != nil || u.Failures != 0 {
		t.Errorf("a malformed request counted a failure: %+v, %v", u, err)
	}
	if devs, err := e.db.DevicesOfUser(e.org.ID, "ann"); err != nil || len(devs) != 1 {
		t.Errorf("ann has %d devices after the refused activations, want 1 (%v)", len(devs), err)
	}
	// The well-formed answer still applies.
	e.want(e.answer(p, a.ID, good), 200, "")
}

// offByOne is token with its last character changed, always to another one
// (a fixed replacement would be the token itself when it already ends so).
func offByOne(token string) string {
	last := token[len(token)-1]
	repl := byte('A')
	if last == repl {
		repl = 'E'
	}
	return token[:len(token)-1] + string(repl)
}
