package client

import (
	"crypto/ed25519"
	"encoding/base64"
	"testing"
)

// TestSignedBytes: the device signs DESIGN's lines, and a signature over
// other values does not verify over these.
func TestSignedBytes(t *testing.T) {
	p := &PendingApproval{ApprovalID: "apr_1", Challenge: "Q0hBTExFTkdF",
		Values: []Value{{Key: "amount", Value: "35.00"}, {Key: "payee", Value: "6"}}}
	ans := &DeviceAnswer{Decision: "approve", Biometric: "PASS", Timestamp: "2026-12-03T16:00:00Z"}
	// sha256("amount\x0035.00\x00payee\x006\x00")
	want := "countersign-approval-v1\napr_1\nQ0hBTExFTkdF\napprove\nPASS\n2026-12-03T16:00:00Z\n" +
		"a6523c0985c2eb9ca8d50ed0f4b6e23d19d90c940242cea9e61e19e322417db4"
	got := string(SignedBytes(p, ans))
	if got != want {
		t.Fatalf("signed bytes\n got %q\nwant %q", got, want)
	}
	none := SignedBytes(&PendingApproval{ApprovalID: "apr_1", Challenge: "Q0hBTExFTkdF"}, ans)
	if d := string(none[len(none)-64:]); d != "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" {
		t.Errorf("no values: digest %s, want the empty string's", d)
	}
	pub, key, _ := ed25519.GenerateKey(nil)
	ans.Sign(key, p)
	sig, err := base64.RawURLEncoding.DecodeString(ans.Signature)
	if err != nil || !ed25519.Verify(pub, SignedBytes(p, ans), sig) {
		t.Fatalf("signature %q does not verify: %v", ans.Signature, err)
	}
	altered := *p
	altered.Values = []Value{{Key: "amount", Value: "3500.00"}, {Key: "payee", Value: "6"}}
	if ed25519.Verify(pub, SignedBytes(&altered, ans), sig) {
		t.Error("a signature verified over altered values")
	}
}
