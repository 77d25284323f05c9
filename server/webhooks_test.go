package server

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/countersign/countersign/server/webhook"
	"github.com/countersign/countersign/store"
)

// verifyStandardWebhook is the Standard Webhooks specification's
// verification, written here from the specification
// (github.com/standard-webhooks/standard-webhooks, "Signature scheme")
// rather than with the package under test: the signing key is the base64
// after "whsec_"; the signed content is msg_id + "." + timestamp + "." +
// body; webhook-signature holds space-separated "v1,<base64>" entries, any
// one of which may match; a timestamp more than five minutes off is
// refused.
func verifyStandardWebhook(secret string, h http.Header, body []byte, now time.Time) error {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return fmt.Errorf("secret: %v", err)
	}
	id, ts, sigs := h.Get("webhook-id"), h.Get("webhook-timestamp"), h.Get("webhook-signature")
	if id == "" || ts == "" || sigs == "" {
		return fmt.Errorf("missing headers: id %q timestamp %q signature %q", id, ts, sigs)
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("timestamp %q: %v", ts, err)
	}
	if d := now.Sub(time.Unix(sec, 0)); d > 5*time.Minute || d < -5*time.Minute {
		return fmt.Errorf("timestamp %s is %v off", ts, d)
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "." + string(body)))
	want := mac.Sum(nil)
	for _, s := range strings.Split(sigs, " ") {
		version, sig, ok := strings.Cut(s, ",")
		if !ok || version != "v1" {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(sig)
		if err == nil && hmac.Equal(got, want) {
			return nil
		}
	}
	return fmt.Errorf("no signature in %q verifies", sigs)
}

// verifyUnloqWebhook is DESIGN's X-Unloq-Signature, from its words:
// base64(HMAC-SHA256(secret, path+query + each key and value in sorted key
// order)).
func verifyUnloqWebhook(secret string, r *http.Request, body []byte) error {
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return err
	}
	keys := make([]string, 0, len(form))
	for k := range form {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	msg := r.URL.RequestURI()
	for _, k := range keys {
		msg += k + form.Get(k)
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(msg))
	if got := r.Header.Get("X-Unloq-Signature"); got != base64.StdEncoding.EncodeToString(mac.Sum(nil)) {
		return fmt.Errorf("X-Unloq-Signature %q does not verify", got)
	}
	return nil
}

// hookCall is one request a receiver got.
type hookCall struct {
	at     time.Time
	header http.Header
	uri    string
	body   []byte
}

// receiver is a webhook receiver on a loopback socket answering the
// statuses of answer in turn (the last one for ever after).
type receiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	calls  []hookCall
	answer []int
	got    chan struct{}
}

func newReceiver(t *testing.T, answer ...int) *receiver {
	rc := &receiver{answer: answer, got: make(chan struct{}, 64)}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.calls = append(rc.calls, hookCall{at: time.Now(), header: r.Header.Clone(), uri: r.URL.RequestURI(), body: body})
		status := rc.answer[min(len(rc.calls), len(rc.answer))-1]
		rc.mu.Unlock()
		w.WriteHeader(status)
		rc.got <- struct{}{}
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

// wait waits for the receiver's n-th call and returns the calls so far.
func (rc *receiver) wait(t *testing.T, n int) []hookCall {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		rc.mu.Lock()
		calls := append([]hookCall(nil), rc.calls...)
		rc.mu.Unlock()
		if len(calls) >= n {
			return calls
		}
		select {
		case <-rc.got:
		case <-deadline:
			t.Fatalf("receiver got %d calls, want %d", len(calls), n)
		}
	}
}

// newWebhookEnv is the admin test server, its clock set to the wall
// clock's time (deliveries run on the wall clock, and webhook-timestamp
// is checked against it), with the master key's Sealer, a backoff of
// backoff, and a user ann with an activated phone.
func newWebhookEnv(t *testing.T, backoff time.Duration) (*adminEnv, phone) {
	sealer, err := store.NewSealer(bytes.Repeat([]byte{42}, store.MasterKeySize), nil)
	if err != nil {
		t.Fatal(err)
	}
	e := newAdminEnv(t,
		func(e *testEnv, c *Config, _ *store.Options) {
			e.now = time.Now()
			c.Sealer, c.WebhookBackoff = sealer, backoff
		})
	e.want(e.admin("POST", "/admin/v1/users", `{"userID":"ann"}`, ""), 201, "")
	return e, e.activatePhone("ann")
}

type createdWebhook struct {
	ID        string   `json:"id"`
	Secret    string   `json:"secret"`
	URL       string   `json:"url"`
	Events    []string `json:"events"`
	Format    string   `json:"format"`
	CreatedAt int64    `json:"createdAt"`
}

func (e *adminEnv) subscribe(url, events, format string) createdWebhook {
	e.t.Helper()
	r := e.admin("POST", "/admin/v1/webhooks", fmt.Sprintf(`{"url":%q,"events":%s,"format":%q}`, url, events, format), "")
	e.want(r, 201, "")
	var w createdWebhook
	strictJSON(e.t, r, &w)
	return w
}

// requestApproval creates a push approval for ann over /v1/approvals.
func (e *adminEnv) requestApproval() string {
	e.t.Helper()
	r := e.do(req{method: "POST", path: "/v1/approvals", headers: e.withKey(),
		body: []byte(`{"userID":"ann","message":"Pay Acme 35.00?","method":"push","values":[{"key":"amount","value":"35.00"}]}`)})
	e.want(r, 201, "")
	var a struct {
		ApprovalID string `json:"approvalID"`
	}
	_ = json.Unmarshal(r.body, &a)
	return a.ApprovalID
}

type deliveryLog struct {
	Items []struct {
		EventID   string  `json:"eventID"`
		Event     string  `json:"event"`
		Attempt   int     `json:"attempt"`
		At        int64   `json:"at"`
		Outcome   string  `json:"outcome"`
		Status    int     `json:"status"`
		Error     string  `json:"error"`
		LatencyMs float64 `json:"latencyMs"`
	} `json:"items"`
	Next string `json:"next"`
}

// deliveries reads the subscription's log, waiting until it has n entries.
func (e *adminEnv) deliveries(id string, n int) deliveryLog {
	e.t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		r := e.admin("GET", "/admin/v1/webhooks/"+id+"/deliveries", "", "")
		e.want(r, 200, "")
		var l deliveryLog
		strictJSON(e.t, r, &l)
		if len(l.Items) >= n || time.Now().After(deadline) {
			return l
		}
	}
}

// TestWebhookEndToEnd: a receiver on loopback gets approval.created (with
// the device's push token) and approval.decided for an approval the
// device approves, and one the requester cancels, each signed so that the
// specification's own verification accepts it; every attempt is in the
// delivery log.
func TestWebhookEndToEnd(t *testing.T) {
	e, p := newWebhookEnv(t, time.Second)
	rc := newReceiver(t, 200)
	hook := e.subscribe(rc.srv.URL+"/hooks/countersign?tenant=acme", `["approval.created","approval.decided"]`, "standard")
	if !strings.HasPrefix(hook.Secret, "whsec_") || !store.ValidWebhookID(hook.ID) || hook.Format != "standard" ||
		len(hook.Events) != 2 {
		t.Fatalf("created %+v", hook)
	}

	id := e.requestApproval()
	calls := rc.wait(t, 1)
	var created struct {
		Type      string `json:"type"`
		Timestamp string `json:"timestamp"`
		Data      struct {
			ApprovalID string `json:"approvalID"`
			UserID     string `json:"userID"`
			Message    string `json:"message"`
			Values     []struct {
				Key   string `json:"key"`
				Value string `json:"value"`
			} `json:"values"`
			Method      string `json:"method"`
			CreatedAt   int64  `json:"createdAt"`
			ExpiresAt   int64  `json:"expiresAt"`
			NumberMatch bool   `json:"numberMatch"`
			Devices     []struct {
				DeviceID  string `json:"deviceID"`
				Platform  string `json:"platform"`
				PushToken string `json:"pushToken"`
			} `json:"devices"`
		} `json:"data"`
	}
	if err := verifyStandardWebhook(hook.Secret, calls[0].header, calls[0].body, time.Now()); err != nil {
		t.Fatalf("approval.created: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(calls[0].body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&created); err != nil {
		t.Fatalf("approval.created body %s: %v", calls[0].body, err)
	}
	d := created.Data
	if created.Type != "approval.created" || d.ApprovalID != id || d.UserID != "ann" || d.Message != "Pay Acme 35.00?" ||
		len(d.Values) != 1 || d.Values[0].Value != "35.00" || d.Method != "push" || d.ExpiresAt <= d.CreatedAt ||
		len(d.Devices) != 1 || d.Devices[0].DeviceID != p.id || d.Devices[0].PushToken != "apns-1" {
		t.Fatalf("approval.created body %s", calls[0].body)
	}
	if calls[0].uri != "/hooks/countersign?tenant=acme" || calls[0].header.Get("Content-Type") != "application/json" {
		t.Fatalf("posted to %s as %s", calls[0].uri, calls[0].header.Get("Content-Type"))
	}

	// The device approves: approval.decided, approved, with its factors.
	r := e.poll(p, "0")
	var polled devicePoll
	strictJSON(t, r, &polled)
	if len(polled.Approvals) != 1 {
		t.Fatalf("poll %s", r)
	}
	e.want(e.answer(p, id, signedAnswer(p.key, polled.Approvals[0], "approve", "PASS", e.clock().UTC().Format(time.RFC3339), "")), 200, "")
	calls = rc.wait(t, 2)
	if err := verifyStandardWebhook(hook.Secret, calls[1].header, calls[1].body, time.Now()); err != nil {
		t.Fatalf("approval.decided: %v", err)
	}
	var decided struct {
		Type string `json:"type"`
		Data struct {
			ApprovalID string            `json:"approvalID"`
			Status     string            `json:"status"`
			DeviceID   string            `json:"deviceID"`
			DecidedAt  int64             `json:"decidedAt"`
			Factors    []json.RawMessage `json:"factors"`
		} `json:"data"`
	}
	if err := json.Unmarshal(calls[1].body, &decided); err != nil || decided.Type != "approval.decided" || decided.Data.ApprovalID != id ||
		decided.Data.Status != "approved" || decided.Data.DeviceID != p.id || len(decided.Data.Factors) == 0 || decided.Data.DecidedAt == 0 {
		t.Fatalf("approval.decided body %s (%v)", calls[1].body, err)
	}
	if calls[0].header.Get("webhook-id") == calls[1].header.Get("webhook-id") {
		t.Fatal("two events share a webhook-id")
	}

	// A cancel by the requester is a decision too.
	id2 := e.requestApproval()
	e.want(e.do(req{method: "POST", path: "/v1/approvals/" + id2 + "/cancel", headers: e.withKey()}), 200, "")
	calls = rc.wait(t, 4)
	// The created and the cancelled events of id2 were written moments
	// apart and may be delivered in either order (deliveries of one batch
	// run side by side; receivers order by the body's timestamp).
	cancelled := calls[3]
	if !bytes.Contains(cancelled.body, []byte(`"status":"cancelled"`)) {
		cancelled = calls[2]
	}
	if err := verifyStandardWebhook(hook.Secret, cancelled.header, cancelled.body, time.Now()); err != nil ||
		!bytes.Contains(cancelled.body, []byte(`"status":"cancelled"`)) || !bytes.Contains(cancelled.body, []byte(id2)) {
		t.Fatalf("cancel delivered %s (%v)", cancelled.body, err)
	}

	// A signature over an altered body does not verify: the check above
	// is a real one.
	if verifyStandardWebhook(hook.Secret, calls[1].header, bytes.Replace(calls[1].body, []byte("approved"), []byte("APPROVED"), 1), time.Now()) == nil {
		t.Fatal("an altered body verified")
	}

	l := e.deliveries(hook.ID, 4)
	if len(l.Items) != 4 || l.Items[0].Outcome != "delivered" || l.Items[0].Status != 200 || l.Items[0].Attempt != 1 ||
		l.Items[3].Event != "approval.created" || l.Items[3].EventID != calls[0].header.Get("webhook-id") {
		t.Fatalf("delivery log %+v", l)
	}
	// The listing shows no secret; another organization sees none of it.
	r = e.admin("GET", "/admin/v1/webhooks/"+hook.ID, "", "")
	e.want(r, 200, "")
	if bytes.Contains(r.body, []byte(hook.Secret)) || bytes.Contains(r.body, []byte(`"secret"`)) {
		t.Fatalf("GET shows the secret: %s", r)
	}
	e.want(e.admin("GET", "/admin/v1/webhooks/"+hook.ID, "", e.otherAdmin), 404, "webhook_not_found")
	e.want(e.admin("GET", "/admin/v1/webhooks/"+hook.ID+"/deliveries", "", e.otherAdmin), 404, "webhook_not_found")
	e.want(e.admin("DELETE", "/admin/v1/webhooks/"+hook.ID, "", e.otherAdmin), 404, "webhook_not_found")
	r = e.admin("GET", "/admin/v1/webhooks", "", "")
	if !bytes.Contains(r.body, []byte(hook.ID)) {
		t.Fatalf("list %s", r)
	}
	e.want(e.admin("DELETE", "/admin/v1/webhooks/"+hook.ID, "", ""), 204, "")
	e.want(e.admin("GET", "/admin/v1/webhooks/"+hook.ID, "", ""), 404, "webhook_not_found")

	// Delivered counts in /metrics.
	r = e.do(req{method: "GET", path: "/metrics"})
	if !bytes.Contains(r.body, []byte(`countersign_webhook_deliveries_total{outcome="delivered"} 4`)) {
		t.Fatalf("metrics lack the deliveries:\n%s", r.body)
	}
}

// TestWebhookRetries: a receiver that answers 500 twice gets the same
// event three times, each wait longer than the one before, and the log
// says retrying, retrying, delivered.
func TestWebhookRetries(t *testing.T) {
	e, _ := newWebhookEnv(t, 100*time.Millisecond)
	rc := newReceiver(t, 500, 500, 200)
	hook := e.subscribe(rc.srv.URL, `["approval.created"]`, "standard")
	e.requestApproval()
	calls := rc.wait(t, 3)
	gap1, gap2 := calls[1].at.Sub(calls[0].at), calls[2].at.Sub(calls[1].at)
	t.Logf("gaps %v then %v", gap1, gap2)
	if gap1 < 75*time.Millisecond || gap2 <= gap1 {
		t.Fatalf("gaps %v then %v: want at least 75ms, then longer", gap1, gap2)
	}
	for _, c := range calls {
		if c.header.Get("webhook-id") != calls[0].header.Get("webhook-id") || !bytes.Equal(c.body, calls[0].body) {
			t.Fatal("a retry is not the same event")
		}
		if err := verifyStandardWebhook(hook.Secret, c.header, c.body, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	l := e.deliveries(hook.ID, 3)
	if len(l.Items) != 3 || l.Items[2].Outcome != "retrying" || l.Items[2].Status != 500 || l.Items[2].Error == "" ||
		l.Items[1].Outcome != "retrying" || l.Items[0].Outcome != "delivered" || l.Items[0].Attempt != 3 {
		t.Fatalf("delivery log %+v", l)
	}
	if n := len(rc.wait(t, 3)); n != 3 {
		t.Fatalf("%d calls after delivery", n)
	}
}

// TestWebhookGivesUp: after 8 failed attempts the delivery is marked
// failed and tried no more.
func TestWebhookGivesUp(t *testing.T) {
	e, _ := newWebhookEnv(t, time.Millisecond)
	rc := newReceiver(t, 503)
	hook := e.subscribe(rc.srv.URL, `["approval.created"]`, "standard")
	e.requestApproval()
	l := e.deliveries(hook.ID, 8)
	if len(l.Items) != 8 || l.Items[0].Outcome != "failed" || l.Items[0].Attempt != 8 || l.Items[1].Outcome != "retrying" {
		t.Fatalf("delivery log %+v", l)
	}
	time.Sleep(300 * time.Millisecond) // longer than the last backoff would be
	if n := len(rc.wait(t, 8)); n != 8 {
		t.Fatalf("receiver called %d times, want 8", n)
	}
}

// TestWebhookUnloqFormat: an UNLOQ-format subscription gets a form body
// signed with X-Unloq-Signature over the path, query and sorted fields.
func TestWebhookUnloqFormat(t *testing.T) {
	e, p := newWebhookEnv(t, time.Second)
	rc := newReceiver(t, 204)
	hook := e.subscribe(rc.srv.URL+"/unloq/hook?x=1", `["approval.created"]`, "unloq")
	if strings.HasPrefix(hook.Secret, "whsec_") || hook.Format != "unloq" {
		t.Fatalf("created %+v", hook)
	}
	id := e.requestApproval()
	calls := rc.wait(t, 1)
	rq := httptest.NewRequest("POST", calls[0].uri, nil)
	rq.Header = calls[0].header
	if err := verifyUnloqWebhook(hook.Secret, rq, calls[0].body); err != nil {
		t.Fatal(err)
	}
	form, _ := url.ParseQuery(string(calls[0].body))
	if form.Get("type") != "approval.created" || form.Get("approval_id") != id || form.Get("devices[0][push_token]") != "apns-1" ||
		form.Get("devices[0][device_id]") != p.id || form.Get("values[amount]") != "35.00" ||
		calls[0].header.Get("Content-Type") != "application/x-www-form-urlencoded" {
		t.Fatalf("form %v as %s", form, calls[0].header.Get("Content-Type"))
	}
}

// TestWebhookAdminRefusals: a bad subscription is a 400 naming its field,
// and nothing is stored.
func TestWebhookAdminRefusals(t *testing.T) {
	e, _ := newWebhookEnv(t, time.Second)
	for _, c := range []struct{ body, field string }{
		{`{"url":"ftp://hooks.example/x","events":["approval.created"]}`, "url"},
		{`{"url":"hooks.example/x","events":["approval.created"]}`, "url"},
		{`{"url":"https://user:pw@hooks.example/x","events":["approval.created"]}`, "url"},
		{`{"url":"http:///x","events":["approval.created"]}`, "url"},
		{`{"url":"https://hooks.example/x","events":[]}`, "events"},
		{`{"url":"https://hooks.example/x","events":["approval.updated"]}`, "events"},
		{`{"url":"https://hooks.example/x","events":["approval.created"],"format":"xml"}`, "format"},
		{`{"events":["approval.created"]}`, "url"},
	} {
		r := e.admin("POST", "/admin/v1/webhooks", c.body, "")
		if r.status != 400 || !strings.Contains(r.errorMessage(), c.field) {
			t.Errorf("%s: %s, want 400 naming %s", c.body, r, c.field)
		}
	}
	r := e.admin("GET", "/admin/v1/webhooks", "", "")
	if string(r.body) != `{"items":[],"next":""}` {
		t.Fatalf("stored after refusals: %s", r)
	}
	e.want(e.admin("GET", "/admin/v1/webhooks?limit=0", "", ""), 400, "invalid_field")
	e.want(e.admin("GET", "/admin/v1/webhooks/whk_nosuch", "", ""), 404, "webhook_not_found")
	e.want(e.admin("PUT", "/admin/v1/webhooks", "{}", ""), 405, "method_not_allowed")

	// At most 16 subscriptions: each approval change writes one outbox
	// entry per matching one in its own batch.
	for i := 0; i < store.MaxWebhooksPerOrg; i++ {
		e.want(e.admin("POST", "/admin/v1/webhooks", `{"url":"https://hooks.example.com/x","events":["approval.created"]}`, ""), 201, "")
	}
	e.want(e.admin("POST", "/admin/v1/webhooks", `{"url":"https://hooks.example.com/x","events":["approval.created"]}`, ""), 409, "webhook_limit")
}

// TestOpenAPIConformanceWebhooks drives every /admin/v1/webhooks route
// through its answers, a delivery log with an attempt in it included, and
// checks each against the document.
func TestOpenAPIConformanceWebhooks(t *testing.T) {
	cf := newConformance(t)
	e, _ := newWebhookEnv(t, time.Second)
	rc := newReceiver(t, 200)
	do := func(method, path, body string, key ...string) response {
		t.Helper()
		k := e.adminKey
		if len(key) > 0 {
			k = key[0]
		}
		q := req{method: method, path: path, headers: []string{"Authorization", "Bearer " + k}}
		if body != "" {
			q.body = []byte(body)
		}
		r := e.do(q)
		cf.check(q, r)
		return r
	}
	r := do("POST", "/admin/v1/webhooks", `{"url":"`+rc.srv.URL+`","events":["approval.created"]}`)
	id := jsonMap(t, r.body)["id"].(string)
	do("POST", "/admin/v1/webhooks", `{"url":"https://hooks.example.com/x","events":["approval.decided"],"format":"unloq"}`)
	do("POST", "/admin/v1/webhooks", `{"url":"gopher://x","events":["approval.created"]}`)
	do("POST", "/admin/v1/webhooks", `{"url":"https://x","events":["approval.created"]}`, e.apiKey)
	for i := 0; i < store.MaxWebhooksPerOrg-2; i++ {
		e.want(e.admin("POST", "/admin/v1/webhooks", `{"url":"https://hooks.example.com/x","events":["decision.created"]}`, ""), 201, "")
	}
	do("POST", "/admin/v1/webhooks", `{"url":"https://hooks.example.com/x","events":["approval.email"]}`)
	r = do("GET", "/admin/v1/webhooks?limit=2", "")
	next := jsonMap(t, r.body)["next"].(string)
	do("GET", "/admin/v1/webhooks?limit=2&cursor="+next, "")
	do("GET", "/admin/v1/webhooks?limit=x", "")
	do("GET", "/admin/v1/webhooks/"+id, "")
	do("GET", "/admin/v1/webhooks/"+id, "", e.otherAdmin)
	e.requestApproval()
	rc.wait(t, 1)
	e.deliveries(id, 1)
	do("GET", "/admin/v1/webhooks/"+id+"/deliveries", "")
	do("GET", "/admin/v1/webhooks/"+id+"/deliveries?limit=0", "")
	do("GET", "/admin/v1/webhooks/"+id+"/deliveries", "", e.otherAdmin)
	do("DELETE", "/admin/v1/webhooks/"+id, "")
	do("DELETE", "/admin/v1/webhooks/"+id, "")
	for _, want := range []string{
		"POST /admin/v1/webhooks 201", "POST /admin/v1/webhooks 400", "POST /admin/v1/webhooks 401", "POST /admin/v1/webhooks 409",
		"GET /admin/v1/webhooks 200", "GET /admin/v1/webhooks 400",
		"GET /admin/v1/webhooks/{id} 200", "GET /admin/v1/webhooks/{id} 404",
		"GET /admin/v1/webhooks/{id}/deliveries 200", "GET /admin/v1/webhooks/{id}/deliveries 400", "GET /admin/v1/webhooks/{id}/deliveries 404",
		"DELETE /admin/v1/webhooks/{id} 204", "DELETE /admin/v1/webhooks/{id} 404",
	} {
		if !cf.seen[want] {
			t.Errorf("not exercised: %s", want)
		}
	}
}

// TestVerifyStandardWebhookVector: the test's own verification accepts the
// specification's published example, so it is the algorithm the
// receivers run, and refuses it altered or late.
func TestVerifyStandardWebhookVector(t *testing.T) {
	h := http.Header{}
	h.Set("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek")
	h.Set("webhook-timestamp", "1614265330")
	h.Set("webhook-signature", "v1,bm9wZQ== v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
	secret, body, at := "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", []byte(`{"test": 2432232314}`), time.Unix(1614265330, 0)
	if err := verifyStandardWebhook(secret, h, body, at); err != nil {
		t.Fatal(err)
	}
	if verifyStandardWebhook(secret, h, []byte(`{"test": 2432232315}`), at) == nil ||
		verifyStandardWebhook(secret, h, body, at.Add(6*time.Minute)) == nil {
		t.Fatal("an altered body or a late delivery verified")
	}
}

// TestWebhookRefusesNonHTTP: a subscription whose URL is not http(s) (one
// stored before the checks, say) is never posted to: its first attempt is
// logged failed, with no retry.
func TestWebhookRefusesNonHTTP(t *testing.T) {
	e, _ := newWebhookEnv(t, time.Millisecond)
	w, err := e.db.CreateWebhook(e.org.ID, store.Webhook{URL: "file:///etc/passwd", Events: store.EventApprovalCreated,
		Format: store.FormatStandard}, []byte("whsec_c2VjcmV0"), e.cfg.Sealer)
	if err != nil {
		t.Fatal(err)
	}
	e.requestApproval()
	l := e.deliveries(w.ID, 1)
	if len(l.Items) != 1 || l.Items[0].Outcome != "failed" || l.Items[0].Attempt != 1 || !strings.Contains(l.Items[0].Error, "http") {
		t.Fatalf("delivery log %+v", l)
	}
	time.Sleep(50 * time.Millisecond) // fifty times the backoff
	if log, _, err := e.db.Deliveries(e.org.ID, w.ID, 10, ""); err != nil || len(log) != 1 {
		t.Fatalf("retried: %+v, %v", log, err)
	}
}

// TestWebhookHangingReceiverDelaysOnlyItself: a receiver that does not
// answer holds at most half of the deliveries in flight, and nobody waits
// for it: with ten of its deliveries hanging, a second subscription's
// delivery arrives at once. (Delivered in batches that each waited for
// their slowest receiver, or with no bound per subscription, the second
// one waited until the first receiver's attempts timed out.)
func TestWebhookHangingReceiverDelaysOnlyItself(t *testing.T) {
	e, _ := newWebhookEnv(t, time.Minute)
	release := make(chan struct{})
	var hanging atomic.Int32
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hanging.Add(1)
		<-release
		w.WriteHeader(200)
	}))
	t.Cleanup(slow.Close)
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	t.Cleanup(unblock) // before slow.Close, which waits for its handlers
	e.subscribe(slow.URL+"/slow", `["approval.created","approval.decided"]`, "standard")
	for range 5 { // 10 deliveries to the hanging receiver: created, then cancelled
		id := e.requestApproval()
		e.want(e.do(req{method: "POST", path: "/v1/approvals/" + id + "/cancel", headers: e.withKey()}), 200, "")
	}
	deadline := time.Now().Add(10 * time.Second)
	for hanging.Load() < int32(webhook.DefaultConcurrency/2) {
		if time.Now().After(deadline) {
			t.Fatalf("%d deliveries reached the hanging receiver, want %d", hanging.Load(), webhook.DefaultConcurrency/2)
		}
		time.Sleep(5 * time.Millisecond)
	}
	fast := newReceiver(t, 200)
	e.subscribe(fast.srv.URL+"/fast", `["approval.created"]`, "standard")
	id := e.requestApproval()
	if calls := fast.wait(t, 1); !strings.Contains(string(calls[0].body), id) {
		t.Fatalf("the second receiver got %s, want approval %s", calls[0].body, id)
	}
	if n := hanging.Load(); n != int32(webhook.DefaultConcurrency/2) {
		t.Errorf("%d deliveries in flight to the hanging receiver, want at most %d", n, webhook.DefaultConcurrency/2)
	}
	unblock()
}
