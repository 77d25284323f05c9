package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/countersign/countersign/client"
	"github.com/countersign/countersign/engine/biometric"
)

// parseVerdict decodes a validate answer into the client's Decision,
// refusing any field the client does not know.
func parseVerdict(t *testing.T, r response) client.Decision {
	t.Helper()
	if r.status != 200 {
		t.Fatalf("validate: %s", r)
	}
	var v client.Decision
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("validate answer %s: %v", r.body, err)
	}
	return v
}

// violationCount is the count of the decision's violation of kind (0: none).
func violationCount(v client.Decision, kind string) int {
	x, _ := v.Violation(kind)
	return x.Count
}

// TestDocumentedExample: the seed's documented body against a session whose
// SDK collected the same values as other types and under other field names
// gives exactly the documented response, ivScore 2000, verifiedAction false.
func TestDocumentedExample(t *testing.T) {
	e := newEnv(t)
	s := e.newSession("doc-example-1", "u1")
	if r := e.postEvents(s, mustJSON(eventsJSON{Fields: seedFields(), Final: true})); r.status != 202 {
		t.Fatal(r)
	}
	for _, path := range []string{"/v1/validate", "/api/v1/validate"} {
		r := e.do(req{path: path, body: e.validateBody(s, false, seedItems()...), headers: e.withKey()})
		v := parseVerdict(t, r)
		want := `{"success":true,"verifiedAction":false,"decisionID":"` + v.DecisionID + `",` +
			`"indicators":{"iv_is_values_collected":true,"iv_is_values_match":true,` +
			`"iv_values_match_details":{"amount":{"matched":true,"field":"total","reason":"match"},` +
			`"payeeID":{"matched":true,"field":"payee","reason":"match"},` +
			`"accountNumber":{"matched":true,"field":"account","reason":"match"},` +
			`"notes":{"matched":true,"field":"memo","reason":"match"}},` +
			`"iv_is_biometrics_collected":false,"iv_is_biometrics_match":false,"iv_liveness":false,` +
			`"iv_policy_violations":{"violations":[],"has_violations":false,"total_frames":0,"verified_frames":0},` +
			`"iv_biometrics_info":[],"iv_user_enrolled":false,"iv_spoof_detected":false,` +
			`"idv_matching":false,"driverLicenseCollected":false,"idlive_liveness":false,"regular_liveness":false},` +
			`"ivScore":2000}`
		if string(r.body) != want {
			t.Errorf("%s:\n got %s\nwant %s", path, r.body, want)
		}
		if len(v.DecisionID) != 26 {
			t.Errorf("decisionID %q", v.DecisionID)
		}
		// --compressed: the same bytes, compressed.
		z := e.do(req{path: path, body: e.validateBody(s, false, seedItems()...), headers: e.withKey("Accept-Encoding", "deflate, gzip, br, zstd")})
		if z.header["content-encoding"] != "zstd" || !bytes.Contains(z.body, []byte(`"ivScore":2000}`)) {
			t.Errorf("compressed answer: %q %s", z.header["content-encoding"], z.body)
		}
	}
	// Mixed outcomes: a mismatch and a value never collected.
	items := seedItems()
	items[0]["value"] = "35.01"
	items = append(items, map[string]any{"key": "reference", "value": "INV-1", "synonyms": []string{"ref"}})
	v := parseVerdict(t, e.validate(e.validateBody(s, false, items...)))
	if v.Indicators.ValuesMatch || !v.Indicators.ValuesCollected {
		t.Errorf("tampered amount: %+v", v.Indicators)
	}
	if d := v.Indicators.MatchDetails["amount"]; d.Matched || d.Reason != "mismatch" || d.Field == nil || *d.Field != "total" {
		t.Errorf("amount detail: %+v", d)
	}
	if d := v.Indicators.MatchDetails["reference"]; d.Matched || d.Reason != "not_collected" || d.Field != nil {
		t.Errorf("reference detail: %+v", d)
	}
	if v.IVScore != 1000 || v.VerifiedAction {
		t.Errorf("tampered: score %d verified %v", v.IVScore, v.VerifiedAction)
	}
}

// TestTwentyDigitValues: sessionData tokens are kept raw, so 20-digit
// integers compare exactly.
func TestTwentyDigitValues(t *testing.T) {
	e := newEnv(t)
	s := e.newSession("twenty-digit-1", "u1")
	e.postEvents(s, []byte(`{"fields":[{"key":"iban","value":"12345678901234567891"}]}`))
	match := parseVerdict(t, e.validate(e.validateBody(s, false, map[string]any{"key": "iban", "value": json.RawMessage("12345678901234567891")})))
	off := parseVerdict(t, e.validate(e.validateBody(s, false, map[string]any{"key": "iban", "value": json.RawMessage("12345678901234567890")})))
	if !match.Indicators.ValuesMatch || off.Indicators.ValuesMatch {
		t.Errorf("20-digit: exact %v, off by one %v", match.Indicators.ValuesMatch, off.Indicators.ValuesMatch)
	}
}

// TestFieldSpelledAnew: the SDK sent a field as TOTAL, then as Total with
// another value. Names compare case-insensitively, so they are one name
// whose latest value is Total's: the old value no longer matches.
func TestFieldSpelledAnew(t *testing.T) {
	e := newEnv(t)
	s := e.newSession("spelled-anew-1", "u1")
	for _, body := range []string{
		`{"fields":[{"key":"TOTAL","value":35,"ts":1763800000100}]}`,
		`{"fields":[{"key":"Total","value":3500,"ts":1763800000900}]}`,
	} {
		if r := e.postEvents(s, []byte(body)); r.status != 202 {
			t.Fatalf("events: %s", r)
		}
	}
	item := func(v int) map[string]any {
		return map[string]any{"key": "amount", "value": v, "synonyms": []string{"total"}}
	}
	old := parseVerdict(t, e.validate(e.validateBody(s, false, item(35))))
	latest := parseVerdict(t, e.validate(e.validateBody(s, false, item(3500))))
	if d := old.Indicators.MatchDetails["amount"]; old.Indicators.ValuesMatch || d.Reason != "mismatch" || d.Field == nil || *d.Field != "Total" {
		t.Errorf("the older spelling's value: %+v", d)
	}
	if !latest.Indicators.ValuesMatch {
		t.Errorf("the latest value: %+v", latest.Indicators.MatchDetails)
	}
}

// biometricScenario is a user with an enrolled face.
type biometricScenario struct {
	e    *testEnv
	face []float32
	seq  int
}

func newBiometricScenario(t *testing.T) *biometricScenario {
	e := newEnv(t)
	b := &biometricScenario{e: e, face: unitVec(newRand(100), testDim)}
	// Enrollment: a genuine session with isEnrollment.
	s := b.session("alice")
	rng := newRand(101)
	e.postEvents(s, mustJSON(eventsJSON{Fields: seedFields(), Frames: faceFrames(rng, b.face, 1, 1763800000100, 8), Final: true}))
	v := parseVerdict(t, e.validateWhenScored(e.validateBody(s, true, seedItems()...)))
	if !v.Indicators.UserEnrolled {
		t.Fatalf("enrollment did not enroll: %+v", v)
	}
	// Frames were rescored against the new template within the same call
	// (all verified, with a similarity), yet the session is not verified by
	// its own frames: enrollment establishes identity, it does not prove it.
	in := v.Indicators
	if in.BiometricsMatch || v.VerifiedAction || v.IVScore != 6750 || in.PolicyViolations.TotalFrames != 8 ||
		in.PolicyViolations.VerifiedFrames != 8 || len(in.BiometricsInfo) != 1 || in.BiometricsInfo[0].MeanSimilarity < 0.6 {
		t.Errorf("enrollment session after rescoring: score %d verified %v %+v", v.IVScore, v.VerifiedAction, in)
	}
	return b
}

func (b *biometricScenario) session(user string) session {
	b.seq++
	return b.e.newSession(fmt.Sprintf("bio-%s-%04d", user, b.seq), user)
}

// run posts frames (and the seed's fields) to a new session of user and
// validates it as validateUser.
func (b *biometricScenario) run(t *testing.T, user, validateUser string, frames []frameJSON, items []map[string]any) client.Decision {
	t.Helper()
	e := b.e
	s := b.session(user)
	for i := 0; i < len(frames); i += 64 {
		batch := frames[i:min(i+64, len(frames))]
		ev := eventsJSON{Frames: batch}
		if i == 0 {
			ev.Fields = seedFields()
		}
		if r := e.postEvents(s, mustJSON(ev)); r.status != 202 {
			t.Fatalf("events: %s", r)
		}
	}
	s.userID = validateUser
	return parseVerdict(t, e.validateWhenScored(e.validateBody(s, false, items...)))
}

func TestBiometricScenarios(t *testing.T) {
	b := newBiometricScenario(t)
	rng := newRand(200)
	const ts0 = 1763800000100

	t.Run("genuine", func(t *testing.T) {
		v := b.run(t, "alice", "alice", faceFrames(rng, b.face, 1, ts0, 8), seedItems())
		in := v.Indicators
		if !v.VerifiedAction || v.IVScore < 8000 || !in.BiometricsMatch || !in.Liveness || in.PolicyViolations.HasViolations ||
			in.PolicyViolations.TotalFrames != 8 || in.PolicyViolations.VerifiedFrames != 8 || !in.UserEnrolled || in.SpoofDetected {
			t.Errorf("genuine: score %d verified %v %+v", v.IVScore, v.VerifiedAction, in)
		}
		if len(in.BiometricsInfo) != 1 || in.BiometricsInfo[0].Type != "face" || in.BiometricsInfo[0].Frames != 8 || in.BiometricsInfo[0].MeanSimilarity < 0.6 ||
			in.BiometricsInfo[0].FirstTs != ts0 || in.BiometricsInfo[0].LastTs != ts0+7*400 {
			t.Errorf("biometrics info: %+v", in.BiometricsInfo)
		}
	})
	t.Run("genuine with driver license", func(t *testing.T) {
		frames := faceFrames(rng, b.face, 1, ts0, 6)
		frames = append(frames, frameJSON{Seq: 7, TS: ts0 + 6*400, Type: "document", DocType: "driver_license",
			Quality: 0.9, Liveness: 0.95, Embedding: embB64(noisy(rng, b.face, 0.5))})
		v := b.run(t, "alice", "alice", frames, seedItems())
		in := v.Indicators
		if !v.VerifiedAction || v.IVScore != 10000 || !in.DriverLicenseCollected || !in.IDVMatching || !in.IDLiveLiveness ||
			len(in.BiometricsInfo) != 2 || in.BiometricsInfo[1].Type != "document" {
			t.Errorf("with document: score %d %+v", v.IVScore, in)
		}
	})
	t.Run("impostor", func(t *testing.T) {
		other := unitVec(newRand(300), testDim)
		v := b.run(t, "alice", "alice", faceFrames(rng, other, 1, ts0, 8), seedItems())
		if v.VerifiedAction || v.Indicators.BiometricsMatch || violationCount(v, "face_mismatch") != 8 {
			t.Errorf("impostor: %+v", v)
		}
	})
	t.Run("replay", func(t *testing.T) {
		frames := faceFrames(rng, b.face, 1, ts0, 6)
		frames[4].Embedding = frames[1].Embedding
		v := b.run(t, "alice", "alice", frames, seedItems())
		if v.VerifiedAction || !v.Indicators.SpoofDetected || violationCount(v, "replayed_frame") != 1 || v.Indicators.Liveness {
			t.Errorf("replay: %+v", v.Indicators)
		}
	})
	t.Run("static stream", func(t *testing.T) {
		photo := noisy(rng, b.face, 0.3)
		frames := faceFrames(rng, b.face, 1, ts0, 8)
		for i := range frames {
			frames[i].Embedding = embB64(noisy(rng, photo, 0.001))
		}
		v := b.run(t, "alice", "alice", frames, seedItems())
		if v.VerifiedAction || !v.Indicators.SpoofDetected || violationCount(v, "static_stream") == 0 {
			t.Errorf("static stream: %+v", v.Indicators)
		}
	})
	t.Run("multiple faces", func(t *testing.T) {
		frames := faceFrames(rng, b.face, 1, ts0, 8)
		frames[2].Faces, frames[3].Faces = 2, 3
		v := b.run(t, "alice", "alice", frames, seedItems())
		if v.VerifiedAction || violationCount(v, "multiple_faces") != 2 {
			t.Errorf("multiple faces: %+v", v.Indicators)
		}
	})
	t.Run("user mismatch", func(t *testing.T) {
		// alice's frames, validated as mallory (who has no template): the
		// frames were compared with alice's template, not mallory's, so no
		// biometric match, and mallory is not enrolled (nor enrolled now).
		v := b.run(t, "alice", "mallory", faceFrames(rng, b.face, 1, ts0, 8), seedItems())
		in := v.Indicators
		if v.VerifiedAction || violationCount(v, "user_mismatch") == 0 || !in.PolicyViolations.HasViolations ||
			in.BiometricsMatch || in.UserEnrolled || v.IVScore != 5250 {
			t.Errorf("user mismatch: score %d %+v", v.IVScore, in)
		}
		if _, err := b.e.db.Template(b.e.org.ID, "mallory"); err == nil {
			t.Error("user mismatch enrolled the requested user")
		}
	})
	t.Run("action mismatch", func(t *testing.T) {
		// A genuine session collected for a wire transfer, validated as a
		// payee change: what the user approved was not this action.
		e := b.e
		genuine := func(user string) session {
			s := b.session(user)
			if r := e.postEvents(s, mustJSON(eventsJSON{Fields: seedFields(), Frames: faceFrames(rng, b.face, 1, ts0, 8)})); r.status != 202 {
				t.Fatalf("events: %s", r)
			}
			return s
		}
		asPayeeChange := func(body []byte) []byte {
			return bytes.Replace(body, []byte(`"action":"wire_transfer"`), []byte(`"action":"payee_change"`), 1)
		}
		s := genuine("alice")
		v := parseVerdict(t, e.validateWhenScored(asPayeeChange(e.validateBody(s, false, seedItems()...))))
		in := v.Indicators
		if v.VerifiedAction || violationCount(v, "action_mismatch") != 1 || !in.PolicyViolations.HasViolations ||
			!in.ValuesMatch || !in.BiometricsMatch {
			t.Errorf("action mismatch: score %d %+v", v.IVScore, in)
		}
		// The same session validated for its own action is verified.
		v = parseVerdict(t, e.validateWhenScored(e.validateBody(s, false, seedItems()...)))
		if !v.VerifiedAction || v.Indicators.PolicyViolations.HasViolations {
			t.Errorf("own action: %+v", v.Indicators)
		}
		// Nor does such a session enroll anyone.
		s = genuine("carol")
		if v = parseVerdict(t, e.validateWhenScored(asPayeeChange(e.validateBody(s, true, seedItems()...)))); v.Indicators.UserEnrolled || violationCount(v, "action_mismatch") != 1 {
			t.Errorf("enrollment with another action: %+v", v.Indicators)
		}
		if _, err := e.db.Template(e.org.ID, "carol"); err == nil {
			t.Error("a session of another action enrolled its user")
		}
	})
	t.Run("tampered amount", func(t *testing.T) {
		items := seedItems()
		items[0]["value"] = 3500
		v := b.run(t, "alice", "alice", faceFrames(rng, b.face, 1, ts0, 8), items)
		if v.VerifiedAction || v.Indicators.ValuesMatch || v.Indicators.MatchDetails["amount"].Reason != "mismatch" ||
			!v.Indicators.BiometricsMatch {
			t.Errorf("tampered amount: %+v", v.Indicators)
		}
	})
	t.Run("frame gap and order", func(t *testing.T) {
		frames := faceFrames(rng, b.face, 1, ts0, 8)
		frames[5].TS += 10000
		frames[6].TS, frames[7].TS = frames[5].TS+100, frames[5].TS+200
		frames[3].Seq = 1
		v := b.run(t, "alice", "alice", frames, seedItems())
		if v.VerifiedAction || violationCount(v, "frame_gap") != 1 || violationCount(v, "out_of_order") != 1 {
			t.Errorf("gap and order: %+v", v.Indicators.PolicyViolations)
		}
	})
	t.Run("many frames across requests", func(t *testing.T) {
		v := b.run(t, "alice", "alice", faceFrames(rng, b.face, 1, ts0, 150), seedItems())
		if !v.VerifiedAction || v.Indicators.PolicyViolations.TotalFrames != 150 {
			t.Errorf("150 frames: %+v", v.Indicators.PolicyViolations)
		}
	})
}

// TestReenrollmentRescores: after a user's template changes, a validate of a
// session scored against the old one rescores it from the stored frames.
func TestReenrollmentRescores(t *testing.T) {
	b := newBiometricScenario(t)
	e := b.e
	rng := newRand(400)
	// A session scored against the current template.
	s := b.session("alice")
	e.postEvents(s, mustJSON(eventsJSON{Fields: seedFields(), Frames: faceFrames(rng, b.face, 1, 1763800000100, 8)}))
	e.waitScored(s)
	sess, _ := e.db.Session(e.org.ID, s.csid)
	before := append([]byte(nil), sess.Aggregate...)
	// The operator resets the template; the user re-enrolls in another session.
	if err := e.db.DeleteTemplate(e.org.ID, "alice"); err != nil {
		t.Fatal(err)
	}
	s2 := b.session("alice")
	e.postEvents(s2, mustJSON(eventsJSON{Fields: seedFields(), Frames: faceFrames(rng, b.face, 1, 1763800000100, 8)}))
	if v := parseVerdict(t, e.validateWhenScored(e.validateBody(s2, true, seedItems()...))); !v.Indicators.UserEnrolled {
		t.Fatalf("re-enrollment: %+v", v.Indicators)
	}
	v := parseVerdict(t, e.validate(e.validateBody(s, false, seedItems()...)))
	if !v.VerifiedAction || v.Indicators.PolicyViolations.VerifiedFrames != 8 {
		t.Errorf("old session after re-enrollment: %+v", v.Indicators)
	}
	sess, _ = e.db.Session(e.org.ID, s.csid)
	if bytes.Equal(before, sess.Aggregate) {
		t.Error("the rescored aggregate was not saved")
	}
}

// TestDamagedTemplate: a validate reads only the header of a template its
// session's frames were scored against, and decodes the vector, checking
// it, when it scores frames against it. A template damaged where the
// validate reads it is a logged 500, never a decision.
func TestDamagedTemplate(t *testing.T) {
	b := newBiometricScenario(t)
	e := b.e
	rng := newRand(410)
	s := b.session("alice")
	e.postEvents(s, mustJSON(eventsJSON{Fields: seedFields(), Frames: faceFrames(rng, b.face, 1, 1763800000100, 8)}))
	e.waitScored(s)
	good, err := e.db.Template(e.org.ID, "alice")
	if err != nil {
		t.Fatal(err)
	}
	var tm biometric.Template
	if err := tm.Decode(good); err != nil {
		t.Fatal(err)
	}
	put := func(tm *biometric.Template) {
		t.Helper()
		if err := e.db.PutTemplate(e.org.ID, "alice", tm.AppendBinary(nil)); err != nil {
			t.Fatal(err)
		}
	}
	// The vector is damaged, the version kept: the frames were scored
	// against this version, so the validate needs no vector and decides.
	damaged := biometric.Template{Version: tm.Version, Vec: slices.Clone(tm.Vec)}
	damaged.Vec[0] = float32(math.NaN())
	put(&damaged)
	if v := parseVerdict(t, e.validate(e.validateBody(s, false, seedItems()...))); !v.VerifiedAction {
		t.Fatalf("a session scored against the current version: %+v", v.Indicators)
	}
	// A new version: the session must be rescored against it, and the
	// vector does not decode.
	damaged.Version++
	put(&damaged)
	if r := e.validate(e.validateBody(s, false, seedItems()...)); r.status != 500 {
		t.Errorf("rescoring against a damaged template: %v", r)
	}
	// Frames that arrive now cannot be scored against it: the validate
	// says so rather than "processing" for ever.
	s2 := b.session("alice")
	e.postEvents(s2, mustJSON(eventsJSON{Fields: seedFields(), Frames: faceFrames(rng, b.face, 1, 1763800000100, 4)}))
	if r := e.validate(e.validateBody(s2, false, seedItems()...)); r.status != 500 {
		t.Errorf("frames waiting on a damaged template: %v", r)
	}
	// A damaged header is refused whatever the validate needs.
	raw := damaged.AppendBinary(nil)
	raw[0] = 0
	if err := e.db.PutTemplate(e.org.ID, "alice", raw); err != nil {
		t.Fatal(err)
	}
	if r := e.validate(e.validateBody(s, false, seedItems()...)); r.status != 500 {
		t.Errorf("a template whose header is damaged: %v", r)
	}
	if n := strings.Count(e.logs.String(), "stored template does not decode"); n < 2 {
		t.Errorf("%d damaged templates logged:\n%s", n, e.logs)
	}
}

// TestEnrollmentRefused: enrollment needs matching values; a refused
// enrollment leaves the user unenrolled.
func TestEnrollmentRefused(t *testing.T) {
	e := newEnv(t)
	rng := newRand(500)
	face := unitVec(rng, testDim)
	s := e.newSession("refused-0001", "bob")
	e.postEvents(s, mustJSON(eventsJSON{Fields: seedFields(), Frames: faceFrames(rng, face, 1, 1763800000100, 8)}))
	items := seedItems()
	items[1]["value"] = 7
	v := parseVerdict(t, e.validateWhenScored(e.validateBody(s, true, items...)))
	if v.Indicators.UserEnrolled {
		t.Error("enrolled with mismatching values")
	}
	if _, err := e.db.Template(e.org.ID, "bob"); err == nil {
		t.Error("template stored")
	}
	// Too few frames.
	s2 := e.newSession("refused-0002", "bob")
	e.postEvents(s2, mustJSON(eventsJSON{Frames: faceFrames(rng, face, 1, 1763800000100, 2)}))
	if v := parseVerdict(t, e.validateWhenScored(e.validateBody(s2, true))); v.Indicators.UserEnrolled {
		t.Error("enrolled with two frames")
	}
	// Passive enrollment (an org setting) enrolls a first successful session.
	if err := e.db.SetOrgPolicy(e.org.ID, []byte(`{"enrollment":"passive"}`)); err != nil {
		t.Fatal(err)
	}
	s3 := e.newSession("passive-0001", "carol")
	e.postEvents(s3, mustJSON(eventsJSON{Fields: seedFields(), Frames: faceFrames(rng, face, 1, 1763800000100, 8)}))
	// It enrolls carol but does not verify her: any face would do for a
	// first session. Her next session is verified against that template.
	if v := parseVerdict(t, e.validateWhenScored(e.validateBody(s3, false, seedItems()...))); !v.Indicators.UserEnrolled ||
		v.VerifiedAction || v.Indicators.BiometricsMatch {
		t.Errorf("passive enrollment: %+v", v)
	}
	s4 := e.newSession("passive-0002", "carol")
	e.postEvents(s4, mustJSON(eventsJSON{Fields: seedFields(), Frames: faceFrames(rng, face, 1, 1763800000100, 8)}))
	if v := parseVerdict(t, e.validateWhenScored(e.validateBody(s4, false, seedItems()...))); !v.Indicators.UserEnrolled ||
		!v.VerifiedAction || !v.Indicators.BiometricsMatch {
		t.Errorf("passive, second session: %+v", v)
	}
	if !strings.Contains(e.do(req{path: "/metrics"}).String(), "countersign_enrollments_total 1") {
		t.Error("enrollment not counted")
	}
}

// TestActionOptional: a session and a validate may each leave the action
// out; only two named actions that differ are action_mismatch. A session
// opened without one enrolls and is verified like any other.
func TestActionOptional(t *testing.T) {
	e := newEnv(t)
	face := unitVec(newRand(300), testDim)
	rng := newRand(301)
	collect := func(s session, ts0 int64) {
		t.Helper()
		if r := e.postEvents(s, mustJSON(eventsJSON{Fields: seedFields(), Frames: faceFrames(rng, face, 1, ts0, 8), Final: true})); r.status != 202 {
			t.Fatalf("events: %s", r)
		}
	}

	// Enrollment over a session without action, validated without one.
	s := e.newSessionFor("noaction-0001", "alice", "")
	collect(s, 1763800000100)
	v := parseVerdict(t, e.validateWhenScored(e.validateBodyFor("", s, true, seedItems()...)))
	if !v.Indicators.UserEnrolled || v.ViolationNames() != "" {
		t.Fatalf("enrollment without action: enrolled %v, violations %q", v.Indicators.UserEnrolled, v.ViolationNames())
	}
	if st := jsonMap(t, e.do(req{path: "/v1/sessions/" + s.csid, headers: e.withKey()}).body); st["action"] != "" {
		t.Errorf("status of a session without action: action %v", st["action"])
	}

	// A session without action, validated naming one: verified.
	s = e.newSessionFor("noaction-0002", "alice", "")
	collect(s, 1763800010100)
	if v := parseVerdict(t, e.validateWhenScored(e.validateBodyFor("wire_transfer", s, false, seedItems()...))); !v.VerifiedAction || v.ViolationNames() != "" {
		t.Errorf("session without action, validate with one: verified %v, violations %q", v.VerifiedAction, v.ViolationNames())
	}

	// A session naming an action: validated without one, verified; naming
	// another, action_mismatch and not verified; naming the same, verified.
	s = e.newSessionFor("action-0003", "alice", "wire_transfer")
	collect(s, 1763800020100)
	for _, c := range []struct {
		action   string
		verified bool
		names    string
	}{
		{"", true, ""},
		{"login", false, "action_mismatch"},
		{"wire_transfer", true, ""},
	} {
		v := parseVerdict(t, e.validateWhenScored(e.validateBodyFor(c.action, s, false, seedItems()...)))
		if v.VerifiedAction != c.verified || v.ViolationNames() != c.names {
			t.Errorf("validate with action %q: verified %v, violations %q; want %v, %q", c.action, v.VerifiedAction, v.ViolationNames(), c.verified, c.names)
		}
	}
}
