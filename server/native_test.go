package server

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"

	"github.com/countersign/countersign/engine/biometric"
	"github.com/countersign/countersign/server/native"
	"github.com/countersign/countersign/store"
)

func TestCreateSession(t *testing.T) {
	e := newEnv(t)
	r := e.do(req{path: "/v1/sessions", body: []byte(`{"csid":"cs:0001.a_b-c","userID":"u1","action":"wire_transfer"}`),
		headers: []string{"x-client-id", e.org.CID}})
	if r.status != 201 {
		t.Fatalf("create: %s", r)
	}
	m := jsonMap(t, r.body)
	if m["csid"] != "cs:0001.a_b-c" || !strings.HasPrefix(m["collectToken"].(string), store.CollectTokenPrefix) || len(m) != 3 {
		t.Errorf("create body: %s", r.body)
	}
	if exp, _ := m["expiresAt"].(json.Number).Int64(); exp != e.clock().Add(store.DefaultSessionTTL).UnixMilli() {
		t.Errorf("expiresAt %d", exp)
	}
	// A csid is never reused.
	r = e.do(req{path: "/v1/sessions", body: []byte(`{"csid":"cs:0001.a_b-c","userID":"u2","action":"login"}`),
		headers: []string{"x-client-id", e.org.CID}})
	if r.status != 409 || r.errorCode() != "csid_in_use" {
		t.Errorf("reused csid: %s", r)
	}
	// Client id.
	for _, h := range [][]string{nil, {"x-client-id", "cid_nope"}, {"x-client-id", e.apiKey}} {
		r = e.do(req{path: "/v1/sessions", body: []byte(`{"csid":"cs-00000002","userID":"u","action":"a"}`), headers: h})
		if r.status != 401 || r.errorCode() != "invalid_client_id" {
			t.Errorf("client id %v: %s", h, r)
		}
	}
	// Another organization may use the same csid.
	org2, _, err := e.db.CreateOrg("other", nil)
	if err != nil {
		t.Fatal(err)
	}
	r = e.do(req{path: "/v1/sessions", body: []byte(`{"csid":"cs:0001.a_b-c","userID":"u1","action":"a"}`),
		headers: []string{"x-client-id", org2.CID}})
	if r.status != 201 {
		t.Errorf("same csid in another org: %s", r)
	}
}

func TestEventsAndSessionStatus(t *testing.T) {
	e := newEnv(t)
	s := e.newSession("events-0001", "u1")
	rng := newRand(7)
	face := unitVec(rng, testDim)
	body := mustJSON(eventsJSON{Fields: seedFields(), Frames: faceFrames(rng, face, 1, 1763800000100, 3)})
	r := e.postEvents(s, body)
	if r.status != 202 {
		t.Fatalf("events: %s", r)
	}
	m := jsonMap(t, r.body)
	acc := m["accepted"].(map[string]any)
	// The post's frames are scored before it is answered: none pending.
	if acc["fields"] != json.Number("4") || acc["frames"] != json.Number("3") || m["pending"] != json.Number("0") {
		t.Errorf("events answer: %s", r.body)
	}
	// gzip and zstd bodies; a later value replaces the earlier one.
	later := mustJSON(eventsJSON{Fields: []fieldJSON{{Key: "total", Value: json.RawMessage(`"36.00"`), TS: 1763800001000}},
		Frames: faceFrames(rng, face, 4, 1763800001200, 2)})
	if r := e.postEvents(s, gzipBytes(later), "Content-Encoding", "gzip"); r.status != 202 {
		t.Fatalf("gzip events: %s", r)
	}
	last := mustJSON(eventsJSON{Frames: faceFrames(rng, face, 6, 1763800002000, 1), Final: true})
	if r := e.postEvents(s, zstdBytes(last), "Content-Encoding", "zstd"); r.status != 202 {
		t.Fatalf("zstd events: %s", r)
	}
	// Final: nothing more is accepted...
	if r := e.postEvents(s, []byte(`{"fields":[{"key":"x","value":1}]}`)); r.status != 409 || r.errorCode() != "session_final" {
		t.Errorf("events after final: %s", r)
	}
	// ...but the final post itself, retried (its answer lost), is answered
	// as it was, and so is any earlier post the session holds in full.
	for _, retry := range [][]byte{last, later} {
		if r := e.postEvents(s, retry); r.status != 202 || !strings.Contains(string(r.body), `"accepted":{"fields":`) {
			t.Errorf("a retry after final: %s", r)
		}
	}
	// A retry that differs in anything is new: a field's value or time,
	// a frame's bytes under a held seq.
	changed := []eventsJSON{
		{Fields: []fieldJSON{{Key: "total", Value: json.RawMessage(`"36.01"`), TS: 1763800001000}}},
		{Fields: []fieldJSON{{Key: "total", Value: json.RawMessage(`"36.00"`), TS: 1763800001001}}},
		{Frames: faceFrames(rng, face, 6, 1763800002000, 1), Final: true},
	}
	for _, c := range changed {
		if r := e.postEvents(s, mustJSON(c)); r.status != 409 || r.errorCode() != "session_final" {
			t.Errorf("a changed post after final: %s", r)
		}
	}
	e.waitScored(s)
	r = e.do(req{path: "/v1/sessions/" + s.csid, headers: e.withKey()})
	if r.status != 200 {
		t.Fatalf("status: %s", r)
	}
	st := jsonMap(t, r.body)
	want := map[string]any{"csid": s.csid, "userID": "u1", "action": "wire_transfer", "fields": json.Number("4"),
		"framesReceived": json.Number("6"), "framesScored": json.Number("6"), "final": true}
	for k, v := range want {
		if st[k] != v {
			t.Errorf("status %s = %v, want %v (%s)", k, st[k], v, r.body)
		}
	}
	fields, err := e.db.Fields(e.org.ID, s.csid, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fields {
		if string(f.Key) == "total" && string(f.Value) != `"36.00"` {
			t.Errorf("total = %s, want the later value", f.Value)
		}
	}
	// The stored frames decode back to what was sent.
	n := 0
	err = e.db.Frames(e.org.ID, s.csid, 0, func(index uint32, raw []byte) error {
		var f biometric.Frame
		if err := biometric.DecodeFrame(raw, &f); err != nil {
			return err
		}
		if f.Seq != uint64(index)+1 || f.Type != biometric.FaceFrame || f.Faces != 1 || len(f.Embedding) != 4*testDim {
			t.Errorf("frame %d: %+v", index, f)
		}
		n++
		return nil
	})
	if err != nil || n != 6 {
		t.Errorf("frames: %d, %v", n, err)
	}
}

func TestEventsCredentials(t *testing.T) {
	e := newEnv(t)
	s := e.newSession("cred-0001", "u1")
	body := []byte(`{"fields":[{"key":"a","value":1}]}`)
	for _, tok := range []string{"", "cst_forged", s.token + "x", strings.ToUpper(s.token)} {
		r := e.do(req{path: "/v1/sessions/" + s.csid + "/events", body: body,
			headers: []string{"x-client-id", e.org.CID, "x-collect-token", tok}})
		if r.status != 401 || r.errorCode() != "invalid_collect_token" {
			t.Errorf("token %q: %s", tok, r)
		}
	}
	// Another session's token.
	s2 := e.newSession("cred-0002", "u1")
	r := e.do(req{path: "/v1/sessions/" + s.csid + "/events", body: body,
		headers: []string{"x-client-id", e.org.CID, "x-collect-token", s2.token}})
	if r.status != 401 {
		t.Errorf("another session's token: %s", r)
	}
	// Another organization's client id does not see the session.
	org2, _, _ := e.db.CreateOrg("other", nil)
	r = e.do(req{path: "/v1/sessions/" + s.csid + "/events", body: body,
		headers: []string{"x-client-id", org2.CID, "x-collect-token", s.token}})
	missing := e.do(req{path: "/v1/sessions/never-was-0/events", body: body,
		headers: []string{"x-client-id", org2.CID, "x-collect-token", s.token}})
	if r.status != 404 || !bytes.Equal(r.body, missing.body) {
		t.Errorf("foreign session: %s; missing: %s", r, missing)
	}
	sess, _ := e.db.Session(e.org.ID, s.csid)
	if sess.FramesReceived != 0 {
		t.Error("rejected events were stored")
	}
	fields, _ := e.db.Fields(e.org.ID, s.csid, nil)
	if len(fields) != 0 {
		t.Error("rejected fields were stored")
	}
}

func TestQueueFullSheds(t *testing.T) {
	e := newEnv(t, withConfig(func(c *Config) { c.QueueSize = 2 }))
	s := e.newSession("queue-0001", "u1")
	// Occupy the queue.
	for range 2 {
		if !e.srv.native.Frames().Reserve() {
			t.Fatal("reserve")
		}
	}
	rng := newRand(3)
	body := mustJSON(eventsJSON{Frames: faceFrames(rng, unitVec(rng, testDim), 1, 1763800000100, 2)})
	r := e.postEvents(s, body)
	if r.status != 503 || r.errorCode() != "queue_full" || r.header["retry-after"] == "" {
		t.Fatalf("full queue: %s %v", r, r.header)
	}
	sess, _ := e.db.Session(e.org.ID, s.csid)
	if sess.FramesReceived != 0 {
		t.Fatal("frames stored although the queue was full")
	}
	// Fields alone need no scoring and are accepted.
	if r := e.postEvents(s, []byte(`{"fields":[{"key":"a","value":1}]}`)); r.status != 202 {
		t.Errorf("fields with a full queue: %s", r)
	}
	e.srv.native.Frames().Unreserve()
	e.srv.native.Frames().Unreserve()
	if r := e.postEvents(s, body); r.status != 202 {
		t.Errorf("after the queue drained: %s", r)
	}
	// The same post again while the queue is full: a retry, nothing to
	// score, so no place is needed and none is taken. (The worker gives
	// its place back just after the frames are scored.)
	e.waitScored(s)
	for deadline := time.Now().Add(5 * time.Second); e.srv.native.Frames().Depth() != 0; {
		if time.Now().After(deadline) {
			t.Fatalf("the queue still holds %d places", e.srv.native.Frames().Depth())
		}
		time.Sleep(time.Millisecond)
	}
	for range 2 {
		if !e.srv.native.Frames().Reserve() {
			t.Fatal("reserve")
		}
	}
	if r := e.postEvents(s, body); r.status != 202 {
		t.Errorf("a retry with a full queue: %s", r)
	}
	if n := e.srv.native.Frames().Depth(); n != 2 {
		t.Errorf("the retry changed the queue to %d places", n)
	}
	e.srv.native.Frames().Unreserve()
	e.srv.native.Frames().Unreserve()
	m := e.do(req{path: "/metrics"})
	if !bytes.Contains(m.body, []byte("countersign_frame_queue_rejections_total 1")) {
		t.Error("rejection not counted")
	}
}

func TestSessionFrameLimit(t *testing.T) {
	e := newEnv(t)
	s := e.newSession("limit-0001", "u1")
	rng := newRand(5)
	face := unitVec(rng, testDim)
	f := biometric.Frame{Type: biometric.FaceFrame, Faces: 1, Quality: 0.9, Liveness: 0.9, Embedding: embBytes(face)}
	var blobs [][]byte
	for i := range biometric.MaxFrames - 2 {
		f.Seq, f.TS = uint64(i+1), int64(i)*100
		blobs = append(blobs, biometric.AppendFrame(nil, &f))
		if len(blobs) == 256 || i == biometric.MaxFrames-3 {
			if _, err := e.db.AppendEvents(e.org.ID, s.csid, nil, blobs, false); err != nil {
				t.Fatal(err)
			}
			blobs = blobs[:0]
		}
	}
	body := mustJSON(eventsJSON{Frames: faceFrames(rng, face, 5000, 1763800500000, 3)})
	r := e.postEvents(s, body)
	if r.status != 409 || r.errorCode() != "session_frame_limit" || !strings.Contains(r.errorMessage(), "4096") {
		t.Fatalf("over the session frame limit: %s", r)
	}
	body = mustJSON(eventsJSON{Frames: faceFrames(rng, face, 5000, 1763800500000, 2)})
	if r := e.postEvents(s, body); r.status != 202 {
		t.Fatalf("up to the limit: %s", r)
	}
}

// TestProcessingThenFinal: frames acknowledged but not scored (here stored
// behind the server's back, as after a crash) make validate answer 202 with
// Retry-After; validate queues the catch-up job itself, and the final answer
// counts every frame. Over a real loopback socket, deterministically (the
// end-to-end test with the binary can only hope to catch a 202).
func TestProcessingThenFinal(t *testing.T) {
	e := newEnv(t)
	e.useTCP()
	s := e.newSession("processing-1", "u1")
	rng := newRand(11)
	face := unitVec(rng, testDim)
	var blobs [][]byte
	for _, fj := range faceFrames(rng, face, 1, 1763800000100, 7) {
		f := frameFromJSON(t, fj)
		blobs = append(blobs, biometric.AppendFrame(nil, &f))
	}
	if _, err := e.db.AppendEvents(e.org.ID, s.csid, nil, blobs, true); err != nil {
		t.Fatal(err)
	}
	body := e.validateBody(s, false)
	r := e.validate(body)
	if r.status != 202 {
		t.Fatalf("unscored frames: %s", r)
	}
	if r.header["retry-after"] != "1" || !regexp.MustCompile(`^\{"errorMessage":"processing","retryAfterMS":([1-9][0-9]|[1-9][0-9]{2}|1000)\}$`).Match(r.body) {
		t.Errorf("processing answer: %s %v", r.body, r.header)
	}
	r = e.validateWhenScored(body)
	if r.status != 200 {
		t.Fatalf("final: %s", r)
	}
	v := jsonMap(t, r.body)
	pv := v["indicators"].(map[string]any)["iv_policy_violations"].(map[string]any)
	if pv["total_frames"] != json.Number("7") {
		t.Errorf("total_frames = %v, want 7: %s", pv["total_frames"], r.body)
	}
	if sess, _ := e.db.Session(e.org.ID, s.csid); sess.FramesScored != 7 {
		t.Errorf("scored %d", sess.FramesScored)
	}
}

// TestRestartScoresAcknowledgedFrames: frames acknowledged to the SDK before
// the server stopped are scored after a restart over the same store.
func TestRestartScoresAcknowledgedFrames(t *testing.T) {
	e := newEnv(t)
	s := e.newSession("restart-0001", "u1")
	rng := newRand(13)
	face := unitVec(rng, testDim)
	if r := e.postEvents(s, mustJSON(eventsJSON{Fields: seedFields(), Frames: faceFrames(rng, face, 1, 1763800000100, 4)})); r.status != 202 {
		t.Fatal(r)
	}
	e.stop() // drains: the queued job is finished
	// Acknowledged but never queued (the process died between the two).
	var blobs [][]byte
	for _, fj := range faceFrames(rng, face, 5, 1763800002000, 3) {
		f := frameFromJSON(t, fj)
		blobs = append(blobs, biometric.AppendFrame(nil, &f))
	}
	if _, err := e.db.AppendEvents(e.org.ID, s.csid, nil, blobs, true); err != nil {
		t.Fatal(err)
	}
	e.start()
	r := e.validateWhenScored(e.validateBody(s, false, seedItems()...))
	if r.status != 200 {
		t.Fatalf("after restart: %s", r)
	}
	pv := jsonMap(t, r.body)["indicators"].(map[string]any)["iv_policy_violations"].(map[string]any)
	if pv["total_frames"] != json.Number("7") {
		t.Errorf("total_frames = %v, want 7", pv["total_frames"])
	}
}

func frameFromJSON(t testing.TB, fj frameJSON) biometric.Frame {
	t.Helper()
	ft, _ := biometric.ParseFrameType([]byte(fj.Type))
	f := biometric.Frame{Seq: fj.Seq, TS: fj.TS, Type: ft, Faces: int32(fj.Faces), Quality: float32(fj.Quality), Liveness: float32(fj.Liveness)}
	f.Embedding = decodeB64(t, fj.Embedding)
	if fj.DocType != "" {
		f.DocType, _ = biometric.ParseDocType([]byte(fj.DocType))
	}
	return f
}

// TestTenancy: another organization's session or decision answers exactly
// like a missing one, byte for byte; a wrong key is 401.
func TestTenancy(t *testing.T) {
	e := newEnv(t)
	s := e.newSession("tenant-a-001", "u1")
	e.postEvents(s, mustJSON(eventsJSON{Fields: seedFields()}))
	r := e.validate(e.validateBody(s, false, seedItems()...))
	if r.status != 200 {
		t.Fatalf("own validate: %s", r)
	}
	decisionID := jsonMap(t, r.body)["decisionID"].(string)

	org2, key2, err := e.db.CreateOrg("other", nil)
	if err != nil {
		t.Fatal(err)
	}
	as2 := func(path string, body []byte) response {
		return e.do(req{path: path, body: body, headers: []string{"apikey", key2}})
	}
	vbody := func(cid, csid string) []byte {
		return mustJSON(map[string]any{"cid": cid, "csid": csid, "userID": "u1", "action": "wire_transfer"})
	}
	missingSession := as2("/v1/validate", vbody(org2.CID, "never-existed"))
	if missingSession.status != 404 || missingSession.errorCode() != "session_not_found" {
		t.Fatalf("missing session: %s", missingSession)
	}
	for name, got := range map[string]response{
		"foreign csid, own cid":     as2("/v1/validate", vbody(org2.CID, s.csid)),
		"foreign csid, foreign cid": as2("/v1/validate", vbody(e.org.CID, s.csid)),
		"legacy path":               as2("/api/v1/validate", vbody(org2.CID, s.csid)),
		"own key, foreign cid":      e.validate(vbody(org2.CID, s.csid)),
	} {
		if got.status != missingSession.status || !bytes.Equal(got.body, missingSession.body) {
			t.Errorf("%s: %s, want exactly %s", name, got, missingSession)
		}
	}
	missingStatus := as2("/v1/sessions/never-existed", nil)
	foreignStatus := as2("/v1/sessions/"+s.csid, nil)
	if missingStatus.status != 404 || foreignStatus.status != 404 || !bytes.Equal(missingStatus.body, foreignStatus.body) {
		t.Errorf("session status: foreign %s, missing %s", foreignStatus, missingStatus)
	}
	missingDecision := as2("/v1/decisions/01JBZ8Q3Y00000000000000000", nil)
	foreignDecision := as2("/v1/decisions/"+decisionID, nil)
	if missingDecision.status != 404 || missingDecision.errorCode() != "decision_not_found" ||
		!bytes.Equal(missingDecision.body, foreignDecision.body) || foreignDecision.status != 404 {
		t.Errorf("decision: foreign %s, missing %s", foreignDecision, missingDecision)
	}
	if r := e.do(req{path: "/v1/decisions/not-an-id", headers: []string{"apikey", key2}}); !bytes.Equal(r.body, missingDecision.body) {
		t.Errorf("malformed decision id: %s", r)
	}
	// Wrong or missing keys.
	for _, h := range [][]string{nil, {"apikey", ""}, {"apikey", "csk_nope"}, {"apikey", e.apiKey + "x"}, {"apikey", e.org.CID}} {
		for _, path := range []string{"/v1/validate", "/api/v1/validate"} {
			r := e.do(req{path: path, body: e.validateBody(s, false), headers: h})
			if r.status != 401 || r.errorCode() != "invalid_api_key" {
				t.Errorf("%s with %v: %s", path, h, r)
			}
		}
		if r := e.do(req{path: "/v1/sessions/" + s.csid, headers: h}); r.status != 401 {
			t.Errorf("status with %v: %s", h, r)
		}
		if r := e.do(req{path: "/v1/decisions/" + decisionID, headers: h}); r.status != 401 {
			t.Errorf("decision with %v: %s", h, r)
		}
	}
}

func TestExpiredSession(t *testing.T) {
	e := newEnv(t)
	s := e.newSession("expire-0001", "u1")
	e.advance(store.DefaultSessionTTL + time.Second)
	if r := e.validate(e.validateBody(s, false)); r.status != 410 || r.errorCode() != "session_expired" {
		t.Errorf("validate: %s", r)
	}
	if r := e.postEvents(s, []byte(`{"fields":[{"key":"a","value":1}]}`)); r.status != 410 {
		t.Errorf("events: %s", r)
	}
	if r := e.do(req{path: "/v1/sessions/" + s.csid, headers: e.withKey()}); r.status != 410 {
		t.Errorf("status: %s", r)
	}
}

func TestIdempotency(t *testing.T) {
	e := newEnv(t)
	s := e.newSession("idem-00001", "u1")
	e.postEvents(s, mustJSON(eventsJSON{Fields: seedFields()}))
	body := e.validateBody(s, false, seedItems()...)
	first := e.validate(body, "Idempotency-Key", "key-1")
	if first.status != 200 {
		t.Fatalf("first: %s", first)
	}
	again := e.validate(body, "Idempotency-Key", "key-1")
	if again.status != 200 || !bytes.Equal(again.body, first.body) {
		t.Errorf("replay differs:\n%s\n%s", first.body, again.body)
	}
	// The hash is of the decompressed body.
	zipped := e.do(req{path: "/v1/validate", body: gzipBytes(body), headers: e.withKey("Idempotency-Key", "key-1", "Content-Encoding", "gzip")})
	if zipped.status != 200 || !bytes.Equal(zipped.body, first.body) {
		t.Errorf("gzip replay: %s", zipped)
	}
	other := e.validateBody(s, false, seedItems()[:2]...)
	if r := e.validate(other, "Idempotency-Key", "key-1"); r.status != 422 || r.errorCode() != "idempotency_key_reused" {
		t.Errorf("same key, other body: %s", r)
	}
	// Without a key every call is a new decision.
	a, b := e.validate(body), e.validate(body)
	if jsonMap(t, a.body)["decisionID"] == jsonMap(t, b.body)["decisionID"] {
		t.Error("two decisions share an id")
	}
	// The decision is readable by id, with the exact bytes answered.
	id := jsonMap(t, first.body)["decisionID"].(string)
	d := e.do(req{path: "/v1/decisions/" + id, headers: e.withKey()})
	if d.status != 200 {
		t.Fatalf("decision: %s", d)
	}
	var view struct {
		DecisionID     string          `json:"decisionID"`
		CSID           string          `json:"csid"`
		UserID         string          `json:"userID"`
		CreatedAt      int64           `json:"createdAt"`
		VerifiedAction bool            `json:"verifiedAction"`
		IVScore        int             `json:"ivScore"`
		Response       json.RawMessage `json:"response"`
	}
	dec := json.NewDecoder(bytes.NewReader(d.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&view); err != nil {
		t.Fatalf("decision view %s: %v", d.body, err)
	}
	if view.DecisionID != id || view.CSID != s.csid || view.UserID != "u1" || view.CreatedAt != e.clock().UnixMilli() ||
		!bytes.Equal(view.Response, first.body) {
		t.Errorf("decision view: %s", d.body)
	}

	// A day later the key is free: another body with it is a new
	// decision, not a 422; the first decision stays readable.
	e.advance(store.DefaultIdempotencyTTL)
	s2 := e.newSession("idem-00002", "u1")
	e.postEvents(s2, mustJSON(eventsJSON{Fields: seedFields()}))
	later := e.validate(e.validateBody(s2, false, seedItems()...), "Idempotency-Key", "key-1")
	if later.status != 200 || later.header["idempotent-replayed"] != "" || jsonMap(t, later.body)["decisionID"] == id {
		t.Errorf("the key after its TTL: %s %v", later, later.header)
	}
	if r := e.do(req{path: "/v1/decisions/" + id, headers: e.withKey()}); r.status != 200 {
		t.Errorf("the first decision after its key expired: %s", r)
	}
}

func TestStoreClosedFailsClosed(t *testing.T) {
	e := newEnv(t)
	s := e.newSession("closed-0001", "u1")
	body := e.validateBody(s, false)
	if err := e.db.Close(); err != nil {
		t.Fatal(err)
	}
	r := e.validate(body)
	if r.status != 503 || r.header["retry-after"] == "" {
		t.Errorf("validate on a closed store: %s", r)
	}
	if r := e.do(req{path: "/healthz"}); r.status != 200 {
		t.Errorf("healthz: %s", r)
	}
	if r := e.do(req{path: "/readyz"}); r.status != 503 || r.errorCode() != "not_ready" {
		t.Errorf("readyz on a closed store: %s", r)
	}
}

// decodeB64 is base64 for tests.
func decodeB64(t testing.TB, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestStoreWriteFailureFailsClosed: when a write to the store's log fails,
// Pebble refuses to go on (its Fatalf, which the store turns into a panic),
// yet the batch may already be readable from memory without being durable.
// The request must answer 503, and nothing may be answered from the store
// afterwards: in particular a retry with the same Idempotency-Key must not
// replay the decision that was never made durable.
func TestStoreWriteFailureFailsClosed(t *testing.T) {
	t.Run("decision", func(t *testing.T) {
		broken := &walFailure{}
		e := newEnv(t, withBrokenStore(errorfs.Wrap(vfs.NewMem(), broken)))
		s := e.newSession("fatal-0001", "u1")
		if r := e.postEvents(s, mustJSON(eventsJSON{Fields: seedFields()})); r.status != 202 {
			t.Fatal(r)
		}
		body := e.validateBody(s, false, seedItems()...)
		broken.On()
		r := e.validate(body, "Idempotency-Key", "fatal-1")
		if r.status != 503 || r.errorCode() != "store_unavailable" || r.header["retry-after"] == "" {
			t.Errorf("validate whose decision cannot be stored: %s %v", r, r.header)
		}
		broken.Off()
		if r := e.validate(body, "Idempotency-Key", "fatal-1"); r.status != 503 || r.errorCode() != "store_unavailable" {
			t.Errorf("retry of the failed decision: %s", r)
		}
		if r := e.do(req{path: "/v1/sessions/" + s.csid, headers: e.withKey()}); r.status != 503 {
			t.Errorf("session read after the failure: %s", r)
		}
		if r := e.do(req{path: "/readyz"}); r.status != 503 {
			t.Errorf("readyz after the failure: %s", r)
		}
		if r := e.do(req{path: "/healthz"}); r.status != 200 {
			t.Errorf("healthz after the failure: %s", r)
		}
		select {
		case <-e.srv.Failed():
		default:
			t.Error("Failed() not closed")
		}
	})
	t.Run("events", func(t *testing.T) {
		broken := &walFailure{}
		e := newEnv(t, withBrokenStore(errorfs.Wrap(vfs.NewMem(), broken)))
		s := e.newSession("fatal-0002", "u1")
		broken.On()
		r := e.postEvents(s, mustJSON(eventsJSON{Fields: seedFields()}))
		if r.status != 503 || r.errorCode() != "store_unavailable" {
			t.Errorf("events that cannot be stored: %s", r)
		}
		broken.Off()
		if r := e.validate(e.validateBody(s, false, seedItems()...)); r.status != 503 {
			t.Errorf("validate over events that were never durable: %s", r)
		}
	})
}

// walFailure makes writes to the store's write-ahead log fail while on, and
// nothing else (so no background work of Pebble trips over it).
type walFailure struct{ on atomic.Bool }

func (w *walFailure) On()            { w.on.Store(true) }
func (w *walFailure) Off()           { w.on.Store(false) }
func (w *walFailure) String() string { return "wal failure" }
func (w *walFailure) MaybeError(op errorfs.Op) error {
	if w.on.Load() && strings.HasSuffix(op.Path, ".log") && op.Kind.ReadOrWrite() == errorfs.OpIsWrite {
		return errorfs.ErrInjected
	}
	return nil
}

// TestSessionFieldLimit: a session holds at most native.MaxSessionFields distinct
// field names; a later value of a stored name does not count again, nor
// does a name repeated within one request.
func TestSessionFieldLimit(t *testing.T) {
	e := newEnv(t)
	fieldsBody := func(from, n int, extra ...string) []byte {
		fs := make([]fieldJSON, 0, n+len(extra))
		for i := from; i < from+n; i++ {
			fs = append(fs, fieldJSON{Key: fmt.Sprintf("f%04d", i), Value: json.RawMessage(`1`)})
		}
		for _, k := range extra {
			fs = append(fs, fieldJSON{Key: k, Value: json.RawMessage(`2`)})
		}
		return mustJSON(eventsJSON{Fields: fs})
	}
	s := e.newSession("fields-0001", "u1")
	for _, b := range [][]byte{fieldsBody(0, 512), fieldsBody(512, 511)} {
		if r := e.postEvents(s, b); r.status != 202 {
			t.Fatalf("under the cap: %s", r)
		}
	}
	// 1023 stored: updates of stored names and one new name given twice fit.
	if r := e.postEvents(s, fieldsBody(0, 100, "new-a", "new-a")); r.status != 202 {
		t.Fatalf("updates plus one new name: %s", r)
	}
	r := e.postEvents(s, fieldsBody(5, 3, "new-b"))
	if r.status != 409 || r.errorCode() != "session_field_limit" || !strings.Contains(r.errorMessage(), "1024") {
		t.Fatalf("a 1025th name: %s", r)
	}
	if fields, _ := e.db.Fields(e.org.ID, s.csid, nil); len(fields) != native.MaxSessionFields {
		t.Errorf("stored %d fields, want %d", len(fields), native.MaxSessionFields)
	}
	// Frames and updates still go in.
	if r := e.postEvents(s, fieldsBody(0, 512)); r.status != 202 {
		t.Errorf("updates at the cap: %s", r)
	}
}

// TestConcurrentEventsKeepCaps: concurrent events requests of one session
// cannot together go past its frame or field cap. Log syncs are slowed down
// so that the requests overlap between reading the session and committing.
func TestConcurrentEventsKeepCaps(t *testing.T) {
	var slow atomic.Bool
	slowFS := errorfs.Wrap(vfs.NewMem(), errorfs.InjectorFunc(func(op errorfs.Op) error {
		if slow.Load() && (op.Kind == errorfs.OpFileSync || op.Kind == errorfs.OpFileSyncData) {
			time.Sleep(20 * time.Millisecond)
		}
		return nil
	}))
	e := newEnv(t, withConfig(func(c *Config) { c.QueueSize = 4096 }), withStoreFS(slowFS))
	rng := newRand(21)
	face := unitVec(rng, testDim)

	s := e.newSession("race-frames-1", "u1")
	f := biometric.Frame{Type: biometric.FaceFrame, Faces: 1, Quality: 0.9, Liveness: 0.9, Embedding: embBytes(face)}
	var blobs [][]byte
	for i := range biometric.MaxFrames - 4 {
		f.Seq, f.TS = uint64(i+1), int64(i)*100
		blobs = append(blobs, biometric.AppendFrame(nil, &f))
		if len(blobs) == 256 || i == biometric.MaxFrames-5 {
			if _, err := e.db.AppendEvents(e.org.ID, s.csid, nil, blobs, false); err != nil {
				t.Fatal(err)
			}
			blobs = blobs[:0]
		}
	}
	s2 := e.newSession("race-fields-1", "u1")
	var fs []fieldJSON
	for i := range native.MaxSessionFields - 4 {
		fs = append(fs, fieldJSON{Key: fmt.Sprintf("f%04d", i), Value: json.RawMessage(`1`)})
	}
	if r := e.postEvents(s2, mustJSON(eventsJSON{Fields: fs[:512]})); r.status != 202 {
		t.Fatal(r)
	}
	if r := e.postEvents(s2, mustJSON(eventsJSON{Fields: fs[512:]})); r.status != 202 {
		t.Fatal(r)
	}

	const n = 16
	slow.Store(true)
	var wg sync.WaitGroup
	for i := range n {
		frames := mustJSON(eventsJSON{Frames: faceFrames(rng, face, uint64(10000+2*i), 1763810000000, 2)})
		fields := mustJSON(eventsJSON{Fields: []fieldJSON{
			{Key: fmt.Sprintf("x%02da", i), Value: json.RawMessage(`1`)},
			{Key: fmt.Sprintf("x%02db", i), Value: json.RawMessage(`1`)},
		}})
		wg.Add(2)
		go func() { defer wg.Done(); e.postEvents(s, frames) }()
		go func() { defer wg.Done(); e.postEvents(s2, fields) }()
	}
	wg.Wait()
	if sess, _ := e.db.Session(e.org.ID, s.csid); sess.FramesReceived > biometric.MaxFrames {
		t.Errorf("session holds %d frames, cap %d", sess.FramesReceived, biometric.MaxFrames)
	}
	if fields, _ := e.db.Fields(e.org.ID, s2.csid, nil); len(fields) > native.MaxSessionFields {
		t.Errorf("session holds %d fields, cap %d", len(fields), native.MaxSessionFields)
	}
}

// Served decisions: one stored by an older countersign (the JSON answer
// itself) is answered as stored; a damaged record is a 500 that names no
// detail, and the server logs it.
func TestServedDecisionRecords(t *testing.T) {
	e := newEnv(t)
	legacy := `{"success":true,"verifiedAction":false,"decisionID":"01JBZ8Q3Y00000000000000001"}`
	for _, c := range []struct{ id, resp, idem string }{
		{"01JBZ8Q3Y00000000000000001", legacy, "legacy-key"},
		{"01JBZ8Q3Y00000000000000002", "\x01\xff", "damaged-key"},
	} {
		d := store.Decision{ID: c.id, OrgID: e.org.ID, CSID: "c", UserID: "u", Response: []byte(c.resp)}
		if err := e.db.PutDecision(&d, []byte(c.idem), [32]byte{}); err != nil {
			t.Fatal(err)
		}
	}
	g := e.do(req{path: "/v1/decisions/01JBZ8Q3Y00000000000000001", headers: e.withKey()})
	if g.status != 200 || !bytes.Contains(g.body, []byte(`"response":`+legacy+`}`)) {
		t.Errorf("legacy decision: %s", g)
	}
	g = e.do(req{path: "/v1/decisions/01JBZ8Q3Y00000000000000002", headers: e.withKey()})
	if g.status != 500 || g.errorCode() != "internal_error" || bytes.Contains(g.body, []byte("response")) {
		t.Errorf("damaged decision: %s", g)
	}
	if !strings.Contains(e.logs.String(), "stored decision does not render") {
		t.Errorf("damage not logged:\n%s", e.logs.String())
	}
}
