//go:build !race

package approval_test

import (
	"testing"
	"time"

	"github.com/countersign/countersign/engine/approval"
)

// The race detector allocates on its own, so this runs only without it.

func TestHotPathsDoNotAllocate(t *testing.T) {
	a, _ := decided(t)
	digest := approval.ValuesDigest(a.Values)
	buf := make([]byte, 0, 512)
	if n := testing.AllocsPerRun(100, func() {
		buf = approval.AppendSignedBytes(buf[:0], a.ID, &a.Challenge, approval.DecisionApprove,
			approval.BiometricPass, a.Receipt.Timestamp, &digest)
	}); n != 0 {
		t.Errorf("AppendSignedBytes allocates %v times", n)
	}
	if n := testing.AllocsPerRun(100, func() { buf = approval.AppendApproval(buf[:0], a) }); n != 0 {
		t.Errorf("AppendApproval allocates %v times", n)
	}
	if len(buf) < 100 {
		t.Fatalf("the record is %d bytes: not the full approval", len(buf))
	}

	// Admit on every path: admitted (the window pruned and appended to),
	// too many pending, rate limited, locked.
	s := approval.DefaultSettings()
	u := approval.UserState{Recent: make([]time.Time, 0, s.RateLimit)}
	now := fixtureDay
	if n := testing.AllocsPerRun(100, func() {
		now = now.Add(time.Minute) // one a minute: the window keeps 10 and drops the oldest
		if _, err := approval.Admit(&u, &s, 0, now); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("Admit (admitted) allocates %v times", n)
	}
	if len(u.Recent) != s.RateLimit {
		t.Fatalf("the window holds %d, want %d", len(u.Recent), s.RateLimit)
	}
	if n := testing.AllocsPerRun(100, func() {
		if _, err := approval.Admit(&u, &s, 0, now); err != approval.ErrRateLimited {
			t.Fatal(err)
		}
		if _, err := approval.Admit(&u, &s, s.MaxPending, now); err != approval.ErrTooManyPending {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("Admit (refused) allocates %v times", n)
	}
	u.LockedUntil = now.Add(time.Hour)
	if n := testing.AllocsPerRun(100, func() {
		if _, err := approval.Admit(&u, &s, 0, now); err != approval.ErrLocked {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("Admit (locked) allocates %v times", n)
	}
}
