//go:build !race

package approval_test

import (
	"crypto/ed25519"
	"testing"
	"time"

	"github.com/countersign/countersign/engine/approval"
	"github.com/countersign/countersign/engine/rules"
)

// The race detector allocates on its own, so this runs only without it.

func TestHotPathsDoNotAllocate(t *testing.T) {
	a, key := decided(t)
	digest := approval.ValuesDigest(a.Values)
	buf := make([]byte, 0, 1024)
	if n := testing.AllocsPerRun(100, func() {
		buf = approval.AppendSignedBytes(buf[:0], a.ID, &a.Challenge, approval.DecisionApprove,
			rules.BiometricPass, a.Receipt.Timestamp, &digest)
	}); n != 0 {
		t.Errorf("AppendSignedBytes allocates %v times", n)
	}
	if n := testing.AllocsPerRun(100, func() { buf = approval.AppendApproval(buf[:0], a) }); n != 0 {
		t.Errorf("AppendApproval allocates %v times", n)
	}
	if len(buf) < 100 {
		t.Fatalf("the record is %d bytes: not the full approval", len(buf))
	}
	// Decoding copies the record once into the string its fields slice.
	var back approval.Approval
	if n := testing.AllocsPerRun(100, func() {
		if err := approval.DecodeApproval(buf, &back); err != nil {
			t.Fatal(err)
		}
	}); n != 1 {
		t.Errorf("DecodeApproval allocates %v times, want 1", n)
	}
	if n := testing.AllocsPerRun(100, func() { buf = back.AppendFactorsJSON(buf[:0]) }); n != 0 {
		t.Errorf("AppendFactorsJSON allocates %v times", n)
	}

	// VerifyAnswer and Answer on a pending approval, every time afresh.
	pub := key.Public().(ed25519.PublicKey)
	s := approval.DefaultSettings()
	pending := *a
	pending.Status, pending.DecidedAt, pending.DeviceID, pending.RulesVersion = approval.StatusPending, time.Time{}, "", 0
	pending.Receipt, pending.Factors = approval.Receipt{}, make([]approval.FactorOutcome, 0, 8)
	now := fixtureDay.Add(5 * time.Second)
	ans := approval.DeviceAnswer{Decision: approval.DecisionApprove, Biometric: rules.BiometricPass,
		Timestamp: now.Format(time.RFC3339), Number: pending.UserCodeString()}
	ans.Signature = signAnswer(key, &pending, &ans, pending.Values)
	if n := testing.AllocsPerRun(100, func() {
		if err := approval.VerifyAnswer(pub, &pending, &ans, now); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("VerifyAnswer allocates %v times", n)
	}
	res := ruleResult(t, rules.BiometricPass, true)
	dev := approval.Device{ID: "d1", UserID: "u1", PublicKey: pub}
	var work approval.Approval
	var u approval.UserState
	if n := testing.AllocsPerRun(100, func() {
		factors := work.Factors[:0]
		work = pending
		work.Factors = factors
		eff, err := approval.Answer(&work, &u, &s, &dev, &ans, res, now)
		if err != nil || eff.Status != approval.StatusApproved {
			t.Fatal(eff, err)
		}
	}); n != 0 {
		t.Errorf("Answer allocates %v times", n)
	}

	// The user's state, decoded into a reused one.
	us := approval.UserState{Failures: 2, LastTOTPStep: 9, Recent: []time.Time{fixtureDay, fixtureDay.Add(time.Minute)}}
	enc := approval.AppendUserState(nil, &us)
	var ub approval.UserState
	if n := testing.AllocsPerRun(100, func() {
		if err := approval.DecodeUserState(enc, &ub); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("DecodeUserState allocates %v times", n)
	}

	// CheckTOTP accepting a code: the HOTP is written out on the stack.
	var tu approval.UserState
	step := time.Unix(59, 0)
	if n := testing.AllocsPerRun(100, func() {
		tu.LastTOTPStep = 0
		if _, err := approval.CheckTOTP(&tu, &s, totpSecret, "287082", step); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("CheckTOTP allocates %v times", n)
	}

	// Admit on every path: admitted (the window pruned and appended to),
	// too many pending, rate limited, locked.
	u = approval.UserState{Recent: make([]time.Time, 0, s.RateLimit)}
	now = fixtureDay
	adm := approval.Admission{Method: approval.MethodPush}
	if n := testing.AllocsPerRun(100, func() {
		now = now.Add(time.Minute) // one a minute: the window keeps 10 and drops the oldest
		if _, err := approval.Admit(&u, &s, &adm, now); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("Admit (admitted) allocates %v times", n)
	}
	if len(u.Recent) != s.RateLimit {
		t.Fatalf("the window holds %d, want %d", len(u.Recent), s.RateLimit)
	}
	full := approval.Admission{Method: approval.MethodPush, Pending: s.MaxPending}
	if n := testing.AllocsPerRun(100, func() {
		if _, err := approval.Admit(&u, &s, &adm, now); err != approval.ErrRateLimited {
			t.Fatal(err)
		}
		if _, err := approval.Admit(&u, &s, &full, now); err != approval.ErrTooManyPending {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("Admit (refused) allocates %v times", n)
	}
	u.LockedUntil, u.Failures = now.Add(time.Hour), 5
	if n := testing.AllocsPerRun(100, func() {
		if _, err := approval.Admit(&u, &s, &adm, now); err != approval.ErrLocked {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("Admit (locked) allocates %v times", n)
	}
}
