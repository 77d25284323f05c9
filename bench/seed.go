package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/valyala/fasthttp"

	"github.com/countersign/countersign/client"
	"github.com/countersign/countersign/simulate"
)

// SeedMix is the scenario of each seeded session in a cycle, after each
// user's enrollment: half genuine, a quarter values-only (the documented
// example: no frames, a user never enrolled), an impostor and a replay.
var SeedMix = []string{"genuine", "genuine", "impostor", "genuine", "values_only", "genuine", "replay", "values_only"}

// SeedOptions says what Seed creates.
type SeedOptions struct {
	// Sessions is the number of sessions to seed for validate, enrollment
	// sessions included (one per user, then the SeedMix cycle).
	Sessions int
	// Parallel is the number of simulated clients seeding at once; 0 means 8.
	Parallel int
	// Mix overrides SeedMix.
	Mix []string
	// EventSessions is the number of extra sessions, without frames, created
	// for the events ingestion load; each gets EventBodies pre-built posts.
	EventSessions, EventBodies int
	// FramesPerPost is the number of frames in each events post; 0 means
	// simulate.FramesPerPost.
	FramesPerPost int
	// Dim is the embedding dimension; 0 means simulate.DefaultDim.
	Dim int
	// Seed makes the frames reproducible.
	Seed uint64
	// RunID prefixes csids and user ids; empty derives one from the clock.
	RunID string
	// Log receives progress lines; nil discards them.
	Log io.Writer
}

// SeededSession is one session ready to be validated under load.
type SeededSession struct {
	Scenario string `json:"scenario"`
	CSID     string `json:"csid"`
	UserID   string `json:"userID"`
	// Body is the validate request body.
	Body []byte `json:"-"`
	// Verified and Score are what the seeding validate decided.
	Verified bool `json:"verifiedAction"`
	Score    int  `json:"ivScore"`
}

// EventSession is a session that receives events posts under load.
type EventSession struct {
	CSID, UserID, CollectToken string
	// Bodies are gzip-compressed events posts of the user's genuine frames,
	// with sequence numbers rising across the bodies.
	Bodies [][]byte
	// Frames are the frames of Bodies, in order. Once a session's Bodies are
	// used up, EventsOp builds each further post from them afresh, with new
	// sequence numbers: a body posted twice is a re-delivery that the server
	// acknowledges without storing or scoring, so re-posting would measure
	// retries, not ingestion.
	Frames []client.Frame
	// TS0 is the device time of sequence number 0.
	TS0 int64
}

// Seeded is what Seed created.
type Seeded struct {
	CID           string          `json:"-"`
	Sessions      []SeededSession `json:"-"`
	EventSessions []EventSession  `json:"-"`
	// ByScenario counts the validate sessions of each scenario.
	ByScenario map[string]int `json:"byScenario"`
	// Unexpected counts sessions whose seeding decision was not what the
	// scenario expects (kept for the load all the same); Notes says why
	// for the first few.
	Unexpected int      `json:"unexpected"`
	Notes      []string `json:"notes,omitempty"`
	// Failed counts sessions that could not be seeded (not used).
	Failed int `json:"failed"`
	// Frames is the number of frames sent and scored while seeding.
	Frames int `json:"frames"`
	// Sample is a genuine decision's exact answer, the ceiling's body.
	Sample  []byte  `json:"-"`
	Seconds float64 `json:"seconds"`
	// FramesPerPost is the number of frames in each events body.
	FramesPerPost int `json:"framesPerPost,omitempty"`
	// Enrolled are the users whose enrollment succeeded, and RunID the
	// prefix of the run's csids and user ids.
	Enrolled []string `json:"-"`
	RunID    string   `json:"-"`
}

// ErrSeed is returned when too many sessions could not be seeded.
var ErrSeed = errors.New("bench: seeding failed")

// Seed creates sessions through the public API as the client SDK and a
// backend would: each user enrolls, then plays the SeedMix scenarios, each
// session's values and frames posted (gzip) and validated, polling while the
// server answers 202 processing, so that every frame is scored when Seed
// returns. It then creates the events sessions and pre-builds their bodies.
func Seed(ctx context.Context, cfg client.Config, o SeedOptions) (*Seeded, error) {
	start := time.Now()
	if o.Parallel <= 0 {
		o.Parallel = 8
	}
	if len(o.Mix) == 0 {
		o.Mix = SeedMix
	}
	if o.Dim <= 0 {
		o.Dim = simulate.DefaultDim
	}
	if o.FramesPerPost <= 0 {
		o.FramesPerPost = simulate.FramesPerPost
	}
	if o.RunID == "" {
		o.RunID = "bench" + strconv.FormatInt(time.Now().UnixNano(), 36)
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	plan := []*simulate.Scenario{mustScenario("enroll")}
	for _, name := range o.Mix {
		sc, ok := simulate.ScenarioByName(name)
		if !ok {
			return nil, fmt.Errorf("bench: unknown seed scenario %q", name)
		}
		plan = append(plan, sc)
	}
	cfg.Gzip = true
	sdk, err := client.NewClient(cfg)
	if err != nil {
		return nil, err
	}

	users := (o.Sessions + len(plan) - 1) / len(plan)
	next := atomic.Int64{} // next user index
	left := atomic.Int64{} // sessions still to seed
	left.Store(int64(o.Sessions))
	var mu sync.Mutex
	out := &Seeded{CID: cfg.CID, ByScenario: map[string]int{}, FramesPerPost: o.FramesPerPost}
	var enrolled []string
	var wg sync.WaitGroup
	for w := range min(o.Parallel, max(users, 1)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sim := simulate.NewSimulator(sdk, o.RunID+"-s"+strconv.Itoa(w), o.Dim, o.Seed+uint64(w))
			for ctx.Err() == nil {
				u := int(next.Add(1))
				if u > users {
					return
				}
				user := sim.User(u)
				for _, sc := range plan {
					if left.Add(-1) < 0 {
						return
					}
					res := sim.Run(ctx, sc, user)
					mu.Lock()
					out.add(sc, res, cfg.CID)
					if sc.Enrollment && res.Err == nil {
						enrolled = append(enrolled, user)
					}
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out.Enrolled, out.RunID = enrolled, o.RunID
	fmt.Fprintf(o.Log, "seeded %d sessions (%d failed, %d unexpected decisions) in %v\n",
		len(out.Sessions), out.Failed, out.Unexpected, time.Since(start).Round(time.Millisecond))
	if o.Sessions > 0 && (len(out.Sessions) == 0 || out.Failed*10 > o.Sessions) {
		return out, fmt.Errorf("%w: %d of %d sessions failed; first: %v", ErrSeed, out.Failed, o.Sessions, first(out.Notes))
	}

	if o.EventSessions > 0 {
		if len(enrolled) == 0 {
			enrolled = []string{o.RunID + "-events"}
		}
		if err := out.seedEvents(sdk, o, enrolled); err != nil {
			return out, err
		}
		fmt.Fprintf(o.Log, "created %d events sessions with %d bodies of %d frames each\n",
			len(out.EventSessions), o.EventBodies, o.FramesPerPost)
	}
	out.Seconds = time.Since(start).Seconds()
	return out, nil
}

func first(notes []string) string {
	if len(notes) == 0 {
		return "none"
	}
	return notes[0]
}

func mustScenario(name string) *simulate.Scenario {
	sc, ok := simulate.ScenarioByName(name)
	if !ok {
		panic("bench: no scenario " + name)
	}
	return sc
}

// add records one seeding outcome.
func (s *Seeded) add(sc *simulate.Scenario, res simulate.Outcome, cid string) {
	note := func(err error) {
		if len(s.Notes) < 5 {
			s.Notes = append(s.Notes, fmt.Sprintf("%s %s: %v", sc.Name, res.CSID, err))
		}
	}
	d := res.Decision
	if d == nil {
		s.Failed++
		note(res.Err)
		return
	}
	if res.Err != nil {
		s.Unexpected++
		note(res.Err)
	}
	if sc.Frames != nil {
		s.Frames += d.Indicators.PolicyViolations.TotalFrames
	}
	items := simulate.SeedSessionData()
	if sc.SessionData != nil {
		items = sc.SessionData()
	}
	req := client.ValidateRequest{CSID: res.CSID, UserID: res.User, Action: "transfer", SessionData: items}
	if sc.OtherUser {
		req.UserID = res.User + ".other"
	}
	s.Sessions = append(s.Sessions, SeededSession{
		Scenario: sc.Name, CSID: res.CSID, UserID: req.UserID,
		Body:     req.AppendJSON(nil, cid),
		Verified: d.VerifiedAction, Score: d.IVScore,
	})
	s.ByScenario[sc.Name]++
	if s.Sample == nil && sc.Name == "genuine" && res.Err == nil {
		s.Sample = d.Raw
	}
}

// seedEvents creates the events sessions, each for one of users, and builds
// their bodies.
func (s *Seeded) seedEvents(sdk *client.Client, o SeedOptions, users []string) error {
	if o.EventBodies <= 0 {
		o.EventBodies = 16
	}
	faces := simulate.NewFaces(o.Dim, o.Seed^0xe7e57)
	ts0 := time.Now().UnixMilli()
	var zb bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&zb, gzip.DefaultCompression)
	for k := range o.EventSessions {
		user := users[k%len(users)]
		csid := o.RunID + "-ev-" + strconv.Itoa(k)
		sess, err := sdk.CreateSession(csid, user, "transfer")
		if err != nil {
			return fmt.Errorf("%w: events session: %v", ErrSeed, err)
		}
		es := EventSession{CSID: csid, UserID: user, CollectToken: sess.CollectToken, TS0: ts0}
		id := faces.Identity(simulate.IdentitySeed(user))
		seq := uint64(0)
		for range o.EventBodies {
			ev := client.Events{Frames: make([]client.Frame, o.FramesPerPost)}
			for j := range ev.Frames {
				seq++
				ev.Frames[j] = faces.LiveFrame(id, seq, ts0, 1)
			}
			body, err := gzipEvents(zw, &zb, &ev)
			if err != nil {
				return err
			}
			es.Bodies = append(es.Bodies, body)
			es.Frames = append(es.Frames, ev.Frames...)
		}
		s.EventSessions = append(s.EventSessions, es)
	}
	return nil
}

// gzipEvents is ev's JSON gzip-compressed through zw into zb, copied out.
func gzipEvents(zw *gzip.Writer, zb *bytes.Buffer, ev *client.Events) ([]byte, error) {
	zb.Reset()
	zw.Reset(zb)
	if _, err := zw.Write(ev.AppendJSON(nil)); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return bytes.Clone(zb.Bytes()), nil
}

// ValidateOp is POST /v1/validate of the seeded sessions, round-robin, with
// the organization's API key. Pointed at a ceiling's address, it measures
// the ceiling with the very same requests.
func ValidateOp(name, addr, apiKey string, sessions []SeededSession) *Op {
	uri := "http://" + addr + "/v1/validate"
	bodies := make([][]byte, len(sessions))
	for i := range sessions {
		bodies[i] = sessions[i].Body
	}
	if len(bodies) == 0 {
		bodies = [][]byte{ValidateBody("cid_none", "none")}
	}
	return &Op{
		Name:   name,
		Expect: fasthttp.StatusOK,
		Setup: func(req *fasthttp.Request) {
			req.SetRequestURI(uri)
			req.Header.SetContentType("application/json")
			req.Header.Set("apikey", apiKey)
		},
		Prepare: func(i uint64, req *fasthttp.Request) {
			req.SetBodyRaw(bodies[i%uint64(len(bodies))])
		},
	}
}

// ValidateBody is the documented validate body for one session.
func ValidateBody(cid, csid string) []byte {
	r := client.ValidateRequest{CSID: csid, UserID: "user", Action: "transfer", SessionData: simulate.SeedSessionData()}
	return r.AppendJSON(nil, cid)
}

// EventsOp is POST /v1/sessions/{csid}/events of gzip bodies: the op's
// i-th post goes to session i mod len(sessions) with that session's next
// post. The first posts are the pre-built Bodies; after them each post is
// built afresh from the session's Frames with rising sequence numbers (the
// same embeddings again: stored and scored, and flagged as replays, which
// costs the server what ingestion costs), so every post is stored, never
// acknowledged as a re-delivery. The op counts its posts itself, across
// every run that uses it, not by the index a run gives Prepare (which
// starts at 0 in each run): a second phase with the same op (the overload
// scenario's unloaded and overload loops after its closed loop) would
// otherwise re-send the first phase's posts, each a re-delivery answered
// without a write, and measure those instead of ingestion.
func EventsOp(addr, cid string, sessions []EventSession, framesPerPost int) *Op {
	return eventsOp(addr, cid, sessions, framesPerPost, false)
}

// eventsOp is EventsOp; with recycle, the pre-built Bodies are posted
// again and again instead of fresh ones built past them. A ceiling, which
// stores nothing, cannot tell a re-delivery, and building fresh gzip bodies
// at its rate would measure the generator.
func eventsOp(addr, cid string, sessions []EventSession, framesPerPost int, recycle bool) *Op {
	uris := make([]string, len(sessions))
	for i, s := range sessions {
		uris[i] = "http://" + addr + "/v1/sessions/" + s.CSID + "/events"
	}
	n := uint64(len(sessions))
	var posts atomic.Uint64 // the op's posts so far, across runs
	return &Op{
		Name:   "events",
		Expect: fasthttp.StatusAccepted,
		Frames: framesPerPost,
		Setup: func(req *fasthttp.Request) {
			req.Header.SetContentType("application/json")
			req.Header.Set("Content-Encoding", "gzip")
			req.Header.Set("x-client-id", cid)
		},
		Prepare: func(_ uint64, req *fasthttp.Request) {
			i := posts.Add(1) - 1
			s := &sessions[i%n]
			req.SetRequestURI(uris[i%n])
			req.Header.Set("x-collect-token", s.CollectToken)
			p := i / n
			if recycle {
				p %= uint64(len(s.Bodies))
			}
			if p < uint64(len(s.Bodies)) {
				req.SetBodyRaw(s.Bodies[p])
				return
			}
			freshEventsBody(req, s, p, framesPerPost)
		},
	}
}

// eventsScratch is what freshEventsBody reuses across posts.
type eventsScratch struct {
	ev   client.Events
	js   []byte
	zb   bytes.Buffer
	zw   *gzip.Writer
	init bool
}

var eventsScratchPool = sync.Pool{New: func() any { return new(eventsScratch) }}

// freshEventsBody sets req's body to the p-th post of session s: framesPerPost
// frames taken in turn from s.Frames, numbered from p*framesPerPost+1.
func freshEventsBody(req *fasthttp.Request, s *EventSession, p uint64, framesPerPost int) {
	sc := eventsScratchPool.Get().(*eventsScratch)
	defer eventsScratchPool.Put(sc)
	if !sc.init {
		sc.zw, _ = gzip.NewWriterLevel(&sc.zb, gzip.DefaultCompression)
		sc.init = true
	}
	sc.ev.Frames = sc.ev.Frames[:0]
	for j := range framesPerPost {
		seq := p*uint64(framesPerPost) + uint64(j) + 1
		f := s.Frames[int(seq-1)%len(s.Frames)]
		f.Seq, f.TS = seq, s.TS0+int64(seq)*simulate.FrameStepMS
		sc.ev.Frames = append(sc.ev.Frames, f)
	}
	sc.js = sc.ev.AppendJSON(sc.js[:0])
	sc.zb.Reset()
	sc.zw.Reset(&sc.zb)
	_, _ = sc.zw.Write(sc.js)
	_ = sc.zw.Close()
	req.SetBody(sc.zb.Bytes())
}
