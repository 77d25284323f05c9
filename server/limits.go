package server

import (
	"crypto/tls"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"
)

// perIPListener caps concurrent connections per remote address. fasthttp's
// own MaxConnsPerIP answers in plain text and only counts IPv4, so the cap is
// applied here instead: a connection over it is answered 429 in the native
// envelope (through TLS when the listener is TLS) and closed.
type perIPListener struct {
	net.Listener
	max     int
	metrics *serverMetrics

	mu    sync.Mutex
	conns map[netip.Addr]int
}

func newPerIPListener(ln net.Listener, max int, m *serverMetrics) *perIPListener {
	return &perIPListener{Listener: ln, max: max, metrics: m, conns: make(map[netip.Addr]int)}
}

// tooManyConnsResponse is written to a refused connection.
var tooManyConnsResponse = func() []byte {
	body := appendError(nil, errTooManyConnections, nil)
	b := []byte("HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\nConnection: close\r\nRetry-After: 1\r\nContent-Length: ")
	b = strconv.AppendInt(b, int64(len(body)), 10)
	b = append(b, "\r\n\r\n"...)
	return append(b, body...)
}()

func (l *perIPListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := remoteIP(c)
		if !ip.IsValid() { // not an IP connection (in-memory, unix): not limited
			return c, nil
		}
		l.mu.Lock()
		n := l.conns[ip] + 1
		if n <= l.max {
			l.conns[ip] = n
		}
		l.mu.Unlock()
		if n > l.max {
			l.metrics.perIPRejections.Inc()
			go refuse(c)
			continue
		}
		release := func() { l.release(ip) }
		if tc, ok := c.(*tls.Conn); ok {
			// Keep *tls.Conn's methods visible to fasthttp (TLSConnectionState).
			return &limitedTLSConn{Conn: tc, done: sync.OnceFunc(release)}, nil
		}
		return &limitedConn{Conn: c, done: sync.OnceFunc(release)}, nil
	}
}

func (l *perIPListener) release(ip netip.Addr) {
	l.mu.Lock()
	if n := l.conns[ip] - 1; n > 0 {
		l.conns[ip] = n
	} else {
		delete(l.conns, ip)
	}
	l.mu.Unlock()
}

// refuse answers 429 and closes c, off the accept loop (over TLS the
// handshake must not stall other clients). It first reads what the client
// sends (its request, usually) so that the answer is not "unsolicited", and
// a close with unread data does not reset the connection before the client
// has read the answer.
func refuse(c net.Conn) {
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	var buf [4096]byte
	_, _ = c.Read(buf[:])
	_, _ = c.Write(tooManyConnsResponse)
	_ = c.Close()
}

func remoteIP(c net.Conn) netip.Addr {
	switch a := c.RemoteAddr().(type) {
	case *net.TCPAddr:
		ip, _ := netip.AddrFromSlice(a.IP)
		return ip.Unmap()
	}
	return netip.Addr{}
}

type limitedConn struct {
	net.Conn
	done func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.done()
	return err
}

type limitedTLSConn struct {
	*tls.Conn
	done func()
}

func (c *limitedTLSConn) Close() error {
	err := c.Conn.Close()
	c.done()
	return err
}
