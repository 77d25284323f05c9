package unloq

import (
	"errors"
	"time"

	"github.com/countersign/countersign/engine/approval"
	"github.com/countersign/countersign/server/httpd"
	"github.com/countersign/countersign/store"
)

// The user's one-time code (token) on authenticate: with method OTP it is
// the whole authentication; with method UNLOQ it is what a user who denied
// an earlier request must send (APPROVAL.TOKEN) before the next push. Both
// check it against the user's TOTP seed, created and sealed when a device
// was activated, each code accepted once and each wrong one counted as a
// failure toward the lock (approval.CheckTOTP).

var outOTPWrong = outcome{403, "APPROVAL.TOKEN", "The one-time code is wrong or was used already; send the current code of the user's authenticator as token."}

// loadSeed reads the user's TOTP seed into c.seed; ok false after
// answering (APPROVAL.OTP when the user has none).
func (s *Surface) loadSeed(c *reqCtx) bool {
	seed, err := s.db.TOTPSeed(c.org.ID, c.user.UserID, c.seed[:0])
	switch {
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrNoSealer):
		return c.fail(outNoSeed)
	case err != nil:
		return c.StoreFailed(err)
	}
	c.seed = seed
	return true
}

// checkToken checks c.req.token against the user's seed outside any
// approval: an accepted code lifts TokenRequired (and ends the run of
// failures); ok false after answering a refused one.
func (s *Surface) checkToken(c *reqCtx, cfg *approval.Settings) bool {
	if !s.loadSeed(c) {
		return false
	}
	defer clear(c.seed)
	now := s.now()
	var eff approval.Effect
	err := s.db.UpdateUserState(c.org.ID, c.user.UserID, &c.state, func(u *approval.UserState) error {
		var err error
		eff, err = approval.CheckTOTP(u, cfg, c.seed, c.req.token, now)
		return err
	})
	return err == nil || s.codeRefused(c, err, eff.LockedUntil, now)
}

// decideOTP decides c.appr, just created with method OTP, by the code:
// approved when it is right; withdrawn and refused otherwise, so that no
// pending approval is left that nobody can answer.
func (s *Surface) decideOTP(c *reqCtx, cfg *approval.Settings, code string, now time.Time) bool {
	if !s.loadSeed(c) {
		s.withdraw(c)
		return false
	}
	defer clear(c.seed)
	eff, err := s.db.UpdateApproval(c.org.ID, c.appr.ID, &c.appr, &c.state,
		func(a *approval.Approval, u *approval.UserState) (approval.Effect, error) {
			return approval.DecideOTP(a, u, cfg, c.seed, code, now)
		})
	if err == nil {
		return true
	}
	s.withdraw(c)
	return s.codeRefused(c, err, eff.LockedUntil, now)
}

// codeRefused answers a refused code, always false: a wrong or replayed
// code APPROVAL.TOKEN, a locked user USER.LOCKED with Retry-After, the
// store's failure 503.
func (s *Surface) codeRefused(c *reqCtx, err error, lockedUntil, now time.Time) bool {
	switch {
	case errors.Is(err, approval.ErrOTPWrong), errors.Is(err, approval.ErrOTPReplayed):
		if !lockedUntil.IsZero() {
			// This failure was the one that locked the user.
			c.fail(outLocked)
			c.RetryAt(lockedUntil, now)
			return false
		}
		return c.fail(outOTPWrong)
	case errors.Is(err, approval.ErrLocked):
		if lockedUntil.IsZero() {
			lockedUntil = c.state.LockedUntil
		}
		c.fail(outLocked)
		c.RetryAt(lockedUntil, now)
		return false
	}
	if errors.Is(err, approval.ErrOTPSecret) {
		s.log.Error("unloq: the user's TOTP seed is not usable", "user", c.user.UserID, "err", err)
		return c.Fail(httpd.ErrInternal, nil)
	}
	return c.StoreFailed(err)
}
