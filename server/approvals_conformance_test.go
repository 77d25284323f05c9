package server

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3filter"

	"github.com/countersign/countersign/engine/approval"
	"github.com/countersign/countersign/store"
)

// TestOpenAPIConformanceApprovals drives /v1/approvals and /v1/device
// through their answers and refusals, over a loopback socket, and checks
// each exchange against the document: the requester creates, reads, waits
// on, cancels and sends codes to approvals; the app activates, long-polls
// and answers them until its user is locked.
func TestOpenAPIConformanceApprovals(t *testing.T) {
	cf := newConformance(t)
	e := newDeviceEnv(t) // user ann
	e.want(e.admin("POST", "/admin/v1/users", `{"userID":"bob"}`, ""), 201, "")
	do := func(q req) response {
		t.Helper()
		r := e.do(q)
		cf.check(q, r)
		cf.checkRequest(q, r)
		return r
	}
	backend := func(method, path, body string, h ...string) response {
		t.Helper()
		q := req{method: method, path: path, headers: e.withKey(h...)}
		if body != "" {
			q.body = []byte(body)
		}
		return do(q)
	}
	create := func(body string) string {
		t.Helper()
		r := backend("POST", "/v1/approvals", body)
		if r.status != 201 {
			t.Fatalf("create: %s", r)
		}
		var c createdApproval
		strictJSON(t, r, &c)
		return c.ApprovalID
	}

	// Activation: 201, 400, 404, 410, 415.
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	activation := func(code string) string {
		return fmt.Sprintf(`{"activationCode":%q,"publicKey":%q,"platform":"ios","appVersion":"2.1.0","model":"iPhone15,2","jailbroken":false,"pushToken":"apns-1"}`,
			code, base64.RawURLEncoding.EncodeToString(pub))
	}
	activate := func(body string, h ...string) response {
		t.Helper()
		return do(req{method: "POST", path: "/v1/device/activate", body: []byte(body), headers: h})
	}
	r := activate(activation(e.activationCode("ann")))
	var act deviceActivation
	strictJSON(t, r, &act)
	p := phone{key: key, token: act.DeviceToken, id: act.DeviceID}
	bearer := []string{"Authorization", "Bearer " + p.token}
	activate(strings.Replace(activation("csa_x"), `"ios"`, `"iOS"`, 1))
	activate(activation("csa_" + strings.Repeat("a", 26)))
	for _, bad := range [][2]string{
		{`"2.1.0"`, `""`},
		{`"apns-1"`, `"` + strings.Repeat("t", 1025) + `"`},
		{`"platform"`, `"os":"17","platform"`},
	} {
		if r := activate(strings.Replace(activation("csa_x"), bad[0], bad[1], 1)); r.status != 400 {
			t.Errorf("activation with %.20s: %s, want 400", bad[1], r)
		}
	}
	activate(activation(e.activationCode("ann")), "Content-Type", "text/plain")
	stale := e.activationCode("ann")
	e.advance(store.ActivationCodeTTL + time.Second)
	activate(activation(stale))

	device := func(method, path, body string, h ...string) response {
		t.Helper()
		q := req{method: method, path: path, headers: h}
		if body != "" {
			q.body = []byte(body)
		}
		return do(q)
	}
	poll := func() devicePending {
		t.Helper()
		r := device("GET", "/v1/device/approvals?wait=0", "", bearer...)
		var list devicePoll
		strictJSON(t, r, &list)
		if len(list.Approvals) == 0 {
			t.Fatalf("poll: %s", r)
		}
		return list.Approvals[len(list.Approvals)-1]
	}
	answer := func(id, body string) response {
		t.Helper()
		return device("POST", "/v1/device/approvals/"+id, body, bearer...)
	}
	now := func() string { return e.clock().UTC().Format(time.RFC3339) }

	// A push approval with values, approved: the create, the poll, the
	// answer and the reads of the decided approval, its receipt included.
	a1 := create(strings.Replace(approvalBody, `"alice"`, `"ann"`, 1))
	got := poll()
	answer(a1, signedAnswer(p.key, got, "approve", "PASS", now(), ""))
	answer(a1, signedAnswer(p.key, got, "approve", "PASS", now(), ""))
	r = backend("GET", "/v1/approvals/"+a1+"?wait=5", "")
	var view approvalAnswer
	strictJSON(t, r, &view)
	if view.Status != "approved" || view.Receipt == nil || len(view.Factors) == 0 {
		t.Fatalf("decided approval: %s", r)
	}
	backend("POST", "/v1/approvals/"+a1+"/cancel", "")

	// Number matching, after two refused answers (each a failure).
	a2 := create(`{"userID":"ann","message":"Log in","method":"push","numberMatch":true,"ip":"203.0.113.7"}`)
	got = poll()
	answer(a2, signedAnswer(p.key, got, "approve", "PASS", e.clock().Add(-10*time.Minute).UTC().Format(time.RFC3339), ""))
	altered := got
	altered.Message = "altered"
	altered.Values = append(got.Values, struct {
		Key   string `json:"key"`
		Value string `json:"value"`
	}{"amount", "3500.00"})
	answer(a2, signedAnswer(p.key, altered, "approve", "PASS", now(), ""))
	var stored approval.Approval
	if err := e.db.Approval(e.org.ID, a2, &stored); err != nil {
		t.Fatal(err)
	}
	answer(a2, signedAnswer(p.key, got, "approve", "PASS", now(), string(stored.UserCode[:])))

	// An OTP approval takes no device answer, and no code yet.
	a3 := create(`{"userID":"ann","message":"Log in","method":"otp"}`)
	if err := e.db.Approval(e.org.ID, a3, &stored); err != nil {
		t.Fatal(err)
	}
	answer(a3, signedAnswer(p.key, pendingOf(&stored), "approve", "PASS", now(), ""))
	backend("POST", "/v1/approvals/"+a3+"/otp", `{"code":"123456"}`)

	// Late: the answer after the expiry (a failure), the expired reads.
	a4 := create(`{"userID":"ann","message":"m","method":"push","expiresIn":10}`)
	got = poll()
	e.advance(11 * time.Second)
	answer(a4, signedAnswer(p.key, got, "approve", "PASS", now(), ""))
	backend("GET", "/v1/approvals/"+a4, "")
	backend("POST", "/v1/approvals/"+a4+"/cancel", "")

	// Locked: bad signatures until the fifth consecutive failure, then a
	// good answer and a new approval are refused 423 with Retry-After.
	a5 := create(`{"userID":"ann","message":"m","method":"push"}`)
	got = poll()
	for range 5 {
		if r = answer(a5, signedAnswer(p.key, altered, "approve", "PASS", now(), "")); r.status == 423 {
			break
		}
	}
	r = answer(a5, signedAnswer(p.key, got, "approve", "PASS", now(), ""))
	if r.status != 423 || r.header["retry-after"] != "900" {
		t.Fatalf("locked answer: %s (Retry-After %q)", r, r.header["retry-after"])
	}
	backend("POST", "/v1/approvals", `{"userID":"ann","message":"m","method":"push"}`)

	// The device's other refusals.
	answer("apr_"+strings.Repeat("a", 24), signedAnswer(p.key, got, "approve", "PASS", now(), ""))
	answer(a5, `{"decision":"yes"}`)
	// Malformed answers, each refused by the server and the document alike.
	good := signedAnswer(p.key, got, "approve", "PASS", now(), "")
	for _, bad := range [][2]string{
		{`"decision":"approve"`, `"decision":"yes"`},
		{`"method":"face"`, `"method":"iris"`},
		{`"lat":52.37`, `"lat":91`},
		{`"accuracyM":12`, `"accuracyM":-1`},
		{`"appVersion":"2.1.0"`, `"appVersion":"2.1\n0"`},
		{`"timestamp"`, `"number":"470","timestamp"`},
		{`"timestamp"`, `"approved":true,"timestamp"`},
	} {
		if r := answer(a5, strings.Replace(good, bad[0], bad[1], 1)); r.status != 400 {
			t.Errorf("answer with %s: %s, want 400", bad[1], r)
		}
	}
	device("POST", "/v1/device/approvals/"+a5, `{}`, "Authorization", "Bearer csd_forged")
	device("GET", "/v1/device/approvals?wait=soon", "", bearer...)
	device("GET", "/v1/device/approvals", "")

	// The requester's side: a held read that times out pending, cancel,
	// codes, the pending limit and the malformed requests.
	b1 := create(`{"userID":"bob","message":"m","method":"push"}`)
	r = backend("GET", "/v1/approvals/"+b1+"?wait=1", "")
	if !strings.Contains(string(r.body), `"decidedAt":null`) {
		t.Fatalf("held read: %s", r)
	}
	backend("POST", "/v1/approvals/"+b1+"/cancel", "")
	backend("POST", "/v1/approvals/"+b1+"/cancel", "")
	backend("POST", "/v1/approvals/"+b1+"/otp", `{"code":"123456"}`)
	backend("POST", "/v1/approvals/"+b1+"/otp", `{"code":"12345"}`)
	for range 3 {
		create(`{"userID":"bob","message":"m","method":"push"}`)
	}
	r = backend("POST", "/v1/approvals", `{"userID":"bob","message":"m","method":"push"}`)
	if r.status != 429 || r.header["retry-after"] == "" {
		t.Fatalf("4th pending: %s", r)
	}
	missing := "apr_" + strings.Repeat("a", 24)
	backend("GET", "/v1/approvals/"+missing, "")
	backend("GET", "/v1/approvals/"+b1+"?wait=soon", "")
	backend("POST", "/v1/approvals/"+missing+"/cancel", "")
	backend("POST", "/v1/approvals/"+missing+"/otp", `{"code":"123456"}`)
	backend("POST", "/v1/approvals", `{"userID":"carol","message":"m","method":"push"}`)
	backend("POST", "/v1/approvals", `{"userID":"bob","message":"m","method":"push","amount":1}`)
	backend("POST", "/v1/approvals", `{"userID":"bob","message":"`+strings.Repeat("x", 100<<10)+`","method":"push"}`)
	backend("POST", "/v1/approvals", `{}`, "Content-Type", "text/plain")
	do(req{method: "GET", path: "/v1/approvals/" + b1})

	for _, want := range []string{
		"POST /v1/approvals 201", "POST /v1/approvals 400", "POST /v1/approvals 404", "POST /v1/approvals 413",
		"POST /v1/approvals 415", "POST /v1/approvals 423", "POST /v1/approvals 429",
		"GET /v1/approvals/{approvalID} 200", "GET /v1/approvals/{approvalID} 400", "GET /v1/approvals/{approvalID} 401",
		"GET /v1/approvals/{approvalID} 404",
		"POST /v1/approvals/{approvalID}/cancel 200", "POST /v1/approvals/{approvalID}/cancel 404",
		"POST /v1/approvals/{approvalID}/cancel 409",
		"POST /v1/approvals/{approvalID}/otp 400", "POST /v1/approvals/{approvalID}/otp 404",
		"POST /v1/approvals/{approvalID}/otp 409",
		"POST /v1/device/activate 201", "POST /v1/device/activate 400", "POST /v1/device/activate 404",
		"POST /v1/device/activate 410", "POST /v1/device/activate 415",
		"GET /v1/device/approvals 200", "GET /v1/device/approvals 400", "GET /v1/device/approvals 401",
		"POST /v1/device/approvals/{approvalID} 200", "POST /v1/device/approvals/{approvalID} 400",
		"POST /v1/device/approvals/{approvalID} 401", "POST /v1/device/approvals/{approvalID} 404",
		"POST /v1/device/approvals/{approvalID} 409", "POST /v1/device/approvals/{approvalID} 410",
		"POST /v1/device/approvals/{approvalID} 422", "POST /v1/device/approvals/{approvalID} 423",
	} {
		if !cf.seen[want] {
			t.Errorf("not exercised: %s", want)
		}
	}
}

// checkRequest validates q against the document's request schemas, from
// the side the answer r says the server took: what the server accepted
// (2xx) the document must accept, and what it refused as a malformed body
// or query (400 of a field's shape) the document must refuse, so the
// request schemas are neither stricter nor looser than the server.
func (cf *conformance) checkRequest(q req, r response) {
	cf.t.Helper()
	code := r.errorCode()
	shape := r.status == 400 && (code == "unknown_field" || code == "missing_field" || code == "wrong_type" ||
		code == "invalid_field" || code == "too_many_items")
	if r.status >= 300 && !shape {
		return
	}
	method := q.method
	if method == "" {
		method = "POST"
		if q.body == nil {
			method = "GET"
		}
	}
	hq, _ := http.NewRequest(method, "http://localhost"+q.path, bytes.NewReader(q.body))
	if q.body != nil {
		hq.Header.Set("Content-Type", "application/json")
	}
	path, _, _ := strings.Cut(q.path, "?")
	rt, params := cf.route(method, path)
	if rt == nil {
		return // check reported it
	}
	err := openapi3filter.ValidateRequest(context.Background(), &openapi3filter.RequestValidationInput{
		Request: hq, PathParams: params, Route: rt,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}})
	switch {
	case !shape && err != nil:
		cf.t.Errorf("%s %s %s: the server accepted it (%d), the document refuses it:\n%v", method, q.path, q.body, r.status, err)
	case shape && err == nil:
		cf.t.Errorf("%s %s %s: the server refused it (%s), the document accepts it", method, q.path, q.body, r)
	}
}
