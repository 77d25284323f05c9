package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/countersign/countersign/client"
	"github.com/countersign/countersign/simulate"
)

// These tests run the real binary: 'countersign serve' on a free loopback
// port, spoken to over a real socket.

// proc is a running 'countersign serve'.
type proc struct {
	t    *testing.T
	cmd  *exec.Cmd
	addr string
	logs *syncBuffer
	done chan struct{}
	err  error // the process's exit, once done is closed
}

// syncBuffer is a bytes.Buffer the process writes while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// freeAddr returns a loopback address nothing listens on right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// serve starts the binary on data and waits until GET /readyz answers 200.
func serve(t *testing.T, data, addr string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, addr: addr, logs: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(bin, append([]string{"serve", "--data", data, "--addr", addr}, args...)...)
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("server log:\n%s", p.logs.String())
		}
	})
	c := p.client(client.Config{})
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-p.done:
			t.Fatalf("serve exited before ready: %v\n%s", p.err, p.logs.String())
		default:
		}
		if r, err := c.Do("GET", "/readyz", nil); err == nil && r.Status == 200 {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve not ready after 60s:\n%s", p.logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// client returns an SDK client for this server, with cfg's credentials.
func (p *proc) client(cfg client.Config) *client.Client {
	cfg.Addr = "http://" + p.addr
	c, err := client.NewClient(cfg)
	if err != nil {
		p.t.Fatal(err)
	}
	return c
}

// stop sends sig and waits for the process to exit.
func (p *proc) stop(sig syscall.Signal) error {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatal(err)
	}
	select {
	case <-p.done:
		return p.err
	case <-time.After(60 * time.Second):
		p.t.Fatalf("serve did not exit 60s after %v:\n%s", sig, p.logs.String())
		return nil
	}
}

// newOrg runs 'countersign init --json' into a new data directory.
func newOrg(t *testing.T) (data string, cred credentials) {
	t.Helper()
	data = filepath.Join(t.TempDir(), "data")
	r := countersign(t, nil, "init", "--data", data, "--org", "e2e", "--json")
	if r.code != 0 {
		t.Fatalf("init: exit %d %s", r.code, r.stderr)
	}
	return data, parseCredentials(t, r.stdout)
}

// documentedAnswer is DESIGN's documented validate answer for the seed body
// after the SDK sent the values under the synonyms.
const documentedAnswer = `{"success":true,"verifiedAction":false,"decisionID":"ID",
 "indicators":{"iv_is_values_collected":true,"iv_is_values_match":true,
  "iv_values_match_details":{
   "amount":{"matched":true,"field":"total","reason":"match"},
   "payeeID":{"matched":true,"field":"payee","reason":"match"},
   "accountNumber":{"matched":true,"field":"account","reason":"match"},
   "notes":{"matched":true,"field":"memo","reason":"match"}},
  "iv_is_biometrics_collected":false,"iv_is_biometrics_match":false,"iv_liveness":false,
  "iv_policy_violations":{"violations":[],"has_violations":false,"total_frames":0,"verified_frames":0},
  "iv_biometrics_info":[],"iv_user_enrolled":false,"iv_spoof_detected":false,
  "idv_matching":false,"driverLicenseCollected":false,"idlive_liveness":false,"regular_liveness":false},
 "ivScore":2000}`

// sameJSON compares two JSON documents as values, after setting the
// decisionID of got to "ID".
func sameJSON(t *testing.T, got []byte, want string) {
	t.Helper()
	var g, w map[string]any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("answer %s: %v", got, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatal(err)
	}
	if id, _ := g["decisionID"].(string); id == "" {
		t.Errorf("no decisionID in %s", got)
	}
	g["decisionID"] = "ID"
	if !reflect.DeepEqual(g, w) {
		gb, _ := json.Marshal(g)
		wb, _ := json.Marshal(w)
		t.Fatalf("answer\n got %s\nwant %s", gb, wb)
	}
}

// TestServeDocumentedExample is the README's walk-through over a real
// socket: the SDK sends the amount as the string "35.00" under "total" (and
// the other values under other names and types), the backend validates the
// seed body, and countersign answers DESIGN's documented response.
func TestServeDocumentedExample(t *testing.T) {
	data, cred := newOrg(t)
	p := serve(t, data, freeAddr(t))
	c := p.client(client.Config{CID: cred.CID, APIKey: cred.APIKey})

	s, err := c.CreateSession("readme-0001", "user-1", "transfer")
	if err != nil {
		t.Fatal(err)
	}
	fields := `{"fields":[{"key":"total","value":"35.00"},{"key":"payee","value":"6"},{"key":"account","value":66666666},{"key":"memo","value":"Wire transfer"}],"final":true}`
	r, err := c.Do("POST", "/v1/sessions/readme-0001/events", []byte(fields),
		client.Header{Name: "x-client-id", Value: cred.CID}, client.Header{Name: "x-collect-token", Value: s.CollectToken})
	if err != nil || r.Status != 202 {
		t.Fatalf("events: %v %d %s", err, r.Status, r.Body)
	}
	body := `{"cid":"` + cred.CID + `","csid":"readme-0001","userID":"user-1","action":"transfer","additionalData":{"sessionData":[{"key":"amount","value":35,"synonyms":["total","sum"]},{"key":"payeeID","value":6,"synonyms":["payee"]},{"key":"accountNumber","value":"66666666","synonyms":["account"]},{"key":"notes","value":"Wire transfer","synonyms":["memo"]}]},"isEnrollment":false}`
	r, err = c.Do("POST", "/v1/validate", []byte(body), client.Header{Name: "apikey", Value: cred.APIKey})
	if err != nil || r.Status != 200 {
		t.Fatalf("validate: %v %d %s", err, r.Status, r.Body)
	}
	sameJSON(t, r.Body, documentedAnswer)

	// The older path answers the same.
	r2, err := c.Do("POST", "/api/v1/validate", []byte(body), client.Header{Name: "apikey", Value: cred.APIKey})
	if err != nil || r2.Status != 200 {
		t.Fatalf("/api/v1/validate: %v %d %s", err, r2.Status, r2.Body)
	}
	sameJSON(t, r2.Body, documentedAnswer)

	// The decision is stored and readable.
	var d client.Decision
	json.Unmarshal(r.Body, &d)
	g, err := c.GetDecision(d.DecisionID)
	if err != nil || g.Status != 200 {
		t.Fatalf("GET decision: %v %d %s", err, g.Status, g.Body)
	}
	var view struct {
		DecisionID string          `json:"decisionID"`
		CSID       string          `json:"csid"`
		Response   json.RawMessage `json:"response"`
	}
	if err := json.Unmarshal(g.Body, &view); err != nil || view.DecisionID != d.DecisionID || view.CSID != "readme-0001" || !bytes.Equal(view.Response, r.Body) {
		t.Fatalf("GET decision %s: %s (%v)", d.DecisionID, g.Body, err)
	}

	if err := p.stop(syscall.SIGTERM); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, p.logs.String())
	}
	logs := p.logs.String()
	for _, want := range []string{"opened store", "serving", "sonic=", "received signal", "drained", "closed store"} {
		if !strings.Contains(logs, want) {
			t.Errorf("serve log lacks %q:\n%s", want, logs)
		}
	}
}

// TestReadmeCurl pastes the curl commands 'countersign init' prints into a
// shell, as a newcomer would: validate, then the push approval through
// every surface (native, iVALT, UNLOQ) with 'countersign device' as the
// phone, then the authenticator scenarios.
func TestReadmeCurl(t *testing.T) {
	for _, tool := range []string{"sh", "curl", "sed"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("no %s", tool)
		}
	}
	addr := freeAddr(t)
	data := filepath.Join(t.TempDir(), "data")
	r := countersign(t, nil, "init", "--data", data, "--org", "demo", "--addr", addr)
	if r.code != 0 {
		t.Fatalf("init: %s", r.stderr)
	}
	i := strings.Index(r.stdout, "# 1.")
	if i < 0 {
		t.Fatalf("no curl commands in:\n%s", r.stdout)
	}
	serve(t, data, addr)
	sh := exec.Command("sh", "-c", "set -e\n"+r.stdout[i:])
	out, err := sh.CombinedOutput()
	if err != nil {
		t.Fatalf("pasted commands failed: %v\n%s", err, out)
	}
	j := bytes.LastIndex(out, []byte(`{"success"`))
	if j < 0 {
		t.Fatalf("no validate answer in:\n%s", out)
	}
	// The validate answer has no newline of its own; the operator's two
	// admin answers follow it.
	dec := json.NewDecoder(bytes.NewReader(out[j:]))
	var answer json.RawMessage
	if err := dec.Decode(&answer); err != nil {
		t.Fatalf("validate answer in %s: %v", out[j:], err)
	}
	sameJSON(t, answer, documentedAnswer)
	rest := out[j+int(dec.InputOffset()):]
	for _, want := range []string{
		`"userID":"user-1","mobile":"+31612345678"`, "activation code csa_", "activated device dev_",
		`"status":"approved","factors":[`,                                                         // native: the backend's long poll
		`{"status":"success","message":"The user approved the request."`,                          // iVALT's result call
		`{"type":"api.application.approval.authenticate","result":{"unloq_id":"user-1","token":"`, // UNLOQ
		"\napprove ", ", 0 not as expected\n",
	} {
		if !bytes.Contains(rest, []byte(want)) {
			t.Errorf("the admin commands' answers lack %s:\n%s", want, rest)
		}
	}
}

// TestServeSimulate plays every SDK scenario through 'countersign simulate':
// enrollment (which enrolls but does not verify), a genuine enrolled user
// verified with ivScore >= 8000, and impostor, replay, photo, multiple faces,
// user mismatch and a tampered amount each caught with DESIGN's indicators
// (bench's expectations).
func TestServeSimulate(t *testing.T) {
	data, cred := newOrg(t)
	p := serve(t, data, freeAddr(t))
	r := countersign(t, nil, "simulate", "--addr", "http://"+p.addr, "--cid", cred.CID, "--apikey", cred.APIKey, "--scenario", "all", "--gzip")
	if r.code != 0 {
		t.Fatalf("simulate: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	for _, name := range simulate.ScenarioNames() {
		if !strings.Contains(r.stdout, "\n"+name+" ") {
			t.Errorf("no %s row in:\n%s", name, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "FAIL") {
		t.Errorf("a scenario failed:\n%s", r.stdout)
	}
	// A second organization, through the environment, one scenario, twice.
	r = countersign(t, []string{"COUNTERSIGN_ADDR=" + p.addr, "COUNTERSIGN_CID=" + cred.CID, "COUNTERSIGN_APIKEY=" + cred.APIKey},
		"simulate", "--scenario", "photo", "--n", "2")
	if r.code != 0 || strings.Count(r.stdout, "\nphoto ") != 2 {
		t.Fatalf("simulate photo x2: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
}

// TestServeSimulateInProcess checks the decisions of each scenario in
// detail, speaking to the binary with the bench SDK.
func TestServeSimulateInProcess(t *testing.T) {
	data, cred := newOrg(t)
	p := serve(t, data, freeAddr(t))
	c := p.client(client.Config{CID: cred.CID, APIKey: cred.APIKey})
	sim := simulate.NewSimulator(c, "inproc", simulate.DefaultDim, 7)
	outs := sim.RunAll(context.Background(), simulate.Scenarios, 1)
	byName := map[string]*client.Decision{}
	for _, o := range outs {
		if o.Err != nil {
			t.Errorf("%s: %v\n%s", o.Scenario, o.Err, raw(o.Decision))
		}
		byName[o.Scenario] = o.Decision
	}
	if d := byName["genuine"]; d != nil && (d.Indicators.PolicyViolations.TotalFrames != 6 || d.Indicators.PolicyViolations.VerifiedFrames != 6) {
		t.Errorf("genuine: total %d verified %d frames, want 6 and 6", d.Indicators.PolicyViolations.TotalFrames, d.Indicators.PolicyViolations.VerifiedFrames)
	}
	// An enrolling session is not verified by its own frames; a validate
	// naming another user keeps no biometric credit.
	if d := byName["enroll"]; d != nil && (d.VerifiedAction || d.IVScore != 6750) {
		t.Errorf("enroll: want not verified, ivScore 6750: %s", d.Raw)
	}
	if d := byName["user_mismatch"]; d != nil && (d.VerifiedAction || d.IVScore != 5250) {
		t.Errorf("user_mismatch: want not verified, ivScore 5250: %s", d.Raw)
	}
	if d := byName["photo"]; d != nil {
		if v, ok := d.Violation("static_stream"); !ok || v.Count < 1 {
			t.Errorf("photo: %s", d.Raw)
		}
	}
	if d := byName["replay"]; d != nil {
		if v, ok := d.Violation("replayed_frame"); !ok || v.FirstSeq != 5 {
			t.Errorf("replay: want replayed_frame first at seq 5: %s", d.Raw)
		}
	}
}

func raw(d *client.Decision) []byte {
	if d == nil {
		return nil
	}
	return d.Raw
}

// TestServeDurability kills the server with SIGKILL right after acknowledged
// events and decisions, restarts it on the same data, and reads every one of
// them back.
func TestServeDurability(t *testing.T) {
	data, cred := newOrg(t)
	addr := freeAddr(t)
	p := serve(t, data, addr)
	c := p.client(client.Config{CID: cred.CID, APIKey: cred.APIKey})
	ctx := context.Background()
	faces := simulate.NewFaces(simulate.DefaultDim, 11)

	type session struct {
		csid           string
		fields, frames int
		decision       *client.Decision
	}
	var sessions []session
	for i := range 6 {
		csid := fmt.Sprintf("durable-%04d", i)
		s, err := c.CreateSession(csid, fmt.Sprintf("user-%d", i), "transfer")
		if err != nil {
			t.Fatal(err)
		}
		id := faces.Identity(uint64(i))
		var frames []client.Frame
		for j := range 1 + i {
			frames = append(frames, client.Frame{Seq: uint64(j + 1), TS: time.Now().UnixMilli() + int64(j)*100, Type: "face", Faces: 1,
				Quality: 0.9, Liveness: 0.95, Embedding: faces.Genuine(id)})
		}
		fields := simulate.SeedFields(time.Now().UnixMilli())[:1+i%4]
		if _, err := c.SendEvents(ctx, s, &client.Events{Fields: fields, Frames: frames}); err != nil {
			t.Fatal(err)
		}
		ss := session{csid: csid, fields: len(fields), frames: len(frames)}
		if i%2 == 0 { // half the sessions are decided; the others end on acknowledged events
			d, err := c.Validate(ctx, &client.ValidateRequest{CSID: csid, UserID: s.UserID, Action: "transfer", SessionData: simulate.SeedSessionData()})
			if err != nil {
				t.Fatal(err)
			}
			ss.decision = d
		}
		sessions = append(sessions, ss)
	}
	// The last request was the last session's acknowledged events: SIGKILL
	// now, with no drain and no close.
	if err := p.stop(syscall.SIGKILL); err == nil {
		t.Fatal("SIGKILL: the process exited cleanly?")
	}

	p2 := serve(t, data, addr)
	c2 := p2.client(client.Config{CID: cred.CID, APIKey: cred.APIKey})
	for _, ss := range sessions {
		r, err := c2.GetSession(ss.csid)
		if err != nil || r.Status != 200 {
			t.Fatalf("GET session %s after SIGKILL: %v %d %s", ss.csid, err, r.Status, r.Body)
		}
		var view struct {
			Fields         int `json:"fields"`
			FramesReceived int `json:"framesReceived"`
		}
		json.Unmarshal(r.Body, &view)
		if view.Fields != ss.fields || view.FramesReceived != ss.frames {
			t.Errorf("session %s after SIGKILL: %s, want %d fields and %d frames", ss.csid, r.Body, ss.fields, ss.frames)
		}
		if ss.decision == nil {
			continue
		}
		g, err := c2.GetDecision(ss.decision.DecisionID)
		if err != nil || g.Status != 200 {
			t.Fatalf("GET decision %s after SIGKILL: %v %d %s", ss.decision.DecisionID, err, g.Status, g.Body)
		}
		var view2 struct {
			Response json.RawMessage `json:"response"`
		}
		if json.Unmarshal(g.Body, &view2); !bytes.Equal(view2.Response, ss.decision.Raw) {
			t.Errorf("decision %s after SIGKILL:\n got %s\nwant %s", ss.decision.DecisionID, view2.Response, ss.decision.Raw)
		}
	}
	// The restarted server still decides: frames acknowledged before the kill
	// are scored (or rescored) and validate ends with every frame counted.
	odd := sessions[1]
	d, err := c2.Validate(ctx, &client.ValidateRequest{CSID: odd.csid, UserID: "user-1", Action: "transfer", SessionData: simulate.SeedSessionData()})
	if err != nil {
		t.Fatal(err)
	}
	if d.Indicators.PolicyViolations.TotalFrames != odd.frames {
		t.Errorf("validate after restart counts %d frames, want %d: %s", d.Indicators.PolicyViolations.TotalFrames, odd.frames, d.Raw)
	}
}

// TestServeFailures: a missing store, an address in use.
func TestServeFailures(t *testing.T) {
	r := countersign(t, nil, "serve", "--data", filepath.Join(t.TempDir(), "none"), "--addr", freeAddr(t))
	if r.code != 1 || !strings.Contains(r.stderr, "holds no countersign store") {
		t.Errorf("serve without a store: exit %d %s", r.code, r.stderr)
	}
	data, _ := newOrg(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	r = countersign(t, nil, "serve", "--data", data, "--addr", ln.Addr().String())
	if r.code != 1 || !strings.Contains(r.stderr, "closed store") {
		t.Errorf("serve on an address in use: exit %d %s", r.code, r.stderr)
	}
	// A store in use by a server cannot be opened by org create.
	p := serve(t, data, freeAddr(t))
	r = countersign(t, nil, "org", "create", "--data", data, "--name", "busy")
	if r.code != 1 || !strings.Contains(r.stderr, "stop it first") {
		t.Errorf("org create while serving: exit %d %s", r.code, r.stderr)
	}
	p.stop(syscall.SIGINT)
	if _, err := os.Stat(data); err != nil {
		t.Fatal(err)
	}
}

// TestServeProcessing: a validate that arrives while acknowledged frames are
// still being scored answers 202 processing (retryAfterMS, Retry-After); the
// decision after them counts every frame. Scoring is fast, so a second
// connection keeps asking while the frames arrive, over a few sessions.
func TestServeProcessing(t *testing.T) {
	data, cred := newOrg(t)
	p := serve(t, data, freeAddr(t), "--workers", "1")
	c := p.client(client.Config{CID: cred.CID, APIKey: cred.APIKey})
	ctx := context.Background()
	faces := simulate.NewFaces(simulate.DefaultDim, 3)
	id := faces.Identity(3)
	var seen atomic.Int32
	for try := 0; try < 5 && seen.Load() == 0; try++ {
		csid := fmt.Sprintf("processing-%04d", try)
		s, err := c.CreateSession(csid, "user-p", "transfer")
		if err != nil {
			t.Fatal(err)
		}
		req := &client.ValidateRequest{CSID: csid, UserID: "user-p", Action: "transfer"}
		body := req.AppendJSON(nil, cred.CID)
		stop := make(chan struct{})
		asked := make(chan error, 1)
		go func() {
			for {
				select {
				case <-stop:
					asked <- nil
					return
				default:
				}
				r, err := c.Do("POST", "/v1/validate", body, client.Header{Name: "apikey", Value: cred.APIKey})
				if err != nil {
					asked <- err
					return
				}
				switch r.Status {
				case 200:
				case 202:
					var pr struct {
						ErrorMessage string `json:"errorMessage"`
						RetryAfterMS int    `json:"retryAfterMS"`
					}
					if err := json.Unmarshal(r.Body, &pr); err != nil || pr.ErrorMessage != "processing" ||
						pr.RetryAfterMS < 10 || pr.RetryAfterMS > 1000 || r.RetryAfter == "" {
						asked <- fmt.Errorf("202 answer %s (Retry-After %q)", r.Body, r.RetryAfter)
						return
					}
					seen.Add(1)
				default:
					asked <- fmt.Errorf("validate: %d %s", r.Status, r.Body)
					return
				}
			}
		}()
		total := 0
		ts := time.Now().UnixMilli()
		for k := 0; k < 4; k++ {
			var frames []client.Frame
			for j := range 64 {
				frames = append(frames, client.Frame{Seq: uint64(total + j + 1), TS: ts + int64(total+j)*100, Type: "face", Faces: 1,
					Quality: 0.9, Liveness: 0.95, Embedding: faces.Genuine(id)})
			}
			if _, err := c.SendEvents(ctx, s, &client.Events{Frames: frames}); err != nil {
				t.Fatal(err)
			}
			total += len(frames)
		}
		close(stop)
		if err := <-asked; err != nil {
			t.Fatal(err)
		}
		d, err := c.Validate(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if d.Indicators.PolicyViolations.TotalFrames != total {
			t.Fatalf("decision counts %d frames, want %d: %s", d.Indicators.PolicyViolations.TotalFrames, total, d.Raw)
		}
	}
	t.Logf("%d processing answers observed", seen.Load())
}

// TestServeValuesOnlyPolicy: an organization created with
// 'org create --policy values-only' verifies the documented example on its
// values alone, while the default organization in the same store does not.
func TestServeValuesOnlyPolicy(t *testing.T) {
	data, full := newOrg(t)
	r := countersign(t, nil, "org", "create", "--data", data, "--name", "values", "--policy", "values-only", "--json")
	if r.code != 0 {
		t.Fatalf("org create: %s", r.stderr)
	}
	vo := parseCredentials(t, r.stdout)
	p := serve(t, data, freeAddr(t))
	ctx := context.Background()
	for _, org := range []struct {
		cred     credentials
		verified bool
	}{{full, false}, {vo, true}} {
		c := p.client(client.Config{CID: org.cred.CID, APIKey: org.cred.APIKey})
		sim := simulate.NewSimulator(c, "policy-"+org.cred.Org, simulate.DefaultDim, 1)
		sc, _ := simulate.ScenarioByName("values-only")
		o := sim.Run(ctx, sc, "user-1")
		if o.Decision == nil {
			t.Fatalf("%s: %v", org.cred.Org, o.Err)
		}
		if d := o.Decision; d.VerifiedAction != org.verified || !d.Indicators.ValuesMatch {
			t.Errorf("%s: verifiedAction %v, want %v: %s", org.cred.Org, d.VerifiedAction, org.verified, d.Raw)
		}
	}
}

// TestServePprof: --pprof serves Go's profiler on its own address, the API
// address does not, and an address in use fails the start.
func TestServePprof(t *testing.T) {
	data, _ := newOrg(t)
	paddr := freeAddr(t)
	p := serve(t, data, freeAddr(t), "--pprof", paddr)
	resp, err := http.Get("http://" + paddr + "/debug/pprof/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "goroutine") {
		t.Errorf("pprof index: %d %.200s", resp.StatusCode, body)
	}
	r, err := p.client(client.Config{}).Do("GET", "/debug/pprof/", nil)
	if err != nil || r.Status != 404 {
		t.Errorf("API address serves /debug/pprof/: %v %v", r, err)
	}
	p.stop(syscall.SIGINT)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	res := countersign(t, nil, "serve", "--data", data, "--addr", freeAddr(t), "--pprof", ln.Addr().String())
	if res.code != 1 || !strings.Contains(res.stderr, "--pprof") {
		t.Errorf("--pprof on an address in use: exit %d %s", res.code, res.stderr)
	}
}

// TestBenchSpawn runs the harness as make bench does, shortened: it spawns
// its own server from the binary, measures the disk in the server's
// directory before the load, and prints the table with the disk's line.
func TestBenchSpawn(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a server and loads it")
	}
	r := countersign(t, nil, "bench", "--spawn", "--scenario", "validate", "--sessions", "9", "--connections", "4",
		"--duration", "300ms", "--warmup", "100ms", "--ceiling", "off", "--pin", "off", "--out", "", "--disk-probe", "200ms")
	if r.code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, "| validate c=4 | closed |") || !strings.Contains(r.stdout, "\n- disk: ") ||
		!strings.Contains(r.stdout, "countersign-bench-") || !strings.Contains(r.stdout, "(each synced answer waits for at least one)") {
		t.Fatalf("stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
	}
}

// TestBenchApprovals runs the approvals scenario briefly on a spawned
// server: users enrolled, every device's poll held, wake-ups timed, and
// approvals created and decided in a closed loop.
func TestBenchApprovals(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a server and loads it")
	}
	r := countersign(t, nil, "bench", "--spawn", "--scenario", "approvals", "--held-polls", "200", "--wake-samples", "10",
		"--connections", "4", "--duration", "300ms", "--warmup", "100ms", "--pin", "off", "--out", "", "--disk-probe", "0")
	if r.code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{"| device long polls held at once | 200 | 10,000 |", "| approvals created and decided per second (durable, 4 workers) |",
		"requester's long poll answered, p50 / p99 (10) |", "--max-conns-per-ip 272"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("no %q in stdout:\n%s\nstderr:\n%s", want, r.stdout, r.stderr)
		}
	}
}
