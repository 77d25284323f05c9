package simulate

import (
	"errors"
	"strings"

	"github.com/countersign/countersign/client"
)

// SeedSessionData is the sessionData of the documented validate example: the
// values the backend is about to act on.
func SeedSessionData() []client.Item {
	return []client.Item{
		{Key: "amount", Value: `35`, Synonyms: []string{"total", "sum"}},
		{Key: "payeeID", Value: `6`, Synonyms: []string{"payee"}},
		{Key: "accountNumber", Value: `"66666666"`, Synonyms: []string{"account"}},
		{Key: "notes", Value: `"Wire transfer"`, Synonyms: []string{"memo"}},
	}
}

// SeedFields are the same values as the SDK collects them from the form the
// user saw: other field names (the synonyms) and other JSON types, which
// countersign's type-agnostic matching must still find equal.
func SeedFields(ts int64) []client.Field {
	return []client.Field{
		{Key: "total", Value: `"35.00"`, TS: ts},
		{Key: "payee", Value: `"6"`, TS: ts},
		{Key: "account", Value: `66666666`, TS: ts},
		{Key: "memo", Value: `"  wire   TRANSFER "`, TS: ts},
	}
}

// The device's rhythm: a frame every FrameStepMS of device time, sent
// FramesPerPost frames to an events post.
const (
	FrameStepMS   = 250
	FramesPerPost = 3
)

// Frame evidence of a good camera on a live face.
const (
	genuineQuality  = 0.92
	genuineLiveness = 0.96
)

// Scenario is one thing a client can do, and what countersign must conclude.
type Scenario struct {
	Name  string
	About string
	// NeedsEnrollment: the scenario is about an enrolled user, so a runner
	// enrolls the user first.
	NeedsEnrollment bool
	// Enrollment sends isEnrollment:true.
	Enrollment bool
	// FreshUser uses a user that is never enrolled.
	FreshUser bool
	// OtherUser makes validate name a user other than the session's.
	OtherUser bool
	// Frames returns the frames the SDK streams; nil sends none.
	Frames func(f *Faces, user string, ts0 int64) []client.Frame
	// SessionData is what the backend validates (default: SeedSessionData).
	SessionData func() []client.Item
	// Expect says what is wrong with the decision, or nil.
	Expect func(d *client.Decision) error
}

// Scenarios are every scenario the simulator plays, enrollment first.
var Scenarios = []*Scenario{
	{
		Name:       "enroll",
		About:      "six live frames of the user with isEnrollment:true create the face template (not verified by them)",
		Enrollment: true,
		Frames:     genuineFrames(6, 1),
		Expect: func(d *client.Decision) error {
			var c checks
			c.want(d.Indicators.UserEnrolled, "iv_user_enrolled")
			// Enrollment establishes identity, it does not prove it: the
			// frames match the template built from them, which proves nothing.
			c.want(!d.Indicators.BiometricsMatch, "iv_is_biometrics_match false (a fresh template)")
			c.want(!d.VerifiedAction, "verifiedAction false")
			c.want(!d.Indicators.PolicyViolations.HasViolations, "no violations")
			c.want(d.Indicators.ValuesMatch, "iv_is_values_match")
			return c.err()
		},
	},
	{
		Name:            "genuine",
		About:           "the enrolled user, live, approves exactly the values",
		NeedsEnrollment: true,
		Frames:          genuineFrames(6, 1),
		Expect: func(d *client.Decision) error {
			var c checks
			c.want(d.VerifiedAction, "verifiedAction")
			c.want(d.IVScore >= 8000, "ivScore >= 8000")
			c.want(d.Indicators.ValuesMatch, "iv_is_values_match")
			c.want(d.Indicators.BiometricsMatch, "iv_is_biometrics_match")
			c.want(d.Indicators.Liveness, "iv_liveness")
			c.want(!d.Indicators.PolicyViolations.HasViolations, "no violations")
			return c.err()
		},
	},
	{
		Name:            "impostor",
		About:           "another person's face in the enrolled user's session",
		NeedsEnrollment: true,
		Frames: func(f *Faces, user string, ts0 int64) []client.Frame {
			return genuineFrames(6, 1)(f, user+"/impostor", ts0)
		},
		Expect: func(d *client.Decision) error {
			var c checks
			c.violation(d, "face_mismatch")
			c.want(!d.Indicators.BiometricsMatch, "iv_is_biometrics_match false")
			c.want(!d.VerifiedAction, "verifiedAction false")
			return c.err()
		},
	},
	{
		Name:            "replay",
		About:           "a recorded frame sent again, byte for byte",
		NeedsEnrollment: true,
		Frames: func(f *Faces, user string, ts0 int64) []client.Frame {
			fr := genuineFrames(6, 1)(f, user, ts0)
			fr[4].Embedding = fr[1].Embedding
			return fr
		},
		Expect: spoofed("replayed_frame"),
	},
	{
		Name:            "photo",
		About:           "a photo of the user held to the camera: a static stream",
		NeedsEnrollment: true,
		Frames: func(f *Faces, user string, ts0 int64) []client.Frame {
			fr := genuineFrames(8, 1)(f, user, ts0)
			for i := 1; i < len(fr); i++ {
				fr[i].Embedding = f.Static(fr[0].Embedding)
			}
			return fr
		},
		Expect: spoofed("static_stream"),
	},
	{
		Name:            "multiple_faces",
		About:           "someone else is in the picture",
		NeedsEnrollment: true,
		Frames:          genuineFrames(6, 2),
		Expect: func(d *client.Decision) error {
			var c checks
			c.violation(d, "multiple_faces")
			c.want(!d.VerifiedAction, "verifiedAction false")
			return c.err()
		},
	},
	{
		Name:            "user_mismatch",
		About:           "the backend validates for a user other than the session's",
		NeedsEnrollment: true,
		OtherUser:       true,
		Frames:          genuineFrames(6, 1),
		Expect: func(d *client.Decision) error {
			var c checks
			c.violation(d, "user_mismatch")
			c.want(!d.VerifiedAction, "verifiedAction false")
			// The frames were compared with the session user's template, not
			// the requested user's (who has none).
			c.want(!d.Indicators.BiometricsMatch, "iv_is_biometrics_match false")
			c.want(!d.Indicators.UserEnrolled, "iv_user_enrolled false (the requested user)")
			c.want(d.IVScore < 8000, "ivScore < 8000")
			return c.err()
		},
	},
	{
		Name:            "tampered_amount",
		About:           "the user saw 35, the backend is asked to move 3500",
		NeedsEnrollment: true,
		Frames:          genuineFrames(6, 1),
		SessionData: func() []client.Item {
			items := SeedSessionData()
			items[0].Value = `3500`
			return items
		},
		Expect: func(d *client.Decision) error {
			var c checks
			c.want(!d.Indicators.ValuesMatch, "iv_is_values_match false")
			md := d.Indicators.MatchDetails["amount"]
			c.want(!md.Matched && md.Reason == "mismatch", `iv_values_match_details.amount.reason "mismatch"`)
			c.want(d.Indicators.BiometricsMatch, "iv_is_biometrics_match (the face is genuine)")
			c.want(!d.VerifiedAction, "verifiedAction false")
			return c.err()
		},
	},
	{
		Name:      "values_only",
		About:     "the documented example: values collected and matched, no frames, no template",
		FreshUser: true,
		Expect: func(d *client.Decision) error {
			var c checks
			c.want(d.Indicators.ValuesCollected, "iv_is_values_collected")
			c.want(d.Indicators.ValuesMatch, "iv_is_values_match")
			c.want(!d.Indicators.BiometricsCollected, "iv_is_biometrics_collected false")
			c.want(d.IVScore == 2000, "ivScore 2000")
			c.want(!d.VerifiedAction, "verifiedAction false")
			return c.err()
		},
	},
}

// ScenarioNames lists the scenario names in play order.
func ScenarioNames() []string { return names(Scenarios, sdkName) }

// ScenarioByName returns the named scenario ("-" and "_" are the same).
func ScenarioByName(name string) (*Scenario, bool) { return byName(Scenarios, sdkName, name) }

func sdkName(s *Scenario) string { return s.Name }

// names lists the names of list's scenarios, in order.
func names[S any](list []S, nameOf func(S) string) []string {
	out := make([]string, len(list))
	for i, s := range list {
		out[i] = nameOf(s)
	}
	return out
}

// byName finds the scenario of list named name, where "-" and "_" are the
// same, so that a command line may spell either.
func byName[S any](list []S, nameOf func(S) string, name string) (S, bool) {
	name = strings.ReplaceAll(name, "-", "_")
	for _, s := range list {
		if nameOf(s) == name {
			return s, true
		}
	}
	var zero S
	return zero, false
}

// genuineFrames returns a frame generator of n live frames of the user, each
// showing faces faces.
func genuineFrames(n, faces int) func(f *Faces, user string, ts0 int64) []client.Frame {
	return func(f *Faces, user string, ts0 int64) []client.Frame {
		id := f.Identity(IdentitySeed(user))
		fr := make([]client.Frame, n)
		for i := range fr {
			fr[i] = f.LiveFrame(id, uint64(i+1), ts0, faces)
		}
		return fr
	}
}

// LiveFrame is frame seq of a good camera on the live person whose identity
// is id, with faces faces in the picture, taken at device time
// ts0 + seq*FrameStepMS. Each call draws a new genuine embedding.
func (f *Faces) LiveFrame(id []float32, seq uint64, ts0 int64, faces int) client.Frame {
	return client.Frame{
		Seq:       seq,
		TS:        ts0 + int64(seq)*FrameStepMS,
		Type:      "face",
		Faces:     faces,
		Quality:   genuineQuality,
		Liveness:  genuineLiveness,
		Embedding: f.Genuine(id),
	}
}

// spoofed expects what countersign concludes of a stream that is not a live
// face: the violation kind, a spoof detected, no liveness, no verified action.
func spoofed(kind string) func(d *client.Decision) error {
	return func(d *client.Decision) error {
		var c checks
		c.violation(d, kind)
		c.want(d.Indicators.SpoofDetected, "iv_spoof_detected")
		c.want(!d.Indicators.Liveness, "iv_liveness false")
		c.want(!d.VerifiedAction, "verifiedAction false")
		return c.err()
	}
}

// checks collects what a decision lacks.
type checks struct{ missing []string }

func (c *checks) want(ok bool, what string) {
	if !ok {
		c.missing = append(c.missing, what)
	}
}

func (c *checks) violation(d *client.Decision, kind string) {
	_, ok := d.Violation(kind)
	c.want(ok, "violation "+kind)
}

func (c *checks) err() error {
	if len(c.missing) == 0 {
		return nil
	}
	return errors.New("expected " + strings.Join(c.missing, ", "))
}
