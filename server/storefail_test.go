package server

import (
	"bytes"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/klauspost/compress/zstd"

	"github.com/countersign/countersign/engine/biometric"
	"github.com/countersign/countersign/store"
)

// TestEnrollmentLostRaceEnrollsNoOne: the template an enrollment makes is
// stored with its decision. A validate that loses the race for its
// Idempotency-Key (another request's decision is stored between its replay
// check and its own write) answers 422 and must not have enrolled its user.
func TestEnrollmentLostRaceEnrollsNoOne(t *testing.T) {
	var env atomic.Pointer[testEnv]
	var armed atomic.Bool
	var winnerErr atomic.Value
	e := newEnv(t, withConfig(func(c *Config) {
		// The server reads its clock once per validate, just before it
		// stores the decision: the moment the concurrent winner lands.
		c.Now = func() time.Time {
			e := env.Load()
			if e == nil {
				return time.UnixMilli(1763800000000)
			}
			if armed.CompareAndSwap(true, false) {
				d := store.Decision{ID: e.db.NewDecisionID(), OrgID: e.org.ID, CSID: "winner-0001", UserID: "someone",
					Response: []byte(`{"success":true}`)}
				if err := e.db.PutDecision(&d, []byte("race-1"), [32]byte{1}); err != nil {
					winnerErr.Store(err)
				}
			}
			return e.clock()
		}
	}))
	env.Store(e)
	rng := newRand(600)
	face := unitVec(rng, testDim)
	s := e.newSession("race-0001", "alice")
	e.postEvents(s, mustJSON(eventsJSON{Fields: seedFields(), Frames: faceFrames(rng, face, 1, 1763800000100, 8), Final: true}))
	e.waitScored(s)
	armed.Store(true)
	r := e.validate(e.validateBody(s, true, seedItems()...), "Idempotency-Key", "race-1")
	if armed.Load() || winnerErr.Load() != nil {
		t.Fatalf("the winner was not stored: armed %v, %v", armed.Load(), winnerErr.Load())
	}
	if r.status != 422 {
		t.Errorf("loser of the idempotency race: %s", r)
	}
	if _, err := e.db.Template(e.org.ID, "alice"); err != store.ErrNotFound {
		t.Errorf("the loser enrolled its user: %v", err)
	}
	if m := e.do(req{path: "/metrics"}).String(); !strings.Contains(m, "countersign_enrollments_total 0") {
		t.Error("an enrollment that was not stored was counted")
	}
	// The same enrollment under a fresh key is stored, and enrolls.
	v := parseVerdict(t, e.validate(e.validateBody(s, true, seedItems()...), "Idempotency-Key", "race-2"))
	if !v.Indicators.UserEnrolled {
		t.Fatalf("enrollment: %+v", v.Indicators)
	}
	if _, err := e.db.Template(e.org.ID, "alice"); err != nil {
		t.Errorf("template after the stored enrollment: %v", err)
	}
}

// TestRescoreSkipsUndecodableFrame: a stored frame that does not decode is
// covered and counted as an unverified frame, by the worker and by a
// validate's rescore alike; the rescore must not leave it "unscored", or the worker would fold
// the frame after it a second time and report a replayed_frame.
func TestRescoreSkipsUndecodableFrame(t *testing.T) {
	b := newBiometricScenario(t)
	e := b.e
	rng := newRand(700)
	s := b.session("alice")
	e.postEvents(s, mustJSON(eventsJSON{Fields: seedFields(), Frames: faceFrames(rng, b.face, 1, 1763800000100, 4)}))
	if _, err := e.db.AppendEvents(e.org.ID, s.csid, nil, [][]byte{[]byte("not a frame")}, false); err != nil {
		t.Fatal(err)
	}
	e.postEvents(s, mustJSON(eventsJSON{Frames: faceFrames(rng, b.face, 5, 1763800000100+4*400, 4), Final: true}))
	e.waitScored(s)
	// A new template: the next validate of s rescores it from its frames.
	if err := e.db.DeleteTemplate(e.org.ID, "alice"); err != nil {
		t.Fatal(err)
	}
	s2 := b.session("alice")
	e.postEvents(s2, mustJSON(eventsJSON{Fields: seedFields(), Frames: faceFrames(rng, b.face, 1, 1763800000100, 8)}))
	if v := parseVerdict(t, e.validateWhenScored(e.validateBody(s2, true, seedItems()...))); !v.Indicators.UserEnrolled {
		t.Fatalf("re-enrollment: %+v", v.Indicators)
	}
	before, err := e.db.Session(e.org.ID, s.csid)
	if err != nil {
		t.Fatal(err)
	}
	body := e.validateBody(s, false, seedItems()...)
	v := parseVerdict(t, e.validate(body))
	// 9 arrivals: 8 verified frames and the undecodable one, counted unverified.
	if in := v.Indicators.PolicyViolations; in.TotalFrames != 9 || in.VerifiedFrames != 8 || in.HasViolations {
		t.Errorf("rescored session: %+v", v.Indicators)
	}
	sess, err := e.db.Session(e.org.ID, s.csid)
	if err != nil || sess.FramesScored != sess.FramesReceived || sess.FramesReceived != 9 {
		t.Fatalf("after the rescore: scored %d of %d, %v", sess.FramesScored, sess.FramesReceived, err)
	}
	// Saved as covering all 9 arrivals: saved as covering 8 it would be
	// refused as stale (or, had a frame arrived meanwhile, accepted with
	// one frame counted both as scored and as not).
	if bytes.Equal(sess.Aggregate, before.Aggregate) {
		t.Error("the rescored aggregate was not saved")
	}
	v = parseVerdict(t, e.validateWhenScored(body))
	if in := v.Indicators.PolicyViolations; in.TotalFrames != 9 || in.HasViolations || !v.VerifiedAction {
		t.Errorf("validate after the rescore: %+v", v.Indicators)
	}
}

// TestDamagedFrameReachesFinalAnswer: a stored frame that no longer
// decompresses does not hold its session in "processing" forever: the
// worker scores past it, it counts as an unverified frame, and validate
// answers.
func TestDamagedFrameReachesFinalAnswer(t *testing.T) {
	e, s := damagedSession(t, 3)
	r := e.validateWhenScored(e.validateBody(s, false, seedItems()...))
	if r.status != 200 {
		t.Fatalf("validate of a session with a damaged frame: %s", r)
	}
	v := parseVerdict(t, r)
	// The damaged frame counts, unverified: 6 frames, at most 5 verified.
	if in := v.Indicators.PolicyViolations; in.TotalFrames != 6 || in.VerifiedFrames > 5 {
		t.Errorf("damaged frame not counted as unverified: %+v", v.Indicators)
	}
	sess, err := e.db.Session(e.org.ID, s.csid)
	if err != nil || sess.FramesScored != 6 {
		t.Errorf("scored %d of %d, %v", sess.FramesScored, sess.FramesReceived, err)
	}
	if n := e.db.DamagedFrames(); n != 1 {
		t.Errorf("damaged frames met %d times, want once", n)
	}
}

// damagedSession stores six face frames of one session behind the server's
// back, damages the one of seq damagedSeq in the closed store, and restarts
// the server over it.
func damagedSession(t *testing.T, damagedSeq uint64) (*testEnv, session) {
	mem := vfs.NewMem()
	e := newEnv(t, withStoreFS(mem))
	rng := newRand(800)
	face := unitVec(rng, testDim)
	s := e.newSession("damaged-0001", "dave")
	if r := e.postEvents(s, mustJSON(eventsJSON{Fields: seedFields()})); r.status != 202 {
		t.Fatal(r)
	}
	// Frames written behind the server's back are scored only when a
	// validate asks for them, so the damage below comes first.
	var raws [][]byte
	for i := 0; i < 6; i++ {
		f := biometric.Frame{Seq: uint64(i + 1), TS: 1763800000100 + int64(i)*400, Type: biometric.FaceFrame, Faces: 1,
			Quality: 0.93, Liveness: 0.97, Embedding: embBytes(noisy(rng, face, 0.3))}
		raws = append(raws, biometric.AppendFrame(nil, &f))
	}
	if _, err := e.db.AppendEvents(e.org.ID, s.csid, nil, raws, true); err != nil {
		t.Fatal(err)
	}
	e.stop()
	if err := e.db.Close(); err != nil {
		t.Fatal(err)
	}
	damageFrame(t, mem, damagedSeq)
	db, err := store.Open(store.Options{Dir: "data", FS: mem, Now: e.clock})
	if err != nil {
		t.Fatal(err)
	}
	e.db = db
	e.start()

	return e, s
}

// damageFrame overwrites, in the closed store on fs, the stored frame whose
// seq is seq with bytes that are no stored frame (they do not decompress).
func damageFrame(t *testing.T, fs vfs.FS, seq uint64) {
	t.Helper()
	pdb, err := pebble.Open("data", &pebble.Options{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	defer pdb.Close()
	dec, _ := zstd.NewReader(nil)
	defer dec.Close()
	it, err := pdb.NewIter(nil)
	if err != nil {
		t.Fatal(err)
	}
	var key []byte
	for it.First(); it.Valid(); it.Next() {
		// Stored as given after a 0x00 byte, or zstd-compressed by an
		// earlier version.
		raw, err := it.Value(), error(nil)
		if len(raw) > 0 && raw[0] == 0 {
			raw = raw[1:]
		} else {
			raw, err = dec.DecodeAll(raw, nil)
		}
		var f biometric.Frame
		if err == nil && len(raw) > 0 && biometric.DecodeFrame(raw, &f) == nil && f.Seq == seq {
			key = bytes.Clone(it.Key())
		}
	}
	if err := it.Close(); err != nil || key == nil {
		t.Fatalf("frame %d not found: %v", seq, err)
	}
	if err := pdb.Set(key, []byte{0xde, 0xad, 0xbe, 0xef}, pebble.Sync); err != nil {
		t.Fatal(err)
	}
}

// TestRescoreFoldsAsTheWorkers: validate's rescoring folds a session's stored
// frames as the frame workers do, damaged ones included, in arrival order:
// a rescore of what a worker scored gives the very same aggregate. (The
// first frame damaged is where an in-memory fold that left damaged frames
// for the end differed.)
func TestRescoreFoldsAsTheWorkers(t *testing.T) {
	e, s := damagedSession(t, 1)
	body := e.validateBody(s, false, seedItems()...)
	if r := e.validateWhenScored(body); r.status != 200 {
		t.Fatalf("validate: %s", r)
	}
	scored, err := e.db.Session(e.org.ID, s.csid)
	if err != nil || scored.FramesScored != 6 {
		t.Fatalf("scored %d frames, %v", scored.FramesScored, err)
	}
	// An aggregate that does not decode makes the next validate rescore.
	if err := e.db.SaveAggregate(e.org.ID, s.csid, []byte{0xff}, 6); err != nil {
		t.Fatal(err)
	}
	if r := e.validate(body); r.status != 200 {
		t.Fatalf("validate that rescores: %s", r)
	}
	rescored, err := e.db.Session(e.org.ID, s.csid)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(rescored.Aggregate, scored.Aggregate) {
		t.Errorf("rescoring gave another aggregate than the worker's:\n%x\n%x", rescored.Aggregate, scored.Aggregate)
	}
}
