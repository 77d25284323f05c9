package approval

import (
	"crypto/subtle"
	"encoding/base32"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/hotp"
	"github.com/pquerna/otp/totp"
)

// TOTP parameters: RFC 6238's defaults, which every authenticator app reads
// from the provisioning URI.
const (
	TOTPDigits = 6
	TOTPPeriod = 30 * time.Second
	// TOTPSkew is how many steps either side of now are accepted, for a
	// phone clock a little off and a code typed at the end of its step.
	TOTPSkew = 1
)

// Refusals of CheckTOTP and ProvisioningURI. ErrOTPWrong and ErrOTPReplayed
// count as failures.
var (
	ErrOTPSecret   = errors.New("approval: TOTP secret is empty")
	ErrOTPWrong    = errors.New("approval: wrong OTP code")
	ErrOTPReplayed = errors.New("approval: OTP code already used")
	ErrOTPAccount  = errors.New("approval: TOTP issuer and account must not be empty")
)

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// CheckTOTP checks code against the user's TOTP seed at now: the code of
// the current 30-second step or of one step either side. Each step's code is
// accepted once: a code of a step at or before u.LastTOTPStep is refused as
// replayed, and an accepted one moves u.LastTOTPStep to its step. The three
// candidate codes are all computed and compared in constant time, so the
// time taken does not say which step, or how much of the code, matched. The
// caller records the outcome: RecordFailure on a refusal that
// CountsAsFailure, RecordSuccess on nil.
func CheckTOTP(secret []byte, code string, now time.Time, u *UserState) error {
	if len(secret) == 0 {
		return ErrOTPSecret
	}
	enc := b32.EncodeToString(secret)
	step := now.Unix() / int64(TOTPPeriod/time.Second)
	opts := hotp.ValidateOpts{Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}
	matched, found := 0, 0
	for s := step - TOTPSkew; s <= step+TOTPSkew; s++ {
		if s < 0 { // before 1970: no such step, whatever the code
			continue
		}
		want, err := hotp.GenerateCodeCustom(enc, uint64(s), opts)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrOTPSecret, err)
		}
		eq := subtle.ConstantTimeCompare([]byte(want), []byte(code))
		// Keep the first matching step without branching on the comparison.
		matched = subtle.ConstantTimeSelect(eq&^found, int(s), matched)
		found |= eq
	}
	if found == 0 {
		return ErrOTPWrong
	}
	if uint64(matched) <= u.LastTOTPStep {
		return fmt.Errorf("%w: step %d was accepted before", ErrOTPReplayed, matched)
	}
	u.LastTOTPStep = uint64(matched)
	return nil
}

// refuseReads is the randomness given to the OTP library: it is never
// needed (the secret is passed in), and if it were, failing is better than
// reaching for the system's randomness from the engine.
type refuseReads struct{}

func (refuseReads) Read([]byte) (int, error) {
	return 0, errors.New("approval: no randomness here: the TOTP secret is passed in")
}

var _ io.Reader = refuseReads{}

// ProvisioningURI is the otpauth://totp/... URI of secret for an
// authenticator app (the device activation answer's totpURI), labelled
// issuer:account: SHA-1, 6 digits, 30-second steps, as CheckTOTP expects.
func ProvisioningURI(secret []byte, issuer, account string) (string, error) {
	if len(secret) == 0 {
		return "", ErrOTPSecret
	}
	if issuer == "" || account == "" {
		return "", ErrOTPAccount
	}
	key, err := totp.Generate(totp.GenerateOpts{
		Issuer: issuer, AccountName: account, Secret: secret,
		Period: uint(TOTPPeriod / time.Second), Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1,
		Rand: refuseReads{},
	})
	if err != nil {
		return "", fmt.Errorf("approval: TOTP provisioning URI: %w", err)
	}
	return key.URL(), nil
}
