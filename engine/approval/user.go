package approval

import (
	"errors"
	"time"
)

// UserState is what countersign keeps about a user between approvals: the
// consecutive failures and the lock they lead to, whether the next approval
// needs the user's OTP (after a denial), the last TOTP step accepted (so a
// code is accepted once), and the creation times of the approvals in the
// push-bombing window, oldest first. The store keeps it with the user, so a
// lock survives restarts; the zero value is a user with a clean slate.
type UserState struct {
	Failures      int
	LockedUntil   time.Time // zero when not locked
	TokenRequired bool
	LastTOTPStep  uint64 // zero: no code accepted yet
	Recent        []time.Time
}

// Refusals of Admit.
var (
	// ErrLocked: the user is locked after too many consecutive failures.
	ErrLocked = errors.New("approval: user is locked after too many failures")
	// ErrTooManyPending: the user already has maxPending approvals pending.
	ErrTooManyPending = errors.New("approval: too many pending approvals for the user")
	// ErrRateLimited: the user had the window's number of approvals already
	// (push-bombing limit).
	ErrRateLimited = errors.New("approval: too many approvals for the user in the last minutes")
)

// LockedAt reports whether the user is locked at now, and until when. A lock
// whose time has come is lifted here, with the failures that led to it.
func (u *UserState) LockedAt(now time.Time) (time.Time, bool) {
	if u.LockedUntil.IsZero() {
		return time.Time{}, false
	}
	if !now.Before(u.LockedUntil) {
		u.LockedUntil, u.Failures = time.Time{}, 0
		return time.Time{}, false
	}
	return u.LockedUntil, true
}

// Admit decides whether the user may be sent one more approval at now,
// given pending approvals already pending, and if so counts it in the
// push-bombing window. It refuses with ErrLocked (and the lock's end),
// ErrTooManyPending, or ErrRateLimited (and the time the next approval is
// allowed, for Retry-After). It does not allocate once u.Recent has room for
// the window's limit.
func Admit(u *UserState, s *Settings, pending int, now time.Time) (time.Time, error) {
	if until, locked := u.LockedAt(now); locked {
		return until, ErrLocked
	}
	if pending >= s.MaxPending {
		return time.Time{}, ErrTooManyPending
	}
	window := time.Duration(s.RateWindowMinutes) * time.Minute
	drop := 0
	for drop < len(u.Recent) && now.Sub(u.Recent[drop]) >= window {
		drop++
	}
	u.Recent = u.Recent[:copy(u.Recent, u.Recent[drop:])]
	if n := len(u.Recent); n >= s.RateLimit {
		// The next is allowed when enough of the oldest leave the window
		// to bring the count below the limit.
		return u.Recent[n-s.RateLimit].Add(window), ErrRateLimited
	}
	u.Recent = append(u.Recent, now)
	return time.Time{}, nil
}

// RecordFailure counts one failure at now (a bad signature, a wrong OTP, a
// biometric or rule failure: see CountsAsFailure); the lockoutFailures-th in
// a row locks the user for lockoutMinutes. It returns the lock's end, zero
// when the user is not locked. Failures while locked neither count nor
// extend the lock.
func RecordFailure(u *UserState, s *Settings, now time.Time) time.Time {
	if until, locked := u.LockedAt(now); locked {
		return until
	}
	u.Failures++
	if u.Failures >= s.LockoutFailures {
		u.LockedUntil = now.Add(time.Duration(s.LockoutMinutes) * time.Minute)
	}
	return u.LockedUntil
}

// RecordSuccess ends a run of failures and the token requirement: the user
// proved presence (an approval approved, or an OTP accepted).
func RecordSuccess(u *UserState) {
	u.Failures, u.TokenRequired = 0, false
}

// RecordDenial notes a denial, which is not a failure. Under
// otpAfterDenial (UNLOQ always; native approvals when the organization sets
// it; never iVALT, which has no OTP step) the user's next approval needs the
// OTP until one succeeds.
func RecordDenial(u *UserState, otpAfterDenial bool) {
	if otpAfterDenial {
		u.TokenRequired = true
	}
}

// Unlock is an operator's unlock: the lock and the failures behind it go.
// The token requirement stays: only the user's OTP lifts it.
func Unlock(u *UserState) {
	u.LockedUntil, u.Failures = time.Time{}, 0
}
