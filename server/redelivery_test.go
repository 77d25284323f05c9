package server

import (
	"encoding/json"
	"testing"
)

// eventsAnswer is the body of a 202 to POST /v1/sessions/{csid}/events.
type eventsAnswer struct {
	Accepted struct{ Fields, Frames int } `json:"accepted"`
	Pending  int                          `json:"pending"`
}

func postEventsOK(t *testing.T, e *testEnv, s session, body []byte) eventsAnswer {
	t.Helper()
	r := e.postEvents(s, body)
	if r.status != 202 {
		t.Fatalf("events: %s", r)
	}
	var a eventsAnswer
	if err := json.Unmarshal(r.body, &a); err != nil {
		t.Fatalf("events answer %s: %v", r.body, err)
	}
	return a
}

// TestEventsRedelivery: a client that re-sends an events request after a
// lost response (the same frames, same seqs, same bytes) gets the same
// acceptance, and the session is scored as if it had sent them once: no
// replayed_frame, the same frame count, the same score. A replay (known
// embedding bytes under a new seq) is still flagged.
func TestEventsRedelivery(t *testing.T) {
	b := newBiometricScenario(t)
	e := b.e
	rng := newRand(400)
	const ts0 = 1763800000100
	frames := faceFrames(rng, b.face, 1, ts0, 6)
	body := mustJSON(eventsJSON{Fields: seedFields(), Frames: frames})

	once := b.session("alice")
	postEventsOK(t, e, once, body)
	want := parseVerdict(t, e.validateWhenScored(e.validateBody(once, false, seedItems()...)))
	if violationCount(want, "replayed_frame") != 0 || want.Indicators.PolicyViolations.TotalFrames != 6 {
		t.Fatalf("sent once: %+v", want.Indicators)
	}

	check := func(t *testing.T, s session) {
		t.Helper()
		v := parseVerdict(t, e.validateWhenScored(e.validateBody(s, false, seedItems()...)))
		in := v.Indicators
		if violationCount(v, "replayed_frame") != 0 || in.SpoofDetected || in.PolicyViolations.TotalFrames != 6 ||
			v.IVScore != want.IVScore || v.VerifiedAction != want.VerifiedAction || in.PolicyViolations.HasViolations {
			t.Errorf("re-delivered: score %d (want %d) %+v", v.IVScore, want.IVScore, in)
		}
	}

	t.Run("retry of the whole request", func(t *testing.T) {
		s := b.session("alice")
		first := postEventsOK(t, e, s, body)
		retry := postEventsOK(t, e, s, body)
		if first.Accepted != retry.Accepted || retry.Accepted.Frames != 6 || retry.Accepted.Fields != len(seedFields()) {
			t.Errorf("accepted %+v, then on retry %+v", first.Accepted, retry.Accepted)
		}
		if retry.Pending > 6 {
			t.Errorf("pending %d after the retry: re-delivered frames counted", retry.Pending)
		}
		if sess, err := e.db.Session(e.org.ID, s.csid); err != nil || sess.FramesReceived != 6 {
			t.Fatalf("FramesReceived %d, %v; want 6", sess.FramesReceived, err)
		}
		check(t, s)
	})
	t.Run("retry merged with the next request", func(t *testing.T) {
		s := b.session("alice")
		postEventsOK(t, e, s, mustJSON(eventsJSON{Fields: seedFields(), Frames: frames[:3]}))
		a := postEventsOK(t, e, s, body)
		if a.Accepted.Frames != 6 {
			t.Errorf("accepted %+v", a.Accepted)
		}
		check(t, s)
	})
	t.Run("replay under a new seq is flagged", func(t *testing.T) {
		s := b.session("alice")
		postEventsOK(t, e, s, body)
		replay := frames[1]
		replay.Seq, replay.TS = 7, ts0+6*400
		postEventsOK(t, e, s, mustJSON(eventsJSON{Frames: []frameJSON{replay}}))
		v := parseVerdict(t, e.validateWhenScored(e.validateBody(s, false, seedItems()...)))
		if v.VerifiedAction || !v.Indicators.SpoofDetected || violationCount(v, "replayed_frame") != 1 ||
			v.Indicators.PolicyViolations.TotalFrames != 7 {
			t.Errorf("replay: %+v", v.Indicators)
		}
	})
	t.Run("same seq with other bytes is stored and judged", func(t *testing.T) {
		s := b.session("alice")
		postEventsOK(t, e, s, body)
		changed := frames[2]
		changed.Embedding = frames[0].Embedding
		postEventsOK(t, e, s, mustJSON(eventsJSON{Frames: []frameJSON{changed}}))
		if sess, err := e.db.Session(e.org.ID, s.csid); err != nil || sess.FramesReceived != 7 {
			t.Fatalf("FramesReceived %d, %v; want 7", sess.FramesReceived, err)
		}
		v := parseVerdict(t, e.validateWhenScored(e.validateBody(s, false, seedItems()...)))
		if v.VerifiedAction || !v.Indicators.PolicyViolations.HasViolations || v.Indicators.PolicyViolations.TotalFrames != 7 {
			t.Errorf("changed frame under a used seq: %+v", v.Indicators)
		}
	})
}
