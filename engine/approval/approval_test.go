package approval_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/countersign/countersign/engine/approval"
	"github.com/countersign/countersign/engine/rules"
)

// bytesThen is randomness that yields the given bytes, then fails.
func bytesThen(b ...byte) io.Reader { return bytes.NewReader(b) }

func newApproval(t testing.TB, rnd io.Reader, numberMatch bool) (*approval.Approval, error) {
	t.Helper()
	s := approval.DefaultSettings()
	r := approval.Request{ID: "a1", UserID: "u1", Method: approval.MethodPush, NumberMatch: numberMatch}
	a := &approval.Approval{}
	return a, approval.New(a, &r, &s, fixtureDay, rnd)
}

func TestUserCodeDrawnWithoutBias(t *testing.T) {
	challenge := make([]byte, approval.ChallengeSize)
	// Every byte below 200 is its number mod 100, so each number comes from
	// exactly two of the 200 bytes taken.
	for b := range 200 {
		a, err := newApproval(t, bytesThen(append(challenge, byte(b))...), true)
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("%02d", b%100); a.UserCodeString() != want {
			t.Fatalf("byte %d: user code %q, want %q", b, a.UserCodeString(), want)
		}
	}
	// 200 and above are drawn again rather than folded onto 0..55.
	a, err := newApproval(t, bytesThen(append(challenge, 255, 200, 47)...), true)
	if err != nil || a.UserCodeString() != "47" {
		t.Fatalf("user code %q, %v; want 47 after two redraws", a.UserCodeString(), err)
	}
	// A source that never yields below 200 is broken: refused, no endless loop.
	_, err = newApproval(t, bytesThen(append(challenge, bytes.Repeat([]byte{0xff}, 1000)...)...), true)
	if !errors.Is(err, approval.ErrRandom) {
		t.Fatalf("stuck source: %v, want ErrRandom", err)
	}
	for _, rnd := range []io.Reader{bytesThen(challenge...), bytesThen(1, 2, 3)} {
		if _, err := newApproval(t, rnd, true); !errors.Is(err, approval.ErrRandom) {
			t.Fatalf("short source: %v, want ErrRandom", err)
		}
	}
	// Without number matching no code is drawn.
	a, err = newApproval(t, bytesThen(challenge...), false)
	if err != nil || a.NumberMatch || a.UserCodeString() != "" {
		t.Fatalf("no number match: %v %+v", err, a)
	}
}

func TestNewCopiesValues(t *testing.T) {
	s := approval.DefaultSettings()
	vals := []approval.Value{{Key: "amount", Value: "35.00"}}
	r := approval.Request{ID: "a1", UserID: "u1", Method: approval.MethodPush, Values: vals}
	var a approval.Approval
	if err := approval.New(&a, &r, &s, fixtureDay, newStream("x")); err != nil {
		t.Fatal(err)
	}
	vals[0].Value = "3500.00"
	if a.Values[0].Value != "35.00" {
		t.Fatalf("the approval shares the request's values: %v", a.Values)
	}
	// A reused approval starts empty.
	r.Values = nil
	if err := approval.New(&a, &r, &s, fixtureDay, newStream("x")); err != nil || len(a.Values) != 0 {
		t.Fatalf("reused approval kept values: %v %v", err, a.Values)
	}
}

// decided is an approval with every field of the record set: a failed
// push under number matching, from an IP, with every factor and a receipt.
func decided(t testing.TB) (*approval.Approval, ed25519.PrivateKey) {
	t.Helper()
	key := ed25519.NewKeyFromSeed(seed32("device d1"))
	s := approval.DefaultSettings()
	r := approval.Request{ID: "apr_1", UserID: "u1", Message: "Pay Acme?", Method: approval.MethodPush,
		NumberMatch: true, Values: []approval.Value{{Key: "amount", Value: "35.00"}, {Key: "payee", Value: "NL01"}},
		SourceIP: netip.MustParseAddr("192.0.2.7")}
	a := &approval.Approval{Version: 3}
	if err := approval.New(a, &r, &s, fixtureDay, newStream("decided")); err != nil {
		t.Fatal(err)
	}
	a.Version = 3
	ans := approval.DeviceAnswer{Decision: approval.DecisionApprove, Biometric: rules.BiometricPass,
		Timestamp: fixtureDay.Add(3 * time.Second).Format(time.RFC3339), Number: a.UserCodeString(),
		Location: parisFix}
	ans.Signature = signAnswer(key, a, &ans, a.Values)
	res := ruleResult(t, rules.BiometricPass, false)
	var u approval.UserState
	dev := approval.Device{ID: "d1", UserID: "u1", PublicKey: key.Public().(ed25519.PublicKey)}
	eff, err := approval.Answer(a, &u, &s, &dev, &ans, res, fixtureDay.Add(4*time.Second))
	if err != nil || eff.Status != approval.StatusFailed || !eff.Failure {
		t.Fatalf("answer: %+v %v", eff, err)
	}
	return a, key
}

// parisFix is where decided's device answers from.
var parisFix = rules.Location{Present: true, Lat: 48.8566, Lon: 2.3522, AccuracyM: 12}

// ruleResult evaluates real rules (one fence) for an answer with biometric
// b, inside the fence or, with outside, in Paris.
func ruleResult(t testing.TB, b rules.Biometric, inside bool) *rules.Result {
	t.Helper()
	c := compileWorldRules(t)
	in := rules.Input{Biometric: b, Location: rules.Location{Present: true, Lat: 48.8566, Lon: 2.3522}}
	if inside {
		in.Location.Lat, in.Location.Lon = 52.3702, 4.8952
	}
	var res rules.Result
	rules.Evaluate(c, &in, fixtureDay, &res)
	return &res
}

// emailApprovals are an EMAIL approval cancelled with its link issued, and
// one approved by its link whose result token was issued and spent: the
// records with both one-time tokens.
func emailApprovals(t testing.TB) (cancelled, approved *approval.Approval) {
	t.Helper()
	s := approval.DefaultSettings()
	cancelled = &approval.Approval{}
	r := approval.Request{ID: "x", UserID: "u1", Method: approval.MethodEmail}
	if err := approval.New(cancelled, &r, &s, fixtureDay, newStream("e")); err != nil {
		t.Fatal(err)
	}
	link, err := approval.IssueLinkToken(cancelled, newStream("link"))
	if err != nil {
		t.Fatal(err)
	}
	a := *cancelled
	approved = &a
	if err := cancelled.Cancel(fixtureDay.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	var u approval.UserState
	if _, err := approval.DecideLink(approved, &u, link, fixtureDay.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	token, err := approval.IssueResultToken(approved, newStream("result"), fixtureDay.Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if err := approval.RedeemToken(approved, token, fixtureDay.Add(2*time.Second)); err != nil {
		t.Fatal(err)
	}
	return cancelled, approved
}

func TestApprovalCodecRoundTrip(t *testing.T) {
	full, key := decided(t)
	pending, _ := newApproval(t, newStream("p"), false)
	email, approved := emailApprovals(t)
	for _, a := range []*approval.Approval{full, pending, email, approved} {
		enc := approval.AppendApproval([]byte("prefix"), a)
		if string(enc[:6]) != "prefix" {
			t.Fatal("AppendApproval overwrote dst")
		}
		enc = enc[6:]
		var back approval.Approval
		back.Values = make([]approval.Value, 0, 4) // reused capacity must not leak into the result
		if err := approval.DecodeApproval(enc, &back); err != nil {
			t.Fatalf("%s: %v", a.ID, err)
		}
		if !sameApproval(a, &back) {
			t.Fatalf("round trip differs:\n%+v\n%+v", a, &back)
		}
		if got := approval.AppendApproval(nil, &back); !bytes.Equal(got, enc) {
			t.Fatalf("re-encoding differs")
		}
		// Every proper prefix, and one byte more, is refused.
		for n := range len(enc) {
			if err := approval.DecodeApproval(enc[:n], &back); !errors.Is(err, approval.ErrCorrupt) {
				t.Fatalf("prefix of %d of %d bytes: %v", n, len(enc), err)
			}
		}
		if err := approval.DecodeApproval(append(enc[:len(enc):len(enc)], 0), &back); !errors.Is(err, approval.ErrCorrupt) {
			t.Fatalf("trailing byte: %v", err)
		}
	}
	// The decoded receipt still proves what the device signed, and only that.
	var back approval.Approval
	if err := approval.DecodeApproval(approval.AppendApproval(nil, full), &back); err != nil {
		t.Fatal(err)
	}
	pub := key.Public().(ed25519.PublicKey)
	if !back.VerifyReceipt(pub) {
		t.Fatal("the stored receipt does not verify")
	}
	back.Values[0].Value = "3500.00"
	if back.VerifyReceipt(pub) {
		t.Fatal("a receipt verifies over altered values")
	}
	if back.VerifyReceipt(pub[:5]) || pending.VerifyReceipt(pub) {
		t.Fatal("VerifyReceipt accepts a short key or a missing receipt")
	}
}

// sameApproval compares approvals as the store sees them: times by instant.
func sameApproval(a, b *approval.Approval) bool {
	x, y := *a, *b
	for _, p := range []*approval.Approval{&x, &y} {
		p.CreatedAt, p.ExpiresAt, p.DecidedAt = p.CreatedAt.UTC(), p.ExpiresAt.UTC(), p.DecidedAt.UTC()
		if len(p.Values) == 0 {
			p.Values = nil
		}
		if len(p.Factors) == 0 {
			p.Factors = nil
		}
	}
	return reflect.DeepEqual(x, y)
}

func TestApprovalCodecRefusesWhatItCannotWrite(t *testing.T) {
	a, _ := decided(t)
	enc := approval.AppendApproval(nil, a)
	var back approval.Approval
	for name, mutate := range map[string]func([]byte) []byte{
		"version": func(b []byte) []byte { b[0] = 3; return b },
		// Version 1 had no location: its flag there is not a record it wrote.
		"location in version 1": func(b []byte) []byte { b[0] = 1; return b },
		"overlong count":        func(b []byte) []byte { return append([]byte{1, 0x85, 0x00}, b[2:]...) },
		"huge length":           func(b []byte) []byte { return append([]byte{1, b[1], 0xff, 0xff, 0xff, 0xff, 0x0f}, b[3:]...) },
	} {
		if err := approval.DecodeApproval(mutate(bytes.Clone(enc)), &back); !errors.Is(err, approval.ErrCorrupt) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// An unknown method, status or user code, written through the struct.
	for name, mutate := range map[string]func(*approval.Approval){
		"method":    func(a *approval.Approval) { a.Method = 9 },
		"status":    func(a *approval.Approval) { a.Status = 0 },
		"user code": func(a *approval.Approval) { a.UserCode = [2]byte{'4', 'x'} },
		"decision":  func(a *approval.Approval) { a.Receipt.Decision = 7 },
		"biometric": func(a *approval.Approval) { a.Receipt.Biometric = 0 },
		"factor":    func(a *approval.Approval) { a.Factors = append(a.Factors, approval.FactorOutcome{Factor: 99}) },
		"outcome":   func(a *approval.Approval) { a.Factors = append(a.Factors, approval.FactorOutcome{Outcome: 3}) },
		"reason":    func(a *approval.Approval) { a.Factors = append(a.Factors, approval.FactorOutcome{Reason: "\xff"}) },
		// Records that decode but that no transition can leave.
		"pending with a receipt": func(a *approval.Approval) { a.Status = approval.StatusPending; a.DecidedAt = time.Time{} },
		"pending with a decision time": func(a *approval.Approval) {
			a.Status, a.Receipt, a.DeviceID, a.Factors, a.RulesVersion = approval.StatusPending, approval.Receipt{}, "", nil, 0
		},
		"decided without a decision time": func(a *approval.Approval) { a.DecidedAt = time.Time{} },
		"denied by an approve":            func(a *approval.Approval) { a.Status = approval.StatusDenied },
		"approved by a deny":              func(a *approval.Approval) { a.Receipt.Decision = approval.DecisionDeny },
		"receipt on an OTP approval":      func(a *approval.Approval) { a.Method, a.NumberMatch = approval.MethodOTP, false },
		"receipt without a device":        func(a *approval.Approval) { a.DeviceID = "" },
		"number match on an email":        func(a *approval.Approval) { a.Method, a.Receipt = approval.MethodEmail, approval.Receipt{} },
		"expiry before creation":          func(a *approval.Approval) { a.ExpiresAt = a.CreatedAt },
		"result token of a failed one": func(a *approval.Approval) {
			a.ResultToken = approval.OneTimeToken{ExpiresAt: a.DecidedAt.Add(time.Minute)}
		},
		"link on a push": func(a *approval.Approval) { a.LinkToken = approval.OneTimeToken{ExpiresAt: a.ExpiresAt} },
		"location without a receipt": func(a *approval.Approval) {
			a.Method, a.NumberMatch, a.Receipt = approval.MethodOTP, false, approval.Receipt{}
		},
		"location latitude NaN":     func(a *approval.Approval) { a.Location.Lat = math.NaN() },
		"location longitude 181":    func(a *approval.Approval) { a.Location.Lon = 181 },
		"location accuracy below 0": func(a *approval.Approval) { a.Location.AccuracyM = -1 },
		"location accuracy +Inf":    func(a *approval.Approval) { a.Location.AccuracyM = math.Inf(1) },
	} {
		b := *a
		b.Factors = append([]approval.FactorOutcome{}, a.Factors...)
		mutate(&b)
		err := approval.DecodeApproval(approval.AppendApproval(nil, &b), &back)
		if !errors.Is(err, approval.ErrCorrupt) || back.ID != "" || len(back.Values) != 0 {
			t.Errorf("%s: %v, left %+v", name, err, back)
		}
	}
}

// TestApprovalKeepsTheDeviceLocation: the location the device answered
// from is on the record and survives the store's encoding, so a circle sent
// later can be measured against it; a fix that is no coordinate is kept as
// none.
func TestApprovalKeepsTheDeviceLocation(t *testing.T) {
	full, _ := decided(t)
	if full.Location != parisFix {
		t.Fatalf("Answer kept %+v, want %+v", full.Location, parisFix)
	}
	var back approval.Approval
	if err := approval.DecodeApproval(approval.AppendApproval(nil, full), &back); err != nil || back.Location != parisFix {
		t.Fatalf("decoded %+v, %v", back.Location, err)
	}
	key := ed25519.NewKeyFromSeed(seed32("device d2"))
	a, _ := newApproval(t, newStream("far"), false)
	ans := approval.DeviceAnswer{Decision: approval.DecisionApprove, Biometric: rules.BiometricPass,
		Timestamp: fixtureDay.Add(3 * time.Second).Format(time.RFC3339),
		Location:  rules.Location{Present: true, Lat: 123, Lon: 4}}
	ans.Signature = signAnswer(key, a, &ans, a.Values)
	s := approval.DefaultSettings()
	var u approval.UserState
	dev := approval.Device{ID: "d2", UserID: a.UserID, PublicKey: key.Public().(ed25519.PublicKey)}
	if _, err := approval.Answer(a, &u, &s, &dev, &ans, ruleResult(t, rules.BiometricPass, true), fixtureDay.Add(4*time.Second)); err != nil {
		t.Fatal(err)
	}
	if a.Location.Present {
		t.Fatalf("a latitude of 123 was kept: %+v", a.Location)
	}
}

// TestApprovalCodecReadsVersion1: records written before the location was
// kept still decode, with no location, and are written back as version 2.
func TestApprovalCodecReadsVersion1(t *testing.T) {
	pending, _ := newApproval(t, newStream("p"), false)
	_, approved := emailApprovals(t)
	for _, a := range []*approval.Approval{pending, approved} {
		enc := approval.AppendApproval(nil, a)
		if enc[0] != 2 {
			t.Fatalf("written as version %d", enc[0])
		}
		enc[0] = 1
		var back approval.Approval
		if err := approval.DecodeApproval(enc, &back); err != nil {
			t.Fatalf("%s as version 1: %v", a.ID, err)
		}
		if back.Location.Present || !sameApproval(a, &back) {
			t.Fatalf("version 1 read differs:\n%+v\n%+v", a, &back)
		}
	}
}

func TestUserStateCodecRoundTrip(t *testing.T) {
	for _, u := range []approval.UserState{
		{},
		{Version: 9, Failures: 4, LockedUntil: fixtureDay.Add(time.Hour), TokenRequired: true, LastTOTPStep: 59876841,
			Recent: []time.Time{fixtureDay, fixtureDay.Add(time.Second)}},
	} {
		enc := approval.AppendUserState(nil, &u)
		var back approval.UserState
		if err := approval.DecodeUserState(enc, &back); err != nil {
			t.Fatal(err)
		}
		if len(back.Recent) == 0 {
			back.Recent = nil
		}
		if !reflect.DeepEqual(u, back) {
			t.Fatalf("round trip differs:\n%+v\n%+v", u, back)
		}
		for n := range len(enc) {
			if err := approval.DecodeUserState(enc[:n], &back); !errors.Is(err, approval.ErrCorruptUserState) {
				t.Fatalf("prefix of %d bytes: %v", n, err)
			}
		}
	}
	// States no transition leaves: a lock without failures, a window out
	// of order, a zero time in it.
	for name, u := range map[string]approval.UserState{
		"lock without failures": {LockedUntil: fixtureDay},
		"window out of order":   {Recent: []time.Time{fixtureDay.Add(time.Second), fixtureDay}},
		"zero time in window":   {Recent: []time.Time{{}}},
	} {
		var back approval.UserState
		if err := approval.DecodeUserState(approval.AppendUserState(nil, &u), &back); !errors.Is(err, approval.ErrCorruptUserState) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestVerifyAnswerRefusesABadKeyWithoutPanicking(t *testing.T) {
	a, err := newApproval(t, newStream("k"), false)
	if err != nil {
		t.Fatal(err)
	}
	ans := approval.DeviceAnswer{Decision: approval.DecisionApprove, Biometric: rules.BiometricPass,
		Timestamp: fixtureDay.Format(time.RFC3339), Signature: strings.Repeat("A", 86)}
	for _, pub := range []ed25519.PublicKey{nil, make([]byte, 31), make([]byte, 33)} {
		if err := approval.VerifyAnswer(pub, a, &ans, fixtureDay); !errors.Is(err, approval.ErrPublicKey) {
			t.Fatalf("%d-byte key: %v", len(pub), err)
		}
	}
	if approval.CountsAsFailure(approval.ErrPublicKey) {
		t.Fatal("a server-side key problem counts against the user")
	}
	// An answer of no known decision or biometric result is malformed, not a failure.
	pub := ed25519.NewKeyFromSeed(seed32("k")).Public().(ed25519.PublicKey)
	for _, bad := range []approval.DeviceAnswer{{Biometric: rules.BiometricPass}, {Decision: approval.DecisionDeny, Biometric: 3},
		{Decision: approval.DecisionDeny, Biometric: rules.BiometricAbsent}} {
		bad.Timestamp, bad.Signature = ans.Timestamp, ans.Signature
		err := approval.VerifyAnswer(pub, a, &bad, fixtureDay)
		if !(errors.Is(err, approval.ErrDecision) || errors.Is(err, approval.ErrBiometric)) || approval.CountsAsFailure(err) {
			t.Fatalf("%+v: %v", bad, err)
		}
	}
	// A signature in padded or standard base64 is not the one accepted spelling.
	key := ed25519.NewKeyFromSeed(seed32("k"))
	good := signAnswer(key, a, &ans, a.Values)
	raw, _ := base64.RawURLEncoding.DecodeString(good)
	for _, sig := range []string{good + "==", base64.StdEncoding.EncodeToString(raw)} {
		ans.Signature = sig
		if err := approval.VerifyAnswer(pub, a, &ans, fixtureDay); !errors.Is(err, approval.ErrSignature) {
			t.Fatalf("signature %q: %v", sig, err)
		}
	}
	ans.Signature = good
	if err := approval.VerifyAnswer(key.Public().(ed25519.PublicKey), a, &ans, fixtureDay); err != nil {
		t.Fatalf("the good signature: %v", err)
	}
}

func TestParseNames(t *testing.T) {
	for _, c := range []struct {
		s   string
		err error
		f   func(string) error
	}{
		{"PASS", nil, func(s string) error { _, err := approval.ParseBiometric(s); return err }},
		{"pass", approval.ErrBiometric, func(s string) error { _, err := approval.ParseBiometric(s); return err }},
		{"approve", nil, func(s string) error { _, err := approval.ParseDecision(s); return err }},
		{"Approve", approval.ErrDecision, func(s string) error { _, err := approval.ParseDecision(s); return err }},
		{"email", nil, func(s string) error { _, err := approval.ParseMethod(s); return err }},
		{"unknown", approval.ErrMethod, func(s string) error { _, err := approval.ParseMethod(s); return err }},
	} {
		if err := c.f(c.s); !errors.Is(err, c.err) || (c.err == nil) != (err == nil) {
			t.Errorf("%q: %v, want %v", c.s, err, c.err)
		}
	}
	if approval.Status(0).String() != "unknown" || approval.StatusCancelled.String() != "cancelled" {
		t.Error("status names")
	}
}

func TestSettingsValidateTheWindow(t *testing.T) {
	s := approval.DefaultSettings()
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	s.RateLimit = 0
	if err := s.Validate(); !errors.Is(err, approval.ErrSettingRange) || !strings.Contains(err.Error(), "rateLimit") {
		t.Fatalf("rate limit 0: %v", err)
	}
	if err := (&approval.Settings{}).Validate(); err == nil {
		t.Fatal("the zero settings validate")
	}
	d := approval.DefaultSettings()
	back, err := approval.ParseSettings(d.AppendJSON(nil))
	if err != nil || back != d {
		t.Fatalf("settings JSON does not round-trip: %v %+v", err, back)
	}
}

func TestProvisioningURI(t *testing.T) {
	uri, err := approval.ProvisioningURI(totpSecret, "Demo Bank", "alice@example.com")
	if err != nil {
		t.Fatal(err)
	}
	key, err := otp.NewKeyFromURL(uri)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(uri, "otpauth://totp/") || key.Issuer() != "Demo Bank" || key.AccountName() != "alice@example.com" ||
		key.Period() != 30 || key.Digits() != otp.DigitsSix || key.Algorithm() != otp.AlgorithmSHA1 ||
		key.Secret() != base32NoPad(totpSecret) {
		t.Fatalf("URI %s reads as issuer %q account %q period %d digits %v algorithm %v secret %q",
			uri, key.Issuer(), key.AccountName(), key.Period(), key.Digits(), key.Algorithm(), key.Secret())
	}
	// What an app provisioned from the URI shows is what CheckTOTP accepts.
	now := fixtureDay.Add(13 * time.Hour)
	code, err := totp.GenerateCode(key.Secret(), now)
	if err != nil {
		t.Fatal(err)
	}
	var u approval.UserState
	s := approval.DefaultSettings()
	if _, err := approval.CheckTOTP(&u, &s, totpSecret, code, now); err != nil {
		t.Fatalf("the app's code %s: %v", code, err)
	}
	for _, c := range [][3]string{{"", "Demo Bank", "a"}, {string(totpSecret), "", "a"}, {string(totpSecret), "Demo Bank", ""},
		{"fifteen bytes!!", "Demo Bank", "a"}} {
		if _, err := approval.ProvisioningURI([]byte(c[0]), c[1], c[2]); err == nil {
			t.Errorf("%q: no error", c)
		}
	}
	// RFC 4226 asks for 128 bits at least; one SHA-1 block at most here.
	for _, n := range []int{0, 15, 65} {
		eff, err := approval.CheckTOTP(&u, &s, bytes.Repeat([]byte{7}, n), code, now)
		if !errors.Is(err, approval.ErrOTPSecret) || eff.Failure {
			t.Errorf("%d-byte secret: %v %+v", n, err, eff)
		}
	}
	for _, n := range []int{16, 64} {
		if _, err := approval.CheckTOTP(&u, &s, bytes.Repeat([]byte{7}, n), "000000", now); !errors.Is(err, approval.ErrOTPWrong) {
			t.Errorf("%d-byte secret: %v", n, err)
		}
	}
}

// ExampleAppendSignedBytes is the device-protocol example of the README:
// the bytes a device signs for one answer, the values digest inside them,
// and the signature, with the device key from seed 00 01 .. 1f and the
// challenge 20 21 .. 3f. The signature was checked against a second
// Ed25519 implementation (Python's cryptography) when it was pinned.
func ExampleAppendSignedBytes() {
	seed := make([]byte, ed25519.SeedSize)
	var challenge [approval.ChallengeSize]byte
	for i := range seed {
		seed[i], challenge[i] = byte(i), byte(0x20+i)
	}
	key := ed25519.NewKeyFromSeed(seed)
	values := []approval.Value{{Key: "amount", Value: "35.00"}, {Key: "payee", Value: "NL91ABNA0417164300"}}
	digest := approval.ValuesDigest(values)
	msg := approval.AppendSignedBytes(nil, "apr_01JEXAMPLE", &challenge, approval.DecisionApprove,
		rules.BiometricPass, "2026-12-03T13:00:05Z", &digest)
	sig := ed25519.Sign(key, msg)
	empty := approval.ValuesDigest(nil)

	fmt.Printf("signed bytes:\n%s\n", msg)
	fmt.Printf("values digest: %x\n", digest)
	fmt.Printf("no values:     %x\n", empty)
	fmt.Printf("public key: %s\n", base64.RawURLEncoding.EncodeToString(key.Public().(ed25519.PublicKey)))
	fmt.Printf("signature:  %s\n", base64.RawURLEncoding.EncodeToString(sig))
	// Output:
	// signed bytes:
	// countersign-approval-v1
	// apr_01JEXAMPLE
	// ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8
	// approve
	// PASS
	// 2026-12-03T13:00:05Z
	// f9c5a4cdfc051301f4b58aa5e2a482d8627467f497705ce11f6fa55a99b97691
	// values digest: f9c5a4cdfc051301f4b58aa5e2a482d8627467f497705ce11f6fa55a99b97691
	// no values:     e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
	// public key: A6EHv_POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg
	// signature:  fof4yiv6EOsUlRmDbIJgB2wlKM1VwobJOzNNJ8znmGO-Z4IgomiWJaq_nXyqZA4sgythwzOJH5wgQDYwT5bDBA
}

// TestResultTokenAhead: a result token drawn with a pending approval
// (UNLOQ's held authenticate) is stored with it through the codec, is
// refused while the approval is pending and after it was denied, and is
// redeemed once once it is approved, until a minute after the expiry.
func TestResultTokenAhead(t *testing.T) {
	s := approval.DefaultSettings()
	newPending := func(id string) (*approval.Approval, string) {
		a := &approval.Approval{}
		r := approval.Request{ID: id, UserID: "u1", Method: approval.MethodEmail}
		if err := approval.New(a, &r, &s, fixtureDay, newStream(id)); err != nil {
			t.Fatal(err)
		}
		token, err := approval.IssueResultTokenAhead(a, newStream("ahead-"+id))
		if err != nil {
			t.Fatal(err)
		}
		return a, token
	}
	a, token := newPending("a")
	var back approval.Approval
	if err := approval.DecodeApproval(approval.AppendApproval(nil, a), &back); err != nil || back.ResultToken != a.ResultToken {
		t.Fatalf("a pending approval with its token ahead: %v", err)
	}
	if err := approval.RedeemToken(a, token, fixtureDay.Add(time.Second)); !errors.Is(err, approval.ErrTokenState) {
		t.Fatalf("redeemed while pending: %v", err)
	}
	link, err := approval.IssueLinkToken(a, newStream("link"))
	if err != nil {
		t.Fatal(err)
	}
	var u approval.UserState
	if _, err := approval.DecideLink(a, &u, link, fixtureDay.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := approval.RedeemToken(a, "x"+token[1:], fixtureDay.Add(2*time.Second)); !errors.Is(err, approval.ErrTokenWrong) {
		t.Fatalf("a wrong token: %v", err)
	}
	late := a.ExpiresAt.Add(approval.ResultTokenTTL)
	if err := approval.RedeemToken(a, token, late); !errors.Is(err, approval.ErrTokenExpired) {
		t.Fatalf("a minute after the expiry: %v", err)
	}
	if err := approval.RedeemToken(a, token, late.Add(-time.Millisecond)); err != nil {
		t.Fatalf("approved, in time: %v", err)
	}
	if err := approval.RedeemToken(a, token, late.Add(-time.Millisecond)); !errors.Is(err, approval.ErrTokenUsed) {
		t.Fatalf("twice: %v", err)
	}

	c, ctoken := newPending("c")
	if err := c.Cancel(fixtureDay.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := approval.DecodeApproval(approval.AppendApproval(nil, c), &back); err != nil {
		t.Fatalf("a cancelled approval with its token ahead: %v", err)
	}
	if err := approval.RedeemToken(c, ctoken, fixtureDay.Add(2*time.Second)); !errors.Is(err, approval.ErrTokenState) {
		t.Fatalf("redeemed after a cancel: %v", err)
	}
	if _, err := approval.IssueResultTokenAhead(c, newStream("again")); !errors.Is(err, approval.ErrTokenState) {
		t.Fatalf("ahead for a decided approval: %v", err)
	}
}

// TestCheckLink: the link's page asks CheckLink, which answers as
// DecideLink would (a wrong token, another method, no longer pending) and
// changes nothing: after any number of checks the link still approves,
// once, and is then refused by both.
func TestCheckLink(t *testing.T) {
	s := approval.DefaultSettings()
	a := &approval.Approval{}
	if err := approval.New(a, &approval.Request{ID: "l", UserID: "u1", Method: approval.MethodEmail}, &s, fixtureDay, newStream("l")); err != nil {
		t.Fatal(err)
	}
	link, err := approval.IssueLinkToken(a, newStream("link"))
	if err != nil {
		t.Fatal(err)
	}
	at := fixtureDay.Add(time.Second)
	before := approval.AppendApproval(nil, a)
	for range 3 {
		if err := approval.CheckLink(a, link, at); err != nil {
			t.Fatalf("a good link: %v", err)
		}
	}
	if err := approval.CheckLink(a, "x"+link[1:], at); !errors.Is(err, approval.ErrTokenWrong) {
		t.Fatalf("a wrong link: %v", err)
	}
	if err := approval.CheckLink(a, link, a.ExpiresAt); !errors.Is(err, approval.ErrExpired) {
		t.Fatalf("at the expiry: %v", err)
	}
	if after := approval.AppendApproval(nil, a); string(after) != string(before) {
		t.Fatal("CheckLink changed the approval")
	}
	var u approval.UserState
	if _, err := approval.DecideLink(a, &u, link, at); err != nil {
		t.Fatalf("approve after the checks: %v", err)
	}
	if err := approval.CheckLink(a, link, at); !errors.Is(err, approval.ErrNotPending) {
		t.Fatalf("checked once approved: %v", err)
	}
	push := &approval.Approval{}
	if err := approval.New(push, &approval.Request{ID: "p", UserID: "u1", Method: approval.MethodPush}, &s, fixtureDay, newStream("p")); err != nil {
		t.Fatal(err)
	}
	if err := approval.CheckLink(push, link, at); !errors.Is(err, approval.ErrWrongMethod) {
		t.Fatalf("a push approval: %v", err)
	}
}
