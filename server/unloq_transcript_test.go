package server

import (
	"crypto/ed25519"
	"encoding/json"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"

	"github.com/countersign/countersign/engine/approval"
	"github.com/countersign/countersign/internal/httptranscript"
	"github.com/countersign/countersign/server/httpd"
	"github.com/countersign/countersign/server/webhook"
	"github.com/countersign/countersign/store"
)

// The UNLOQ surface's transcripts run on the native transcripts' server,
// with a user bob (bob@example.com, "Bob Jones") whose phone the test
// plays, and carol@example.com, who has no device. Commands beside the
// native ones:
//
//	held n=N                 wait until N requests are held on the hub, with N of bob's approvals pending
//	phone decision=D         bob's phone answers his oldest pending approval (approve or deny)
//	wake                     wake the requests held on the approvals the last held found (after advance)
//	mail                     wait for the next approval.email the organization's notifier receives; its link's path is $link
//
// Masked in every answer beside the native ones: token, approval_id, id,
// created_at, expires_at, decided_at.
const unloqTranscriptDir = "../fixtures/http/unloq"

func newUnloqTranscriptRunner(t *testing.T) *httptranscript.Runner {
	// The master key's Sealer, for the notifier webhook of EMAIL.
	sealer, err := store.NewSealer(make([]byte, store.MasterKeySize), nil)
	if err != nil {
		t.Fatal(err)
	}
	r, e := newTranscriptRunner(t, withConfig(func(c *Config) { c.Sealer = sealer }))
	org := e.org.ID
	mailbox := newReceiver(t, 200)
	if _, err := e.db.CreateWebhook(org, store.Webhook{URL: mailbox.srv.URL + "/mail", Events: store.EventApprovalEmail,
		Format: store.FormatStandard}, []byte(webhook.NewSecret(store.FormatStandard)), sealer); err != nil {
		t.Fatal(err)
	}
	mails := 0
	// mail waits for the organization's notifier to receive the next
	// approval.email and leaves its link's path in $link.
	r.Commands["mail"] = func(t testing.TB, d *datadriven.TestData) string {
		mails++
		call := mailbox.wait(t.(*testing.T), mails)[mails-1]
		var ev struct {
			Type string
			Data struct{ Email, Message, Link string }
		}
		if err := json.Unmarshal(call.body, &ev); err != nil {
			d.Fatalf(t, "mail %s: %v", call.body, err)
		}
		u, err := url.Parse(ev.Data.Link)
		if err != nil {
			d.Fatalf(t, "link %q: %v", ev.Data.Link, err)
		}
		r.Set("link", u.Path, false)
		return ev.Type + " to " + ev.Data.Email + ": " + ev.Data.Message + " (link $link)"
	}
	if _, err := e.db.CreateUser(org, store.User{UserID: "bob", Email: "bob@example.com", Name: "Bob Jones"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.CreateUser(org, store.User{UserID: "carol", Email: "carol@example.com"}); err != nil {
		t.Fatal(err)
	}
	code, _, err := e.db.CreateActivationCode(org, "bob")
	if err != nil {
		t.Fatal(err)
	}
	pub, key, _ := ed25519.GenerateKey(newRandReader(15))
	_, token, err := e.db.ActivateDevice([]byte(code), &store.DeviceActivation{PublicKey: pub, Platform: "ios", AppVersion: "2.1.0", Model: "test"})
	if err != nil {
		t.Fatal(err)
	}
	r.Mask = append(r.Mask, "token", "approval_id", "id", "created_at", "expires_at", "decided_at")
	hub := e.srv.core.Hub()
	var heldIDs []string // the pending approvals the last held found
	r.Commands["held"] = func(t testing.TB, d *datadriven.TestData) string {
		var n int
		d.ScanArgs(t, "n", &n)
		// A held authenticate subscribes before it stores its approval:
		// held means both, so that what follows finds the approval.
		var pending []approval.Approval
		for deadline := time.Now().Add(5 * time.Second); hub.Held() != n || len(pending) != n; time.Sleep(time.Millisecond) {
			var err error
			if pending, err = e.db.PendingApprovals(org, "bob", pending); err != nil || time.Now().After(deadline) {
				d.Fatalf(t, "held %d with %d of bob's approvals pending, want %d (%v)", hub.Held(), len(pending), n, err)
			}
		}
		heldIDs = heldIDs[:0]
		for i := range pending {
			heldIDs = append(heldIDs, pending[i].ID)
		}
		return "held " + d.CmdArgs[0].Vals[0]
	}
	r.Commands["phone"] = func(t testing.TB, d *datadriven.TestData) string {
		var decision string
		d.ScanArgs(t, "decision", &decision)
		// A held authenticate subscribes before it stores its approval:
		// wait for the approval as the phone's long poll would.
		var pending []approval.Approval
		for deadline := time.Now().Add(5 * time.Second); len(pending) == 0; time.Sleep(time.Millisecond) {
			var err error
			if pending, err = e.db.PendingApprovals(org, "bob", pending); err != nil || time.Now().After(deadline) {
				d.Fatalf(t, "bob has no pending approval (%v)", err)
			}
		}
		a := &pending[0]
		p := devicePending{ApprovalID: a.ID, Challenge: a.ChallengeString()}
		ts := e.clock().UTC().Format(time.RFC3339)
		res := e.do(req{method: "POST", path: "/v1/device/approvals/" + a.ID, headers: []string{"Authorization", "Bearer " + token},
			body: []byte(signedAnswer(key, p, decision, "PASS", ts, ""))})
		var st deviceAnswered
		strictJSON(t, res, &st)
		return "bob's phone: " + decision + ", the approval is " + st.Status
	}
	r.Commands["wake"] = func(t testing.TB, d *datadriven.TestData) string {
		n := 0
		for _, id := range heldIDs {
			n += hub.Publish(httpd.TopicKey(httpd.TopicApproval, org.String(), id))
		}
		return "woke " + strconv.Itoa(n)
	}
	return r
}

// TestUnloqTranscripts runs the UNLOQ surface's HTTP transcripts, one fresh
// server and store per file. go test -run TestUnloqTranscripts -rewrite
// regenerates the answers (read them before committing).
func TestUnloqTranscripts(t *testing.T) {
	datadriven.Walk(t, unloqTranscriptDir, func(t *testing.T, path string) {
		r := newUnloqTranscriptRunner(t)
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string { return r.Run(t, d) })
	})
}
