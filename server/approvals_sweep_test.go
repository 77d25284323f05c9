package server

import (
	"bytes"
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/countersign/countersign/engine/approval"
	"github.com/countersign/countersign/server/httpd"
)

// runSweeper runs the store's background sweeper, as countersign serve
// does, every few milliseconds until the test ends.
func (e *testEnv) runSweeper() {
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		e.db.RunSweeper(stop, 5*time.Millisecond)
	}()
	e.t.Cleanup(func() {
		close(stop)
		<-done
	})
}

// TestApprovalLongPollWokenBySweep: a requester's long poll, held on a
// real socket, answers expired as soon as the background sweep marks the
// approval expired, not when its wait ends; the user's topic is published
// too, and /metrics counts the sweep.
func TestApprovalLongPollWokenBySweep(t *testing.T) {
	e := newEnv(t)
	e.useTCP()
	e.approvalUser("alice")
	c := e.mustCreateApproval(approvalBody)
	e.runSweeper()

	type answer struct {
		r response
		a approvalAnswer
	}
	done := make(chan answer, 1)
	start := time.Now()
	go func() {
		r, a := e.getApproval(c.ApprovalID, "?wait=25")
		done <- answer{r, a}
	}()
	for deadline := time.Now().Add(5 * time.Second); e.srv.core.Hub().Held() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the long poll was never held")
		}
	}
	// The user's devices, held on her pending approvals, are told too.
	user, err := e.srv.core.Hub().Subscribe(httpd.TopicKey(httpd.TopicUserApprovals, e.org.ID.String(), "alice"))
	if err != nil {
		t.Fatal(err)
	}
	defer user.Close()
	e.advance(time.Duration(c.ExpiresAt-e.clock().UnixMilli()) * time.Millisecond)
	var got answer
	select {
	case got = <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("the held poll was not woken by the sweep")
	}
	if took := time.Since(start); took > 15*time.Second {
		t.Fatalf("the poll answered after %v: not woken", took)
	}
	if got.r.status != 200 || got.a.Status != "expired" || got.a.DecidedAt == nil || *got.a.DecidedAt != c.ExpiresAt {
		t.Fatalf("held poll: %v", got.r)
	}
	select {
	case <-user.C():
	case <-time.After(5 * time.Second):
		t.Fatal("the user's pending approvals were not published")
	}
	var stored approval.Approval
	if err := e.db.Approval(e.org.ID, c.ApprovalID, &stored); err != nil || stored.Version != 2 {
		t.Fatalf("stored approval version %d (%v): not marked expired by the sweep", stored.Version, err)
	}
	r := e.do(req{method: "GET", path: "/metrics"})
	if !bytes.Contains(r.body, []byte("countersign_store_swept_approvals_total 1\n")) {
		t.Fatalf("metrics lack the swept approval:\n%s", r.body)
	}
}

// TestWebhookExpiredBySweep: an approval nobody answers or reads reaches
// the receiver as approval.decided with status expired, sent because the
// background sweep marked it so.
func TestWebhookExpiredBySweep(t *testing.T) {
	e, _ := newWebhookEnv(t, time.Second)
	rc := newReceiver(t, 200)
	hook := e.subscribe(rc.srv.URL, `["approval.decided"]`, "standard")
	// Deliveries run on the wall clock: create the approval one lifetime
	// in the past, so that the test clock, moved to its expiry, is about
	// the wall clock's time again when the sweep writes the event.
	e.advance(-time.Duration(approval.DefaultSettings().ExpirySeconds) * time.Second)
	id := e.requestApproval()
	var a approval.Approval
	if err := e.db.Approval(e.org.ID, id, &a); err != nil {
		t.Fatal(err)
	}
	// The sweep's entries are in whole milliseconds, rounded up.
	e.advance(a.ExpiresAt.Sub(e.clock()) + time.Millisecond)
	e.runSweeper()

	calls := rc.wait(t, 1)
	if err := verifyStandardWebhook(hook.Secret, calls[0].header, calls[0].body, time.Now()); err != nil {
		t.Fatalf("approval.decided: %v", err)
	}
	body := jsonMap(t, calls[0].body)
	data, _ := body["data"].(map[string]any)
	if body["type"] != "approval.decided" || data["approvalID"] != id || data["status"] != "expired" ||
		data["decidedAt"] != json.Number(strconv.FormatInt(a.ExpiresAt.UnixMilli(), 10)) {
		t.Fatalf("approval.decided body %s", calls[0].body)
	}
}
