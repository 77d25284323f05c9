package server

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestSlowNeighbours: 600 connections from one address that never finish
// their request headers (a slowloris, more than the per-address cap) do not
// stop another client at the same address from being answered, each
// request on a new connection; keep-alive connections that did send their
// requests are not the ones closed to make room; the slow ones closed are
// the oldest, enough of them that the slow ones never fill the cap.
func TestSlowNeighbours(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 1200 sockets")
	}
	e := newEnv(t)
	addr := e.serveTCP()

	// Keep-alive connections of prompt clients, each with a request answered.
	var prompt []net.Conn
	var promptReaders []*bufio.Reader
	for range 80 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		br := bufio.NewReader(c)
		if res := exchangeOn(t, c, br, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); res.StatusCode != 200 {
			t.Fatalf("prompt client: %d", res.StatusCode)
		}
		prompt, promptReaders = append(prompt, c), append(promptReaders, br)
	}

	slow := make([]net.Conn, 0, 600)
	defer func() {
		for _, c := range slow {
			c.Close()
		}
	}()
	for range 600 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("slow connection %d: %v", len(slow), err)
		}
		if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: "); err != nil {
			t.Fatal(err)
		}
		slow = append(slow, c)
	}

	// A neighbour at the same address, a new connection per request.
	for i := range 20 {
		resp, body := rawExchange(t, addr, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		if resp.StatusCode != 200 || string(body) != `{"status":"ok"}` {
			t.Fatalf("neighbour request %d among 600 slow connections: %d %s", i, resp.StatusCode, body)
		}
	}
	// The prompt clients' connections are still served.
	for i, c := range prompt {
		if res := exchangeOn(t, c, promptReaders[i], "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); res.StatusCode != 200 {
			t.Fatalf("keep-alive client %d after the slow ones: %d", i, res.StatusCode)
		}
	}
	// The oldest slow connections were answered 408 and closed, so that
	// the slow ones and the prompt ones together stay within the cap (the
	// slow ones are younger than a second: the waiting bound spares them
	// so far, the cap does not).
	evicted, last := 0, -1
	deadline := time.Now().Add(200 * time.Millisecond)
	for _, c := range slow {
		_ = c.SetReadDeadline(deadline)
	}
	for i, c := range slow {
		b, err := io.ReadAll(c)
		if bytes.Contains(b, []byte(`"errorCode":"request_timeout"`)) {
			evicted, last = evicted+1, i
		} else if len(b) != 0 || !isTimeout(err) {
			t.Fatalf("a slow connection got %q, %v", b, err)
		}
	}
	if min := 600 - (DefaultMaxConnsPerIP - len(prompt)); evicted < min || last != evicted-1 {
		t.Errorf("%d of 600 slow connections were closed, the last the %dth; want at least %d, the oldest",
			evicted, last+1, min)
	}
	if m := e.do(req{path: "/metrics"}).body; !bytes.Contains(m, []byte(`countersign_connections_evicted_total{reason="waiting_per_ip_limit"} `+itoa(evicted))) {
		t.Errorf("the metric does not count %d evictions: %s", evicted, m)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// exchangeOn sends raw on c and reads one response through br.
func exchangeOn(t *testing.T, c net.Conn, br *bufio.Reader, raw string) *http.Response {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res
}

// TestAbusiveTrafficLogsBounded: 1000 connections that fasthttp cannot
// serve, 1000 refused over the per-address cap, and 300 failed TLS
// handshakes log a handful of lines of each kind, not one per connection,
// and none quotes what the client sent.
func TestAbusiveTrafficLogsBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 2300 connections")
	}
	e := newEnv(t, withConfig(func(c *Config) { c.MaxConnsPerIP = 1 }))
	addr := e.serveTCP()
	hammer := func(n int, addr, raw string) {
		var wg sync.WaitGroup
		work := make(chan struct{})
		for range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range work {
					c, err := net.Dial("tcp", addr)
					if err != nil {
						continue
					}
					_ = c.SetDeadline(time.Now().Add(5 * time.Second))
					_, _ = io.WriteString(c, raw)
					_, _ = io.Copy(io.Discard, c)
					c.Close()
				}
			}()
		}
		for range n {
			work <- struct{}{}
		}
		close(work)
		wg.Wait()
	}
	// Malformed requests, one connection at a time (the cap is 1).
	for range 1000 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		_, _ = io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n")
		_, _ = io.Copy(io.Discard, c)
		c.Close()
	}
	// Connections over the cap, while one is held (once the malformed
	// ones, closed gently in the background, have released their place).
	var held net.Conn
	for deadline := time.Now().Add(5 * time.Second); ; {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		res := exchangeOn(t, c, bufio.NewReader(c), "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
		if res.StatusCode == 200 {
			held = c
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatalf("held connection: %d", res.StatusCode)
		}
		time.Sleep(10 * time.Millisecond)
	}
	defer held.Close()
	hammer(1000, addr, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")

	// Failed TLS handshakes: plain HTTP to a TLS port.
	p := newPKI(t)
	te := newEnv(t, withConfig(func(c *Config) { c.TLSCert, c.TLSKey = p.certFile, p.keyFile }))
	tlsAddr := te.serveTCP()
	hammer(300, tlsAddr, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	if c, err := tls.Dial("tcp", tlsAddr, &tls.Config{RootCAs: p.caPool}); err != nil {
		t.Fatalf("TLS still served: %v", err)
	} else {
		c.Close()
	}

	logs := e.logs.String() + te.logs.String()
	for _, kind := range []string{"transport", "per_ip_limit"} {
		if n := strings.Count(logs, "kind="+kind); n < 1 || n > 6 {
			t.Errorf("%d log lines of kind %s, want 1 to 6:\n%s", n, kind, logs)
		}
	}
	if n := strings.Count(te.logs.String(), "kind=tls_handshake"); n < 1 || n > 6 {
		t.Errorf("%d log lines of failed TLS handshakes, want 1 to 6:\n%s", n, te.logs.String())
	}
	if strings.Contains(logs, "Bad Header") {
		t.Errorf("the log quotes request bytes:\n%s", logs)
	}
	if n := strings.Count(logs, "\n"); n > 40 {
		t.Errorf("%d log lines in all:\n%s", n, logs)
	}
}
