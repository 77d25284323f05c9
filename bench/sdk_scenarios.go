package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// SeedSessionData is the sessionData of the documented validate example: the
// values the backend is about to act on.
func SeedSessionData() []Item {
	return []Item{
		{Key: "amount", Value: `35`, Synonyms: []string{"total", "sum"}},
		{Key: "payeeID", Value: `6`, Synonyms: []string{"payee"}},
		{Key: "accountNumber", Value: `"66666666"`, Synonyms: []string{"account"}},
		{Key: "notes", Value: `"Wire transfer"`, Synonyms: []string{"memo"}},
	}
}

// SeedFields are the same values as the SDK collects them from the form the
// user saw: other field names (the synonyms) and other JSON types, which
// countersign's type-agnostic matching must still find equal.
func SeedFields(ts int64) []Field {
	return []Field{
		{Key: "total", Value: `"35.00"`, TS: ts},
		{Key: "payee", Value: `"6"`, TS: ts},
		{Key: "account", Value: `66666666`, TS: ts},
		{Key: "memo", Value: `"  wire   TRANSFER "`, TS: ts},
	}
}

// Frame evidence of a good camera on a live face.
const (
	frameStepMS     = 250
	genuineQuality  = 0.92
	genuineLiveness = 0.96
	framesPerPost   = 3
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
	Frames func(f *Faces, user string, ts0 int64) []Frame
	// SessionData is what the backend validates (default: SeedSessionData).
	SessionData func() []Item
	// Expect says what is wrong with the decision, or nil.
	Expect func(d *Decision) error
}

// Scenarios are every scenario the simulator plays, enrollment first.
var Scenarios = []*Scenario{
	{
		Name:       "enroll",
		About:      "six live frames of the user with isEnrollment:true create the face template (not verified by them)",
		Enrollment: true,
		Frames:     genuineFrames(6, 1),
		Expect: func(d *Decision) error {
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
		Expect: func(d *Decision) error {
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
		Frames: func(f *Faces, user string, ts0 int64) []Frame {
			return genuineFrames(6, 1)(f, user+"/impostor", ts0)
		},
		Expect: func(d *Decision) error {
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
		Frames: func(f *Faces, user string, ts0 int64) []Frame {
			fr := genuineFrames(6, 1)(f, user, ts0)
			fr[4].Embedding = fr[1].Embedding
			return fr
		},
		Expect: func(d *Decision) error {
			var c checks
			c.violation(d, "replayed_frame")
			c.want(d.Indicators.SpoofDetected, "iv_spoof_detected")
			c.want(!d.Indicators.Liveness, "iv_liveness false")
			c.want(!d.VerifiedAction, "verifiedAction false")
			return c.err()
		},
	},
	{
		Name:            "photo",
		About:           "a photo of the user held to the camera: a static stream",
		NeedsEnrollment: true,
		Frames: func(f *Faces, user string, ts0 int64) []Frame {
			fr := genuineFrames(8, 1)(f, user, ts0)
			for i := 1; i < len(fr); i++ {
				fr[i].Embedding = f.Static(fr[0].Embedding)
			}
			return fr
		},
		Expect: func(d *Decision) error {
			var c checks
			c.violation(d, "static_stream")
			c.want(d.Indicators.SpoofDetected, "iv_spoof_detected")
			c.want(!d.Indicators.Liveness, "iv_liveness false")
			c.want(!d.VerifiedAction, "verifiedAction false")
			return c.err()
		},
	},
	{
		Name:            "multiple_faces",
		About:           "someone else is in the picture",
		NeedsEnrollment: true,
		Frames:          genuineFrames(6, 2),
		Expect: func(d *Decision) error {
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
		Expect: func(d *Decision) error {
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
		SessionData: func() []Item {
			items := SeedSessionData()
			items[0].Value = `3500`
			return items
		},
		Expect: func(d *Decision) error {
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
		Expect: func(d *Decision) error {
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
func ScenarioNames() []string {
	names := make([]string, len(Scenarios))
	for i, s := range Scenarios {
		names[i] = s.Name
	}
	return names
}

// ScenarioByName returns the named scenario ("-" and "_" are the same).
func ScenarioByName(name string) (*Scenario, bool) {
	name = strings.ReplaceAll(name, "-", "_")
	for _, s := range Scenarios {
		if s.Name == name {
			return s, true
		}
	}
	return nil, false
}

// genuineFrames returns a frame generator of n live frames of the user, each
// showing faces faces.
func genuineFrames(n, faces int) func(f *Faces, user string, ts0 int64) []Frame {
	return func(f *Faces, user string, ts0 int64) []Frame {
		id := f.Identity(IdentitySeed(user))
		fr := make([]Frame, n)
		for i := range fr {
			fr[i] = Frame{
				Seq:       uint64(i + 1),
				TS:        ts0 + int64(i+1)*frameStepMS,
				Type:      "face",
				Faces:     faces,
				Quality:   genuineQuality,
				Liveness:  genuineLiveness,
				Embedding: f.Genuine(id),
			}
		}
		return fr
	}
}

// checks collects what a decision lacks.
type checks struct{ missing []string }

func (c *checks) want(ok bool, what string) {
	if !ok {
		c.missing = append(c.missing, what)
	}
}

func (c *checks) violation(d *Decision, kind string) {
	_, ok := d.Violation(kind)
	c.want(ok, "violation "+kind)
}

func (c *checks) err() error {
	if len(c.missing) == 0 {
		return nil
	}
	return errors.New("expected " + strings.Join(c.missing, ", "))
}

// Outcome is what one scenario run produced.
type Outcome struct {
	Scenario string
	User     string
	CSID     string
	Decision *Decision // nil when a request failed
	// Err is a failed request, or the decision not being what the scenario
	// expects.
	Err     error
	Elapsed time.Duration
}

// Simulator plays scenarios for one organization: the client SDK side
// (sessions, fields, frames) and the backend side (validate). Not safe for
// concurrent use.
type Simulator struct {
	Client *Client
	Faces  *Faces
	// Now is the device clock; nil means time.Now.
	Now func() time.Time
	// RunID prefixes csids and user ids so that runs against the same data
	// never collide (a csid is unique per organization forever).
	RunID string

	seq      int
	enrolled map[string]bool
}

// NewSimulator returns a simulator that speaks through c. seed makes the
// frames reproducible; runID should differ between runs on the same data.
func NewSimulator(c *Client, runID string, dim int, seed uint64) *Simulator {
	if runID == "" {
		runID = "sim" + strconv.FormatInt(time.Now().UnixNano(), 36)
	}
	return &Simulator{Client: c, Faces: NewFaces(dim, seed), RunID: runID, enrolled: map[string]bool{}}
}

// User is the id of the simulator's i-th user.
func (s *Simulator) User(i int) string { return s.RunID + "-u" + strconv.Itoa(i) }

func (s *Simulator) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Enrolled says whether the user enrolled during this simulator's life.
func (s *Simulator) Enrolled(user string) bool { return s.enrolled[user] }

// Run plays one scenario for user: start a session, send the form values
// (as SeedFields), stream the frames a few per post (the last post final),
// then validate and check the decision.
func (s *Simulator) Run(ctx context.Context, sc *Scenario, user string) Outcome {
	start := time.Now()
	if sc.FreshUser {
		user += ".fresh"
	}
	s.seq++
	csid := fmt.Sprintf("%s-%s-%d", s.RunID, strings.ReplaceAll(sc.Name, "_", "-"), s.seq)
	out := Outcome{Scenario: sc.Name, User: user, CSID: csid}
	d, err := s.play(ctx, sc, user, csid)
	out.Elapsed = time.Since(start)
	out.Decision = d
	if err != nil {
		out.Err = err
		return out
	}
	out.Err = sc.Expect(d)
	if sc.Enrollment && out.Err == nil {
		s.enrolled[user] = true
	}
	return out
}

func (s *Simulator) play(ctx context.Context, sc *Scenario, user, csid string) (*Decision, error) {
	c := s.Client
	sess, err := c.CreateSession(csid, user, "transfer")
	if err != nil {
		return nil, err
	}
	ts0 := s.now().UnixMilli()
	var frames []Frame
	if sc.Frames != nil {
		frames = sc.Frames(s.Faces, user, ts0)
	}
	if _, err := c.SendEvents(ctx, sess, &Events{Fields: SeedFields(ts0), Final: len(frames) == 0}); err != nil {
		return nil, err
	}
	for i := 0; i < len(frames); i += framesPerPost {
		j := min(i+framesPerPost, len(frames))
		if _, err := c.SendEvents(ctx, sess, &Events{Frames: frames[i:j], Final: j == len(frames)}); err != nil {
			return nil, err
		}
	}
	items := SeedSessionData()
	if sc.SessionData != nil {
		items = sc.SessionData()
	}
	req := &ValidateRequest{CSID: csid, UserID: user, Action: "transfer", SessionData: items, IsEnrollment: sc.Enrollment}
	if sc.OtherUser {
		req.UserID = user + ".other"
	}
	return c.Validate(ctx, req)
}

// RunAll plays the scenarios n times, each round with a new user; a
// scenario about an enrolled user is preceded by the user's enrollment when
// the user has not enrolled yet.
func (s *Simulator) RunAll(ctx context.Context, scenarios []*Scenario, n int) []Outcome {
	enroll, _ := ScenarioByName("enroll")
	var outs []Outcome
	for i := 1; i <= n; i++ {
		user := s.User(i)
		tried := false // enroll once per user, even if it fails
		for _, sc := range scenarios {
			if ctx.Err() != nil {
				return outs
			}
			if sc.Enrollment {
				tried = true
			}
			if sc.NeedsEnrollment && !s.enrolled[user] && !tried {
				tried = true
				outs = append(outs, s.Run(ctx, enroll, user))
			}
			outs = append(outs, s.Run(ctx, sc, user))
		}
	}
	return outs
}

// WriteTable prints one row per outcome: the decision's verifiedAction,
// ivScore and violations, and whether it is what the scenario expects.
func WriteTable(w io.Writer, outs []Outcome) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SCENARIO\tUSER\tVERIFIED\tIVSCORE\tVIOLATIONS\tPOLLS\tMS\tRESULT")
	for _, o := range outs {
		verified, score, viol, polls := "-", "-", "-", "-"
		if d := o.Decision; d != nil {
			verified = strconv.FormatBool(d.VerifiedAction)
			score = strconv.Itoa(d.IVScore)
			if viol = d.ViolationNames(); viol == "" {
				viol = "none"
			}
			polls = strconv.Itoa(d.Polls)
		}
		result := "ok"
		if o.Err != nil {
			result = "FAIL: " + o.Err.Error()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", o.Scenario, o.User, verified, score, viol, polls, o.Elapsed.Milliseconds(), result)
	}
	return tw.Flush()
}
