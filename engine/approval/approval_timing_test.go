package approval_test

import (
	"crypto/ed25519"
	"testing"
	"time"

	"github.com/countersign/countersign/engine/approval"
	"github.com/countersign/countersign/engine/rules"
)

// BenchmarkVerifyAnswer is the engine's share of one device answer: the
// values digest, the signed bytes and one Ed25519 verification.
func BenchmarkVerifyAnswer(b *testing.B) {
	key := ed25519.NewKeyFromSeed(seed32("device d1"))
	pub := key.Public().(ed25519.PublicKey)
	a, err := newApproval(b, newStream("bench"), true)
	if err != nil {
		b.Fatal(err)
	}
	a.Values = append(a.Values, approval.Value{Key: "amount", Value: "35.00"}, approval.Value{Key: "payee", Value: "NL91ABNA0417164300"})
	now := a.CreatedAt.Add(5 * time.Second)
	ans := approval.DeviceAnswer{Decision: approval.DecisionApprove, Biometric: rules.BiometricPass,
		Timestamp: now.Format(time.RFC3339), Number: a.UserCodeString()}
	ans.Signature = signAnswer(key, a, &ans, a.Values)
	b.ReportAllocs()
	for b.Loop() {
		if err := approval.VerifyAnswer(pub, a, &ans, now); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAppendApproval is the encoding of a decided approval for the store.
func BenchmarkAppendApproval(b *testing.B) {
	a, _ := decided(b)
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		buf = approval.AppendApproval(buf[:0], a)
	}
	b.SetBytes(int64(len(buf)))
}

// BenchmarkDecodeApproval is reading it back.
func BenchmarkDecodeApproval(b *testing.B) {
	a, _ := decided(b)
	enc := approval.AppendApproval(nil, a)
	var back approval.Approval
	b.ReportAllocs()
	for b.Loop() {
		if err := approval.DecodeApproval(enc, &back); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAnswer is a device answer applied end to end: VerifyAnswer's
// work plus recording the receipt, the factors and the user's state.
func BenchmarkAnswer(b *testing.B) {
	key := ed25519.NewKeyFromSeed(seed32("device d1"))
	dev := approval.Device{ID: "d1", UserID: "u1", PublicKey: key.Public().(ed25519.PublicKey)}
	s := approval.DefaultSettings()
	pending, err := newApproval(b, newStream("bench"), true)
	if err != nil {
		b.Fatal(err)
	}
	now := pending.CreatedAt.Add(5 * time.Second)
	ans := approval.DeviceAnswer{Decision: approval.DecisionApprove, Biometric: rules.BiometricPass,
		Timestamp: now.Format(time.RFC3339), Number: pending.UserCodeString()}
	ans.Signature = signAnswer(key, pending, &ans, pending.Values)
	res := ruleResult(b, rules.BiometricPass, true)
	var a approval.Approval
	var u approval.UserState
	b.ReportAllocs()
	for b.Loop() {
		factors := a.Factors[:0]
		a = *pending
		a.Factors = factors
		if _, err := approval.Answer(&a, &u, &s, &dev, &ans, res, now); err != nil {
			b.Fatal(err)
		}
	}
}
