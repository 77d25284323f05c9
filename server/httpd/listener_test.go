package httpd

import (
	"io"
	"log/slog"
	"net"
	"testing"
	"time"
)

// TestWaitingEvictsOnlyStalled: at the waiting bound, the connection closed
// to make room is the oldest one the server is blocked reading from; one
// whose bytes wait for the server (not read yet, as under load) is not
// evicted for the server's own slowness, and one whose header block has
// arrived no longer counts.
func TestWaitingEvictsOnlyStalled(t *testing.T) {
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := newPerIPListener(tcp, 0, 2, newMetrics(), appendDefaultError, newAbuseLog(discardLogger()))
	l.minStall = 0
	defer l.Close()
	dial, stalled, waitReading := listenerDialer(t, l, tcp)

	// Unread: its bytes wait for the server.
	_, unread := dial("GET / HTTP/1.1\r\nHost: x\r\n")
	// Stalled: the server is blocked reading it.
	_, slow := dial("")
	slowRead := stalled(slow)
	waitReading(slow)
	// A complete header block: it no longer waits.
	_, prompt := dial("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	if _, err := prompt.Read(make([]byte, 64)); err != nil {
		t.Fatal(err)
	}
	if !prompt.(*limitedConn).requested.Load() {
		t.Fatal("a whole header block was not noticed")
	}

	// A third waiting connection: the stalled one goes, not the unread one.
	_, newest := dial("")
	select {
	case err := <-slowRead:
		if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
			t.Errorf("the stalled connection's read: %v, want a timeout", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the stalled connection was not evicted")
	}
	if unread.(*limitedConn).evicted.Load() || newest.(*limitedConn).evicted.Load() || prompt.(*limitedConn).evicted.Load() {
		t.Error("a connection that was not stalled was evicted")
	}
	// Eviction holds: fasthttp setting a fresh deadline does not undo it.
	_ = slow.SetReadDeadline(time.Now().Add(time.Minute))
	if _, err := slow.Read(make([]byte, 1)); err == nil {
		t.Error("an evicted connection read again")
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// TestWaitingYoungAndCap: at the waiting bound a stalled connection younger
// than minStall is not evicted (a burst of clients that just connected);
// at the cap on all connections it is, rather than refusing the newcomer.
func TestWaitingYoungAndCap(t *testing.T) {
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := newPerIPListener(tcp, 3, 1, newMetrics(), appendDefaultError, newAbuseLog(discardLogger()))
	l.minStall = time.Hour
	defer l.Close()
	dial, stalled, waitReading := listenerDialer(t, l, tcp)
	_, a := dial("")
	aRead := stalled(a)
	waitReading(a)
	_, b := dial("")
	bRead := stalled(b)
	waitReading(b)
	if a.(*limitedConn).evicted.Load() {
		t.Fatal("a young stalled connection was evicted at the waiting bound")
	}
	_, _ = dial("") // the third: the cap is reached, nobody evicted yet
	_, _ = dial("") // over the cap: the oldest stalled gives way
	select {
	case <-aRead:
	case <-time.After(5 * time.Second):
		t.Fatal("at the cap, the oldest stalled connection was not evicted")
	}
	if b.(*limitedConn).evicted.Load() {
		t.Error("a second connection was evicted for one newcomer")
	}
	_ = bRead
}

// listenerDialer returns, for tests of l (listening on tcp): dial, which
// connects, sends send and accepts the server side; stalled, which starts
// a server-side read; waitReading, which waits until that read blocks.
func listenerDialer(t *testing.T, l *perIPListener, tcp net.Listener) (
	func(string) (net.Conn, net.Conn), func(net.Conn) chan error, func(net.Conn)) {
	dial := func(send string) (net.Conn, net.Conn) {
		t.Helper()
		c, err := net.Dial("tcp", tcp.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if send != "" {
			if _, err := io.WriteString(c, send); err != nil {
				t.Fatal(err)
			}
		}
		s, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return c, s
	}
	stalled := func(s net.Conn) chan error {
		done := make(chan error, 1)
		go func() {
			_, err := s.Read(make([]byte, 64))
			done <- err
		}()
		return done
	}
	waitReading := func(s net.Conn) {
		t.Helper()
		st := s.(*limitedConn).connState
		for deadline := time.Now().Add(5 * time.Second); !st.reading.Load(); {
			if time.Now().After(deadline) {
				t.Fatal("the read never started")
			}
			time.Sleep(time.Millisecond)
		}
	}
	return dial, stalled, waitReading
}
