package approval

import (
	"errors"
	"time"
)

// UserState is what countersign keeps about a user between approvals: the
// consecutive failures and the lock they lead to, whether the user's next
// approval needs the OTP (after a denial, until an OTP is accepted), the
// last TOTP step accepted (so a code is accepted once), and the creation
// times of the approvals in the push-bombing window, oldest first. The store
// keeps it with the user, so a lock survives restarts; the zero value is a
// user with a clean slate.
type UserState struct {
	// Version is the store's compare-and-set counter (see the package
	// comment); the transitions leave it alone.
	Version       uint64
	Failures      int
	LockedUntil   time.Time // zero when not locked
	TokenRequired bool
	LastTOTPStep  uint64 // zero: no code accepted yet
	Recent        []time.Time
}

// Refusals of Admit, and of every answer while the user is locked.
var (
	// ErrLocked: the user is locked after too many consecutive failures.
	ErrLocked = errors.New("approval: user is locked after too many failures")
	// ErrTooManyPending: the user already has maxPending approvals pending.
	ErrTooManyPending = errors.New("approval: too many pending approvals for the user")
	// ErrRateLimited: the user had the window's number of approvals already
	// (push-bombing limit).
	ErrRateLimited = errors.New("approval: too many approvals for the user in the last minutes")
	// ErrTokenRequired: the user denied an approval and has not entered an
	// OTP since, on a surface that holds the user to it.
	ErrTokenRequired = errors.New("approval: the user's OTP is required after a denial")
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

// Admission is what Admit needs to know about the approval to be sent and
// the user's pending ones, which the store holds.
type Admission struct {
	// Pending is how many approvals of the user are pending.
	Pending int
	// EarliestExpiry is the earliest ExpiresAt among them: when a slot
	// frees at the latest, which ErrTooManyPending returns for Retry-After.
	EarliestExpiry time.Time
	// Method is the new approval's method: an OTP approval is how a user
	// held to the OTP gets through, so TokenRequired does not refuse it.
	Method Method
	// HonourTokenRequired: this surface holds a user who denied to the OTP
	// (UNLOQ always; native when the organization sets otpAfterDenial; iVALT,
	// which has no OTP step, never). The denial is recorded whatever the
	// surface; whether it refuses is the surface's.
	HonourTokenRequired bool
}

// Admit decides whether the user may be sent one more approval at now, and
// if so counts it in the push-bombing window. It refuses, in this order,
// with ErrLocked (and the lock's end), ErrTokenRequired, ErrTooManyPending
// (and adm.EarliestExpiry), or ErrRateLimited (and the time the next
// approval is allowed): the time is for Retry-After. Settings that do not
// Validate are replaced by the defaults, so that a broken document cannot
// turn the limits off. It does not allocate once u.Recent has room for the
// window's limit.
func Admit(u *UserState, s *Settings, adm *Admission, now time.Time) (time.Time, error) {
	if until, locked := u.LockedAt(now); locked {
		return until, ErrLocked
	}
	if u.TokenRequired && adm.HonourTokenRequired && adm.Method != MethodOTP {
		return time.Time{}, ErrTokenRequired
	}
	cfg := s.orDefaults()
	if adm.Pending >= cfg.MaxPending {
		return adm.EarliestExpiry, ErrTooManyPending
	}
	window := time.Duration(cfg.RateWindowMinutes) * time.Minute
	drop := 0
	for drop < len(u.Recent) && now.Sub(u.Recent[drop]) >= window {
		drop++
	}
	u.Recent = u.Recent[:copy(u.Recent, u.Recent[drop:])]
	if n := len(u.Recent); n >= cfg.RateLimit {
		// The next is allowed when enough of the oldest leave the window
		// to bring the count below the limit (a limit lowered below the
		// count waits for more of them).
		return u.Recent[n-cfg.RateLimit].Add(window), ErrRateLimited
	}
	u.Recent = append(u.Recent, now)
	return time.Time{}, nil
}

// RecordFailure counts one failure at now (a bad signature, a wrong OTP, a
// biometric, number or rule failure: see CountsAsFailure); the
// lockoutFailures-th in a row locks the user for lockoutMinutes. It returns
// the lock's end, zero when the user is not locked. Failures while locked
// neither count nor extend the lock. Answer, CheckTOTP and DecideOTP call it
// themselves; a surface calls it for a failure the engine does not see.
// Settings that do not Validate are replaced by the defaults.
func RecordFailure(u *UserState, s *Settings, now time.Time) time.Time {
	if until, locked := u.LockedAt(now); locked {
		return until
	}
	cfg := s.orDefaults()
	u.Failures++
	if u.Failures >= cfg.LockoutFailures {
		u.LockedUntil = now.Add(time.Duration(cfg.LockoutMinutes) * time.Minute)
	}
	return u.LockedUntil
}

// Unlock is an operator's unlock: the lock and the failures behind it go.
// The token requirement stays: only the user's OTP lifts it.
func Unlock(u *UserState) {
	u.LockedUntil, u.Failures = time.Time{}, 0
}
