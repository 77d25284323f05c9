package approval

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/countersign/countersign/engine/rules"
)

// OneTimeToken is a secret handed out once and kept only as its SHA-256,
// with its expiry and whether it was used: the e-mailed link of an EMAIL
// approval, and the result token an approved approval yields (UNLOQ's
// /token, iVALT's face_auth_token). The zero value is no token.
type OneTimeToken struct {
	Hash      [sha256.Size]byte
	ExpiresAt time.Time
	Used      bool
}

// Issued says whether t holds a token.
func (t *OneTimeToken) Issued() bool { return !t.ExpiresAt.IsZero() }

// TokenSize is the randomness of a token; its text is base64url without
// padding (43 characters).
const TokenSize = 32

// ResultTokenTTL is how long a result token can be redeemed (UNLOQ: 1 minute).
const ResultTokenTTL = time.Minute

// Refusals of the token transitions. None counts as a failure of the
// user's: a link or token is sent by whoever holds it, and guessing one is
// hopeless at 256 bits, so counting them would only let a stranger lock
// the user.
var (
	ErrTokenIssued  = errors.New("approval: a token of this kind was issued already")
	ErrTokenState   = errors.New("approval: the approval cannot issue this token")
	ErrTokenWrong   = errors.New("approval: token does not match")
	ErrTokenUsed    = errors.New("approval: token was used already")
	ErrTokenExpired = errors.New("approval: token expired")
)

// IssueLinkToken draws the one-time link token of a pending EMAIL approval
// from rnd and keeps its hash, valid until the approval expires. The token
// text goes into the link the notifier delivers, and nowhere else.
func IssueLinkToken(a *Approval, rnd io.Reader) (string, error) {
	if a.Method != MethodEmail || a.Status != StatusPending {
		return "", fmt.Errorf("%w: a link for a %s %s approval", ErrTokenState, a.Status, a.Method)
	}
	return issue(&a.LinkToken, a.ExpiresAt, rnd)
}

// IssueResultToken draws the one-time result token of an approved approval
// from rnd, redeemable once within ResultTokenTTL of now (RedeemToken).
func IssueResultToken(a *Approval, rnd io.Reader, now time.Time) (string, error) {
	if a.Status != StatusApproved {
		return "", fmt.Errorf("%w: a result token for a %s approval", ErrTokenState, a.Status)
	}
	return issue(&a.ResultToken, now.Add(ResultTokenTTL), rnd)
}

// IssueResultTokenAhead draws the result token of a pending approval
// whose requester holds its request until the decision (UNLOQ's held
// authenticate), so that the approved answer needs no write of its own:
// the token is stored with the approval when it is created, and
// RedeemToken takes it only once the approval is approved, until
// ResultTokenTTL after the approval's expiry.
func IssueResultTokenAhead(a *Approval, rnd io.Reader) (string, error) {
	if a.Status != StatusPending {
		return "", fmt.Errorf("%w: a result token ahead for a %s approval", ErrTokenState, a.Status)
	}
	return issue(&a.ResultToken, a.ExpiresAt.Add(ResultTokenTTL), rnd)
}

func issue(t *OneTimeToken, expires time.Time, rnd io.Reader) (string, error) {
	if t.Issued() {
		return "", ErrTokenIssued
	}
	var raw [TokenSize]byte
	if _, err := io.ReadFull(rnd, raw[:]); err != nil {
		return "", fmt.Errorf("%w: %v", ErrRandom, err)
	}
	*t = OneTimeToken{Hash: sha256.Sum256(raw[:]), ExpiresAt: expires}
	return base64.RawURLEncoding.EncodeToString(raw[:]), nil
}

// matches compares token with t's hash in constant time. A token of the
// wrong form hashes like any other and simply does not match.
func (t *OneTimeToken) matches(token string) bool {
	var raw [TokenSize]byte
	n, err := base64.RawURLEncoding.Strict().Decode(raw[:], []byte(token))
	ok := err == nil && n == TokenSize && len(token) == base64.RawURLEncoding.EncodedLen(TokenSize)
	sum := sha256.Sum256(raw[:])
	return subtle.ConstantTimeCompare(sum[:], t.Hash[:]) == 1 && ok && t.Issued()
}

// RedeemToken spends a's result token at now: refused when it does not
// match (or none was issued), then when a is not approved (a token issued
// ahead, IssueResultTokenAhead, of an approval still pending or not
// approved), then when used already, then when expired; what it refuses
// it leaves as it was. The match comes first, so that a wrong token learns
// nothing of the right one's state.
func RedeemToken(a *Approval, token string, now time.Time) error {
	t := &a.ResultToken
	switch {
	case !t.matches(token):
		return ErrTokenWrong
	case a.Status != StatusApproved:
		return fmt.Errorf("%w: the approval is %s", ErrTokenState, a.Status)
	case t.Used:
		return ErrTokenUsed
	case !now.Before(t.ExpiresAt):
		return ErrTokenExpired
	}
	t.Used = true
	return nil
}

// DecideLink approves a pending EMAIL approval whose one-time link was
// opened at now with token: ErrLocked first (a locked user approves nothing),
// then an approval of another method or no longer pending, then a token that
// does not match. Approving ends the user's run of failures; it does not
// lift TokenRequired, which only an OTP does.
func DecideLink(a *Approval, u *UserState, token string, now time.Time) (Effect, error) {
	if until, locked := u.LockedAt(now); locked {
		return Effect{Status: a.Status, LockedUntil: until}, ErrLocked
	}
	if a.Method != MethodEmail {
		return Effect{Status: a.Status}, fmt.Errorf("%w: a link to method %s", ErrWrongMethod, a.Method)
	}
	if err := a.pendingAt(now); err != nil {
		return Effect{Status: a.Status}, err // marked expired when it is
	}
	if !a.LinkToken.matches(token) {
		return Effect{Status: a.Status}, ErrTokenWrong
	}
	a.LinkToken.Used = true
	a.Status, a.DecidedAt = StatusApproved, now
	a.Factors = append(a.Factors, FactorOutcome{Factor: FactorLink, Outcome: rules.Pass, Reason: reasonLinkPass})
	u.Failures = 0
	return Effect{Status: a.Status}, nil
}

// CheckLink says whether token would approve a at now, changing nothing:
// the errors of DecideLink but ErrLocked. It is what the link's page asks
// before it offers the approval, so that only a deliberate confirmation
// (DecideLink) approves, not a mail scanner fetching the link.
func CheckLink(a *Approval, token string, now time.Time) error {
	if a.Method != MethodEmail {
		return fmt.Errorf("%w: a link to method %s", ErrWrongMethod, a.Method)
	}
	switch st := a.StatusAt(now); st {
	case StatusPending:
	case StatusExpired:
		return ErrExpired
	default:
		return fmt.Errorf("%w: it is %s", ErrNotPending, st)
	}
	if !a.LinkToken.matches(token) {
		return ErrTokenWrong
	}
	return nil
}
