package server

import (
	"bytes"
	"encoding/json"
	"errors"
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
// an approval.email event carrying the one-time link, signed. Opening the
// link (GET, as a browser or a mail scanner does) shows a page with the
// message and an Approve button and approves nothing, however often; the
// button (a POST of the link) approves, and the held authenticate answers
// at once with the result token. The link approves once: posted again, or
// with one character changed, it is refused, as is a link of no
// organization.
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
		for _, method := range []string{"GET", "POST"} {
			status, _, body := openLink(t, method, bad, "")
			if status != 404 || !strings.Contains(body, `"LINK.INVALID"`) {
				t.Fatalf("%s %s: %d %s, want 404 LINK.INVALID", method, bad, status, body)
			}
		}
	}
	// Opened, twice (a scanner, then the user): the page, and nothing
	// approved.
	for range 2 {
		status, h, body := openLink(t, "GET", d.Link, "text/html")
		if status != 200 || !strings.HasPrefix(h.Get("Content-Type"), "text/html") ||
			!strings.Contains(body, `<form method="post">`) || !strings.Contains(body, "203.0.113.7") ||
			h.Get("Cache-Control") != "no-store" || h.Get("Referrer-Policy") != "no-referrer" ||
			!strings.Contains(h.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
			t.Fatalf("open the link: %d %v %s", status, h, body)
		}
	}
	select {
	case r := <-done:
		t.Fatalf("authenticate answered before the link's button was pressed: %s", r)
	case <-time.After(100 * time.Millisecond):
	}

	status, _, body := openLink(t, "POST", d.Link, "")
	if status != 200 || !strings.Contains(body, `"status":"approved"`) || !strings.Contains(body, d.ApprovalID) {
		t.Fatalf("press the link's button: %d %s", status, body)
	}
	res := wait(t, done)
	var out unloqResult
	strictJSON(t, res, &out)
	if res.status != 200 || out.Result.UnloqID != "bob" || out.Result.Token == "" {
		t.Fatalf("authenticate after the link: %s", res)
	}
	for _, method := range []string{"GET", "POST"} {
		if status, _, body := openLink(t, method, d.Link, ""); status != 404 || !strings.Contains(body, `"LINK.INVALID"`) {
			t.Fatalf("link used, then %s: %d %s", method, status, body)
		}
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

// openLink sends method to link without credentials, as a browser does
// (accept is its Accept header, "" for none), and returns the answer.
func openLink(t *testing.T, method, link, accept string) (int, http.Header, string) {
	t.Helper()
	q, err := http.NewRequest(method, link, nil)
	if err != nil {
		t.Fatal(err)
	}
	if accept != "" {
		q.Header.Set("Accept", accept)
	}
	r, err := http.DefaultClient.Do(q)
	if err != nil {
		t.Fatalf("%s %s: %v", method, link, err)
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	return r.StatusCode, r.Header, string(b)
}

// TestUnloqEmailPublicURL: with Config.PublicURL the e-mailed link starts
// with it, whatever host the backend called (here a loopback address
// users could not reach), and the path after it is the server's own.
func TestUnloqEmailPublicURL(t *testing.T) {
	sealer, err := store.NewSealer(bytes.Repeat([]byte{42}, store.MasterKeySize), nil)
	if err != nil {
		t.Fatal(err)
	}
	e := newUnloqEnv(t, func(e *testEnv, c *Config, _ *store.Options) {
		e.now = time.Now()
		c.Sealer, c.WebhookBackoff, c.PublicURL = sealer, time.Second, "https://auth.example.com/cs/"
	})
	e.useTCP()
	std := newReceiver(t, 200)
	e.subscribe(std.srv.URL+"/mail", `["approval.email"]`, "standard")
	e.authenticateAsync("/authenticate", `{"email":"bob@example.com","method":"EMAIL"}`)
	var ev struct {
		Data struct{ Link string } `json:"data"`
	}
	sc := std.wait(t, 1)[0]
	if err := json.Unmarshal(sc.body, &ev); err != nil {
		t.Fatal(err)
	}
	const want = "https://auth.example.com/cs/unloq/v1/link/"
	if !strings.HasPrefix(ev.Data.Link, want) {
		t.Fatalf("link %q, want it to start with %q", ev.Data.Link, want)
	}
	if status, _, body := openLink(t, "GET", e.base+strings.TrimPrefix(ev.Data.Link, "https://auth.example.com/cs"), ""); status != 200 {
		t.Fatalf("the link's path on the server: %d %s", status, body)
	}
}

// TestParsePublicURL: a public URL is an absolute http(s) URL with a host
// and at most a path; its trailing slash is dropped.
func TestParsePublicURL(t *testing.T) {
	for in, want := range map[string]string{
		"": "", "https://auth.example.com": "https://auth.example.com",
		"https://auth.example.com/": "https://auth.example.com", "http://10.0.0.5:8080/cs/": "http://10.0.0.5:8080/cs",
	} {
		if got, err := ParsePublicURL(in); err != nil || got != want {
			t.Errorf("ParsePublicURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"auth.example.com", "ftp://auth.example.com", "https://", "https://auth.example.com/?a=1",
		"https://auth.example.com/#x", "https://u:p@auth.example.com", "https://auth.example.com/%zz"} {
		if _, err := ParsePublicURL(in); err == nil {
			t.Errorf("ParsePublicURL(%q): no error", in)
		}
	}
	e := newEnv(t)
	if _, err := New(Config{PublicURL: "auth.example.com"}, e.db); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "public URL") {
		t.Errorf("New with a bad public URL: %v, want ErrConfig naming it", err)
	}
}
