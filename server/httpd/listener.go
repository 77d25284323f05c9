package httpd

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// perIPListener caps concurrent connections per remote address (max > 0;
// otherwise it only wraps them). fasthttp's own MaxConnsPerIP answers in
// plain text and only counts IPv4, so the cap is applied here instead: a
// connection over it is answered 429 in the default envelope (through TLS
// when the listener is TLS) and closed. The connections it returns can also
// be closed gently (closeLingering).
type perIPListener struct {
	net.Listener
	max     int
	metrics *Metrics
	refusal []byte // the 429 response, in the server's default envelope

	mu    sync.Mutex
	conns map[netip.Addr]int
}

func newPerIPListener(ln net.Listener, max int, m *Metrics, env Envelope) *perIPListener {
	return &perIPListener{Listener: ln, max: max, metrics: m, refusal: tooManyConnsResponse(env), conns: make(map[netip.Addr]int)}
}

// tooManyConnsResponse is what a refused connection is written: it is
// refused before any request is read, so no route (and no surface) is
// known, and the default envelope renders it.
func tooManyConnsResponse(env Envelope) []byte {
	body := env(nil, ErrTooManyConnections, nil)
	b := []byte("HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\nConnection: close\r\nRetry-After: 1\r\nContent-Length: ")
	b = strconv.AppendInt(b, int64(len(body)), 10)
	b = append(b, "\r\n\r\n"...)
	return append(b, body...)
}

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
		if l.max <= 0 {
			return wrapConn(c, func() {}), nil
		}
		l.mu.Lock()
		n := l.conns[ip] + 1
		if n <= l.max {
			l.conns[ip] = n
		}
		l.mu.Unlock()
		if n > l.max {
			l.metrics.perIPRejections.Inc()
			go refuse(c, l.refusal)
			continue
		}
		return wrapConn(c, func() { l.release(ip) }), nil
	}
}

// wrapConn wraps an accepted connection so that release runs once when it
// closes, and so that it can be closed gently.
func wrapConn(c net.Conn, release func()) net.Conn {
	if tc, ok := c.(*tls.Conn); ok {
		// Keep *tls.Conn's methods visible to fasthttp (TLSConnectionState).
		return &limitedTLSConn{Conn: tc, done: sync.OnceFunc(release)}
	}
	return &limitedConn{Conn: c, done: sync.OnceFunc(release)}
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
func refuse(c net.Conn, response []byte) {
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	var buf [4096]byte
	_, _ = c.Read(buf[:])
	_, _ = c.Write(response)
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
	done   func()
	linger atomic.Bool
	read   bool // a byte has been read (by the serving goroutine, the only reader)
}

func (c *limitedConn) lingerOnClose() { c.linger.Store(true) }

// errTLSOnPlainPort: the client began a TLS handshake on a plain-HTTP
// connection. fasthttp would wait for a request line until the read
// timeout, then answer 408; refused at once instead.
var errTLSOnPlainPort = errors.New("a TLS handshake on a plain-HTTP port")

// Read refuses a connection whose first byte opens a TLS handshake record
// (0x16), which no HTTP request line starts with.
func (c *limitedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if !c.read && n > 0 {
		c.read = true
		if p[0] == 0x16 {
			return 0, errTLSOnPlainPort
		}
	}
	return n, err
}

func (c *limitedConn) Close() error {
	if c.linger.Swap(false) {
		return closeLingering(c.Conn, c.done)
	}
	err := c.Conn.Close()
	c.done()
	return err
}

type limitedTLSConn struct {
	*tls.Conn
	done   func()
	linger atomic.Bool
}

func (c *limitedTLSConn) lingerOnClose() { c.linger.Store(true) }

func (c *limitedTLSConn) Close() error {
	if c.linger.Swap(false) {
		return closeLingering(c.Conn, c.done)
	}
	err := c.Conn.Close()
	c.done()
	return err
}

// Lingering closes: a connection refused mid-request (a body over the
// limit, a malformed request) is closed while the client may still be
// sending. Closing a socket with unread data makes the kernel reset the
// connection, and a reset discards what the client has not read yet: the
// answer. So the write side is shut first, then what arrives is read and
// dropped, for at most lingerTime and lingerBytes, before the close. At
// most lingerSlots connections linger at once; past that they close at
// once, so slow senders cannot hold more than that.
const (
	lingerTime  = 2 * time.Second
	lingerBytes = 8 << 20
	lingerSlots = 64
)

var lingering = make(chan struct{}, lingerSlots)

// closeLingering closes c gently in the background (see above), then runs
// done; it returns at once.
func closeLingering(c net.Conn, done func()) error {
	select {
	case lingering <- struct{}{}:
	default:
		err := c.Close()
		done()
		return err
	}
	go func() {
		defer func() { <-lingering }()
		if cw, ok := c.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite() // FIN (TCP), close_notify (TLS): the answer is complete
		}
		_ = c.SetReadDeadline(time.Now().Add(lingerTime))
		_, _ = io.CopyN(io.Discard, c, lingerBytes)
		_ = c.Close()
		done()
	}()
	return nil
}
