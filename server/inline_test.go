package server

import (
	"bytes"
	"encoding/json"
	"sync"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/countersign/countersign/store"
)

// TestEventsScoredBeforeTheAnswer: an events post's new frames are folded
// from the request's own bytes before it is answered, so the answer has
// nothing pending and a validate right after the final post is answered
// at once, never 202 processing; and the aggregate is the one the frame
// workers fold from the stored frames (the same frames posted to a session
// while the pool is paused, then scored by a worker, decide the same). The
// aggregate is stored in the frames' synced batch: a crash right after the
// final post's answer keeps it.
func TestEventsScoredBeforeTheAnswer(t *testing.T) {
	fs := vfs.NewCrashableMem()
	e := newEnv(t, withStoreFS(fs))
	r := newRand(16)
	face := unitVec(r, 512)
	frames := faceFrames(r, face, 1, 1763800000100, 6)
	posts := [][]byte{
		mustJSON(eventsJSON{Fields: seedFields(), Frames: frames[:3]}),
		mustJSON(eventsJSON{Frames: frames[3:], Final: true}),
	}

	inline := e.newSession("inline-0001", "user-inline")
	for i, body := range posts {
		a := e.postEvents(inline, body)
		if a.status != 202 || !bytes.Contains(a.body, []byte(`"pending":0}`)) {
			t.Fatalf("post %d: %s, want nothing pending", i, a)
		}
		sess, err := e.db.Session(e.org.ID, inline.csid)
		if err != nil {
			t.Fatal(err)
		}
		if want := uint32(3 * (i + 1)); sess.FramesReceived != want || sess.FramesScored != want {
			t.Fatalf("post %d: %d frames received, %d scored; want %d of each", i, sess.FramesReceived, sess.FramesScored, want)
		}
	}
	crashed := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 0})
	db, err := store.Open(store.Options{Dir: "data", FS: crashed, Now: e.clock})
	if err != nil {
		t.Fatal(err)
	}
	sess, err := db.Session(e.org.ID, inline.csid)
	if err != nil || sess.FramesScored != 6 || len(sess.Aggregate) == 0 {
		t.Fatalf("after a crash: %d frames scored, aggregate of %d bytes (%v); want 6 and the aggregate", sess.FramesScored, len(sess.Aggregate), err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	got := e.validate(e.validateBody(inline, false, seedItems()...))
	if got.status != 200 {
		t.Fatalf("validate right after the final post: %s", got)
	}
	if n := e.srv.native.Frames().Depth(); n != 0 {
		t.Fatalf("%d frame jobs queued for frames scored inline", n)
	}

	queued := e.newSession("queued-0001", "user-queued")
	e.srv.native.Frames().Pause()
	for i, body := range posts {
		if a := e.postEvents(queued, body); a.status != 202 || bytes.Contains(a.body, []byte(`"pending":0}`)) {
			t.Fatalf("paused post %d: %s, want frames pending", i, a)
		}
	}
	e.srv.native.Frames().Resume()
	e.waitScored(queued)
	want := e.validate(e.validateBody(queued, false, seedItems()...))
	if want.status != 200 {
		t.Fatalf("validate of the worker-scored session: %s", want)
	}
	if a, b := indicators(t, got.body), indicators(t, want.body); a != b {
		t.Fatalf("scored inline:\n%s\nscored by a worker:\n%s", a, b)
	}
}

// indicators is a validate answer without its decision id, re-encoded.
func indicators(t *testing.T, body []byte) string {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	delete(v, "decisionID")
	return string(mustJSON(v))
}

// TestConcurrentPostsScoreEveryFrameOnce: posts to one session at once mix
// inline scoring and queued jobs (a post that finds frames of another
// unscored queues a job); every frame is then folded exactly once.
func TestConcurrentPostsScoreEveryFrameOnce(t *testing.T) {
	e := newEnv(t)
	r := newRand(17)
	face := unitVec(r, 512)
	s := e.newSession("concurrent-0001", "user-concurrent")
	const posters, posts = 8, 4
	bodies := make([][][]byte, posters)
	for p := range bodies {
		for k := range posts {
			first := uint64((p*posts+k)*3 + 1)
			bodies[p] = append(bodies[p], mustJSON(eventsJSON{Frames: faceFrames(r, face, first, 1763800000100+int64(first)*400, 3)}))
		}
	}
	var wg sync.WaitGroup
	errs := make(chan string, posters*posts)
	for p := range posters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, b := range bodies[p] {
				if a := e.postEvents(s, b); a.status != 202 {
					errs <- a.String()
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for msg := range errs {
		t.Errorf("post: %s", msg)
	}
	e.waitScored(s)
	got := e.validateWhenScored(e.validateBody(s, false, seedItems()...))
	var v struct {
		Indicators struct {
			PolicyViolations struct {
				TotalFrames int `json:"total_frames"`
			} `json:"iv_policy_violations"`
		} `json:"indicators"`
	}
	if err := json.Unmarshal(got.body, &v); err != nil || got.status != 200 {
		t.Fatalf("%v: %s", err, got)
	}
	if n := v.Indicators.PolicyViolations.TotalFrames; n != posters*posts*3 {
		t.Fatalf("the aggregate folded %d frames, want %d", n, posters*posts*3)
	}
}
