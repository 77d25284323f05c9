package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"

	"github.com/countersign/countersign/engine/rules"
	"github.com/countersign/countersign/store"
)

// testDim keeps embeddings small where a test does not need 512-d faces.
const testDim = 512

// logBuffer collects a server's log lines for assertions; it never writes to
// the testing.T, whose Log panics after the test ends.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// testEnv is a real store (in memory) and a real server on fasthttp's
// in-memory listener, with one organization.
type testEnv struct {
	t      testing.TB
	db     *store.DB
	srv    *Server
	cfg    Config
	ln     *fasthttputil.InmemoryListener
	client *fasthttp.Client
	logs   *logBuffer
	org    store.Org
	apiKey string
	now    time.Time
	mu     sync.Mutex // guards now
	hook   func(*fasthttp.RequestCtx)
	rules  func(store.OrgID) *rules.Compiled // the organizations' rules (Server.testRules)
	// closeErrOK: the test broke the store on purpose, so closing it may fail.
	closeErrOK bool
	base       string // of request URLs; "" for the in-memory listener
}

type envOption func(*testEnv, *Config, *store.Options)

func withConfig(f func(*Config)) envOption {
	return func(_ *testEnv, c *Config, _ *store.Options) { f(c) }
}

func withHook(h func(*fasthttp.RequestCtx)) envOption {
	return func(e *testEnv, _ *Config, _ *store.Options) { e.hook = h }
}

// withRules gives the server's approval surfaces the rules r returns.
func withRules(r func(store.OrgID) *rules.Compiled) envOption {
	return func(e *testEnv, _ *Config, _ *store.Options) { e.rules = r }
}

// withStoreOptions lets f change the store's options.
func withStoreOptions(f func(*store.Options)) envOption {
	return func(_ *testEnv, _ *Config, so *store.Options) { f(so) }
}

// withStoreFS runs the store on fs (an errorfs wrapper, say) instead of a
// plain in-memory file system.
func withStoreFS(fs vfs.FS) envOption {
	return func(_ *testEnv, _ *Config, so *store.Options) { so.FS = fs }
}

// withBrokenStore runs the store on fs, which the test makes fail, and
// tolerates the store then failing to close.
func withBrokenStore(fs vfs.FS) envOption {
	return func(e *testEnv, _ *Config, so *store.Options) {
		so.FS = fs
		e.closeErrOK = true
	}
}

func newEnv(t testing.TB, opts ...envOption) *testEnv {
	t.Helper()
	e := &testEnv{t: t, logs: &logBuffer{}, now: time.UnixMilli(1763800000000)}
	so := store.Options{Dir: "data", FS: vfs.NewMem(), Now: e.clock}
	cfg := Config{
		Workers:   2,
		QueueSize: 64,
		Logger:    slog.New(slog.NewTextHandler(e.logs, nil)),
		Now:       e.clock,
	}
	for _, o := range opts {
		o(e, &cfg, &so)
	}
	db, err := store.Open(so)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	e.db = db
	e.org, e.apiKey, err = db.CreateOrg("acme", nil)
	if err != nil {
		t.Fatalf("create org: %v", err)
	}
	e.cfg = cfg
	e.start()
	t.Cleanup(e.close)
	return e
}

// start (re)creates the server over e.db and serves it in memory.
func (e *testEnv) start() {
	srv, err := New(e.cfg, e.db)
	if err != nil {
		e.t.Fatalf("new server: %v", err)
	}
	e.srv = srv
	srv.testHook = e.hook
	srv.testRules = e.rules
	e.ln = fasthttputil.NewInmemoryListener()
	ln := e.ln
	go func() { _ = srv.Serve(ln) }()
	e.client = &fasthttp.Client{
		Dial:                     func(string) (net.Conn, error) { return ln.Dial() },
		MaxResponseBodySize:      64 << 20,
		DisablePathNormalizing:   true,
		NoDefaultUserAgentHeader: true,
	}
}

// stop shuts the server down (the store stays open).
func (e *testEnv) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.srv.Shutdown(ctx); err != nil {
		e.t.Errorf("shutdown: %v", err)
	}
	_ = e.ln.Close()
}

func (e *testEnv) close() {
	e.stop()
	if err := e.db.Close(); err != nil && !e.closeErrOK {
		e.t.Errorf("close store: %v", err)
	}
}

func (e *testEnv) clock() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.now
}

func (e *testEnv) advance(d time.Duration) {
	e.mu.Lock()
	e.now = e.now.Add(d)
	e.mu.Unlock()
}

// response is what a test request got back, body decompressed.
type response struct {
	status  int
	header  map[string]string
	body    []byte
	rawBody []byte
}

func (r response) String() string { return fmt.Sprintf("%d %s", r.status, r.body) }

// errorCode returns the errorCode of a native error body ("" if none).
func (r response) errorCode() string {
	var v struct {
		Success      *bool  `json:"success"`
		ErrorMessage string `json:"errorMessage"`
		ErrorCode    string `json:"errorCode"`
	}
	if json.Unmarshal(r.body, &v) != nil {
		return ""
	}
	return v.ErrorCode
}

func (r response) errorMessage() string {
	var v struct {
		ErrorMessage string `json:"errorMessage"`
	}
	_ = json.Unmarshal(r.body, &v)
	return v.ErrorMessage
}

// req describes one test request.
type req struct {
	method  string
	path    string
	body    []byte
	headers []string // name, value pairs
	noCT    bool     // send no Content-Type
}

func (e *testEnv) do(r req) response {
	e.t.Helper()
	base := e.base
	if base == "" {
		base = "http://countersign.test"
	}
	return doWith(e.t, e.client, base, r)
}

// useTCP serves e's server on a loopback socket too and sends every later
// request of e.do over it.
func (e *testEnv) useTCP() {
	e.t.Helper()
	e.base = "http://" + e.serveTCP()
	e.client = &fasthttp.Client{MaxResponseBodySize: 64 << 20}
}

func doWith(t testing.TB, c *fasthttp.Client, base string, r req) response {
	t.Helper()
	q := fasthttp.AcquireRequest()
	p := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(q)
	defer fasthttp.ReleaseResponse(p)
	if r.method == "" {
		r.method = "POST"
		if r.body == nil {
			r.method = "GET"
		}
	}
	q.Header.SetMethod(r.method)
	q.SetRequestURI(base + r.path)
	if r.body != nil {
		q.SetBody(r.body)
		if !r.noCT {
			q.Header.SetContentType("application/json")
		}
	}
	for i := 0; i+1 < len(r.headers); i += 2 {
		q.Header.Set(r.headers[i], r.headers[i+1])
	}
	if err := c.DoTimeout(q, p, 30*time.Second); err != nil {
		t.Fatalf("%s %s: %v", r.method, r.path, err)
	}
	out := response{status: p.StatusCode(), header: map[string]string{}, rawBody: append([]byte(nil), p.Body()...)}
	for k, v := range p.Header.All() {
		out.header[strings.ToLower(string(k))] = string(v)
	}
	out.body = decompressBody(t, out.header["content-encoding"], out.rawBody)
	return out
}

// rawInmem writes raw on a new in-memory connection (in the background: the
// server may answer and close before reading it all) and reads one response.
func (e *testEnv) rawInmem(raw string) response {
	e.t.Helper()
	c, err := e.ln.Dial()
	if err != nil {
		e.t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	go func() { _, _ = io.WriteString(c, raw) }()
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		e.t.Fatalf("read response: %v", err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	out := response{status: res.StatusCode, header: map[string]string{}, body: b, rawBody: b}
	for k, v := range res.Header {
		out.header[strings.ToLower(k)] = v[0]
	}
	return out
}

func decompressBody(t testing.TB, enc string, b []byte) []byte {
	switch enc {
	case "":
		return b
	case "gzip":
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("gzip response: %v", err)
		}
		out, err := io.ReadAll(zr)
		if err != nil {
			t.Fatalf("gzip response: %v", err)
		}
		return out
	case "zstd":
		zr, err := zstd.NewReader(nil)
		if err != nil {
			t.Fatal(err)
		}
		defer zr.Close()
		out, err := zr.DecodeAll(b, nil)
		if err != nil {
			t.Fatalf("zstd response: %v", err)
		}
		return out
	}
	t.Fatalf("unexpected content-encoding %q", enc)
	return nil
}

func (e *testEnv) withKey(h ...string) []string {
	return append([]string{"apikey", e.apiKey}, h...)
}

// session is a test collection session.
type session struct {
	csid, token, userID string
}

func (e *testEnv) newSession(csid, userID string) session {
	e.t.Helper()
	return e.newSessionFor(csid, userID, "wire_transfer")
}

// newSessionFor opens a session for action; "" leaves action out of the body.
func (e *testEnv) newSessionFor(csid, userID, action string) session {
	e.t.Helper()
	body := map[string]any{"csid": csid, "userID": userID}
	if action != "" {
		body["action"] = action
	}
	r := e.do(req{path: "/v1/sessions", body: mustJSON(body), headers: []string{"x-client-id", e.org.CID}})
	if r.status != 201 {
		e.t.Fatalf("create session %s: %s", csid, r)
	}
	var v struct {
		CSID         string `json:"csid"`
		CollectToken string `json:"collectToken"`
		ExpiresAt    int64  `json:"expiresAt"`
	}
	if err := json.Unmarshal(r.body, &v); err != nil {
		e.t.Fatal(err)
	}
	return session{csid: v.CSID, token: v.CollectToken, userID: userID}
}

func (e *testEnv) postEvents(s session, body []byte, h ...string) response {
	e.t.Helper()
	return e.do(req{path: "/v1/sessions/" + s.csid + "/events", body: body,
		headers: append([]string{"x-client-id", e.org.CID, "x-collect-token", s.token}, h...)})
}

func (e *testEnv) validate(body []byte, h ...string) response {
	e.t.Helper()
	return e.do(req{path: "/v1/validate", body: body, headers: e.withKey(h...)})
}

// validateWhenScored retries a validate answered 202 until it is final.
func (e *testEnv) validateWhenScored(body []byte, h ...string) response {
	e.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		r := e.validate(body, h...)
		if r.status != 202 || time.Now().After(deadline) {
			return r
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitScored waits until the session has no unscored frames.
func (e *testEnv) waitScored(s session) {
	e.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		sess, err := e.db.Session(e.org.ID, s.csid)
		if err != nil {
			e.t.Fatal(err)
		}
		if sess.FramesScored >= sess.FramesReceived {
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
	e.t.Fatalf("session %s: frames not scored in time", s.csid)
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// Synthetic faces: deterministic random unit vectors and noisy variants.

func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)) }

func unitVec(r *rand.Rand, d int) []float32 {
	v := make([]float32, d)
	var n float64
	for i := range v {
		x := r.NormFloat64()
		v[i] = float32(x)
		n += x * x
	}
	n = math.Sqrt(n)
	for i := range v {
		v[i] = float32(float64(v[i]) / n)
	}
	return v
}

// noisy returns base plus Gaussian noise of the given per-component sigma
// (relative to a unit vector's typical component 1/sqrt(d)), normalised.
func noisy(r *rand.Rand, base []float32, sigma float64) []float32 {
	d := len(base)
	scale := sigma / math.Sqrt(float64(d))
	v := make([]float32, d)
	var n float64
	for i := range v {
		x := float64(base[i]) + r.NormFloat64()*scale
		v[i] = float32(x)
		n += x * x
	}
	n = math.Sqrt(n)
	for i := range v {
		v[i] = float32(float64(v[i]) / n)
	}
	return v
}

func embBytes(v []float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

func embB64(v []float32) string { return base64.StdEncoding.EncodeToString(embBytes(v)) }

// frameJSON is one frame of an events body.
type frameJSON struct {
	Seq       uint64  `json:"seq"`
	TS        int64   `json:"ts"`
	Type      string  `json:"type"`
	Faces     int     `json:"faces"`
	Quality   float64 `json:"quality"`
	Liveness  float64 `json:"liveness"`
	DocType   string  `json:"docType,omitempty"`
	Embedding string  `json:"embedding"`
}

type fieldJSON struct {
	Key   string          `json:"key"`
	Value json.RawMessage `json:"value"`
	TS    int64           `json:"ts"`
}

type eventsJSON struct {
	Fields []fieldJSON `json:"fields,omitempty"`
	Frames []frameJSON `json:"frames,omitempty"`
	Final  bool        `json:"final"`
}

// faceFrames makes n genuine face frames of face, 400 ms apart.
func faceFrames(r *rand.Rand, face []float32, firstSeq uint64, ts0 int64, n int) []frameJSON {
	out := make([]frameJSON, n)
	for i := range out {
		out[i] = frameJSON{
			Seq: firstSeq + uint64(i), TS: ts0 + int64(i)*400, Type: "face", Faces: 1,
			Quality: 0.93, Liveness: 0.97, Embedding: embB64(noisy(r, face, 0.3)),
		}
	}
	return out
}

// validateBody is the seed's documented validate body for a session.
func (e *testEnv) validateBody(s session, enroll bool, items ...map[string]any) []byte {
	return e.validateBodyFor("wire_transfer", s, enroll, items...)
}

// validateBodyFor is validateBody naming action; "" leaves action out.
func (e *testEnv) validateBodyFor(action string, s session, enroll bool, items ...map[string]any) []byte {
	if items == nil {
		items = []map[string]any{}
	}
	body := map[string]any{
		"cid": e.org.CID, "csid": s.csid, "userID": s.userID,
		"additionalData": map[string]any{"sessionData": items},
		"isEnrollment":   enroll,
	}
	if action != "" {
		body["action"] = action
	}
	return mustJSON(body)
}

// seedItems is the seed's documented sessionData.
func seedItems() []map[string]any {
	return []map[string]any{
		{"key": "amount", "value": 35, "synonyms": []string{"total", "sum"}},
		{"key": "payeeID", "value": 6, "synonyms": []string{"payee"}},
		{"key": "accountNumber", "value": "66666666", "synonyms": []string{"account"}},
		{"key": "notes", "value": "Wire transfer", "synonyms": []string{"memo"}},
	}
}

// seedFields are the same values as the SDK collected them: other types and
// field names.
func seedFields() []fieldJSON {
	return []fieldJSON{
		{Key: "total", Value: json.RawMessage(`"35.00"`), TS: 1763800000000},
		{Key: "payee", Value: json.RawMessage(`"6"`), TS: 1763800000001},
		{Key: "account", Value: json.RawMessage(`66666666`), TS: 1763800000002},
		{Key: "memo", Value: json.RawMessage(`"  wire   TRANSFER "`), TS: 1763800000003},
	}
}

func gzipBytes(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, _ = zw.Write(b)
	_ = zw.Close()
	return buf.Bytes()
}

func zstdBytes(b []byte) []byte {
	zw, _ := zstd.NewWriter(nil)
	defer zw.Close()
	return zw.EncodeAll(b, nil)
}

// jsonMap decodes a JSON object for assertions.
func jsonMap(t testing.TB, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := d.Decode(&m); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	return m
}
