package server

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"testing"
	"time"

	"github.com/countersign/countersign/engine/approval"
)

// auditApproval is GET /admin/v1/approvals/{id}'s answer.
type auditApproval struct {
	ApprovalID string           `json:"approvalID"`
	UserID     string           `json:"userID"`
	Status     string           `json:"status"`
	Method     string           `json:"method"`
	Message    string           `json:"message"`
	Values     []approval.Value `json:"values"`
	CreatedAt  int64            `json:"createdAt"`
	ExpiresAt  int64            `json:"expiresAt"`
	DecidedAt  *int64           `json:"decidedAt"`
	DeviceID   string           `json:"deviceID"`

	RulesVersion uint64            `json:"rulesVersion"`
	Factors      []json.RawMessage `json:"factors"`
	Receipt      *struct {
		Decision  string `json:"decision"`
		Biometric string `json:"biometric"`
		Timestamp string `json:"timestamp"`
		Challenge string `json:"challenge"`
		Signature string `json:"signature"`
		PublicKey string `json:"publicKey"`
	} `json:"receipt"`
}

// verifyAuditReceipt checks a's receipt as anyone holding the answer can:
// the signed bytes rebuilt from the answer's id, challenge, receipt and
// values, the signature checked with crypto/ed25519 under the answer's key.
func verifyAuditReceipt(t *testing.T, a *auditApproval) bool {
	t.Helper()
	r := a.Receipt
	dec, err1 := approval.ParseDecision(r.Decision)
	bio, err2 := approval.ParseBiometric(r.Biometric)
	ch, err3 := base64.RawURLEncoding.DecodeString(r.Challenge)
	sig, err4 := base64.RawURLEncoding.DecodeString(r.Signature)
	pub, err5 := base64.RawURLEncoding.DecodeString(r.PublicKey)
	for _, err := range []error{err1, err2, err3, err4, err5} {
		if err != nil {
			t.Fatalf("receipt %+v: %v", r, err)
		}
	}
	if len(ch) != approval.ChallengeSize || len(pub) != ed25519.PublicKeySize {
		t.Fatalf("receipt %+v: challenge or key of the wrong size", r)
	}
	digest := approval.ValuesDigest(a.Values)
	msg := approval.AppendSignedBytes(nil, a.ApprovalID, (*[approval.ChallengeSize]byte)(ch), dec, bio, r.Timestamp, &digest)
	return ed25519.Verify(pub, msg, sig)
}

// audited is GET path with the admin key key ("": the organization's),
// its answer checked against the OpenAPI document.
func (e *adminEnv) audited(cf *conformance, path, key string) response {
	e.t.Helper()
	if key == "" {
		key = e.adminKey
	}
	q := req{method: "GET", path: path, headers: []string{"Authorization", "Bearer " + key}}
	r := e.do(q)
	cf.check(q, r)
	return r
}

// TestAdminAuditApprovals: an approval a real device answered reads back
// from /admin/v1 with a receipt that verifies with crypto/ed25519 alone,
// and stops verifying when a value, the decision or the id is altered; it
// is listed newest first with the user's others; another organization's
// admin key finds it exactly as missing.
func TestAdminAuditApprovals(t *testing.T) {
	e, cf := newDeviceEnv(t), newConformance(t)
	p := e.activatePhone("ann")
	ts := e.clock().UTC().Format(time.RFC3339)
	got, a, _ := e.pollOne(p, func() *approval.Approval { return e.createApproval(e.org.ID, "ann", false) })
	e.want(e.answer(p, a.ID, signedAnswer(p.key, got, "approve", "PASS", ts, "")), 200, "")
	e.advance(time.Second)
	newer := e.createApproval(e.org.ID, "ann", false)

	r := e.audited(cf, "/admin/v1/approvals/"+a.ID, "")
	e.want(r, 200, "")
	var v auditApproval
	strictJSON(t, r, &v)
	if v.ApprovalID != a.ID || v.UserID != "ann" || v.Status != "approved" || v.Method != "push" || v.Message != a.Message ||
		v.DeviceID != p.id || v.DecidedAt == nil || v.CreatedAt != a.CreatedAt.UnixMilli() || v.ExpiresAt != a.ExpiresAt.UnixMilli() ||
		len(v.Factors) == 0 || v.Receipt == nil || v.Receipt.Timestamp != ts {
		t.Fatalf("approval answered %s", r)
	}
	if !verifyAuditReceipt(t, &v) {
		t.Fatalf("the receipt of %s does not verify", r)
	}
	for name, alter := range map[string]func(*auditApproval){
		"value":    func(x *auditApproval) { x.Values[0].Value = "3500.00" },
		"order":    func(x *auditApproval) { x.Values[0], x.Values[1] = x.Values[1], x.Values[0] },
		"decision": func(x *auditApproval) { x.Receipt.Decision = "deny" },
		"id":       func(x *auditApproval) { x.ApprovalID = newer.ID },
	} {
		var x auditApproval
		strictJSON(t, r, &x)
		alter(&x)
		if verifyAuditReceipt(t, &x) {
			t.Errorf("the receipt still verifies with the %s altered", name)
		}
	}

	// Pending: no receipt, decidedAt null.
	r = e.audited(cf, "/admin/v1/approvals/"+newer.ID, "")
	e.want(r, 200, "")
	var pend auditApproval
	strictJSON(t, r, &pend)
	if pend.Status != "pending" || pend.Receipt != nil || pend.DecidedAt != nil || len(pend.Values) != 2 {
		t.Fatalf("pending approval answered %s", r)
	}

	// The list: newest first, paged.
	r = e.audited(cf, "/admin/v1/approvals?userID=ann&limit=1", "")
	e.want(r, 200, "")
	var page struct {
		Items []json.RawMessage `json:"items"`
		Next  string            `json:"next"`
	}
	strictJSON(t, r, &page)
	var first auditApproval
	if len(page.Items) != 1 || page.Next == "" || json.Unmarshal(page.Items[0], &first) != nil || first.ApprovalID != newer.ID {
		t.Fatalf("first page %s", r)
	}
	r = e.audited(cf, "/admin/v1/approvals?userID=ann&limit=1&cursor="+page.Next, "")
	strictJSON(t, r, &page)
	if len(page.Items) != 1 || page.Next != "" || json.Unmarshal(page.Items[0], &first) != nil || first.ApprovalID != a.ID {
		t.Fatalf("second page %s", r)
	}

	// Another organization's id answers as a missing one; its list is empty.
	missing := e.audited(cf, "/admin/v1/approvals/apr_aaaaaaaaaaaaaaaaaaaaaaaa", "")
	e.want(missing, 404, "approval_not_found")
	if other := e.audited(cf, "/admin/v1/approvals/"+a.ID, e.otherAdmin); other.String() != missing.String() {
		t.Fatalf("another organization's approval: %s, want %s", other, missing)
	}
	if r := e.audited(cf, "/admin/v1/approvals?userID=ann", e.otherAdmin); r.status != 200 || string(r.body) != `{"items":[],"next":""}` {
		t.Fatalf("another organization's list: %s", r)
	}
	e.want(e.audited(cf, "/admin/v1/approvals", ""), 400, "invalid_field")
	e.want(e.audited(cf, "/admin/v1/approvals?userID=ann&cursor=!", ""), 400, "invalid_field")
}

// TestAdminAuditDecisions: a validate decision for a user is listed under
// /admin/v1/decisions as GET /v1/decisions/{id} answers it; another
// organization lists none.
func TestAdminAuditDecisions(t *testing.T) {
	e, cf := newAdminEnv(t), newConformance(t)
	s := e.newSession("audit-0001", "ann")
	r := e.validateWhenScored(e.validateBody(s, false, seedItems()...))
	if r.status != 200 {
		t.Fatalf("validate: %s", r)
	}
	id, _ := jsonMap(t, r.body)["decisionID"].(string)
	one := e.do(req{method: "GET", path: "/v1/decisions/" + id, headers: e.withKey()})
	if one.status != 200 {
		t.Fatalf("decision %s: %s", id, one)
	}
	list := e.audited(cf, "/admin/v1/decisions?userID=ann", "")
	if want := `{"items":[` + string(one.body) + `],"next":""}`; list.status != 200 || string(list.body) != want {
		t.Fatalf("decisions %s, want 200 %s", list, want)
	}
	if r := e.audited(cf, "/admin/v1/decisions?userID=ann", e.otherAdmin); r.status != 200 || string(r.body) != `{"items":[],"next":""}` {
		t.Fatalf("another organization's list: %s", r)
	}
	e.want(e.audited(cf, "/admin/v1/decisions?userID=ann&limit=0", ""), 400, "invalid_field")
}
