package approval_test

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/countersign/countersign/engine/approval"
	"github.com/countersign/countersign/engine/rules"
)

// TestHOTPAgreesWithPquerna checks the allocation-free HOTP against
// pquerna/otp, which makes the provisioning URI: what an app provisioned
// from the URI shows for secrets of every accepted length, at many times,
// is accepted, and the neighbouring secret's code is not.
func TestHOTPAgreesWithPquerna(t *testing.T) {
	s := approval.DefaultSettings()
	for _, n := range []int{approval.MinTOTPSecret, 20, 32, approval.MaxTOTPSecret} {
		secret := bytes.Repeat([]byte{byte(n)}, n)
		for i := range 50 {
			secret[i%n] ^= byte(i) // a different secret each time
			now := time.Unix(1_700_000_000+int64(i)*9_876_543, 0)
			code, err := totp.GenerateCodeCustom(base32NoPad(secret), now,
				totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
			if err != nil {
				t.Fatal(err)
			}
			var u approval.UserState
			if _, err := approval.CheckTOTP(&u, &s, secret, code, now); err != nil {
				t.Fatalf("%d-byte secret at %v: pquerna's %s refused: %v", n, now, code, err)
			}
			other := append([]byte{}, secret...)
			other[0] ^= 1
			u = approval.UserState{}
			if _, err := approval.CheckTOTP(&u, &s, other, code, now); err == nil {
				// A 1 in 10^6 coincidence per step; these inputs are fixed, so it would show every run.
				t.Fatalf("%d-byte secret at %v: the code of another secret is accepted", n, now)
			}
		}
	}
}

// TestCancelAndExpireNeverCountAsFailures: withdrawing an approval, or the
// sweep, is never the user's failure, whatever they are refused with.
func TestCancelAndExpireNeverCountAsFailures(t *testing.T) {
	a, _ := decided(t)
	late, _ := newApproval(t, newStream("late"), false)
	cancelled, _ := newApproval(t, newStream("c"), false)
	if err := cancelled.Cancel(fixtureDay); err != nil {
		t.Fatal(err)
	}
	for name, err := range map[string]error{
		"cancel decided":   a.Cancel(fixtureDay.Add(time.Minute)),
		"cancel expired":   late.Cancel(fixtureDay.Add(time.Hour)),
		"cancel cancelled": cancelled.Cancel(fixtureDay),
		"expire early":     cancelled.Expire(fixtureDay),
		"expire expired":   late.Expire(fixtureDay.Add(time.Hour)),
	} {
		if err == nil || approval.CountsAsFailure(err) {
			t.Errorf("%s: %v counts as a failure", name, err)
		}
	}
	if !errors.Is(approval.ErrLate, approval.ErrExpired) || !approval.CountsAsFailure(approval.ErrLate) {
		t.Error("an answer too late is an expiry, and a failure")
	}
}

// TestAnswerRefusesRulesOfAnotherAnswer: a Result whose biometric factor is
// not the one signed (or none) is the caller's mistake, refused without
// touching the approval or counting against the user.
func TestAnswerRefusesRulesOfAnotherAnswer(t *testing.T) {
	key := ed25519.NewKeyFromSeed(seed32("device d1"))
	dev := approval.Device{ID: "d1", UserID: "u1", PublicKey: key.Public().(ed25519.PublicKey)}
	s := approval.DefaultSettings()
	for name, res := range map[string]*rules.Result{
		"none":              nil,
		"another biometric": ruleResult(t, rules.BiometricPass, true),
		"absent biometric":  ruleResult(t, rules.BiometricAbsent, true),
	} {
		a, err := newApproval(t, newStream("r"), false)
		if err != nil {
			t.Fatal(err)
		}
		now := fixtureDay.Add(time.Second)
		ans := approval.DeviceAnswer{Decision: approval.DecisionApprove, Biometric: rules.BiometricFail,
			Timestamp: now.Format(time.RFC3339)}
		ans.Signature = signAnswer(key, a, &ans, a.Values)
		var u approval.UserState
		eff, err := approval.Answer(a, &u, &s, &dev, &ans, res, now)
		if !errors.Is(err, approval.ErrRules) || eff.Failure || u.Failures != 0 ||
			a.Status != approval.StatusPending || a.HasReceipt() || len(a.Factors) != 0 {
			t.Errorf("%s: %v %+v, approval %s", name, err, eff, a.Status)
		}
	}
}

// TestFactorsRenderAsRules: the stored factors of an approval render as
// the Result they came from, byte for byte, so a surface answering from the
// record says what a fresh evaluation said.
func TestFactorsRenderAsRules(t *testing.T) {
	a, _ := decided(t)
	res := ruleResult(t, rules.BiometricPass, false)
	fresh := string(res.AppendJSON(nil))
	got := string(a.AppendFactorsJSON(nil))
	if got[:len(fresh)-1] != fresh[:len(fresh)-1] {
		t.Fatalf("stored factors render\n%s\nthe rules'\n%s", got, fresh)
	}
	var back approval.Approval
	if err := approval.DecodeApproval(approval.AppendApproval(nil, a), &back); err != nil {
		t.Fatal(err)
	}
	if string(back.AppendFactorsJSON(nil)) != got || back.RulesVersion != 7 || back.SourceIP.String() != "192.0.2.7" {
		t.Fatalf("the record lost its factors, rules version or source IP: %+v", back)
	}
}
