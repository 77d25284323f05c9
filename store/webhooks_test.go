package store

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/countersign/countersign/engine/approval"
)

// testBodies renders an event as its type, approval, status and devices,
// so the tests see what the store handed the body maker.
func testBodies(dst []byte, f WebhookFormat, ev *ApprovalEvent) []byte {
	dst = fmt.Appendf(dst, "%s %s %s %s", f, ev.Type, ev.Approval.ID, ev.Approval.Status)
	for _, d := range ev.Devices {
		dst = fmt.Appendf(dst, " %s=%s", d.ID, d.PushToken)
	}
	return dst
}

func newTestSealer(t testing.TB) *Sealer {
	s, err := NewSealer(bytes.Repeat([]byte{7}, MasterKeySize), nil)
	check(t, err)
	return s
}

func TestWebhookSecretSealed(t *testing.T) {
	db, _ := openMem(t)
	o, _ := newOrg(t, db, "acme")
	s := newTestSealer(t)
	secret := []byte("whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQ")
	w, err := db.CreateWebhook(o.ID, Webhook{URL: "https://hooks.example/a", Events: EventApprovalCreated, Format: FormatStandard}, secret, s)
	check(t, err)
	if !ValidWebhookID(w.ID) || w.CreatedAt == 0 {
		t.Fatalf("webhook %+v", w)
	}
	got, err := db.WebhookSecret(o.ID, w.ID, s)
	check(t, err)
	if !bytes.Equal(got, secret) {
		t.Fatalf("secret %q, want %q", got, secret)
	}
	// Not in the clear in any record.
	it, _ := db.pdb.NewIter(nil)
	for it.First(); it.Valid(); it.Next() {
		if bytes.Contains(it.Value(), secret) || bytes.Contains(it.Value(), secret[6:]) {
			t.Fatalf("secret in the clear under %x", it.Key())
		}
	}
	check(t, it.Close())
	other, _ := NewSealer(bytes.Repeat([]byte{8}, MasterKeySize), nil)
	_, err = db.WebhookSecret(o.ID, w.ID, other)
	wantErr(t, err, ErrSealedOpen)
	// Another organization's is a missing one.
	o2, _ := newOrg(t, db, "other")
	_, err = db.Webhook(o2.ID, w.ID)
	wantErr(t, err, ErrNotFound)
	_, err = db.WebhookSecret(o2.ID, w.ID, s)
	wantErr(t, err, ErrNotFound)
	wantErr(t, db.DeleteWebhook(o2.ID, w.ID), ErrNotFound)
	_, err = db.CreateWebhook(o.ID, Webhook{URL: "https://x", Events: EventApprovalCreated, Format: FormatStandard}, secret, nil)
	wantErr(t, err, ErrNoSealer)
	_, err = db.CreateWebhook(o.ID, Webhook{URL: "https://x", Format: FormatStandard}, secret, s)
	wantErr(t, err, ErrWebhookEvent)

	list, next, err := db.Webhooks(o.ID, 10, "")
	check(t, err)
	if len(list) != 1 || list[0] != w || next != "" {
		t.Fatalf("list %+v next %q", list, next)
	}
	check(t, db.DeleteWebhook(o.ID, w.ID))
	_, err = db.Webhook(o.ID, w.ID)
	wantErr(t, err, ErrNotFound)
}

func TestWebhookLimit(t *testing.T) {
	db, _ := openMem(t)
	o, _ := newOrg(t, db, "acme")
	s := newTestSealer(t)
	for i := 0; i < MaxWebhooksPerOrg; i++ {
		_, err := db.CreateWebhook(o.ID, Webhook{URL: "https://x", Events: EventApprovalCreated, Format: FormatUnloq}, []byte("k"), s)
		check(t, err)
	}
	_, err := db.CreateWebhook(o.ID, Webhook{URL: "https://x", Events: EventApprovalCreated, Format: FormatUnloq}, []byte("k"), s)
	wantErr(t, err, ErrWebhookLimit)
}

// TestOutboxWithTheChange: the outbox entries of a creation and a
// decision are written by CreateApproval and UpdateApproval themselves,
// one per matching subscription, with what the body maker made.
func TestOutboxWithTheChange(t *testing.T) {
	db, clk := openMem(t)
	db.SetEventBodies(testBodies)
	w := newApprovalWorld(t, db, clk)
	s := newTestSealer(t)
	created := must[Webhook](t)(db.CreateWebhook(w.org, Webhook{URL: "https://a", Events: EventApprovalCreated, Format: FormatStandard}, []byte("k"), s))
	both := must[Webhook](t)(db.CreateWebhook(w.org, Webhook{URL: "https://b", Events: EventApprovalCreated | EventApprovalDecided, Format: FormatUnloq}, []byte("k"), s))

	a := must[*approval.Approval](t)(w.create("ann"))
	select {
	case <-db.OutboxWritten():
	default:
		t.Fatal("no outbox signal after a creation with subscribers")
	}
	due, err := db.DueDeliveries(clk.Now(), 10)
	check(t, err)
	if len(due) != 2 {
		t.Fatalf("%d entries, want 2: %+v", len(due), due)
	}
	bodies := map[string]string{}
	for _, e := range due {
		bodies[e.WebhookID] = string(e.Body)
		if e.EventID != due[0].EventID || e.Event != EventApprovalCreated || e.Attempts != 0 {
			t.Fatalf("entry %+v", e)
		}
	}
	wantDev := " " + w.dev.ID + "=apns-token"
	if bodies[created.ID] != "standard approval.created "+a.ID+" pending"+wantDev ||
		bodies[both.ID] != "unloq approval.created "+a.ID+" pending"+wantDev {
		t.Fatalf("bodies %q", bodies)
	}
	for i := range due {
		check(t, db.RecordAttempt(&due[i], DeliveryAttempt{EventID: due[i].EventID, Event: due[i].Event, Attempt: 1,
			At: clk.Now().UnixMilli(), Outcome: OutcomeDelivered, Status: 204}, time.Time{}))
	}
	if due, _ := db.DueDeliveries(clk.Now(), 10); len(due) != 0 {
		t.Fatalf("delivered entries left: %+v", due)
	}

	_ = must[approval.Effect](t)(w.answer(a, approval.DecisionDeny, true))
	due, err = db.DueDeliveries(clk.Now(), 10)
	check(t, err)
	if len(due) != 1 || due[0].WebhookID != both.ID || string(due[0].Body) != "unloq approval.decided "+a.ID+" denied" {
		t.Fatalf("after the denial: %+v", due)
	}

	// A cancellation the store makes itself (DeleteUser) is an event too.
	b := must[*approval.Approval](t)(w.create("ann"))
	check(t, db.DeleteUser(w.org, "ann"))
	due, _ = db.DueDeliveries(clk.Now(), 10)
	var found bool
	for _, e := range due {
		found = found || string(e.Body) == "unloq approval.decided "+b.ID+" cancelled"
	}
	if !found {
		t.Fatalf("no decided event for the cancelled approval: %+v", due)
	}
}

// TestOutboxNoEventWithoutChange: a change that is refused writes no
// event either.
func TestOutboxNoEventWithoutChange(t *testing.T) {
	db, clk := openMem(t)
	db.SetEventBodies(testBodies)
	w := newApprovalWorld(t, db, clk)
	_ = must[Webhook](t)(db.CreateWebhook(w.org, Webhook{URL: "https://a", Events: EventApprovalCreated, Format: FormatStandard}, []byte("k"), newTestSealer(t)))
	refused := errors.New("refused")
	id := must[string](t)(db.NewApprovalID())
	a := new(approval.Approval)
	check(t, approval.New(a, &approval.Request{ID: id, UserID: "ann", Message: "m", Method: approval.MethodPush}, &w.settings, clk.Now(), rand.Reader))
	err := db.CreateApproval(w.org, a, func(*approval.UserState, *approval.Admission) error { return refused })
	wantErr(t, err, refused)
	if n := countKind(t, db, kindOutbox); n != 0 {
		t.Fatalf("%d outbox entries for a refused approval", n)
	}
}

// TestRecordAttemptRetriesAndTrims: a retry moves the entry to its next
// time with one more attempt; the log keeps the newest DeliveryLogLimit.
func TestRecordAttemptRetriesAndTrims(t *testing.T) {
	db, clk := openMem(t)
	db.SetEventBodies(testBodies)
	w := newApprovalWorld(t, db, clk)
	hook := must[Webhook](t)(db.CreateWebhook(w.org, Webhook{URL: "https://a", Events: EventApprovalCreated, Format: FormatStandard}, []byte("k"), newTestSealer(t)))
	_ = must[*approval.Approval](t)(w.create("ann"))
	due := must[[]OutboxEntry](t)(db.DueDeliveries(clk.Now(), 10))
	e := due[0]
	next := clk.Now().Add(time.Minute)
	check(t, db.RecordAttempt(&e, DeliveryAttempt{EventID: e.EventID, Event: e.Event, Attempt: 1, Outcome: OutcomeRetry, Status: 500,
		Latency: 3 * time.Millisecond}, next))
	if due := must[[]OutboxEntry](t)(db.DueDeliveries(clk.Now(), 10)); len(due) != 0 {
		t.Fatalf("rescheduled entry due early: %+v", due)
	}
	due = must[[]OutboxEntry](t)(db.DueDeliveries(next, 10))
	if len(due) != 1 || due[0].Attempts != 1 || !due[0].Due.Equal(next) || !bytes.Equal(due[0].Body, e.Body) {
		t.Fatalf("rescheduled: %+v", due)
	}
	for i := 0; i < DeliveryLogLimit+5; i++ {
		e := due[0]
		check(t, db.RecordAttempt(&e, DeliveryAttempt{EventID: e.EventID, Attempt: i + 2, Outcome: OutcomeRetry, Error: "connection refused"}, next))
	}
	log, cursor, err := db.Deliveries(w.org, hook.ID, MaxPageLimit, "")
	check(t, err)
	if len(log) != DeliveryLogLimit || cursor != "" || log[0].Attempt != DeliveryLogLimit+6 || log[0].Error != "connection refused" {
		t.Fatalf("%d log entries, newest %+v", len(log), log[0])
	}
	page, cursor, err := db.Deliveries(w.org, hook.ID, 2, "")
	check(t, err)
	page2, _, err := db.Deliveries(w.org, hook.ID, 2, cursor)
	check(t, err)
	if page[1].Attempt != page2[0].Attempt+1 {
		t.Fatalf("pages %+v then %+v", page, page2)
	}
	_, _, err = db.Deliveries(w.org, "whk_aaaaaaaaaaaaaaaa", 10, "")
	wantErr(t, err, ErrNotFound)
	// Deleting the subscription takes its log; its entry is dropped.
	check(t, db.DeleteWebhook(w.org, hook.ID))
	if n := countKind(t, db, kindDelivery); n != 0 {
		t.Fatalf("%d log entries after the delete", n)
	}
	check(t, db.DropDelivery(&due[0]))
	if n := countKind(t, db, kindOutbox); n != 0 {
		t.Fatalf("%d outbox entries after the drop", n)
	}
}

// TestOutboxSurvivesReopen: an entry written before a close is due after
// the store opens again.
func TestOutboxSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	clk := newClock()
	db, err := Open(Options{Dir: dir, Now: clk.Now})
	check(t, err)
	db.SetEventBodies(testBodies)
	w := newApprovalWorld(t, db, clk)
	_ = must[Webhook](t)(db.CreateWebhook(w.org, Webhook{URL: "https://a", Events: EventApprovalCreated, Format: FormatStandard}, []byte("k"), newTestSealer(t)))
	_ = must[*approval.Approval](t)(w.create("ann"))
	check(t, db.Close())
	db, err = Open(Options{Dir: dir, Now: clk.Now})
	check(t, err)
	defer db.Close()
	if due := must[[]OutboxEntry](t)(db.DueDeliveries(clk.Now(), 10)); len(due) != 1 {
		t.Fatalf("after reopening: %+v", due)
	}
}

// TestOutboxExpiryNoticed: an approval found past its expiry by the next
// creation is marked expired in that batch, with its approval.decided.
func TestOutboxExpiryNoticed(t *testing.T) {
	db, clk := openMem(t)
	db.SetEventBodies(testBodies)
	w := newApprovalWorld(t, db, clk)
	_ = must[Webhook](t)(db.CreateWebhook(w.org, Webhook{URL: "https://a", Events: EventApprovalDecided, Format: FormatStandard}, []byte("k"), newTestSealer(t)))
	a := must[*approval.Approval](t)(w.create("ann"))
	clk.Advance(time.Hour)
	_ = must[*approval.Approval](t)(w.create("ann"))
	due := must[[]OutboxEntry](t)(db.DueDeliveries(clk.Now(), 10))
	if len(due) != 1 || string(due[0].Body) != "standard approval.decided "+a.ID+" expired" {
		t.Fatalf("outbox %+v", due)
	}
}
