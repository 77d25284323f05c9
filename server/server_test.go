package server

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/countersign/countersign/server/httpd"
	"github.com/countersign/countersign/server/native"
)

// serveTCP serves e's server on a loopback socket as well and returns its address.
func (e *testEnv) serveTCP() string {
	e.t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		e.t.Fatal(err)
	}
	go func() { _ = e.srv.Serve(ln) }()
	return ln.Addr().String()
}

// rawExchange writes raw to a new connection to addr and reads one response.
func rawExchange(t *testing.T, addr, raw string) (*http.Response, []byte) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	return resp, body
}

func TestProbesAndDocument(t *testing.T) {
	e := newEnv(t)
	if r := e.do(req{path: "/healthz"}); r.status != 200 || string(r.body) != `{"status":"ok"}` {
		t.Errorf("healthz: %s", r)
	}
	if r := e.do(req{path: "/readyz"}); r.status != 200 {
		t.Errorf("readyz: %s", r)
	}
	r := e.do(req{path: "/openapi.json"})
	if r.status != 200 || !bytes.Equal(r.body, openAPIDocument()) {
		t.Errorf("openapi.json: %d, %d bytes", r.status, len(r.body))
	}
	r = e.do(req{path: "/openapi.json", headers: []string{"Accept-Encoding", "gzip"}})
	if r.header["content-encoding"] != "gzip" || !bytes.Equal(r.body, openAPIDocument()) || len(r.rawBody) >= len(r.body) {
		t.Errorf("gzip openapi.json: encoding %q, %d -> %d bytes", r.header["content-encoding"], len(r.rawBody), len(r.body))
	}
	r = e.do(req{path: "/openapi.json", headers: []string{"Accept-Encoding", "deflate, gzip;q=0.5, br, zstd"}})
	if r.header["content-encoding"] != "zstd" || !bytes.Equal(r.body, openAPIDocument()) {
		t.Errorf("zstd openapi.json: encoding %q", r.header["content-encoding"])
	}
	r = e.do(req{path: "/openapi.json", headers: []string{"Accept-Encoding", "gzip;q=0, zstd;q=0.0"}})
	if r.header["content-encoding"] != "" {
		t.Errorf("q=0 codings: encoding %q", r.header["content-encoding"])
	}
}

func TestRouting(t *testing.T) {
	e := newEnv(t)
	cases := []struct {
		method, path string
		status       int
		code         string
	}{
		{"GET", "/nope", 404, "route_not_found"},
		{"GET", "/v1/sessions/abcdefgh/events/x", 404, "route_not_found"},
		{"GET", "/v1/sessions/", 404, "route_not_found"},
		{"GET", "/v1/decisions/", 404, "route_not_found"},
		{"GET", "/v1/validate", 405, "method_not_allowed"},
		{"POST", "/healthz", 405, "method_not_allowed"},
		{"DELETE", "/v1/sessions/abcdefgh", 405, "method_not_allowed"},
		{"GET", "/v1/sessions/abcdefgh/events", 405, "method_not_allowed"},
	}
	for _, c := range cases {
		r := e.do(req{method: c.method, path: c.path})
		if r.status != c.status || r.errorCode() != c.code {
			t.Errorf("%s %s: %s, want %d %s", c.method, c.path, r, c.status, c.code)
		}
		if c.status == 405 && r.header["allow"] == "" {
			t.Errorf("%s %s: 405 without Allow", c.method, c.path)
		}
	}
}

func TestErrorCatalog(t *testing.T) {
	seen := map[string]bool{}
	for _, e := range httpd.Catalog() {
		if seen[e.Code] {
			t.Errorf("duplicate code %s", e.Code)
		}
		seen[e.Code] = true
		if e.Status < 400 || e.Status > 599 || e.Message == "" {
			t.Errorf("%s: status %d, message %q", e.Code, e.Status, e.Message)
		}
		for _, ch := range e.Code {
			if !(ch >= 'a' && ch <= 'z' || ch >= '0' && ch <= '9' || ch == '_') {
				t.Errorf("%s: not snake_case", e.Code)
			}
		}
		body := native.AppendError(nil, e, nil)
		m := jsonMap(t, body)
		if m["success"] != false || m["errorCode"] != e.Code || m["errorMessage"] != e.Message || len(m) != 3 {
			t.Errorf("%s: envelope %s", e.Code, body)
		}
	}
}

// TestReadmeListsErrorCodes keeps the README's error table equal to the
// catalog: every code, on the row of its status.
func TestReadmeListsErrorCodes(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]string{} // status -> the row's codes
	for _, line := range strings.Split(string(b), "\n") {
		if cells := strings.Split(line, "|"); len(cells) == 4 {
			for _, st := range strings.Split(cells[1], ",") {
				rows[strings.TrimSpace(st)] += cells[2]
			}
		}
	}
	for _, e := range httpd.Catalog() {
		if !strings.Contains(rows[fmt.Sprint(e.Status)], "`"+e.Code+"`") {
			t.Errorf("README's error table lacks %s on the %d row", e.Code, e.Status)
		}
	}
}

func TestPanicRecovery(t *testing.T) {
	e := newEnv(t, withHook(func(ctx *fasthttp.RequestCtx) {
		if string(ctx.Request.Header.Peek("x-test-panic")) == "1" {
			panic("boom")
		}
	}))
	for range 3 {
		r := e.do(req{path: "/healthz", headers: []string{"x-test-panic", "1"}})
		if r.status != 500 || r.errorCode() != "internal_error" {
			t.Fatalf("panicking handler: %s", r)
		}
		if r := e.do(req{path: "/healthz"}); r.status != 200 {
			t.Fatalf("after panic: %s", r)
		}
	}
	if !strings.Contains(e.logs.String(), "handler panic") {
		t.Errorf("panic not logged")
	}
	m := e.do(req{path: "/metrics"})
	if !bytes.Contains(m.body, []byte(`countersign_http_requests_total{route="healthz",status="500"} 3`)) ||
		!bytes.Contains(m.body, []byte(`countersign_handler_panics_total 3`)) {
		t.Errorf("metrics do not count the 500s:\n%s", m.body)
	}
}

func TestMetrics(t *testing.T) {
	e := newEnv(t)
	e.do(req{path: "/healthz"})
	e.do(req{path: "/nope"})
	r := e.do(req{path: "/metrics"})
	if r.status != 200 || !strings.HasPrefix(r.header["content-type"], "text/plain") {
		t.Fatalf("metrics: %d %s", r.status, r.header["content-type"])
	}
	for _, want := range []string{
		`countersign_http_requests_total{route="healthz",status="200"} 1`,
		`countersign_http_requests_total{route="unknown",status="404"} 1`,
		`countersign_http_request_duration_seconds_bucket{route="healthz",status="200",le="10"} 1`,
		`# TYPE countersign_http_request_duration_seconds histogram`,
		`# TYPE countersign_store_compactions_total counter`,
		`countersign_frame_queue_depth 0`,
		`countersign_frame_queue_capacity 64`,
		`countersign_decisions_total{verdict="verified"} 0`,
		`countersign_store_disk_bytes `,
		`countersign_store_read_amplification `,
		`countersign_store_background_yields_total 0`,
		`countersign_store_damaged_frames_total 0`,
		`countersign_store_wal_written_bytes_total `,
		`go_goroutines `,
	} {
		if !bytes.Contains(r.body, []byte(want)) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// TestLoopbackLimits exercises what only a real socket shows: an announced
// oversized body refused before it is read, oversized headers, keep-alive.
func TestLoopbackLimits(t *testing.T) {
	e := newEnv(t)
	addr := e.serveTCP()

	// Announce 2 MiB to validate (limit 1 MiB) and send nothing: the answer
	// must come without the body, or this read times out.
	resp, body := rawExchange(t, addr, "POST /v1/validate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"+
		"apikey: "+e.apiKey+"\r\nContent-Length: 2097152\r\n\r\n")
	if resp.StatusCode != 413 || !bytes.Contains(body, []byte(`"errorCode":"body_too_large"`)) ||
		!bytes.Contains(body, []byte("1 MiB")) || resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("announced oversize validate body: %d %s", resp.StatusCode, body)
	}
	// Same for session creation (4 KiB limit).
	resp, body = rawExchange(t, addr, "POST /v1/sessions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n")
	if resp.StatusCode != 413 || !bytes.Contains(body, []byte("4 KiB")) {
		t.Errorf("announced oversize session body: %d %s", resp.StatusCode, body)
	}
	// Chunked bodies are cut off at the limit while reading.
	var chunked strings.Builder
	chunked.WriteString("POST /v1/sessions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
	for range 3 {
		fmt.Fprintf(&chunked, "%x\r\n%s\r\n", 2048, strings.Repeat(" ", 2048))
	}
	chunked.WriteString("0\r\n\r\n")
	resp, body = rawExchange(t, addr, chunked.String())
	if resp.StatusCode != 413 {
		t.Errorf("chunked oversize body: %d %s", resp.StatusCode, body)
	}
	// fasthttp forgets the request line when a chunked body runs over, so
	// the answer must not name a limit (it used to name 4 MiB, another
	// route's, for this 1 MiB one).
	chunked.Reset()
	chunked.WriteString("POST /v1/validate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\napikey: " + e.apiKey +
		"\r\nTransfer-Encoding: chunked\r\n\r\n")
	for range 40 {
		fmt.Fprintf(&chunked, "%x\r\n%s\r\n", 64<<10, strings.Repeat(" ", 64<<10))
	}
	chunked.WriteString("0\r\n\r\n")
	resp, body = rawExchange(t, addr, chunked.String())
	if resp.StatusCode != 413 || !bytes.Contains(body, []byte(`"errorCode":"body_too_large"`)) || bytes.Contains(body, []byte("MiB")) {
		t.Errorf("chunked oversize validate body: %d %s", resp.StatusCode, body)
	}
	// Expect: 100-continue with an oversized body: 413 instead of 100.
	resp, body = rawExchange(t, addr, "POST /v1/validate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"+
		"Expect: 100-continue\r\nContent-Length: 2097152\r\n\r\n")
	if resp.StatusCode != 413 || !bytes.Contains(body, []byte(`"errorCode":"body_too_large"`)) {
		t.Errorf("expect-continue oversize: %d %s", resp.StatusCode, body)
	}
	// Expect: 100-continue within the limit: 100, then the answer.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	_, _ = io.WriteString(c, "POST /v1/sessions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nx-client-id: "+e.org.CID+
		"\r\nExpect: 100-continue\r\nContent-Length: 60\r\n\r\n")
	br := bufio.NewReader(c)
	line, _ := br.ReadString('\n')
	if !strings.HasPrefix(line, "HTTP/1.1 100") {
		t.Errorf("expect-continue: %q", line)
	}
	_, _ = br.ReadString('\n')
	_, _ = io.WriteString(c, fmt.Sprintf("%-60s", `{"csid":"expect-00001","userID":"u","action":"a"}`))
	if res, err := http.ReadResponse(br, nil); err != nil || res.StatusCode != 201 {
		t.Errorf("expect-continue body: %v %v", res, err)
	}
	c.Close()
	// Headers larger than the read buffer.
	resp, body = rawExchange(t, addr, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: "+strings.Repeat("a", 10<<10)+"\r\n\r\n")
	if resp.StatusCode != 431 || !bytes.Contains(body, []byte(`"errorCode":"headers_too_large"`)) {
		t.Errorf("oversize headers: %d %s", resp.StatusCode, body)
	}
	// Garbage request line.
	resp, body = rawExchange(t, addr, "NOT HTTP\r\n\r\n")
	if resp.StatusCode != 400 || !bytes.Contains(body, []byte(`"success":false`)) {
		t.Errorf("garbage request: %d %s", resp.StatusCode, body)
	}

	// Keep-alive over a real socket, with net/http as the client.
	client := &http.Client{Timeout: 5 * time.Second}
	for range 3 {
		res, err := client.Get("http://" + addr + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || string(b) != `{"status":"ok"}` {
			t.Fatalf("healthz over TCP: %d %s", res.StatusCode, b)
		}
	}
}

func TestReadTimeout(t *testing.T) {
	e := newEnv(t, withConfig(func(c *Config) { c.ReadTimeout = 200 * time.Millisecond }))
	addr := e.serveTCP()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	_, _ = io.WriteString(c, "POST /v1/validate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("slow body: %v", err)
	}
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != 408 || !bytes.Contains(b, []byte(`"errorCode":"request_timeout"`)) {
		t.Errorf("slow body: %d %s", res.StatusCode, b)
	}
}

func TestMaxConnsPerIP(t *testing.T) {
	e := newEnv(t, withConfig(func(c *Config) { c.MaxConnsPerIP = 2 }))
	addr := e.serveTCP()
	var conns []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		// Make sure the server has accepted it.
		_, _ = io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
		if res, err := http.ReadResponse(bufio.NewReader(c), nil); err != nil || res.StatusCode != 200 {
			t.Fatalf("connection within the cap: %v", err)
		}
	}
	resp, body := rawExchange(t, addr, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp.StatusCode != 429 || !bytes.Contains(body, []byte(`"errorCode":"too_many_connections"`)) {
		t.Errorf("connection over the cap: %d %s", resp.StatusCode, body)
	}
	for _, c := range conns {
		c.Close()
	}
	// Closing frees the places.
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, _ = rawExchange(t, addr, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		if resp.StatusCode == 200 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if resp.StatusCode != 200 {
		t.Errorf("after closing: %d", resp.StatusCode)
	}
}

// TestShutdownDrains: a request in flight when Shutdown starts is answered;
// readiness turns 503 at once; Shutdown returns after the request.
func TestShutdownDrains(t *testing.T) {
	started := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	e := newEnv(t, withHook(func(ctx *fasthttp.RequestCtx) {
		if string(ctx.Request.Header.Peek("x-test-stall")) == "1" {
			once.Do(func() { close(started) })
			<-release
		}
	}))
	addr := e.serveTCP()
	type result struct {
		status int
		err    error
	}
	done := make(chan result, 1)
	go func() {
		q, _ := http.NewRequest("GET", "http://"+addr+"/healthz", nil)
		q.Header.Set("x-test-stall", "1")
		res, err := http.DefaultClient.Do(q)
		if err != nil {
			done <- result{err: err}
			return
		}
		res.Body.Close()
		done <- result{status: res.StatusCode}
	}()
	<-started
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		shut <- e.srv.Shutdown(ctx)
	}()
	deadline := time.Now().Add(5 * time.Second)
	for e.srv.Ready() && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if e.srv.Ready() {
		t.Fatal("still ready while draining")
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v with a request in flight", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	if r := <-done; r.err != nil || r.status != 200 {
		t.Fatalf("in-flight request: %+v", r)
	}
	if err := <-shut; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	// The listener is closed.
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		_ = c.SetDeadline(time.Now().Add(time.Second))
		_, _ = io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
		if _, err := http.ReadResponse(bufio.NewReader(c), nil); err == nil {
			t.Error("served after shutdown")
		}
		c.Close()
	}
}

func TestConfigErrors(t *testing.T) {
	e := newEnv(t)
	for _, cfg := range []Config{
		{TLSCert: "x.pem"},
		{ClientCA: "ca.pem"},
		{RequireClientCert: true},
		{EmbeddingDim: -1},
		{TLSCert: "/nonexistent/cert.pem", TLSKey: "/nonexistent/key.pem"},
	} {
		if _, err := New(cfg, e.db); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
	if _, err := New(Config{}, nil); err == nil {
		t.Error("New with a nil store accepted")
	}
}
