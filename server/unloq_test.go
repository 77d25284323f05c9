package server

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/countersign/countersign/server/httpd"
	"github.com/countersign/countersign/server/unloq"
)

// unloqEnv is the admin test server with a user bob (e-mail, name and an
// activated phone) for the UNLOQ surface.
type unloqEnv struct {
	*adminEnv
	bob phone
}

func newUnloqEnv(t *testing.T, opts ...envOption) *unloqEnv {
	e := &unloqEnv{adminEnv: newAdminEnv(t, opts...)}
	e.want(e.admin("POST", "/admin/v1/users", `{"userID":"bob","email":"bob@example.com","name":"Bob Jones"}`, ""), 201, "")
	e.bob = e.activatePhone("bob")
	return e
}

// unloqError is UNLOQ's error envelope, decoded strictly.
type unloqError struct {
	Type  string `json:"type"`
	Error struct {
		Code    string `json:"code"`
		NS      string `json:"ns"`
		Message string `json:"message"`
		Status  int    `json:"status"`
	} `json:"error"`
}

// wantUnloqError checks that r is UNLOQ's envelope with status and code.
func wantUnloqError(t *testing.T, r response, status int, code string) unloqError {
	t.Helper()
	var u unloqError
	strictJSON(t, r, &u)
	if r.status != status || u.Error.Code != code || u.Error.Status != status || u.Type != "error" ||
		!strings.HasPrefix(code, u.Error.NS+".") || u.Error.Message == "" {
		t.Fatalf("got %s, want %d %s", r, status, code)
	}
	return u
}

// unloq sends a request to /unloq/v1 with the organization's key as UNLOQ's
// client sends it (Authorization: Bearer).
func (e *unloqEnv) unloq(method, path, body string, h ...string) response {
	e.t.Helper()
	q := req{method: method, path: "/unloq/v1" + path, headers: append([]string{"Authorization", "Bearer " + e.apiKey}, h...)}
	if body != "" {
		q.body = []byte(body)
	}
	return e.do(q)
}

// authenticateAsync starts a held authenticate and returns its answer's channel.
func (e *unloqEnv) authenticateAsync(path, body string, h ...string) <-chan response {
	done := make(chan response, 1)
	go func() { done <- e.unloq("POST", path, body, h...) }()
	return done
}

// devicePendingOne polls bob's phone until it has the one pending approval.
func (e *unloqEnv) devicePendingOne() devicePending {
	e.t.Helper()
	r := e.poll(e.bob, "10")
	e.want(r, 200, "")
	var list devicePoll
	strictJSON(e.t, r, &list)
	if len(list.Approvals) != 1 {
		e.t.Fatalf("device poll %s, want one approval", r)
	}
	return list.Approvals[0]
}

// decide answers the pending approval p from bob's phone.
func (e *unloqEnv) decide(p devicePending, decision string) {
	e.t.Helper()
	ts := e.clock().UTC().Format(time.RFC3339)
	e.want(e.answer(e.bob, p.ApprovalID, signedAnswer(e.bob.key, p, decision, "PASS", ts, "")), 200, "")
}

func wait(t *testing.T, ch <-chan response) response {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(20 * time.Second):
		t.Fatal("the held authenticate did not answer")
	}
	return response{}
}

type unloqResult struct {
	Type   string `json:"type"`
	Result struct {
		UnloqID   string `json:"unloq_id"`
		Token     string `json:"token"`
		Email     string `json:"email"`
		FirstName string `json:"first_name"`
		LastName  string `json:"last_name"`
	} `json:"result"`
}

// TestUnloqAuthenticateApproved: a held authenticate (events off) answers
// the instant the device approves, with a one-time token that /token
// exchanges once for the user's data; the device is shown the message with
// its $variables and the request's ip.
func TestUnloqAuthenticateApproved(t *testing.T) {
	e := newUnloqEnv(t)
	done := e.authenticateAsync("/authenticate", `{"email":"Bob@Example.com","ip":"203.0.113.7","method":"UNLOQ","app":"Demo Bank","order":42}`)
	p := e.devicePendingOne()
	if p.Message != "Log in to Demo Bank from 203.0.113.7?" || p.IP != "203.0.113.7" {
		t.Fatalf("the device was shown %+v", p)
	}
	select {
	case r := <-done:
		t.Fatalf("answered before the decision: %s", r)
	default:
	}
	e.decide(p, "approve")
	decided := time.Now()
	r := wait(t, done)
	if lag := time.Since(decided); lag > 2*time.Second {
		t.Errorf("answered %v after the decision", lag)
	}
	if r.status != 200 {
		t.Fatalf("approved authenticate: %s", r)
	}
	var res unloqResult
	strictJSON(t, r, &res)
	if res.Type != "api.application.approval.authenticate" || res.Result.UnloqID != "bob" || !strings.HasPrefix(res.Result.Token, p.ApprovalID+".") {
		t.Fatalf("result %s", r)
	}

	tok := e.unloq("POST", "/token", fmt.Sprintf(`{"token":%q,"sid":"s-1","duration":3600}`, res.Result.Token))
	var data struct {
		Type   string `json:"type"`
		Result struct {
			ApprovalID string  `json:"approval_id"`
			UnloqID    string  `json:"unloq_id"`
			Email      string  `json:"email"`
			FirstName  string  `json:"first_name"`
			LastName   string  `json:"last_name"`
			Method     string  `json:"method"`
			IPSource   *string `json:"ip_source"`
			SID        string  `json:"sid"`
			Duration   int     `json:"duration"`
		} `json:"result"`
	}
	strictJSON(t, tok, &data)
	d := data.Result
	if tok.status != 200 || d.ApprovalID != p.ApprovalID || d.UnloqID != "bob" || d.Email != "bob@example.com" ||
		d.FirstName != "Bob" || d.LastName != "Jones" || d.Method != "UNLOQ" || d.IPSource == nil || *d.IPSource != "203.0.113.7" ||
		d.SID != "s-1" || d.Duration != 3600 {
		t.Fatalf("token data %s", tok)
	}
	wantUnloqError(t, e.unloq("POST", "/token", fmt.Sprintf(`{"token":%q}`, res.Result.Token)), 404, "TOKEN.INVALID")

	g := e.unloq("GET", "/approvals/"+p.ApprovalID, "")
	if g.status != 200 || !strings.Contains(string(g.body), `"status":"approved"`) {
		t.Fatalf("GET approval %s", g)
	}
	l := e.unloq("GET", "/approvals?email=bob@example.com", "")
	if l.status != 200 || !strings.Contains(string(l.body), p.ApprovalID) {
		t.Fatalf("GET approvals %s", l)
	}
}

// TestUnloqSeedExample: the documented request, form-encoded with Bearer,
// answers the result shape after approval and the error shape for a
// denial, for the OTP the denial then requires, and for a wait that ran out.
func TestUnloqSeedExample(t *testing.T) {
	e := newUnloqEnv(t)
	form := "email=bob%40example.com&ip=198.51.100.4&method=UNLOQ"
	ct := []string{"Content-Type", "application/x-www-form-urlencoded"}
	send := func() <-chan response {
		done := make(chan response, 1)
		go func() {
			done <- e.do(req{method: "POST", path: "/unloq/v1/authenticate", body: []byte(form), noCT: true,
				headers: append([]string{"Authorization", "Bearer " + e.apiKey}, ct...)})
		}()
		return done
	}

	done := send()
	e.decide(e.devicePendingOne(), "approve")
	r := wait(t, done)
	var res unloqResult
	strictJSON(t, r, &res)
	if r.status != 200 || res.Result.UnloqID != "bob" || res.Result.Token == "" {
		t.Fatalf("approved: %s", r)
	}

	// A wait that runs out: the approval expires on the service's clock.
	done = send()
	p := e.devicePendingOne()
	e.advance(31 * time.Second)
	e.srv.core.Hub().Publish(httpd.TopicKey(httpd.TopicApproval, e.org.ID.String(), p.ApprovalID))
	wantUnloqError(t, wait(t, done), 408, "APPROVAL.TIMEOUT")

	done = send()
	e.decide(e.devicePendingOne(), "deny")
	wantUnloqError(t, wait(t, done), 403, "APPROVAL.DENIED")
	wantUnloqError(t, wait(t, send()), 403, "APPROVAL.TOKEN")
}

// readEvent reads one chunk of the event stream: "\n" + JSON + "\n", or a
// ping "\n".
func readEvent(t *testing.T, br *bufio.Reader) (string, map[string]any) {
	t.Helper()
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("event stream: %q, %v", line, err)
		}
		if line == "\n" {
			continue // a ping, or the prefix of an event
		}
		var ev struct {
			Event string         `json:"event"`
			Data  map[string]any `json:"data"`
		}
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("event %q: %v", line, err)
		}
		return ev.Event, ev.Data
	}
}

// TestUnloqEvents: ?events=true answers at once with x-response-type:
// event, a pending event, pings while the user decides, then the final
// event nested as the Node.js client reads it, and the stream ends.
func TestUnloqEvents(t *testing.T) {
	e := newUnloqEnv(t)
	start := func(body string) (*http.Response, *bufio.Reader) {
		q, _ := http.NewRequest("POST", e.base+"/unloq/v1/authenticate?events=true", strings.NewReader(body))
		q.Header.Set("Authorization", "Bearer "+e.apiKey)
		q.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(q)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { res.Body.Close() })
		if res.StatusCode != 200 || res.Header.Get("x-response-type") != "event" {
			b, _ := io.ReadAll(res.Body)
			t.Fatalf("events answer %d %v %s", res.StatusCode, res.Header, b)
		}
		return res, bufio.NewReader(res.Body)
	}
	res, br := start(`{"email":"bob@example.com","method":"UNLOQ"}`)
	if ev, _ := readEvent(t, br); ev != "pending" {
		t.Fatalf("first event %q", ev)
	}
	e.decide(e.devicePendingOne(), "approve")
	ev, data := readEvent(t, br)
	inner, _ := data["data"].(map[string]any)
	if ev != "approved" || inner["unloq_id"] != "bob" || inner["token"] == "" {
		t.Fatalf("approved event %q %v", ev, data)
	}
	if rest, _ := io.ReadAll(br); len(strings.TrimSpace(string(rest))) != 0 {
		t.Fatalf("after the final event: %q", rest)
	}
	res.Body.Close()

	_, br = start(`{"email":"bob@example.com","generate_token":false}`)
	readEvent(t, br)
	e.decide(e.devicePendingOne(), "deny")
	ev, data = readEvent(t, br)
	inner, _ = data["data"].(map[string]any)
	if ev != "denied" || inner["security_field"] != "token" {
		t.Fatalf("denied event %q %v", ev, data)
	}
}

// TestUnloqEventPings: while the user decides, the stream is sent a bare
// "\n" every ping interval, each in a chunk of its own, and the final event
// follows the last ping.
func TestUnloqEventPings(t *testing.T) {
	e := newUnloqEnv(t, withConfig(func(c *Config) { c.UnloqPingInterval = 20 * time.Millisecond }))
	q, _ := http.NewRequest("POST", e.base+"/unloq/v1/authenticate?events=true", strings.NewReader(`{"email":"bob@example.com"}`))
	q.Header.Set("Authorization", "Bearer "+e.apiKey)
	q.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(q)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	br := bufio.NewReader(res.Body)
	if ev, _ := readEvent(t, br); ev != "pending" {
		t.Fatalf("first event %q", ev)
	}
	pings := 0
	for pings < 3 {
		line, err := br.ReadString('\n')
		if err != nil || line != "\n" {
			t.Fatalf("want a ping, got %q %v", line, err)
		}
		pings++
	}
	e.decide(e.devicePendingOne(), "approve")
	if ev, _ := readEvent(t, br); ev != "approved" {
		t.Fatalf("after %d pings: %q", pings, ev)
	}
}

// TestUnloqStreamEndingAtOnce: a stream whose approval is decided before
// it starts (method OTP with a right code) sends its pending and approved
// events and ends, round after round. Its writer runs in a goroutine of its
// own and may end and pool the request's context while the handler that set
// it is still returning; a handler that touched the context after setting
// the writer showed under -race in TestUnloqShutdownWakesHeld, where a
// thousand streams end at once, as a context pooled twice (a 500).
func TestUnloqStreamEndingAtOnce(t *testing.T) {
	e := newUnloqEnv(t)
	key, err := otp.NewKeyFromURL(e.bob.totpURI)
	if err != nil {
		t.Fatal(err)
	}
	var gaps []time.Duration
	for i := range 40 {
		e.advance(time.Minute) // a code is good once per step; 10 a window
		code, err := totp.GenerateCode(key.Secret(), e.clock())
		if err != nil {
			t.Fatal(err)
		}
		q, _ := http.NewRequest("POST", e.base+"/unloq/v1/authenticate?events=true",
			strings.NewReader(`{"email":"bob@example.com","method":"OTP","token":"`+code+`"}`))
		q.Header.Set("Authorization", "Bearer "+e.apiKey)
		q.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(q)
		if err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(res.Body)
		if res.StatusCode != 200 {
			b, _ := io.ReadAll(br)
			t.Fatalf("round %d: %d %s", i, res.StatusCode, b)
		}
		if ev, _ := readEvent(t, br); ev != "pending" {
			t.Fatalf("round %d: first event %q", i, ev)
		}
		pendingAt := time.Now()
		if ev, data := readEvent(t, br); ev != "approved" {
			t.Fatalf("round %d: final event %q %v", i, ev, data)
		}
		gaps = append(gaps, time.Since(pendingAt))
		res.Body.Close()
	}
	// The two events come apart, so that UNLOQ's client is handed them as
	// two pieces: the median gap as read here, which a reader descheduled
	// in a round or two does not move.
	slices.Sort(gaps)
	if med := gaps[len(gaps)/2]; med < unloq.MinEventGap/2 {
		t.Fatalf("the final event came a median %v after the pending one, want about %v", med, unloq.MinEventGap)
	}
}
