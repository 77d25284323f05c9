package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"
)

// TestValidateJSON checks the validate body's shape: the cid first, raw
// JSON values as given, synonyms always present (empty when there are none),
// strings escaped.
func TestValidateJSON(t *testing.T) {
	r := ValidateRequest{CSID: "CSID", UserID: "U\"1", Action: "transfer", IsEnrollment: true, SessionData: []Item{
		{Key: "amount", Value: `35`, Synonyms: []string{"total", "sum"}},
		{Key: "notes", Value: `"Wire transfer"`},
	}}
	want := `{"cid":"CID","csid":"CSID","userID":"U\"1","action":"transfer","additionalData":{"sessionData":[{"key":"amount","value":35,"synonyms":["total","sum"]},{"key":"notes","value":"Wire transfer","synonyms":[]}]},"isEnrollment":true}`
	if got := string(r.AppendJSON(nil, "CID")); got != want {
		t.Fatalf("validate body\n got %s\nwant %s", got, want)
	}
}

func TestEventsJSON(t *testing.T) {
	e := Events{
		Fields: []Field{
			{Key: "total", Value: `"35.00"`, TS: 1763800000000},
			{Key: "payee", Value: `"6"`},
			{Key: "account", Value: `66666666`, TS: 1763800000000},
		},
		Frames: []Frame{
			{Seq: 1, TS: 1763800000100, Type: "face", Faces: 1, Quality: 0.93, Liveness: 0.97, Embedding: []float32{0.5, -0.5, 0.5, -0.5}},
			{Seq: 2, TS: 1763800000900, Type: "document", DocType: "driver_license", Quality: 0.9, Liveness: 0.95, Embedding: []float32{1, 0, 0, 0}},
		},
	}
	var got struct {
		Fields []struct {
			Key   string          `json:"key"`
			Value json.RawMessage `json:"value"`
			TS    int64           `json:"ts"`
		} `json:"fields"`
		Frames []map[string]any `json:"frames"`
		Final  *bool            `json:"final"`
	}
	body := e.AppendJSON(nil)
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("%v in %s", err, body)
	}
	if len(got.Fields) != 3 || got.Fields[0].Key != "total" || string(got.Fields[0].Value) != `"35.00"` || string(got.Fields[2].Value) != `66666666` ||
		got.Fields[1].TS != 0 || bytes.Contains(body, []byte(`"payee","value":"6","ts"`)) {
		t.Fatalf("fields %+v", got.Fields)
	}
	if len(got.Frames) != 2 || got.Frames[0]["quality"] != 0.93 || got.Frames[1]["docType"] != "driver_license" || got.Final == nil || *got.Final {
		t.Fatalf("frames %v final %v", got.Frames, got.Final)
	}
	if _, ok := got.Frames[1]["faces"]; ok {
		t.Fatal("a document frame carries faces")
	}
	emb, err := DecodeEmbedding([]byte(got.Frames[0]["embedding"].(string)))
	if err != nil || len(emb) != 4 || emb[1] != -0.5 {
		t.Fatalf("embedding %v %v", emb, err)
	}
}

func TestAppendString(t *testing.T) {
	for in, want := range map[string]string{
		"plain":         `"plain"`,
		`q"b\`:          `"q\"b\\"`,
		"tab\tnl\n\x01": `"tab\tnl\n\u0001"`,
		"é€":            `"é€"`,
		"bad\xffutf8":   `"bad\ufffdutf8"`,
	} {
		got := string(appendString(nil, in))
		if got != want {
			t.Errorf("appendString(%q) = %s, want %s", in, got, want)
		}
		var back string
		if err := json.Unmarshal([]byte(got), &back); err != nil {
			t.Errorf("%s is not JSON: %v", got, err)
		}
	}
}

// TestClientProtocol runs the client against a small fasthttp handler that
// plays the server's side of the protocol: credentials in the right headers,
// a gzip events body, two 202 processing answers before the decision, and the
// error envelope.
func TestClientProtocol(t *testing.T) {
	ln := fasthttputil.NewInmemoryListener()
	defer ln.Close()
	var polls atomic.Int32
	var gotEvents []byte
	h := func(ctx *fasthttp.RequestCtx) {
		path := string(ctx.Path())
		switch {
		case path == "/v1/sessions":
			if string(ctx.Request.Header.Peek("x-client-id")) != "cid_x" {
				ctx.SetStatusCode(401)
				ctx.SetBodyString(`{"success":false,"errorMessage":"unknown client id","errorCode":"unauthorized"}`)
				return
			}
			ctx.SetStatusCode(201)
			ctx.SetBodyString(`{"csid":"cs-00000001","collectToken":"tok","expiresAt":1}`)
		case strings.HasSuffix(path, "/events"):
			if string(ctx.Request.Header.Peek("x-collect-token")) != "tok" || string(ctx.Request.Header.Peek("Content-Encoding")) != "gzip" {
				ctx.SetStatusCode(401)
				return
			}
			b, err := ctx.Request.BodyGunzip()
			if err != nil {
				ctx.SetStatusCode(400)
				return
			}
			gotEvents = append([]byte(nil), b...)
			ctx.SetStatusCode(202)
			ctx.SetBodyString(`{"accepted":{"fields":4,"frames":0},"pending":0}`)
		case path == "/v1/validate":
			if string(ctx.Request.Header.Peek("apikey")) != "key" {
				ctx.SetStatusCode(401)
				ctx.SetBodyString(`{"success":false,"errorMessage":"bad API key","errorCode":"unauthorized"}`)
				return
			}
			if polls.Add(1) <= 2 {
				ctx.SetStatusCode(202)
				ctx.Response.Header.Set("Retry-After", "1")
				ctx.SetBodyString(`{"errorMessage":"processing","retryAfterMS":10}`)
				return
			}
			ctx.SetStatusCode(200)
			ctx.SetBodyString(`{"success":true,"verifiedAction":false,"decisionID":"d1","indicators":{"iv_is_values_collected":true,"iv_is_values_match":true,"iv_values_match_details":{"amount":{"matched":true,"field":"total","reason":"match"}},"iv_policy_violations":{"violations":[{"type":"static_stream","count":3,"firstSeq":5}],"has_violations":true,"total_frames":8,"verified_frames":0}},"ivScore":2000}`)
		}
	}
	go fasthttp.Serve(ln, h)
	dial := func(string) (net.Conn, error) { return ln.Dial() }
	c, err := NewClient(Config{Addr: "127.0.0.1:1", CID: "cid_x", APIKey: "key", Gzip: true, Dial: dial, MaxWait: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.CreateSession("cs-00000001", "u1", "transfer")
	if err != nil || s.CollectToken != "tok" {
		t.Fatalf("session %+v %v", s, err)
	}
	ctx := context.Background()
	if _, err := c.SendEvents(ctx, s, &Events{Fields: []Field{{Key: "total", Value: `"35.00"`, TS: 1}}, Final: true}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(gotEvents, []byte(`"key":"total","value":"35.00"`)) {
		t.Fatalf("events body %s", gotEvents)
	}
	start := time.Now()
	d, err := c.Validate(ctx, &ValidateRequest{CSID: s.CSID, UserID: "u1", Action: "transfer", SessionData: []Item{{Key: "amount", Value: `35`}}})
	if err != nil {
		t.Fatal(err)
	}
	if d.Polls != 2 || time.Since(start) > 900*time.Millisecond {
		t.Errorf("polls %d in %v: want 2, honouring retryAfterMS (10 ms), not Retry-After (1 s)", d.Polls, time.Since(start))
	}
	if d.IVScore != 2000 || d.DecisionID != "d1" || d.Indicators.MatchDetails["amount"].Reason != "match" {
		t.Errorf("decision %+v", d)
	}
	if v, ok := d.Violation("static_stream"); !ok || v.Count != 3 || v.FirstSeq != 5 || d.ViolationNames() != "static_stream" {
		t.Errorf("violations %+v", d.Indicators.PolicyViolations)
	}

	bad, _ := NewClient(Config{Addr: "http://127.0.0.1:1/", CID: "nope", APIKey: "nope", Dial: dial})
	_, err = bad.CreateSession("cs-00000002", "u1", "transfer")
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != 401 || ae.Code != "unauthorized" {
		t.Fatalf("err %v, want APIError 401 unauthorized", err)
	}
}
