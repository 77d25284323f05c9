package httpd

import (
	"bufio"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp/fasthttputil"
)

func newTestServer(t *testing.T, cfg Config) (*testSurface, *fasthttputil.InmemoryListener) {
	t.Helper()
	ts := &testSurface{}
	cfg.Surface = func([]byte) Surface { return ts }
	cfg.Envelope = appendDefaultError
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	ts.srv = New(cfg)
	ln := fasthttputil.NewInmemoryListener()
	t.Cleanup(func() { _ = ln.Close() })
	go func() { _ = ts.srv.Serve(ln) }()
	return ts, ln
}

// TestOverloadSheds: with the bound reached, a request of a store route is
// answered 503 overloaded in its route's envelope with Retry-After, after
// the hold, on a connection kept open; routes that do not use the store are still
// served; once a place frees, the route is served again (the test
// surface answers it 200 with no body) and counted out after.
func TestOverloadSheds(t *testing.T) {
	ts, ln := newTestServer(t, Config{MaxInFlight: 2})
	a := ts.srv.Admission()
	a.inFlight.Store(2) // two requests being served
	c, err := ln.Dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	get := func(raw string) (*http.Response, string) {
		t.Helper()
		if _, err := io.WriteString(c, raw); err != nil {
			t.Fatal(err)
		}
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		return res, string(b)
	}
	sent := time.Now()
	res, body := get("GET /t/work HTTP/1.1\r\nHost: x\r\n\r\n")
	if held := time.Since(sent); held < DefaultShedHold {
		t.Errorf("the refusal came after %v, not held for %v", held, DefaultShedHold)
	}
	if res.StatusCode != 503 || body != "test:overloaded" || res.Header.Get("Retry-After") != "1" || res.Close {
		t.Errorf("over the bound: %d %q Retry-After %q close=%v", res.StatusCode, body, res.Header.Get("Retry-After"), res.Close)
	}
	if a.InFlight() != 2 {
		t.Errorf("a refusal changed the count: %d", a.InFlight())
	}
	// A route that does not use the store is not counted.
	if res, body = get("POST /t/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\nhi"); res.StatusCode != 400 {
		t.Errorf("uncounted route under overload: %d %q", res.StatusCode, body)
	}
	// A client waiting for 100 Continue is refused before it sends its
	// body (and its connection closed, as after any Expect refusal).
	if status, body := rawRequest(t, ln, "POST /t/work HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"+
		"Expect: 100-continue\r\nContent-Length: 100\r\n\r\n"); status != 503 || body != "test:overloaded" {
		t.Errorf("expect-continue over the bound: %d %q", status, body)
	}
	a.inFlight.Store(1)
	if res, body = get("GET /t/work HTTP/1.1\r\nHost: x\r\n\r\n"); res.StatusCode != 200 || body != "" {
		t.Errorf("under the bound: %d %q", res.StatusCode, body)
	}
	if a.InFlight() != 1 {
		t.Errorf("a served request was not counted out: %d", a.InFlight())
	}
}

// TestOverloadUnbounded: a negative bound admits everything.
func TestOverloadUnbounded(t *testing.T) {
	ts, ln := newTestServer(t, Config{MaxInFlight: -1})
	ts.srv.Admission().inFlight.Store(1 << 20)
	if status, body := rawRequest(t, ln, "GET /t/work HTTP/1.1\r\nHost: x\r\n\r\n"); status != 200 {
		t.Errorf("unbounded: %d %q", status, body)
	}
}

// TestFramingClosesTheConnection: a request with both Transfer-Encoding
// and Content-Length, or a folded header, is answered 400 and its
// connection closed, so what was sent after it (a smuggled request) is
// never answered.
func TestFramingClosesTheConnection(t *testing.T) {
	_, ln := newTestServer(t, Config{})
	smuggled := "GET /t/work HTTP/1.1\r\nHost: x\r\n\r\n"
	for _, tc := range []struct{ name, raw, says string }{
		{"TE and CL", "POST /t/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 30\r\n" +
			"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "Transfer-Encoding and Content-Length are both given"},
		{"CL and TE, any case", "POST /t/echo HTTP/1.1\r\nHost: x\r\ncontent-length: 30\r\ntransfer-encoding: chunked\r\n" +
			"Content-Type: application/json\r\n\r\n0\r\n\r\n", "Transfer-Encoding and Content-Length are both given"},
		{"folded header", "GET /t/work HTTP/1.1\r\nHost: x\r\nX-A: one\r\n two\r\n\r\n", "obsolete line folding"},
		{"folded by a tab", "GET /t/work HTTP/1.1\r\nHost: x\r\nX-A: one\r\n\ttwo\r\n\r\n", "obsolete line folding"},
	} {
		c, err := ln.Dial()
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		go func() { _, _ = io.WriteString(c, tc.raw+smuggled) }()
		br := bufio.NewReader(c)
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		b, _ := io.ReadAll(res.Body)
		if res.StatusCode != 400 || !res.Close || !strings.Contains(string(b), "bad_request") || !strings.Contains(string(b), tc.says) {
			t.Errorf("%s: %d close=%v %q", tc.name, res.StatusCode, res.Close, b)
		}
		if rest, _ := io.ReadAll(br); len(rest) != 0 {
			t.Errorf("%s: the request after it was answered: %q", tc.name, rest)
		}
		c.Close()
	}
	// A chunked request alone, and headers without folding, are served.
	if status, body := rawRequest(t, ln, "POST /t/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"+
		"Transfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n"); status != 400 || body != "test:invalid_field:echo hi" {
		t.Errorf("chunked: %d %q", status, body)
	}
}

// routeLong is a store route held to one request at once under overload.
var routeLong = NewRoute(Route{Name: "test_long", UsesStore: true, OverloadMax: 1, Envelope: appendTestError})

// TestOverloadHoldsLongRoutes: a route with an OverloadMax has the whole
// bound until the server is overloaded; then it is held to its OverloadMax
// while other routes still get the places left; a refusal at the bound
// keeps the server overloaded for a second, and more refusals in a second
// than the bound has places for the second after; a few refusals (a client
// pool no larger than the bound, refused once) do not.
func TestOverloadHoldsLongRoutes(t *testing.T) {
	a := newAdmission(3, time.Microsecond, func(*Route) Envelope { return appendTestError }, metrics.NewSet())
	clock := time.Unix(1_000_000, 0)
	a.now = func() time.Time { return clock }
	enter := func(r *Route, want bool, what string) {
		t.Helper()
		if got := a.enter(r); got != want {
			t.Fatalf("%s: admitted %v, want %v", what, got, want)
		}
	}

	for range 3 {
		enter(routeLong, true, "not overloaded, the long route within the bound")
	}
	enter(routeWork, false, "over the bound")
	a.leave(routeLong)
	a.leave(routeLong) // one long request in flight, two places free
	enter(routeLong, false, "overloaded, a second long request")
	enter(routeWork, true, "overloaded, another route with places free")
	a.leave(routeWork)

	// 1.5 s on: the refusal at the bound is past, and the second before
	// saw 2 refusals, fewer than the bound's 3 places.
	clock = clock.Add(1500 * time.Millisecond)
	enter(routeLong, true, "after the overload, a second long request")
	a.leave(routeLong)

	// An overload the long route keeps from filling the bound: a refusal
	// at the bound, then 4 refusals of the long route in the same second.
	clock = clock.Add(time.Second)
	a.noteRefusal(true)
	for range 4 {
		enter(routeLong, false, "overloaded, the long route at its OverloadMax")
	}
	clock = clock.Add(1200 * time.Millisecond) // the refusal at the bound is past
	enter(routeLong, false, "the second after 5 refusals, more than the bound's places")
	clock = clock.Add(time.Second) // the second before saw 1 refusal
	enter(routeLong, true, "the second after 1 refusal")
	if a.InFlight() != 2 || a.routeIn[routeLong.id].Load() != 2 {
		t.Errorf("in flight %d, of the long route %d; want 2 and 2", a.InFlight(), a.routeIn[routeLong.id].Load())
	}
}
