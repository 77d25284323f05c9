package httpd

import (
	"bufio"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"
)

// A surface of its own envelope, to see every error answer of its routes
// rendered in it and every other one in the server's default.
var (
	routeTest  = NewRoute(Route{Name: "test_echo", Method: fasthttp.MethodPost, Envelope: appendTestError})
	routePanic = NewRoute(Route{Name: "test_panic", Envelope: appendTestError})
	routeWork  = NewRoute(Route{Name: "test_work", UsesStore: true, Envelope: appendTestError})
)

func appendTestError(dst []byte, e *Error, msg []byte) []byte {
	dst = append(dst, "test:"...)
	dst = append(dst, e.Code...)
	if len(msg) > 0 {
		dst = append(dst, ':')
		dst = append(dst, msg...)
	}
	return dst
}

func appendDefaultError(dst []byte, e *Error, _ []byte) []byte {
	return append(append(dst, "default:"...), e.Code...)
}

type testSurface struct {
	srv  *Server
	pool sync.Pool
}

func (ts *testSurface) Route(path []byte) (*Route, []byte) {
	switch string(path) {
	case "/t/echo":
		return routeTest, nil
	case "/t/panic":
		return routePanic, nil
	case "/t/work":
		return routeWork, nil
	case "/t/hold":
		return routeHold, nil
	}
	return RouteUnknown, nil
}

func (ts *testSurface) Serve(rc *fasthttp.RequestCtx, r *Route, _ []byte) {
	c, _ := ts.pool.Get().(*Ctx)
	if c == nil {
		c = new(Ctx)
	}
	c.Start(ts.srv, rc, r)
	if c.Admit() {
		switch r {
		case routePanic:
			panic("boom")
		case routeHold:
			serveHold(c)
		case routeTest:
			if c.ReadBody(r.BodyLimit) {
				c.Failf(ErrInvalidField, "echo ", string(c.Body))
			}
		}
	}
	c.Send()
	c.Release()
	ts.pool.Put(c)
}

// TestErrorsInTheRoutesEnvelope: a handler's refusal, the core's own
// (method, body limit: in the handler, on Expect, from fasthttp) and the
// panic answer are in the route's envelope; a path of no route, in the
// default one.
func TestErrorsInTheRoutesEnvelope(t *testing.T) {
	ts := &testSurface{}
	ts.srv = New(Config{
		Surface:  func([]byte) Surface { return ts },
		Envelope: appendDefaultError,
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	ln := fasthttputil.NewInmemoryListener()
	defer ln.Close()
	go func() { _ = ts.srv.Serve(ln) }()
	big := strings.Repeat("x", LimitSmall+1)
	for _, tc := range []struct {
		name, raw string
		status    int
		body      string
	}{
		{"handler", "POST /t/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\nhi", 400, "test:invalid_field:echo hi"},
		{"method", "GET /t/echo HTTP/1.1\r\nHost: x\r\n\r\n", 405, "test:method_not_allowed"},
		{"announced body over the limit", "POST /t/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: " +
			itoa(len(big)) + "\r\n\r\n" + big, 413, "test:body_too_large:The request body is larger than 4 KiB, the limit of this route."},
		{"expect", "POST /t/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: " +
			itoa(len(big)) + "\r\n\r\n", 413, "test:body_too_large:The request body is larger than 4 KiB, the limit of this route."},
		{"panic", "GET /t/panic HTTP/1.1\r\nHost: x\r\n\r\n", 500, "test:internal_error"},
		{"no route", "GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n", 404, "default:route_not_found"},
		{"ambiguous framing", "POST /t/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\n" +
			"Transfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n", 400,
			"test:bad_request:The request could not be parsed: Transfer-Encoding and Content-Length are both given."},
	} {
		status, body := rawRequest(t, ln, tc.raw)
		if status != tc.status || body != tc.body {
			t.Errorf("%s: %d %q, want %d %q", tc.name, status, body, tc.status, tc.body)
		}
	}
}

func itoa(n int) string { return string(fasthttp.AppendUint(nil, n)) }

func rawRequest(t *testing.T, ln *fasthttputil.InmemoryListener, raw string) (int, string) {
	t.Helper()
	c, err := ln.Dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	go func(c net.Conn) { _, _ = io.WriteString(c, raw) }(c)
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}
