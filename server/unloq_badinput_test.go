package server

import (
	"fmt"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// TestUnloqBadInput: every refusal of the surface is a 4xx in UNLOQ's
// envelope naming the problem, none a 5xx, and none holds the request.
func TestUnloqBadInput(t *testing.T) {
	e := newUnloqEnv(t)
	e.want(e.admin("POST", "/admin/v1/users", `{"userID":"ann","email":"ann@example.com"}`, ""), 201, "") // no device
	bearer := []string{"Authorization", "Bearer " + e.apiKey}
	form := []string{"Content-Type", "application/x-www-form-urlencoded"}
	many := `{"email":"bob@example.com"`
	for i := range 33 {
		many += fmt.Sprintf(`,"v%d":"x"`, i)
	}
	many += "}"
	long := strings.Repeat("a", 1100)
	cases := []struct {
		name    string
		method  string
		path    string
		body    string
		headers []string
		noCT    bool
		status  int
		code    string
	}{
		{"no credentials", "POST", "/authenticate", `{"email":"bob@example.com"}`, []string{}, false, 401, "API.KEY"},
		{"unknown key", "POST", "/authenticate", `{"email":"bob@example.com"}`, []string{"Authorization", "Bearer nope"}, false, 401, "API.KEY"},
		{"basic scheme", "POST", "/authenticate", `{"email":"bob@example.com"}`, []string{"Authorization", "Basic " + e.apiKey}, false, 401, "API.KEY"},
		{"admin key", "POST", "/authenticate", `{"email":"bob@example.com"}`, []string{"Authorization", "Bearer " + e.adminKey}, false, 401, "API.KEY"},
		{"empty x-api-key", "GET", "/approvals/apr_aaaaaaaaaaaaaaaaaaaaaaaa", "", []string{"x-api-key", ""}, false, 401, "API.KEY"},
		{"x-api-key with secret, unknown approval", "GET", "/approvals/apr_aaaaaaaaaaaaaaaaaaaaaaaa", "", []string{"x-api-key", e.apiKey, "x-api-secret", "s"}, false, 404, "APPROVAL.NOT_FOUND"},
		{"empty body", "POST", "/authenticate", "", bearer, false, 400, "DATA.INVALID"},
		{"not JSON", "POST", "/authenticate", `{"email":`, bearer, false, 400, "DATA.INVALID"},
		{"JSON array", "POST", "/authenticate", `["bob@example.com"]`, bearer, false, 400, "DATA.INVALID"},
		{"JSON string", "POST", "/authenticate", `"bob@example.com"`, bearer, false, 400, "DATA.INVALID"},
		{"invalid UTF-8", "POST", "/authenticate", "{\"email\":\"b\xffb@example.com\"}", bearer, false, 400, "DATA.INVALID"},
		{"no email or unloq_id", "POST", "/authenticate", `{"method":"UNLOQ"}`, bearer, false, 400, "DATA.INVALID"},
		{"email a number", "POST", "/authenticate", `{"email":42}`, bearer, false, 400, "DATA.INVALID"},
		{"email an object", "POST", "/authenticate", `{"email":{"a":1}}`, bearer, false, 400, "DATA.INVALID"},
		{"email not an address", "POST", "/authenticate", `{"email":"bob"}`, bearer, false, 400, "DATA.INVALID"},
		{"unknown method", "POST", "/authenticate", `{"email":"bob@example.com","method":"PUSH"}`, bearer, false, 400, "DATA.INVALID"},
		{"bad ip", "POST", "/authenticate", `{"email":"bob@example.com","ip":"999.1.1.1"}`, bearer, false, 400, "DATA.INVALID"},
		{"ip with zone", "POST", "/authenticate", `{"email":"bob@example.com","ip":"fe80::1%eth0"}`, bearer, false, 400, "DATA.INVALID"},
		{"generate_token not a boolean", "POST", "/authenticate", `{"email":"bob@example.com","generate_token":"maybe"}`, bearer, false, 400, "DATA.INVALID"},
		{"too many variables", "POST", "/authenticate", many, bearer, false, 400, "DATA.INVALID"},
		{"variable too long", "POST", "/authenticate", `{"email":"bob@example.com","note":"` + long + `"}`, bearer, false, 400, "DATA.INVALID"},
		{"message too long", "POST", "/authenticate", `{"email":"bob@example.com","app":"` + long[:1000] + `"}`, bearer, false, 400, "DATA.INVALID"},
		{"form with a bad ip", "POST", "/authenticate", "email=bob%40example.com&ip=nope", append(form, bearer...), true, 400, "DATA.INVALID"},
		{"text/plain body", "POST", "/authenticate", `{"email":"bob@example.com"}`, append([]string{"Content-Type", "text/plain"}, bearer...), true, 415, "DATA.CONTENT_TYPE"},
		{"body too large", "POST", "/authenticate", `{"email":"bob@example.com","x":"` + strings.Repeat("a", 20<<10) + `"}`, bearer, false, 413, "DATA.TOO_LARGE"},
		{"unknown e-mail", "POST", "/authenticate", `{"email":"nobody@example.com"}`, bearer, false, 404, "USER.NOT_FOUND"},
		{"unknown unloq_id", "POST", "/authenticate", `{"unloq_id":"nobody"}`, bearer, false, 404, "USER.NOT_FOUND"},
		{"user without a device", "POST", "/authenticate", `{"email":"ann@example.com"}`, bearer, false, 409, "APPROVAL.DEVICE"},
		{"OTP method, a wrong code", "POST", "/authenticate", `{"email":"bob@example.com","method":"OTP","token":"000000"}`, bearer, false, 403, "APPROVAL.TOKEN"},
		{"OTP method without a token", "POST", "/authenticate", `{"email":"bob@example.com","method":"OTP"}`, bearer, false, 400, "DATA.INVALID"},
		{"a wrong token with UNLOQ", "POST", "/authenticate", `{"email":"bob@example.com","token":"000000"}`, bearer, false, 403, "APPROVAL.TOKEN"},
		{"malformed e-mailed link", "GET", "/link/nope", "", bearer, false, 404, "LINK.INVALID"},
		{"GET authenticate", "GET", "/authenticate", "", bearer, false, 405, "API.METHOD"},
		{"unknown path", "GET", "/nope", "", bearer, false, 404, "API.NOT_FOUND"},
		{"token missing", "POST", "/token", `{"sid":"1"}`, bearer, false, 400, "DATA.INVALID"},
		{"token garbage", "POST", "/token", `{"token":"garbage"}`, bearer, false, 404, "TOKEN.INVALID"},
		{"token of no approval", "POST", "/token", `{"token":"apr_aaaaaaaaaaaaaaaaaaaaaaaa.x"}`, bearer, false, 404, "TOKEN.INVALID"},
		{"duration negative", "POST", "/token", `{"token":"x","duration":-1}`, bearer, false, 400, "DATA.INVALID"},
		{"duration not a number", "POST", "/token", `{"token":"x","duration":"soon"}`, bearer, false, 400, "DATA.INVALID"},
		{"token a number", "POST", "/token/session", `{"approval_id":7}`, bearer, false, 400, "DATA.INVALID"},
		{"session without token or id", "POST", "/token/session", `{"sid":"1"}`, bearer, false, 400, "DATA.INVALID"},
		{"session of an unknown approval", "POST", "/token/session", `{"approval_id":"apr_x","sid":"1"}`, bearer, false, 404, "APPROVAL.NOT_FOUND"},
		{"approvals without a user", "GET", "/approvals", "", bearer, false, 400, "DATA.INVALID"},
		{"approvals limit 0", "GET", "/approvals?email=bob@example.com&limit=0", "", bearer, false, 400, "DATA.INVALID"},
		{"approvals bad cursor", "GET", "/approvals?email=bob@example.com&cursor=%%%", "", bearer, false, 400, "DATA.INVALID"},
		{"approvals of an unknown user", "GET", "/approvals?unloq_id=nobody", "", bearer, false, 404, "USER.NOT_FOUND"},
		{"approval id malformed", "GET", "/approvals/apr_BAD", "", bearer, false, 404, "APPROVAL.NOT_FOUND"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			q := req{method: c.method, path: "/unloq/v1" + c.path, headers: c.headers, noCT: c.noCT}
			if c.body != "" || c.method == "POST" {
				q.body = []byte(c.body)
			}
			r := e.do(q)
			if r.status >= 500 {
				t.Fatalf("5xx: %s", r)
			}
			u := wantUnloqError(t, r, c.status, c.code)
			if strings.Contains(u.Error.Message, "\n") {
				t.Errorf("message %q", u.Error.Message)
			}
		})
	}
	if n := e.srv.core.Hub().Held(); n != 0 {
		t.Errorf("%d requests still held", n)
	}
}

// TestUnloqTenancy: another organization's key finds none of this one's
// users, approvals or tokens, answered exactly as missing ones.
func TestUnloqTenancy(t *testing.T) {
	e := newUnloqEnv(t)
	done := e.authenticateAsync("/authenticate", `{"email":"bob@example.com"}`)
	p := e.devicePendingOne()
	e.decide(p, "approve")
	var res unloqResult
	strictJSON(t, wait(t, done), &res)

	other := []string{"Authorization", "Bearer " + e.otherKey}
	do := func(method, path, body string) response {
		q := req{method: method, path: "/unloq/v1" + path, headers: other}
		if body != "" {
			q.body = []byte(body)
		}
		return e.do(q)
	}
	wantUnloqError(t, do("POST", "/authenticate", `{"email":"bob@example.com"}`), 404, "USER.NOT_FOUND")
	wantUnloqError(t, do("POST", "/authenticate", `{"unloq_id":"bob"}`), 404, "USER.NOT_FOUND")
	wantUnloqError(t, do("GET", "/approvals/"+p.ApprovalID, ""), 404, "APPROVAL.NOT_FOUND")
	wantUnloqError(t, do("GET", "/approvals?unloq_id=bob", ""), 404, "USER.NOT_FOUND")
	wantUnloqError(t, do("POST", "/token/session", `{"approval_id":"`+p.ApprovalID+`"}`), 404, "APPROVAL.NOT_FOUND")
	wantUnloqError(t, do("POST", "/token", `{"token":"`+res.Result.Token+`"}`), 404, "TOKEN.INVALID")
	// The other organization's refusal did not spend the token.
	if r := e.unloq("POST", "/token", `{"token":"`+res.Result.Token+`"}`); r.status != 200 {
		t.Fatalf("the token after another organization tried it: %s", r)
	}
}

// TestUnloqThrottle: past the user's pending limit an authenticate is
// refused FIREWALL.THROTTLE with Retry-After, at once.
func TestUnloqThrottle(t *testing.T) {
	e := newUnloqEnv(t)
	var held []<-chan response
	for range 3 {
		held = append(held, e.authenticateAsync("/authenticate", `{"email":"bob@example.com"}`))
		e.waitHeld(len(held) + 0)
	}
	r := e.unloq("POST", "/authenticate", `{"email":"bob@example.com"}`)
	wantUnloqError(t, r, 429, "FIREWALL.THROTTLE")
	if r.header["retry-after"] == "" {
		t.Errorf("no Retry-After: %v", r.header)
	}
	e.stop()
	for _, h := range held {
		wantUnloqError(t, wait(t, h), 503, "SERVER.UNAVAILABLE")
	}
}

// TestUnloqPanic: a panic in a handler of the surface answers 500 in
// UNLOQ's envelope, and the server goes on serving.
func TestUnloqPanic(t *testing.T) {
	e := &unloqEnv{adminEnv: &adminEnv{testEnv: newEnv(t, withHook(func(ctx *fasthttp.RequestCtx) {
		if string(ctx.Request.Header.Peek("x-test-panic")) == "1" {
			panic("boom")
		}
	}))}}
	wantUnloqError(t, e.unloq("GET", "/approvals/apr_aaaaaaaaaaaaaaaaaaaaaaaa", "", "x-test-panic", "1"), 500, "SERVER.ERROR")
	wantUnloqError(t, e.unloq("GET", "/approvals/apr_aaaaaaaaaaaaaaaaaaaaaaaa", ""), 404, "APPROVAL.NOT_FOUND")
}
