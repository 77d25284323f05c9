package server

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/countersign/countersign/store"
)

// TestUnloqEmailLink: authenticate with method EMAIL, over a loopback
// socket, sends the organization's notifier (receivers of both formats)
// an approval.email event carrying the one-time link, signed; opening the
// link as a browser does approves, and the held authenticate answers at
// once with the result token. The link works once: opened again, or with
// one character changed, it is refused, as is a link of no organization.
func TestUnloqEmailLink(t *testing.T) {
	sealer, err := store.NewSealer(bytes.Repeat([]byte{42}, store.MasterKeySize), nil)
	if err != nil {
		t.Fatal(err)
	}
	e := newUnloqEnv(t, func(e *testEnv, c *Config, _ *store.Options) {
		e.now = time.Now()
		c.Sealer, c.WebhookBackoff = sealer, time.Second
	})
	e.useTCP()
	std, unl := newReceiver(t, 200), newReceiver(t, 200)
	hs := e.subscribe(std.srv.URL+"/mail", `["approval.email"]`, "standard")
	hu := e.subscribe(unl.srv.URL+"/mail?app=demo", `["approval.email"]`, "unloq")

	done := e.authenticateAsync("/authenticate", `{"email":"bob@example.com","method":"EMAIL","ip":"203.0.113.7"}`)
	select {
	case r := <-done:
		t.Fatalf("authenticate answered at once: %s", r)
	case <-time.After(200 * time.Millisecond):
	}
	sc := std.wait(t, 1)[0]
	if err := verifyStandardWebhook(hs.Secret, sc.header, sc.body, time.Now()); err != nil {
		t.Fatalf("standard approval.email: %v", err)
	}
	var ev struct {
		Type string `json:"type"`
		Data struct {
			ApprovalID, UserID, Email, Message, Link string
			ExpiresAt                                int64
		} `json:"data"`
	}
	if err := json.Unmarshal(sc.body, &ev); err != nil {
		t.Fatalf("%v: %s", err, sc.body)
	}
	d := ev.Data
	if ev.Type != "approval.email" || d.UserID != "bob" || d.Email != "bob@example.com" ||
		!strings.Contains(d.Message, "203.0.113.7") || d.ExpiresAt == 0 ||
		!strings.HasPrefix(d.Link, e.base+"/unloq/v1/link/") || !strings.Contains(d.Link, d.ApprovalID+".") {
		t.Fatalf("approval.email body %s", sc.body)
	}
	uc := unl.wait(t, 1)[0]
	r := httptest.NewRequest("POST", uc.uri, nil)
	r.Header = uc.header
	if err := verifyUnloqWebhook(hu.Secret, r, uc.body); err != nil {
		t.Fatalf("unloq approval.email: %v", err)
	}
	form, _ := url.ParseQuery(string(uc.body))
	if form.Get("type") != "approval.email" || form.Get("link") != d.Link || form.Get("email") != "bob@example.com" {
		t.Fatalf("unloq approval.email body %s, want the link %s", uc.body, d.Link)
	}

	// A changed character, another organization, no token: refused, and
	// the authenticate is still held.
	last := d.Link[len(d.Link)-1]
	changed := d.Link[:len(d.Link)-1] + string("AB"[min(1, int(last-'A')&1)])
	if changed == d.Link {
		changed = d.Link[:len(d.Link)-1] + "C"
	}
	orgStart := len(e.base + "/unloq/v1/link/")
	for _, bad := range []string{changed, d.Link[:orgStart] + "0000000000000000" + d.Link[orgStart+16:],
		e.base + "/unloq/v1/link/x", d.Link[:strings.LastIndexByte(d.Link, '.')]} {
		status, body := openLink(t, bad)
		if status != 404 || !strings.Contains(body, `"LINK.INVALID"`) {
			t.Fatalf("open %s: %d %s, want 404 LINK.INVALID", bad, status, body)
		}
	}
	select {
	case r := <-done:
		t.Fatalf("authenticate answered before the link was opened: %s", r)
	default:
	}

	status, body := openLink(t, d.Link)
	if status != 200 || !strings.Contains(body, `"status":"approved"`) || !strings.Contains(body, d.ApprovalID) {
		t.Fatalf("open the link: %d %s", status, body)
	}
	res := wait(t, done)
	var out unloqResult
	strictJSON(t, res, &out)
	if res.status != 200 || out.Result.UnloqID != "bob" || out.Result.Token == "" {
		t.Fatalf("authenticate after the link: %s", res)
	}
	if status, body := openLink(t, d.Link); status != 404 || !strings.Contains(body, `"LINK.INVALID"`) {
		t.Fatalf("link opened twice: %d %s", status, body)
	}
	if r := e.unloq("POST", "/token", `{"token":"`+out.Result.Token+`"}`); r.status != 200 || !strings.Contains(string(r.body), `"method":"EMAIL"`) {
		t.Fatalf("token of the EMAIL authenticate: %s", r)
	}
}

// TestUnloqEmailNeedsAddress: a user without an e-mail address, named by
// unloq_id, cannot be sent a link; nor can anyone while no webhook of the
// organization takes approval.email.
func TestUnloqEmailNeedsAddress(t *testing.T) {
	e := newUnloqEnv(t)
	e.want(e.admin("POST", "/admin/v1/users", `{"userID":"dan"}`, ""), 201, "")
	u := wantUnloqError(t, e.unloq("POST", "/authenticate", `{"unloq_id":"dan","method":"EMAIL"}`), 409, "APPROVAL.EMAIL")
	if !strings.Contains(u.Error.Message, "e-mail address") {
		t.Fatalf("message %q", u.Error.Message)
	}
	u = wantUnloqError(t, e.unloq("POST", "/authenticate", `{"email":"bob@example.com","method":"EMAIL"}`), 409, "APPROVAL.EMAIL")
	if !strings.Contains(u.Error.Message, "approval.email") {
		t.Fatalf("message %q", u.Error.Message)
	}
}

// openLink GETs link as a browser does, without credentials.
func openLink(t *testing.T, link string) (int, string) {
	t.Helper()
	r, err := http.Get(link)
	if err != nil {
		t.Fatalf("GET %s: %v", link, err)
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	return r.StatusCode, string(b)
}
