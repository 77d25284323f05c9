package main

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/countersign/countersign/client"
	"github.com/countersign/countersign/simulate"
)

// conformance checks real answers of the binary against the OpenAPI
// document it serves.
type conformance struct {
	t      *testing.T
	p      *proc
	c      *client.Client
	router routers.Router
}

func newConformance(t *testing.T, p *proc) *conformance {
	t.Helper()
	c := p.client(client.Config{})
	r, err := c.Do("GET", "/openapi.json", nil)
	if err != nil || r.Status != 200 {
		t.Fatalf("GET /openapi.json: %v %d", err, r.Status)
	}
	doc, err := openapi3.NewLoader().LoadFromData(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatal(err)
	}
	if doc.OpenAPI != "3.1.0" {
		t.Fatalf("openapi %q", doc.OpenAPI)
	}
	router, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	return &conformance{t: t, p: p, c: c, router: router}
}

func hdr(name, value string) client.Header { return client.Header{Name: name, Value: value} }

// check sends one request, wants status, and validates the answer against
// the document (status documented, content type, body schema).
func (cf *conformance) check(want int, method, path string, body []byte, headers ...client.Header) client.Response {
	t := cf.t
	t.Helper()
	r, err := cf.c.Do(method, path, body, headers...)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	if r.Status != want {
		t.Errorf("%s %s: status %d, want %d: %s", method, path, r.Status, want, r.Body)
	}
	req, err := http.NewRequest(method, "http://"+cf.p.addr+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range headers {
		req.Header.Set(h.Name, h.Value)
	}
	route, params, err := cf.router.FindRoute(req)
	if err != nil {
		t.Errorf("%s %s: not in the document: %v", method, path, err)
		return r
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route},
		Status:                 r.Status,
		Header:                 http.Header{"Content-Type": {r.ContentType}},
		Options:                &openapi3filter.Options{IncludeResponseStatus: true},
	}
	in.SetBodyBytes(r.Body)
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		t.Errorf("%s %s -> %d %s\ndoes not conform: %v", method, path, r.Status, r.Body, err)
	}
	return r
}

// TestServeConformsToOpenAPI answers every route, with its success and its
// errors, and checks each answer against /openapi.json.
func TestServeConformsToOpenAPI(t *testing.T) {
	data, cred := newOrg(t)
	p := serve(t, data, freeAddr(t))
	cf := newConformance(t, p)
	cid, key := hdr("x-client-id", cred.CID), hdr("apikey", cred.APIKey)
	badKey := hdr("apikey", "csk_not-a-key")

	cf.check(200, "GET", "/healthz", nil)
	cf.check(200, "GET", "/readyz", nil)
	cf.check(200, "GET", "/metrics", nil)
	cf.check(200, "GET", "/openapi.json", nil)

	// Sessions.
	r := cf.check(201, "POST", "/v1/sessions", []byte(`{"csid":"conform-0001","userID":"u1","action":"transfer"}`), cid)
	token := hdr("x-collect-token", string(bytes.Split(bytes.Split(r.Body, []byte(`"collectToken":"`))[1], []byte(`"`))[0]))
	cf.check(409, "POST", "/v1/sessions", []byte(`{"csid":"conform-0001","userID":"u1","action":"transfer"}`), cid)
	cf.check(401, "POST", "/v1/sessions", []byte(`{"csid":"conform-0002","userID":"u1","action":"transfer"}`), hdr("x-client-id", "cid_unknown"))
	cf.check(400, "POST", "/v1/sessions", []byte(`{"csid":"conform-0002","userID":"u1","action":"transfer","extra":1}`), cid)
	cf.check(400, "POST", "/v1/sessions", []byte(`{"csid":"short","userID":"u1","action":"transfer"}`), cid)
	cf.check(415, "POST", "/v1/sessions", []byte(`{"csid":"conform-0002","userID":"u1","action":"transfer"}`), cid, hdr("Content-Type", "text/plain"))
	cf.check(413, "POST", "/v1/sessions", bytes.Repeat([]byte(" "), 64<<10), cid)

	// Events.
	f := simulate.NewFaces(simulate.DefaultDim, 1)
	ev := client.Events{Fields: simulate.SeedFields(time.Now().UnixMilli()), Frames: []client.Frame{
		{Seq: 1, TS: time.Now().UnixMilli(), Type: "face", Faces: 1, Quality: 0.9, Liveness: 0.9, Embedding: f.Genuine(f.Identity(1))},
		{Seq: 2, TS: time.Now().UnixMilli() + 100, Type: "document", DocType: "driver_license", Quality: 0.9, Liveness: 0.9, Embedding: f.Identity(2)},
	}}
	cf.check(202, "POST", "/v1/sessions/conform-0001/events", ev.AppendJSON(nil), cid, token)
	cf.check(401, "POST", "/v1/sessions/conform-0001/events", []byte(`{"final":false}`), cid, hdr("x-collect-token", "forged"))
	cf.check(404, "POST", "/v1/sessions/conform-9999/events", []byte(`{"final":false}`), cid, token)
	cf.check(400, "POST", "/v1/sessions/conform-0001/events", []byte(`{"fields":[{"key":"a","value":{}}]}`), cid, token)
	cf.check(415, "POST", "/v1/sessions/conform-0001/events", []byte(`{"final":false}`), cid, token, hdr("Content-Encoding", "br"))
	cf.check(202, "POST", "/v1/sessions/conform-0001/events", []byte(`{"final":true}`), cid, token)
	cf.check(202, "POST", "/v1/sessions/conform-0001/events", []byte(`{"final":true}`), cid, token) // a retry
	cf.check(409, "POST", "/v1/sessions/conform-0001/events", []byte(`{"fields":[{"key":"late","value":1}]}`), cid, token)

	// Session status.
	cf.check(200, "GET", "/v1/sessions/conform-0001", nil, key)
	cf.check(404, "GET", "/v1/sessions/conform-9999", nil, key)
	cf.check(401, "GET", "/v1/sessions/conform-0001", nil, badKey)

	// Validate, on both paths, until the frames are scored.
	req := client.ValidateRequest{CSID: "conform-0001", UserID: "u1", Action: "transfer", SessionData: simulate.SeedSessionData()}
	body := req.AppendJSON(nil, cred.CID)
	var decision []byte
	for _, path := range []string{"/v1/validate", "/api/v1/validate"} {
		deadline := time.Now().Add(10 * time.Second)
		for {
			r, _ := cf.c.Do("POST", path, body, key)
			if r.Status != 202 {
				break
			}
			cf.check(202, "POST", path, body, key)
			if time.Now().After(deadline) {
				t.Fatal("still processing after 10s")
			}
			time.Sleep(10 * time.Millisecond)
		}
		decision = cf.check(200, "POST", path, body, key).Body
	}
	// An item nobody collected: reason not_collected, field null.
	extra := bytes.Replace(body, []byte(`"sessionData":[`), []byte(`"sessionData":[{"key":"iban","value":"DE89370400440532013000"},`), 1)
	nc := cf.check(200, "POST", "/v1/validate", extra, key)
	if !bytes.Contains(nc.Body, []byte(`"iban":{"matched":false,"field":null,"reason":"not_collected"}`)) {
		t.Errorf("not collected item: %s", nc.Body)
	}
	cf.check(401, "POST", "/v1/validate", body, badKey)
	req.CSID = "conform-9999"
	cf.check(404, "POST", "/v1/validate", req.AppendJSON(nil, cred.CID), key)
	dup := strings.Replace(string(body), `"key":"payeeID"`, `"key":"AMOUNT"`, 1)
	cf.check(400, "POST", "/v1/validate", []byte(dup), key)
	cf.check(415, "POST", "/v1/validate", body, key, hdr("Content-Type", "application/x-www-form-urlencoded"))
	idem := hdr("Idempotency-Key", "conform-idem-1")
	first := cf.check(200, "POST", "/v1/validate", body, key, idem)
	again := cf.check(200, "POST", "/v1/validate", body, key, idem)
	if !bytes.Equal(first.Body, again.Body) {
		t.Errorf("Idempotency-Key replay differs:\n%s\n%s", first.Body, again.Body)
	}
	cf.check(422, "POST", "/v1/validate", []byte(strings.Replace(string(body), `"value":35`, `"value":36`, 1)), key, idem)

	// Decisions.
	id := string(bytes.Split(bytes.Split(decision, []byte(`"decisionID":"`))[1], []byte(`"`))[0])
	cf.check(200, "GET", "/v1/decisions/"+id, nil, key)
	cf.check(404, "GET", "/v1/decisions/01AAAAAAAAAAAAAAAAAAAAAAAA", nil, key)
	cf.check(401, "GET", "/v1/decisions/"+id, nil, badKey)
}

// TestServeExpiredSession: a session past --session-ttl answers 410.
func TestServeExpiredSession(t *testing.T) {
	data, cred := newOrg(t)
	p := serve(t, data, freeAddr(t), "--session-ttl", "1s")
	cf := newConformance(t, p)
	cid, key := hdr("x-client-id", cred.CID), hdr("apikey", cred.APIKey)
	r := cf.check(201, "POST", "/v1/sessions", []byte(`{"csid":"expiring-0001","userID":"u1","action":"transfer"}`), cid)
	token := hdr("x-collect-token", string(bytes.Split(bytes.Split(r.Body, []byte(`"collectToken":"`))[1], []byte(`"`))[0]))
	time.Sleep(1100 * time.Millisecond)
	cf.check(410, "POST", "/v1/sessions/expiring-0001/events", []byte(`{"final":true}`), cid, token)
	cf.check(410, "GET", "/v1/sessions/expiring-0001", nil, key)
	req := client.ValidateRequest{CSID: "expiring-0001", UserID: "u1", Action: "transfer"}
	cf.check(410, "POST", "/v1/validate", req.AppendJSON(nil, cred.CID), key)
}
