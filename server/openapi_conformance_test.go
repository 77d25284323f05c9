package server

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/countersign/countersign/engine/biometric"
	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
)

// conformance validates real answers of the server against openapi.json.
type conformance struct {
	t    *testing.T
	doc  *openapi3.T
	seen map[string]bool // "METHOD template status"
}

func newConformance(t *testing.T) *conformance {
	doc := loadOpenAPIDocument(t)
	return &conformance{t: t, doc: doc, seen: map[string]bool{}}
}

// route finds the document's operation for a concrete path.
func (cf *conformance) route(method, path string) (*routers.Route, map[string]string) {
	for tmpl, item := range cf.doc.Paths.Map() {
		tp, pp := strings.Split(tmpl, "/"), strings.Split(path, "/")
		if len(tp) != len(pp) || item.GetOperation(method) == nil {
			continue
		}
		params := map[string]string{}
		ok := true
		for i := range tp {
			if strings.HasPrefix(tp[i], "{") {
				params[strings.Trim(tp[i], "{}")] = pp[i]
			} else if tp[i] != pp[i] {
				ok = false
			}
		}
		if ok {
			return &routers.Route{Spec: cf.doc, Path: tmpl, PathItem: item, Method: method, Operation: item.GetOperation(method)}, params
		}
	}
	return nil, nil
}

// check validates one exchange: r is what the server answered to q.
func (cf *conformance) check(q req, r response) {
	cf.t.Helper()
	if q.method == "" {
		q.method = "POST"
		if q.body == nil {
			q.method = "GET"
		}
	}
	hq, _ := http.NewRequest(q.method, "http://localhost"+q.path, bytes.NewReader(q.body))
	if q.body != nil && !q.noCT {
		hq.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(q.headers); i += 2 {
		hq.Header.Set(q.headers[i], q.headers[i+1])
	}
	path, _, _ := strings.Cut(q.path, "?") // the query is the request's, not the template's
	rt, params := cf.route(q.method, path)
	if rt == nil {
		cf.t.Errorf("%s %s: not in openapi.json", q.method, q.path)
		return
	}
	cf.seen[fmt.Sprintf("%s %s %d", q.method, rt.Path, r.status)] = true
	in := &openapi3filter.RequestValidationInput{Request: hq, PathParams: params, Route: rt,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}}
	h := http.Header{}
	for k, v := range r.header {
		h.Set(k, v)
	}
	h.Del("Content-Encoding") // r.body is decompressed
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: r.status, Header: h,
		Body: io.NopCloser(bytes.NewReader(r.body)), Options: &openapi3filter.Options{IncludeResponseStatus: true}}
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		cf.t.Errorf("%s %s -> %d %s:\n%v", q.method, q.path, r.status, r.body, err)
	}
}

// TestOpenAPIConformance drives every route through its answers and checks
// each against the document.
func TestOpenAPIConformance(t *testing.T) {
	cf := newConformance(t)
	e := newEnv(t)
	do := func(q req) response {
		t.Helper()
		r := e.do(q)
		cf.check(q, r)
		return r
	}
	cid := []string{"x-client-id", e.org.CID}

	// Sessions: 201, 400, 401, 409, 413, 415.
	do(req{path: "/v1/sessions", body: []byte(`{"csid":"conform-0001","userID":"u1","action":"a"}`), headers: cid})
	do(req{path: "/v1/sessions", body: []byte(`{"csid":"conform-0001","userID":"u1","action":"a"}`), headers: cid})
	do(req{path: "/v1/sessions", body: []byte(`{"csid":"conform-0004","userID":"u1"}`), headers: cid}) // action is optional
	do(req{path: "/v1/sessions", body: []byte(`{"csid":"x"}`), headers: cid})
	do(req{path: "/v1/sessions", body: []byte(`{}`)})
	do(req{path: "/v1/sessions", body: []byte(`{}`), headers: append(cid, "Content-Type", "text/plain")})
	do(req{path: "/v1/sessions", body: gzipBytes(bytes.Repeat([]byte(" "), 8<<10)), headers: append(cid, "Content-Encoding", "gzip")})

	s := e.newSession("conform-0002", "u1")
	rng := newRand(1)
	face := unitVec(rng, testDim)
	ev := func(body []byte, h ...string) response {
		return do(req{path: "/v1/sessions/" + s.csid + "/events", body: body,
			headers: append([]string{"x-client-id", e.org.CID, "x-collect-token", s.token}, h...)})
	}
	// Events: 202, 400, 401, 404, 415, 503.
	ev(mustJSON(eventsJSON{Fields: seedFields(), Frames: faceFrames(rng, face, 1, 1763800000100, 8)}))
	ev([]byte(`{"frames":[{"seq":1}]}`))
	ev([]byte(`{}`), "x-collect-token", "cst_forged")
	do(req{path: "/v1/sessions/conform-nope/events", body: []byte(`{}`), headers: []string{"x-client-id", e.org.CID, "x-collect-token", s.token}})
	ev([]byte(`{}`), "Content-Encoding", "br")
	for range 64 {
		e.srv.native.Frames().Reserve()
	}
	ev(mustJSON(eventsJSON{Frames: faceFrames(rng, face, 100, 1763800100100, 1)}))
	for range 64 {
		e.srv.native.Frames().Unreserve()
	}
	// 409: a session past its cap or marked final accepts no more events.
	sFinal := e.newSession("conform-final", "u1")
	evFinal := func(body []byte) response {
		return do(req{path: "/v1/sessions/" + sFinal.csid + "/events", body: body,
			headers: []string{"x-client-id", e.org.CID, "x-collect-token", sFinal.token}})
	}
	evFinal([]byte(`{"final":true}`))
	evFinal([]byte(`{"fields":[{"key":"late","value":1}]}`))

	// Validate (both paths): 200, 202, 400, 401, 404, 410, 413, 415, 422.
	body := e.validateBody(s, true, seedItems()...)
	var first response
	for _, path := range []string{"/v1/validate", "/api/v1/validate"} {
		key := e.withKey()
		first = do(req{path: path, body: body, headers: key})
		for first.status == 202 {
			first = do(req{path: path, body: body, headers: key})
		}
		do(req{path: path, body: body, headers: e.withKey("Idempotency-Key", "k"+path)})
		do(req{path: path, body: e.validateBody(s, false), headers: e.withKey("Idempotency-Key", "k"+path)})
		do(req{path: path, body: []byte(`{"cid":1}`), headers: key})
		do(req{path: path, body: body})
		do(req{path: path, body: e.validateBody(session{csid: "conform-none", userID: "u"}, false), headers: key})
		do(req{path: path, body: body, headers: append(key, "Content-Type", "text/xml")})
		do(req{path: path, body: gzipBytes(bytes.Repeat([]byte(" "), 2<<20)), headers: append(key, "Content-Encoding", "gzip")})
	}
	id := jsonMap(t, first.body)["decisionID"].(string)
	// Without action, over a session without one, and its status.
	if r := do(req{path: "/v1/validate", body: e.validateBodyFor("", session{csid: "conform-0004", userID: "u1"}, false), headers: e.withKey()}); r.status != 200 {
		t.Errorf("validate without action: %s", r)
	}
	do(req{path: "/v1/sessions/conform-0004", headers: e.withKey()})

	// Processing: frames stored without a job yet.
	s3 := e.newSession("conform-0003", "u1")
	f := frameFromJSON(t, faceFrames(rng, face, 1, 1, 1)[0])
	if _, err := e.db.AppendEvents(e.org.ID, s3.csid, nil, [][]byte{biometric.AppendFrame(nil, &f)}, false); err != nil {
		t.Fatal(err)
	}
	do(req{path: "/v1/validate", body: e.validateBody(s3, false), headers: e.withKey()})

	// Session status and decisions: 200, 401, 404.
	do(req{path: "/v1/sessions/" + s.csid, headers: e.withKey()})
	do(req{path: "/v1/sessions/" + s.csid})
	do(req{path: "/v1/sessions/conform-none", headers: e.withKey()})
	do(req{path: "/v1/decisions/" + id, headers: e.withKey()})
	do(req{path: "/v1/decisions/" + id})
	do(req{path: "/v1/decisions/01JBZ8Q3Y00000000000000000", headers: e.withKey()})

	// Service routes.
	for _, p := range []string{"/healthz", "/readyz", "/metrics", "/openapi.json"} {
		do(req{path: p, headers: []string{"Accept-Encoding", "gzip"}})
	}

	// Expiry: 410 on every session route.
	e.advance(31 * 60 * 1e9)
	ev([]byte(`{}`))
	do(req{path: "/v1/validate", body: body, headers: e.withKey()})
	do(req{path: "/v1/sessions/" + s.csid, headers: e.withKey()})
	e.srv.draining.Store(true)
	do(req{path: "/readyz"})
	e.srv.draining.Store(false)

	for _, want := range []string{
		"POST /v1/sessions 201", "POST /v1/sessions 409", "POST /v1/sessions 413", "POST /v1/sessions 415",
		"POST /v1/sessions/{csid}/events 202", "POST /v1/sessions/{csid}/events 503", "POST /v1/sessions/{csid}/events 410",
		"POST /v1/sessions/{csid}/events 409",
		"POST /v1/validate 200", "POST /v1/validate 202", "POST /v1/validate 422", "POST /v1/validate 413",
		"POST /api/v1/validate 200", "POST /api/v1/validate 404",
		"GET /v1/sessions/{csid} 200", "GET /v1/sessions/{csid} 410",
		"GET /v1/decisions/{decisionID} 200", "GET /v1/decisions/{decisionID} 404", "GET /readyz 503",
	} {
		if !cf.seen[want] {
			t.Errorf("not exercised: %s", want)
		}
	}
}
