package server

import (
	"crypto/ed25519"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/countersign/countersign/engine/approval"
	"github.com/countersign/countersign/store"
)

// adminUser is a user as /admin/v1 answers it, decoded strictly.
type adminUser struct {
	UserID    string `json:"userID"`
	Mobile    string `json:"mobile"`
	Email     string `json:"email"`
	Name      string `json:"name"`
	CreatedAt int64  `json:"createdAt"`
	Locked    bool   `json:"locked"`
	Devices   int    `json:"devices"`
}

type adminDevice struct {
	DeviceID   string `json:"deviceID"`
	UserID     string `json:"userID"`
	Platform   string `json:"platform"`
	AppVersion string `json:"appVersion"`
	Model      string `json:"model"`
	Jailbroken bool   `json:"jailbroken"`
	CreatedAt  int64  `json:"createdAt"`
	RevokedAt  int64  `json:"revokedAt"`
}

type adminPage[T any] struct {
	Items []T    `json:"items"`
	Next  string `json:"next"`
}

// strictJSON decodes b into v, refusing fields v does not have: an answer
// with a field the document does not list fails.
func strictJSON(t testing.TB, r response, v any) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(string(r.body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("answer %s: %v", r, err)
	}
}

// adminEnv is a test server with an admin key for its organization, and a
// second organization with its own.
type adminEnv struct {
	*testEnv
	adminKey             string
	other                store.Org
	otherKey, otherAdmin string
}

func newAdminEnv(t *testing.T, opts ...envOption) *adminEnv {
	e := &adminEnv{testEnv: newEnv(t, opts...)}
	e.useTCP()
	var err error
	if e.adminKey, err = e.db.AddAPIKey(e.org.ID, store.ScopeAdmin); err != nil {
		t.Fatal(err)
	}
	if e.other, e.otherKey, err = e.db.CreateOrg("other", nil); err != nil {
		t.Fatal(err)
	}
	if e.otherAdmin, err = e.db.AddAPIKey(e.other.ID, store.ScopeAdmin); err != nil {
		t.Fatal(err)
	}
	return e
}

// admin sends an admin request with key (the organization's admin key
// when ""): a body of "" sends none.
func (e *adminEnv) admin(method, path, body, key string) response {
	e.t.Helper()
	if key == "" {
		key = e.adminKey
	}
	q := req{method: method, path: path, headers: []string{"Authorization", "Bearer " + key}}
	if body != "" {
		q.body = []byte(body)
	}
	return e.do(q)
}

func (e *adminEnv) want(r response, status int, code string) {
	e.t.Helper()
	if r.status != status || r.errorCode() != code {
		e.t.Fatalf("got %s, want %d %s", r, status, code)
	}
}

// activate registers a device for the user through the store, with an
// activation code from /admin/v1 (the device surface's own activation is
// TestDeviceEndToEnd's).
func (e *adminEnv) activate(userID string) (store.Device, string) {
	e.t.Helper()
	code := e.activationCode(userID)
	pub, _, _ := ed25519.GenerateKey(newRandReader(7))
	d, token, err := e.db.ActivateDevice([]byte(code), &store.DeviceActivation{PublicKey: pub, Platform: "ios", AppVersion: "2.1.0", Model: "iPhone15,2"})
	if err != nil {
		e.t.Fatal(err)
	}
	return d, token
}

// TestAdminUsersEndToEnd drives the users, activation codes and devices of
// /admin/v1 over a loopback socket as an operator would.
func TestAdminUsersEndToEnd(t *testing.T) {
	e := newAdminEnv(t)

	r := e.admin("POST", "/admin/v1/users", `{"userID":"alice","mobile":"+44 7911 123456","email":"Alice@Example.COM","name":"Alice"}`, "")
	e.want(r, 201, "")
	var u adminUser
	strictJSON(t, r, &u)
	if u != (adminUser{UserID: "alice", Mobile: "+447911123456", Email: "alice@example.com", Name: "Alice", CreatedAt: e.clock().UnixMilli()}) {
		t.Fatalf("created %+v", u)
	}
	e.want(e.admin("POST", "/admin/v1/users", `{"userID":"alice"}`, ""), 409, "user_exists")
	e.want(e.admin("POST", "/admin/v1/users", `{"userID":"bob","mobile":"+447911123456"}`, ""), 409, "mobile_taken")
	e.want(e.admin("POST", "/admin/v1/users", `{"userID":"bob","email":"ALICE@example.com"}`, ""), 409, "email_taken")

	// Read and patch: absent fields stay, "" clears.
	r = e.admin("GET", "/admin/v1/users/alice", "", "")
	e.want(r, 200, "")
	var got adminUser
	strictJSON(t, r, &got)
	if got != u {
		t.Fatalf("read %+v, want %+v", got, u)
	}
	r = e.admin("PATCH", "/admin/v1/users/alice", `{"name":"Alice Smith","email":""}`, "")
	e.want(r, 200, "")
	strictJSON(t, r, &got)
	if got.Name != "Alice Smith" || got.Email != "" || got.Mobile != "+447911123456" {
		t.Fatalf("patched %+v", got)
	}
	// The cleared address is free for another user.
	e.want(e.admin("POST", "/admin/v1/users", `{"userID":"bob","email":"alice@example.com"}`, ""), 201, "")

	// Paging: five users by id, two a page.
	for _, id := range []string{"carol", "dave", "erin"} {
		e.want(e.admin("POST", "/admin/v1/users", `{"userID":"`+id+`"}`, ""), 201, "")
	}
	var ids []string
	cursor, pages := "", 0
	for {
		r = e.admin("GET", "/admin/v1/users?limit=2&cursor="+url.QueryEscape(cursor), "", "")
		e.want(r, 200, "")
		var p adminPage[adminUser]
		strictJSON(t, r, &p)
		pages++
		if len(p.Items) > 2 {
			t.Fatalf("page of %d users with limit 2", len(p.Items))
		}
		for _, it := range p.Items {
			ids = append(ids, it.UserID)
		}
		if p.Next == "" {
			break
		}
		cursor = p.Next
	}
	if strings.Join(ids, ",") != "alice,bob,carol,dave,erin" || pages != 3 {
		t.Fatalf("paged %v in %d pages", ids, pages)
	}

	// Activation code, device, revoke.
	d, token := e.activate("alice")
	var dev store.Device
	if err := e.db.DeviceByToken([]byte(token), &dev); err != nil {
		t.Fatalf("the new device's token: %v", err)
	}
	r = e.admin("GET", "/admin/v1/users/alice", "", "")
	strictJSON(t, r, &got)
	if got.Devices != 1 {
		t.Fatalf("after activation: %+v", got)
	}
	r = e.admin("GET", "/admin/v1/users/alice/devices", "", "")
	e.want(r, 200, "")
	var devs adminPage[adminDevice]
	strictJSON(t, r, &devs)
	if len(devs.Items) != 1 || devs.Items[0].DeviceID != d.ID || devs.Items[0].Platform != "ios" || devs.Items[0].RevokedAt != 0 || devs.Next != "" {
		t.Fatalf("devices %+v", devs)
	}
	e.want(e.admin("DELETE", "/admin/v1/devices/"+d.ID, "", ""), 204, "")
	e.want(e.admin("DELETE", "/admin/v1/devices/"+d.ID, "", ""), 204, "") // revoked already: the same
	if err := e.db.DeviceByToken([]byte(token), &dev); err == nil {
		t.Fatal("a revoked device's token still resolves")
	}
	r = e.admin("GET", "/admin/v1/users/alice/devices", "", "")
	strictJSON(t, r, &devs)
	if len(devs.Items) != 1 || devs.Items[0].RevokedAt != e.clock().UnixMilli() {
		t.Fatalf("after revoking: %+v", devs)
	}
	strictJSON(t, e.admin("GET", "/admin/v1/users/alice", "", ""), &got)
	if got.Devices != 0 {
		t.Fatalf("after revoking: %+v", got)
	}
	e.want(e.admin("DELETE", "/admin/v1/devices/dev-none", "", ""), 404, "device_not_found")

	// Unlock: a user locked by failures is unlocked, the lock and the
	// failures gone.
	var st approval.UserState
	if err := e.db.UpdateUserState(e.org.ID, "carol", &st, func(u *approval.UserState) error {
		u.Failures, u.LockedUntil = 5, e.clock().Add(15*time.Minute)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	strictJSON(t, e.admin("GET", "/admin/v1/users/carol", "", ""), &got)
	if !got.Locked {
		t.Fatalf("a locked user answers %+v", got)
	}
	r = e.admin("POST", "/admin/v1/users/carol/unlock", "", "")
	e.want(r, 200, "")
	strictJSON(t, r, &got)
	if got.Locked {
		t.Fatalf("after unlock: %+v", got)
	}
	if err := e.db.UserState(e.org.ID, "carol", &st); err != nil || st.Failures != 0 || !st.LockedUntil.IsZero() {
		t.Fatalf("after unlock the state is %+v (%v)", st, err)
	}

	// Delete: gone, and so are its devices' records from the list.
	e.want(e.admin("DELETE", "/admin/v1/users/alice", "", ""), 204, "")
	e.want(e.admin("GET", "/admin/v1/users/alice", "", ""), 404, "user_not_found")
	e.want(e.admin("DELETE", "/admin/v1/users/alice", "", ""), 404, "user_not_found")
	e.want(e.admin("GET", "/admin/v1/users/alice/devices", "", ""), 404, "user_not_found")
	e.want(e.admin("POST", "/admin/v1/users/alice/activation-codes", "", ""), 404, "user_not_found")
}

// TestAdminTenancy: another organization's admin key sees none of this
// organization's users or devices, answered exactly as missing ones; each
// organization may use the same user id.
func TestAdminTenancy(t *testing.T) {
	e := newAdminEnv(t)
	e.want(e.admin("POST", "/admin/v1/users", `{"userID":"alice","mobile":"+14155550100"}`, ""), 201, "")
	d, _ := e.activate("alice")

	for _, q := range []struct{ method, path, body string }{
		{"GET", "/admin/v1/users/alice", ""},
		{"PATCH", "/admin/v1/users/alice", `{"name":"x"}`},
		{"DELETE", "/admin/v1/users/alice", ""},
		{"POST", "/admin/v1/users/alice/unlock", ""},
		{"POST", "/admin/v1/users/alice/activation-codes", ""},
		{"GET", "/admin/v1/users/alice/devices", ""},
	} {
		foreign := e.admin(q.method, q.path, q.body, e.otherAdmin)
		missing := e.admin(q.method, strings.Replace(q.path, "alice", "nobody", 1), q.body, e.otherAdmin)
		e.want(foreign, 404, "user_not_found")
		if string(foreign.body) != string(missing.body) {
			t.Errorf("%s %s: foreign %s, missing %s", q.method, q.path, foreign, missing)
		}
	}
	foreign := e.admin("DELETE", "/admin/v1/devices/"+d.ID, "", e.otherAdmin)
	e.want(foreign, 404, "device_not_found")
	if missing := e.admin("DELETE", "/admin/v1/devices/dev-none", "", e.otherAdmin); string(missing.body) != string(foreign.body) {
		t.Errorf("foreign device %s, missing %s", foreign, missing)
	}
	r := e.admin("GET", "/admin/v1/users", "", e.otherAdmin)
	var p adminPage[adminUser]
	strictJSON(t, r, &p)
	if len(p.Items) != 0 {
		t.Fatalf("the other organization lists %+v", p)
	}
	// The same id and number are free in another organization.
	e.want(e.admin("POST", "/admin/v1/users", `{"userID":"alice","mobile":"+14155550100"}`, e.otherAdmin), 201, "")
	// and nothing of the first changed.
	var u adminUser
	strictJSON(t, e.admin("GET", "/admin/v1/users/alice", "", ""), &u)
	if u.Devices != 1 || u.Mobile != "+14155550100" {
		t.Fatalf("the first organization's user is now %+v", u)
	}
}

// TestAdminKeyScopes: a key is usable only in its scope. A backend key on
// /admin/v1 and an admin key on validate are refused exactly as an unknown
// key is, on each surface.
func TestAdminKeyScopes(t *testing.T) {
	e := newAdminEnv(t)
	unknown := "csk_" + strings.Repeat("A", 43)
	wantSame := func(name string, got, ref response) {
		t.Helper()
		if got.status != 401 || got.errorCode() != "invalid_api_key" || string(got.body) != string(ref.body) {
			t.Errorf("%s: %s, want the unknown key's %s", name, got, ref)
		}
	}
	ref := e.admin("GET", "/admin/v1/users", "", unknown)
	wantSame("backend key on /admin/v1", e.admin("GET", "/admin/v1/users", "", e.apiKey), ref)
	wantSame("other org's backend key on /admin/v1", e.admin("GET", "/admin/v1/users", "", e.otherKey), ref)
	for name, h := range map[string][]string{
		"no Authorization":       nil,
		"another scheme":         {"Authorization", "Basic " + e.adminKey},
		"the key without scheme": {"Authorization", e.adminKey},
		"an empty bearer":        {"Authorization", "Bearer "},
	} {
		wantSame(name, e.do(req{method: "GET", path: "/admin/v1/users", headers: h}), ref)
	}
	if r := e.admin("GET", "/admin/v1/users", "", ""); r.status != 200 {
		t.Fatalf("the admin key: %s", r)
	}
	if r := e.do(req{method: "GET", path: "/admin/v1/users", headers: []string{"Authorization", "bearer " + e.adminKey}}); r.status != 200 {
		t.Fatalf("the scheme in lower case: %s", r)
	}

	s := e.newSession("scopes-0001", "user-1")
	body := e.validateBody(s, false, seedItems()...)
	nref := e.validate(body, "apikey", unknown)
	wantSame("admin key on validate", e.validate(body, "apikey", e.adminKey), nref)
	wantSame("admin key on a decision", e.do(req{path: "/v1/decisions/01JBZ8Q3Y00000000000000000", headers: []string{"apikey", e.adminKey}}),
		e.do(req{path: "/v1/decisions/01JBZ8Q3Y00000000000000000", headers: []string{"apikey", unknown}}))
	if r := e.validate(body, "apikey", e.apiKey); r.status != 200 && r.status != 202 {
		t.Fatalf("the backend key on validate: %s", r)
	}
}

// TestAdminMethods: each path answers the methods it takes, and 405 with
// Allow naming them otherwise; unknown paths under /admin/v1 are 404
// route_not_found in the same envelope.
func TestAdminMethods(t *testing.T) {
	e := newAdminEnv(t)
	for _, c := range []struct{ method, path, allow string }{
		{"PUT", "/admin/v1/users", "POST, GET"},
		{"DELETE", "/admin/v1/users", "POST, GET"},
		{"POST", "/admin/v1/users/alice", "GET, PATCH, DELETE"},
		{"GET", "/admin/v1/users/alice/unlock", "POST"},
		{"GET", "/admin/v1/users/alice/activation-codes", "POST"},
		{"POST", "/admin/v1/users/alice/devices", "GET"},
		{"GET", "/admin/v1/devices/d1", "DELETE"},
	} {
		r := e.admin(c.method, c.path, "", "")
		if r.status != 405 || r.errorCode() != "method_not_allowed" || r.header["allow"] != c.allow {
			t.Errorf("%s %s: %s Allow %q, want 405 Allow %q", c.method, c.path, r, r.header["allow"], c.allow)
		}
	}
	for _, p := range []string{"/admin/v1", "/admin/v1/", "/admin/v1/rules", "/admin/v1/users/",
		"/admin/v1/users/alice/other", "/admin/v1/devices/", "/admin/v1/devices/a/b", "/admin/v1/usersx"} {
		e.want(e.admin("GET", p, "", ""), 404, "route_not_found")
	}
}

// newRandReader is a deterministic io.Reader of the test's randomness, for
// keys made in the test.
func newRandReader(seed uint64) *randReader { return &randReader{r: newRand(seed)} }

type randReader struct{ r interface{ Uint64() uint64 } }

func (r *randReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(r.r.Uint64())
	}
	return len(p), nil
}
