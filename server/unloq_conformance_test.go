package server

import (
	"fmt"
	"testing"
)

// TestOpenAPIConformanceUnloq drives every /unloq/v1 route through its
// answers and checks each against the document.
func TestOpenAPIConformanceUnloq(t *testing.T) {
	cf := newConformance(t)
	e := newUnloqEnv(t)
	bearer := []string{"Authorization", "Bearer " + e.apiKey}
	do := func(method, path, body string) response {
		t.Helper()
		q := req{method: method, path: path, headers: bearer}
		if body != "" {
			q.body = []byte(body)
		}
		r := e.do(q)
		cf.check(q, r)
		return r
	}
	held := func(body string) response {
		t.Helper()
		q := req{method: "POST", path: "/unloq/v1/authenticate", headers: bearer, body: []byte(body)}
		done := make(chan response, 1)
		go func() { done <- e.do(q) }()
		e.decide(e.devicePendingOne(), "approve")
		r := wait(t, done)
		cf.check(q, r)
		return r
	}
	var res unloqResult
	strictJSON(t, held(`{"email":"bob@example.com","ip":"203.0.113.9","app":"Demo"}`), &res)
	held(`{"unloq_id":"bob","generate_token":false}`)
	do("POST", "/unloq/v1/token", fmt.Sprintf(`{"token":%q,"sid":"s","duration":60}`, res.Result.Token))
	do("POST", "/unloq/v1/token", fmt.Sprintf(`{"token":%q}`, res.Result.Token))
	do("POST", "/unloq/v1/token", `{}`)
	do("POST", "/unloq/v1/token/session", `{"approval_id":"`+res.Result.Token[:28]+`","sid":"s"}`)
	do("POST", "/unloq/v1/token/session", `{"approval_id":"apr_aaaaaaaaaaaaaaaaaaaaaaaa"}`)
	do("GET", "/unloq/v1/approvals?email=bob@example.com&limit=1", "")
	do("GET", "/unloq/v1/approvals?unloq_id=nobody", "")
	do("GET", "/unloq/v1/approvals", "")
	do("GET", "/unloq/v1/approvals/"+res.Result.Token[:28], "")
	do("GET", "/unloq/v1/approvals/apr_x", "")
	do("POST", "/unloq/v1/authenticate", `{"email":"nobody@example.com"}`)
	do("GET", "/unloq/v1/link/0000000000000000/apr_aaaaaaaaaaaaaaaaaaaaaaaa.x", "")
	do("POST", "/unloq/v1/authenticate", `{"email":"bob@example.com","method":"OTP"}`)
	do("POST", "/unloq/v1/authenticate", `{"email":"bob@example.com","ip":"x"}`)
	cf.check(req{method: "POST", path: "/unloq/v1/authenticate", body: []byte(`{}`)},
		e.do(req{method: "POST", path: "/unloq/v1/authenticate", body: []byte(`{}`)}))
}
