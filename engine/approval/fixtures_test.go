package approval_test

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
	"github.com/pquerna/otp"
	"github.com/pquerna/otp/hotp"

	"github.com/countersign/countersign/engine/approval"
)

// TestFixtures runs fixtures/approval/*.txt. Times are written HH:MM:SS on
// fixtureDay (UTC), @<unix seconds>, or RFC 3339. Each file starts with the
// default settings, no approvals and a user with a clean slate.
//
//	settings                     parse the input as the "approvals" settings object (empty:
//	                             the defaults) and use it from now on
//	new [id=a1] [user=u1] at=T [values=k:v,...] [method=push] [expires=30s] [number-match]
//	                             create an approval (the last one created is the default id)
//	answer [id=] decision=approve|deny biometric=PASS|FAIL [ts=T|literal] at=T
//	       [sign=ok|bad|altered-values|garbled] [number=47] [rules=pass|fail]
//	       [otp-after-denial=true|false]
//	                             the device answers (ts defaults to at, sign to ok,
//	                             otp-after-denial to the settings); the outcome is recorded
//	                             in the user's state as the server records it
//	cancel [id=] at=T | expire [id=] at=T | status [id=] at=T
//	admit pending=N at=T         may one more approval be sent
//	fail at=T | success | unlock record a failure, a success, an operator's unlock
//	new-user                     start again from a user with a clean slate
//	otp code=NNNNNN|offset=N at=T
//	                             check a TOTP code (offset: the code of the step N steps from
//	                             at's), recorded in the user's state
//	state [at=T]                 the user's state (at: as read then, a due lock lifted)
//
// go test -run TestFixtures ./engine/approval -rewrite regenerates the expectations.
func TestFixtures(t *testing.T) {
	datadriven.Walk(t, "../../fixtures/approval", func(t *testing.T, path string) {
		w := newWorld()
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			return w.run(t, d)
		})
	})
}

var fixtureDay = time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC)

// totpSecret is RFC 6238's SHA-1 test secret, so the fixtures can use the
// RFC's own codes (the last 6 of its 8 digits).
var totpSecret = []byte("12345678901234567890")

type world struct {
	settings  approval.Settings
	rnd       *stream
	user      approval.UserState
	approvals map[string]*approval.Approval
	last      string
	device    ed25519.PrivateKey
	other     ed25519.PrivateKey
}

func newWorld() *world {
	return &world{
		settings:  approval.DefaultSettings(),
		rnd:       newStream("countersign approval fixtures"),
		approvals: map[string]*approval.Approval{},
		device:    ed25519.NewKeyFromSeed(seed32("device d1")),
		other:     ed25519.NewKeyFromSeed(seed32("some other device")),
	}
}

func seed32(s string) []byte {
	sum := sha256.Sum256([]byte(s))
	return sum[:]
}

// stream is a fixed randomness stream: SHA-256 of a seed and a block
// counter, so that challenges and user codes are stable across runs.
type stream struct {
	seed  []byte
	block uint64
	buf   []byte
}

func newStream(seed string) *stream { return &stream{seed: []byte(seed)} }

func (s *stream) Read(p []byte) (int, error) {
	for n := 0; n < len(p); {
		if len(s.buf) == 0 {
			var ctr [8]byte
			binary.BigEndian.PutUint64(ctr[:], s.block)
			s.block++
			sum := sha256.Sum256(append(append([]byte{}, s.seed...), ctr[:]...))
			s.buf = sum[:]
		}
		c := copy(p[n:], s.buf)
		s.buf = s.buf[c:]
		n += c
	}
	return len(p), nil
}

func (w *world) run(t *testing.T, d *datadriven.TestData) string {
	switch d.Cmd {
	case "settings":
		s, err := approval.ParseSettings([]byte(d.Input))
		if err != nil {
			return "error: " + err.Error() + "\n"
		}
		w.settings = s
		return fmt.Sprintf("%s window=%d/%dm\n", s.AppendJSON(nil), s.RateLimit, s.RateWindowMinutes)
	case "new":
		return w.create(t, d)
	case "answer":
		return w.answer(t, d)
	case "cancel", "expire":
		a := w.approval(t, d)
		now := w.at(t, d)
		var err error
		if d.Cmd == "cancel" {
			err = a.Cancel(now)
		} else {
			err = a.Expire(now)
		}
		return outcome(err, false) + describe(a, w.device.Public().(ed25519.PublicKey))
	case "status":
		return w.approval(t, d).StatusAt(w.at(t, d)).String() + "\n"
	case "admit":
		var pending int
		d.ScanArgs(t, "pending", &pending)
		until, err := approval.Admit(&w.user, &w.settings, pending, w.at(t, d))
		out := "admitted"
		if err != nil {
			out = "refused: " + err.Error()
			if !until.IsZero() {
				out += " until=" + clock(until)
			}
		}
		return out + "\n" + w.state()
	case "fail":
		approval.RecordFailure(&w.user, &w.settings, w.at(t, d))
		return w.state()
	case "success":
		approval.RecordSuccess(&w.user)
		return w.state()
	case "unlock":
		approval.Unlock(&w.user)
		return w.state()
	case "new-user":
		w.user = approval.UserState{}
		return w.state()
	case "otp":
		return w.otp(t, d)
	case "state":
		if d.HasArg("at") {
			w.user.LockedAt(w.at(t, d))
		}
		return w.state()
	}
	d.Fatalf(t, "unknown command %q", d.Cmd)
	return ""
}

func (w *world) create(t *testing.T, d *datadriven.TestData) string {
	r := approval.Request{ID: "a1", UserID: "u1", Message: "Approve the payment?", Method: approval.MethodPush}
	if d.HasArg("id") {
		d.ScanArgs(t, "id", &r.ID)
	}
	if d.HasArg("user") {
		d.ScanArgs(t, "user", &r.UserID)
	}
	if d.HasArg("method") {
		var m string
		d.ScanArgs(t, "method", &m)
		var err error
		if r.Method, err = approval.ParseMethod(m); err != nil {
			return "error: " + err.Error() + "\n"
		}
	}
	if d.HasArg("expires") {
		var s string
		d.ScanArgs(t, "expires", &s)
		var err error
		if r.Expiry, err = time.ParseDuration(s); err != nil {
			d.Fatalf(t, "expires: %v", err)
		}
	}
	r.NumberMatch = d.HasArg("number-match")
	if d.HasArg("values") {
		var s string
		d.ScanArgs(t, "values", &s)
		for _, kv := range strings.Split(s, ",") {
			k, v, _ := strings.Cut(kv, ":")
			r.Values = append(r.Values, approval.Value{Key: k, Value: v})
		}
	}
	a := &approval.Approval{}
	if err := approval.New(a, &r, &w.settings, w.at(t, d), w.rnd); err != nil {
		return "error: " + err.Error() + "\n"
	}
	w.approvals[a.ID] = a
	w.last = a.ID
	return describe(a, w.device.Public().(ed25519.PublicKey))
}

func (w *world) answer(t *testing.T, d *datadriven.TestData) string {
	a := w.approval(t, d)
	now := w.at(t, d)
	ans := approval.Answer{DeviceID: "d1", Timestamp: now.Format(time.RFC3339)}
	var s string
	d.ScanArgs(t, "decision", &s)
	var err error
	if ans.Decision, err = approval.ParseDecision(s); err != nil {
		d.Fatalf(t, "%v", err)
	}
	d.ScanArgs(t, "biometric", &s)
	if ans.Biometric, err = approval.ParseBiometric(s); err != nil {
		d.Fatalf(t, "%v", err)
	}
	if d.HasArg("ts") {
		d.ScanArgs(t, "ts", &s)
		if ts, ok := parseTime(s); ok && !strings.Contains(s, "T") {
			s = ts.Format(time.RFC3339)
		}
		ans.Timestamp = s
	}
	if d.HasArg("number") {
		d.ScanArgs(t, "number", &ans.Number)
	}
	sign := "ok"
	if d.HasArg("sign") {
		d.ScanArgs(t, "sign", &sign)
	}
	key, values := w.device, a.Values
	switch sign {
	case "ok":
	case "bad":
		key = w.other
	case "altered-values":
		values = append([]approval.Value{}, a.Values...)
		values[0].Value += "0" // 35.00 becomes 35.000: the same amount to a person, not to the hash
	case "garbled":
		ans.Signature = "not-a-signature"
	default:
		d.Fatalf(t, "sign=%s", sign)
	}
	if ans.Signature == "" {
		ans.Signature = signAnswer(key, a, &ans, values)
	}
	rulesFailed := false
	if d.HasArg("rules") {
		d.ScanArgs(t, "rules", &s)
		rulesFailed = s == "fail"
	}
	otpAfterDenial := w.settings.OTPAfterDenial
	if d.HasArg("otp-after-denial") {
		d.ScanArgs(t, "otp-after-denial", &otpAfterDenial)
	}
	st, err := a.Decide(w.device.Public().(ed25519.PublicKey), &ans, now, rulesFailed)
	if rulesFailed && st == approval.StatusFailed && len(a.Factors) == 0 {
		a.Factors = append(a.Factors, "geo_fence") // as the server appends the rules' failing factors
	}
	failure := approval.CountsAsFailure(err)
	switch {
	case failure || (err == nil && st == approval.StatusFailed):
		approval.RecordFailure(&w.user, &w.settings, now)
	case err == nil && st == approval.StatusDenied:
		approval.RecordDenial(&w.user, otpAfterDenial)
	case err == nil && st == approval.StatusApproved:
		approval.RecordSuccess(&w.user)
	}
	return outcome(err, failure) + describe(a, w.device.Public().(ed25519.PublicKey)) + w.state()
}

// signAnswer is the device's side: sign the answer's lines over values.
func signAnswer(key ed25519.PrivateKey, a *approval.Approval, ans *approval.Answer, values []approval.Value) string {
	digest := approval.ValuesDigest(values)
	msg := approval.AppendSignedBytes(nil, a.ID, &a.Challenge, ans.Decision, ans.Biometric, ans.Timestamp, &digest)
	return base64.RawURLEncoding.EncodeToString(ed25519.Sign(key, msg))
}

func (w *world) otp(t *testing.T, d *datadriven.TestData) string {
	now := w.at(t, d)
	var code string
	switch {
	case d.HasArg("code"):
		d.ScanArgs(t, "code", &code)
	case d.HasArg("offset"):
		var off int64
		d.ScanArgs(t, "offset", &off)
		step := now.Unix()/30 + off
		var err error
		code, err = hotp.GenerateCodeCustom(base32NoPad(totpSecret), uint64(step),
			hotp.ValidateOpts{Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
		if err != nil {
			d.Fatalf(t, "%v", err)
		}
	default:
		d.Fatalf(t, "otp needs code= or offset=")
	}
	err := approval.CheckTOTP(totpSecret, code, now, &w.user)
	failure := approval.CountsAsFailure(err)
	switch {
	case failure:
		approval.RecordFailure(&w.user, &w.settings, now)
	case err == nil:
		approval.RecordSuccess(&w.user)
	}
	return fmt.Sprintf("code %q: %s%s", code, outcome(err, failure), w.state())
}

func (w *world) approval(t *testing.T, d *datadriven.TestData) *approval.Approval {
	id := w.last
	if d.HasArg("id") {
		d.ScanArgs(t, "id", &id)
	}
	a, ok := w.approvals[id]
	if !ok {
		d.Fatalf(t, "no approval %q", id)
	}
	return a
}

func (w *world) at(t *testing.T, d *datadriven.TestData) time.Time {
	var s string
	d.ScanArgs(t, "at", &s)
	ts, ok := parseTime(s)
	if !ok {
		d.Fatalf(t, "at=%s: not HH:MM:SS, @unix or RFC 3339", s)
	}
	return ts
}

func parseTime(s string) (time.Time, bool) {
	if strings.HasPrefix(s, "@") {
		n, err := strconv.ParseInt(s[1:], 10, 64)
		return time.Unix(n, 0).UTC(), err == nil
	}
	if c, err := time.Parse("15:04:05", s); err == nil {
		return fixtureDay.Add(c.Sub(time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC))), true
	}
	ts, err := time.Parse(time.RFC3339, s)
	return ts, err == nil
}

// clock writes a time on fixtureDay as HH:MM:SS, any other as RFC 3339.
func clock(ts time.Time) string {
	if ts.IsZero() {
		return "-"
	}
	ts = ts.UTC()
	if y, m, d := ts.Date(); y == fixtureDay.Year() && m == fixtureDay.Month() && d == fixtureDay.Day() {
		return ts.Format("15:04:05")
	}
	return ts.Format(time.RFC3339)
}

func outcome(err error, failure bool) string {
	switch {
	case err == nil:
		return "ok\n"
	case failure:
		return "refused: " + err.Error() + " (counts as a failure)\n"
	}
	return "refused: " + err.Error() + "\n"
}

func (w *world) state() string {
	u := &w.user
	return fmt.Sprintf("user: failures=%d locked-until=%s token-required=%v last-totp-step=%d recent=%d\n",
		u.Failures, clock(u.LockedUntil), u.TokenRequired, u.LastTOTPStep, len(u.Recent))
}

// describe prints an approval as the fixtures show it.
func describe(a *approval.Approval, pub ed25519.PublicKey) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %s user=%s created=%s expires=%s\n",
		a.ID, a.Status, a.Method, a.UserID, clock(a.CreatedAt), clock(a.ExpiresAt))
	fmt.Fprintf(&b, "  challenge=%s", a.ChallengeString())
	if a.NumberMatch {
		fmt.Fprintf(&b, " user-code=%s", a.UserCodeString())
	}
	b.WriteByte('\n')
	if len(a.Values) > 0 {
		b.WriteString("  values:")
		for _, v := range a.Values {
			fmt.Fprintf(&b, " %s=%s", v.Key, v.Value)
		}
		b.WriteByte('\n')
	}
	if !a.DecidedAt.IsZero() {
		fmt.Fprintf(&b, "  decided=%s", clock(a.DecidedAt))
		if a.DeviceID != "" {
			fmt.Fprintf(&b, " device=%s", a.DeviceID)
		}
		if len(a.Factors) > 0 {
			fmt.Fprintf(&b, " factors=%s", strings.Join(a.Factors, ","))
		}
		b.WriteByte('\n')
	}
	if a.HasReceipt() {
		r := &a.Receipt
		fmt.Fprintf(&b, "  receipt: %s %s %s verifies=%v\n", r.Decision, r.Biometric, r.Timestamp, a.VerifyReceipt(pub))
	}
	return b.String()
}

func base32NoPad(b []byte) string {
	return strings.TrimRight(base32.StdEncoding.EncodeToString(b), "=")
}
