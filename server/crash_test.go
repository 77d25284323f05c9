package server

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/countersign/countersign/server/native"
	"github.com/countersign/countersign/store"
)

// TestCrashChild is the server process TestCrashRecovery kills. It only runs
// when started by that test.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv("COUNTERSIGN_CRASH_DIR")
	if dir == "" {
		t.Skip("started by TestCrashRecovery only")
	}
	db, err := store.Open(store.Options{Dir: filepath.Join(dir, "data")})
	if err != nil {
		t.Fatal(err)
	}
	org, key, err := db.CreateOrg("crash", nil)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(Config{Workers: 1, Logger: slog.New(slog.DiscardHandler)}, db)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	info := mustJSON(map[string]string{"addr": ln.Addr().String(), "org": org.ID.String(), "cid": org.CID, "key": key})
	if err := os.WriteFile(filepath.Join(dir, "info.tmp"), info, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "info.tmp"), filepath.Join(dir, "info.json")); err != nil {
		t.Fatal(err)
	}
	_ = srv.Serve(ln) // until killed
}

// TestCrashRecovery kills a server process with SIGKILL right after it
// acknowledged events and a decision, then reopens its store and finds all
// of them, and a new server scores and answers over it.
func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a process")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), "COUNTERSIGN_CRASH_DIR="+dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	defer func() {
		if !killed {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	}()
	var info struct{ Addr, Org, CID, Key string }
	deadline := time.Now().Add(60 * time.Second)
	for {
		b, err := os.ReadFile(filepath.Join(dir, "info.json"))
		if err == nil {
			if err := json.Unmarshal(b, &info); err != nil {
				t.Fatal(err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("child did not start: %s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	client := &fasthttp.Client{}
	base := "http://" + info.Addr
	do := func(q req) response { return doWith(t, client, base, q) }

	r := do(req{path: "/v1/sessions", body: []byte(`{"csid":"crash-00001","userID":"alice","action":"wire_transfer"}`), headers: []string{"x-client-id", info.CID}})
	if r.status != 201 {
		t.Fatalf("session: %s", r)
	}
	token := jsonMap(t, r.body)["collectToken"].(string)
	rng := newRand(9)
	face := unitVec(rng, testDim)
	events := func(body []byte) {
		r := do(req{path: "/v1/sessions/crash-00001/events", body: body, headers: []string{"x-client-id", info.CID, "x-collect-token", token}})
		if r.status != 202 {
			t.Fatalf("events: %s", r)
		}
	}
	events(mustJSON(eventsJSON{Fields: seedFields(), Frames: faceFrames(rng, face, 1, 1763800000100, 5)}))
	vbody := mustJSON(map[string]any{"cid": info.CID, "csid": "crash-00001", "userID": "alice", "action": "wire_transfer",
		"additionalData": map[string]any{"sessionData": seedItems()}})
	var decision response
	for {
		decision = do(req{path: "/v1/validate", body: vbody, headers: []string{"apikey", info.Key, "Idempotency-Key", "crash-1"}})
		if decision.status != 202 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if decision.status != 200 {
		t.Fatalf("validate: %s", decision)
	}
	// More frames, acknowledged, then the kill: they may be unscored.
	events(mustJSON(eventsJSON{Frames: faceFrames(rng, face, 6, 1763800003000, 4), Final: true}))
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	killed = true

	db, err := store.Open(store.Options{Dir: filepath.Join(dir, "data")})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	org, err := store.ParseOrgID(info.Org)
	if err != nil {
		t.Fatal(err)
	}
	sess, err := db.Session(org, "crash-00001")
	if err != nil || sess.FramesReceived != 9 || !sess.Final {
		t.Fatalf("session after the crash: %+v %v", sess, err)
	}
	fields, err := db.Fields(org, "crash-00001", nil)
	if err != nil || len(fields) != 4 {
		t.Errorf("fields after the crash: %d %v", len(fields), err)
	}
	id := jsonMap(t, decision.body)["decisionID"].(string)
	d, err := db.Decision(org, id)
	if err != nil {
		t.Fatalf("decision after the crash: %v", err)
	}
	if answer, err := native.AppendValidateAnswer(nil, d.Response, d.ID); err != nil || !bytes.Equal(answer, decision.body) {
		t.Errorf("decision after the crash: %v\n%s\n%s", err, answer, decision.body)
	}
	// A new server over the same store answers the idempotent replay and
	// scores whatever the dead one had not.
	srv, err := New(Config{Workers: 1, Logger: slog.New(slog.DiscardHandler)}, db)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	defer func() {
		_ = srv.Shutdown(t.Context())
		_ = db.Close()
	}()
	base = "http://" + ln.Addr().String()
	replay := do(req{path: "/v1/validate", body: vbody, headers: []string{"apikey", info.Key, "Idempotency-Key", "crash-1"}})
	if replay.status != 200 || !bytes.Equal(replay.body, decision.body) {
		t.Errorf("replay after the crash: %s", replay)
	}
	for {
		r = do(req{path: "/v1/validate", body: vbody, headers: []string{"apikey", info.Key}})
		if r.status != 202 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if r.status != 200 || !strings.Contains(string(r.body), `"total_frames":9`) {
		t.Errorf("after restart: %s", r)
	}
}
