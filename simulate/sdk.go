package simulate

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/countersign/countersign/client"
)

// Outcome is what one scenario run produced.
type Outcome struct {
	Scenario string
	User     string
	CSID     string
	Decision *client.Decision // nil when a request failed
	// Err is a failed request, or the decision not being what the scenario
	// expects.
	Err     error
	Elapsed time.Duration
}

// Simulator plays scenarios for one organization: the client SDK side
// (sessions, fields, frames) and the backend side (validate). Not safe for
// concurrent use.
type Simulator struct {
	Client *client.Client
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
func NewSimulator(c *client.Client, runID string, dim int, seed uint64) *Simulator {
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

func (s *Simulator) play(ctx context.Context, sc *Scenario, user, csid string) (*client.Decision, error) {
	c := s.Client
	sess, err := c.CreateSession(csid, user, "transfer")
	if err != nil {
		return nil, err
	}
	ts0 := s.now().UnixMilli()
	var frames []client.Frame
	if sc.Frames != nil {
		frames = sc.Frames(s.Faces, user, ts0)
	}
	if _, err := c.SendEvents(ctx, sess, &client.Events{Fields: SeedFields(ts0), Final: len(frames) == 0}); err != nil {
		return nil, err
	}
	for i := 0; i < len(frames); i += FramesPerPost {
		j := min(i+FramesPerPost, len(frames))
		if _, err := c.SendEvents(ctx, sess, &client.Events{Frames: frames[i:j], Final: j == len(frames)}); err != nil {
			return nil, err
		}
	}
	items := SeedSessionData()
	if sc.SessionData != nil {
		items = sc.SessionData()
	}
	req := &client.ValidateRequest{CSID: csid, UserID: user, Action: "transfer", SessionData: items, IsEnrollment: sc.Enrollment}
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
