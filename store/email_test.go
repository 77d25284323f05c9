package store

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/countersign/countersign/engine/approval"
)

// TestOutboxEmailLink: CreateEmailApproval writes, in the approval's
// batch, the approval.email event with the link for the subscriptions
// that listen for it, and nothing for the others; without an address or
// URL it refuses and writes nothing.
func TestOutboxEmailLink(t *testing.T) {
	db, clk := openMem(t)
	db.SetEventBodies(func(dst []byte, f WebhookFormat, ev *ApprovalEvent) []byte {
		return fmt.Appendf(dst, "%s %s to=%s url=%s", ev.Type, ev.Approval.Method, ev.Email.To, ev.Email.URL)
	})
	w := newApprovalWorld(t, db, clk)
	s := newTestSealer(t)
	mail := must[Webhook](t)(db.CreateWebhook(w.org, Webhook{URL: "https://mail", Events: EventApprovalEmail, Format: FormatStandard}, []byte("k"), s))
	_ = must[Webhook](t)(db.CreateWebhook(w.org, Webhook{URL: "https://decided", Events: EventApprovalDecided, Format: FormatUnloq}, []byte("k"), s))

	newEmail := func() *approval.Approval {
		req := approval.Request{ID: must[string](t)(db.NewApprovalID()), UserID: "ann", Message: "Log in?", Method: approval.MethodEmail}
		a := new(approval.Approval)
		check(t, approval.New(a, &req, &w.settings, clk.Now(), rand.Reader))
		_ = must[string](t)(approval.IssueLinkToken(a, rand.Reader))
		return a
	}
	admit := func(u *approval.UserState, adm *approval.Admission) error {
		adm.Method = approval.MethodEmail
		_, err := approval.Admit(u, &w.settings, adm, clk.Now())
		return err
	}
	wantErr(t, db.CreateEmailApproval(w.org, newEmail(), EmailLink{To: "ann@example.com"}, admit), ErrNoLink)
	if due, _ := db.DueDeliveries(clk.Now(), 10); len(due) != 0 {
		t.Fatalf("a refused creation wrote %+v", due)
	}

	a := newEmail()
	check(t, db.CreateEmailApproval(w.org, a, EmailLink{To: "ann@example.com", URL: "https://cs.example/unloq/v1/link/x"}, admit))
	due, err := db.DueDeliveries(clk.Now(), 10)
	check(t, err)
	if len(due) != 1 || due[0].WebhookID != mail.ID || due[0].Event != EventApprovalEmail ||
		string(due[0].Body) != "approval.email email to=ann@example.com url=https://cs.example/unloq/v1/link/x" {
		t.Fatalf("entries %+v", due)
	}
	var got approval.Approval
	check(t, db.Approval(w.org, a.ID, &got))
	if !got.LinkToken.Issued() || got.LinkToken.Hash != a.LinkToken.Hash {
		t.Fatal("the stored approval lost its link token's hash")
	}
}

// TestOutboxBodySealed: with a Sealer, an outbox body (here an e-mailed
// link, a secret until it is used) is not in the database in the clear,
// opens for the worker, and stays sealed when a retry moves the entry; a
// store without the Sealer cannot read it.
func TestOutboxBodySealed(t *testing.T) {
	clk := newClock()
	sealer := newTestSealer(t)
	fs := vfs.NewMem()
	db, err := Open(Options{Dir: "db", FS: fs, Now: clk.Now, Sealer: sealer})
	check(t, err)
	t.Cleanup(func() { _ = db.Close() })
	db.SetEventBodies(func(dst []byte, f WebhookFormat, ev *ApprovalEvent) []byte {
		return fmt.Appendf(dst, "link=%s", ev.Email.URL)
	})
	w := newApprovalWorld(t, db, clk)
	_ = must[Webhook](t)(db.CreateWebhook(w.org, Webhook{URL: "https://mail", Events: EventApprovalEmail, Format: FormatStandard}, []byte("k"), sealer))
	req := approval.Request{ID: must[string](t)(db.NewApprovalID()), UserID: "ann", Message: "Log in?", Method: approval.MethodEmail}
	a := new(approval.Approval)
	check(t, approval.New(a, &req, &w.settings, clk.Now(), rand.Reader))
	_ = must[string](t)(approval.IssueLinkToken(a, rand.Reader))
	const secret = "LINKSECRET0123456789"
	check(t, db.CreateEmailApproval(w.org, a, EmailLink{To: "ann@example.com", URL: "https://cs.example/l/" + secret},
		func(u *approval.UserState, adm *approval.Admission) error {
			adm.Method = approval.MethodEmail
			_, err := approval.Admit(u, &w.settings, adm, clk.Now())
			return err
		}))
	inClear := func(when string) {
		t.Helper()
		it, err := db.pdb.NewIter(nil)
		check(t, err)
		for ok := it.First(); ok; ok = it.Next() {
			if bytes.Contains(it.Value(), []byte(secret)) {
				t.Errorf("%s: the link is in the clear under key %x", when, it.Key())
			}
		}
		check(t, it.Close())
	}
	inClear("written")
	due := must[[]OutboxEntry](t)(db.DueDeliveries(clk.Now(), 10))
	if len(due) != 1 || string(due[0].Body) != "link=https://cs.example/l/"+secret {
		t.Fatalf("due %+v", due)
	}
	check(t, db.RecordAttempt(&due[0], DeliveryAttempt{Attempt: 1, Outcome: OutcomeRetry, Status: 500}, clk.Now().Add(time.Second)))
	inClear("moved by a retry")
	clk.Advance(2 * time.Second)
	due = must[[]OutboxEntry](t)(db.DueDeliveries(clk.Now(), 10))
	if len(due) != 1 || string(due[0].Body) != "link=https://cs.example/l/"+secret {
		t.Fatalf("due after the retry %+v", due)
	}
	db.sealer = nil
	_, err = db.DueDeliveries(clk.Now(), 10)
	wantErr(t, err, ErrNoSealer)
}
