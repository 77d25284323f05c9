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

	"github.com/VictoriaMetrics/metrics"
)

// perIPListener applies the per-address policy to IP connections (others,
// in-memory and unix, pass through unwrapped). Two bounds, each per remote
// address:
//
//   - waiting: connections whose first request header block has not
//     arrived whole (TLS handshake included). When maxWaiting wait and
//     one more connects, the address's oldest stalled one (the server is
//     blocked reading it, so the client is what is slow, and it is at
//     least minStall old) is closed, answered 408 by the read timeout
//     path. A slow client thus cannot shut out a prompt one at the same
//     address (a NAT, a TLS-terminating balancer): the prompt one is the
//     newest and not stalled. The read timeout bounds how long any waits.
//   - total: at most max connections (max > 0) of any state; one more
//     closes the oldest stalled connection of the address, of any age,
//     or, when none is stalled, is answered 429 in the default envelope
//     (through TLS when the listener is TLS) and closed. So only
//     connections that sent a whole request can fill the cap.
//
// fasthttp's own MaxConnsPerIP answers in plain text and only counts IPv4,
// so the bounds are applied here instead. The connections it returns can
// also be closed gently (closeLingering).
type perIPListener struct {
	net.Listener
	max, maxWaiting int
	minStall        time.Duration // the least age of a connection evicted at the waiting bound
	metrics         *Metrics
	evictions       *metrics.Counter
	log             *abuseLog
	refusal         []byte // the 429 response, in the server's default envelope

	mu    sync.Mutex
	addrs map[netip.Addr]*addrConns
}

// addrConns is what the listener knows of one address: its connection
// count and its waiting connections, oldest first.
type addrConns struct {
	total   int
	waiting connList
}

func newPerIPListener(ln net.Listener, max, maxWaiting int, m *Metrics, env Envelope, log *abuseLog) *perIPListener {
	return &perIPListener{
		Listener: ln, max: max, maxWaiting: maxWaiting, minStall: minStall, metrics: m, log: log,
		evictions: m.Set.GetOrCreateCounter(`countersign_connections_evicted_total{reason="waiting_per_ip_limit"}`),
		refusal:   tooManyConnsResponse(env), addrs: make(map[netip.Addr]*addrConns),
	}
}

// minStall is the least age of a connection evicted to keep its address
// within the waiting bound: younger ones may be clients that have just
// connected and not written yet (a busy generator, a slow network), and
// a burst of those from one address (a NAT's clients all starting at
// once) must not close each other. A slowloris holds its connections for
// seconds, up to the read timeout. At the cap on all connections, age
// does not protect a stalled connection: it gives way to the newcomer.
const minStall = time.Second

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
		now := time.Now()
		st := &connState{l: l, ip: ip, since: now}
		var evict *connState
		l.mu.Lock()
		a := l.addrs[ip]
		if a == nil {
			a = &addrConns{}
			l.addrs[ip] = a
		}
		refused := false
		if l.max > 0 && a.total >= l.max {
			// At the cap, a stalled connection of any age gives way
			// before a newcomer is refused.
			evict = a.waiting.popOldestStalled(now, 0)
			refused = evict == nil
		}
		if !refused {
			a.total++
			if l.maxWaiting > 0 {
				if evict == nil && a.waiting.n >= l.maxWaiting {
					evict = a.waiting.popOldestStalled(now, l.minStall)
				}
				a.waiting.push(st)
			}
		}
		l.mu.Unlock()
		if evict != nil {
			l.evictions.Inc()
			l.log.note(abuseEvicted, evict.ip)
			evict.evict()
		}
		if refused {
			l.metrics.perIPRejections.Inc()
			l.log.note(abuseRefused, ip)
			go refuse(c, l.refusal)
			continue
		}
		return wrapConn(c, st), nil
	}
}

// wrapConn wraps an accepted connection so that the listener hears when its
// first request arrives and when it closes, and so that it can be evicted
// and closed gently.
func wrapConn(c net.Conn, st *connState) net.Conn {
	st.conn = c
	if tc, ok := c.(*tls.Conn); ok {
		// Keep *tls.Conn's methods visible to fasthttp (TLSConnectionState).
		return &limitedTLSConn{Conn: tc, connState: st}
	}
	return &limitedConn{Conn: c, connState: st}
}

// arrived takes st off its address's waiting list: its first request is
// in. Called once, from the serving goroutine.
func (l *perIPListener) arrived(st *connState) {
	l.mu.Lock()
	if a := l.addrs[st.ip]; a != nil && st.listed {
		a.waiting.remove(st)
	}
	l.mu.Unlock()
}

// release forgets a closed connection.
func (l *perIPListener) release(st *connState) {
	l.mu.Lock()
	if a := l.addrs[st.ip]; a != nil {
		if st.listed {
			a.waiting.remove(st)
		}
		if a.total--; a.total <= 0 {
			delete(l.addrs, st.ip)
		}
	}
	l.mu.Unlock()
}

// connState is the listener's part of a connection: its address, its
// place in the address's waiting list, and whether it was evicted.
type connState struct {
	l          *perIPListener
	ip         netip.Addr
	since      time.Time // accepted
	conn       net.Conn  // the connection wrapped (TLS or not)
	prev, next *connState
	listed     bool // on the waiting list (guarded by l.mu)

	requested atomic.Bool // its first request arrived (requestArrived ran)
	// reading is set while the serving goroutine is blocked reading the
	// first request: the server waits for the client. A connection whose
	// bytes wait for the server (its goroutine not yet run, under load)
	// is not stalled, and is never evicted for it.
	reading atomic.Bool
	// headerEnd counts the bytes of "\r\n\r\n" matched at the end of
	// what was read so far (the serving goroutine's only).
	headerEnd int
	evicted   atomic.Bool
	linger    atomic.Bool
	closed    sync.Once
}

// requestArrived is called by the server when a request of the connection
// reaches the handler: from then on the connection no longer waits.
func (st *connState) requestArrived() {
	if !st.requested.Swap(true) {
		st.l.arrived(st)
	}
}

// read reads from r (the connection, TLS or not) the first request, noting while it blocks and
// when the header block has arrived whole (requestArrived): from then on
// the connection no longer waits on its client.
func (st *connState) read(r io.Reader, p []byte) (int, error) {
	if st.requested.Load() {
		return r.Read(p)
	}
	st.reading.Store(true)
	n, err := r.Read(p)
	st.reading.Store(false)
	for _, b := range p[:n] {
		switch {
		case b == "\r\n\r\n"[st.headerEnd]:
			st.headerEnd++
		case b == '\r':
			st.headerEnd = 1
		default:
			st.headerEnd = 0
		}
		if st.headerEnd == 4 {
			st.requestArrived()
			break
		}
	}
	return n, err
}

// evict makes the connection's pending read fail now, as if its read
// timeout had passed: fasthttp then answers 408 and closes it. Later
// deadlines fasthttp sets are held at the past (see SetReadDeadline).
func (st *connState) evict() {
	st.evicted.Store(true)
	_ = st.conn.SetReadDeadline(evictedDeadline)
}

var evictedDeadline = time.Unix(1, 0)

// setReadDeadline sets the read deadline to t, or keeps it in the past
// once the connection is evicted.
func (st *connState) setReadDeadline(t time.Time) error {
	if st.evicted.Load() {
		t = evictedDeadline
	}
	return st.conn.SetReadDeadline(t)
}

func (st *connState) setDeadline(t time.Time) error {
	_ = st.conn.SetWriteDeadline(t)
	return st.setReadDeadline(t)
}

func (st *connState) lingerOnClose() { st.linger.Store(true) }

// close closes the connection, gently when lingerOnClose was called, and
// releases its place.
func (st *connState) close() error {
	var err error
	st.closed.Do(func() {
		release := func() { st.l.release(st) }
		if st.linger.Load() {
			err = closeLingering(st.conn, release)
			return
		}
		err = st.conn.Close()
		release()
	})
	return err
}

// connList is a list of waiting connections, oldest first, linked through
// the connections themselves (no allocation per connection).
type connList struct {
	head, tail *connState
	n          int
}

func (q *connList) push(st *connState) {
	st.prev, st.next = q.tail, nil
	if q.tail != nil {
		q.tail.next = st
	} else {
		q.head = st
	}
	q.tail = st
	st.listed = true
	q.n++
}

func (q *connList) remove(st *connState) {
	if st.prev != nil {
		st.prev.next = st.next
	} else {
		q.head = st.next
	}
	if st.next != nil {
		st.next.prev = st.prev
	} else {
		q.tail = st.prev
	}
	st.prev, st.next, st.listed = nil, nil, false
	q.n--
}

// popOldestStalled removes and returns the oldest connection, accepted at
// least age before now, that the server is blocked reading from
// (stalled), or nil when there is none.
func (q *connList) popOldestStalled(now time.Time, age time.Duration) *connState {
	for st := q.head; st != nil; st = st.next {
		if now.Sub(st.since) < age {
			return nil // the rest are younger
		}
		if st.reading.Load() {
			q.remove(st)
			return st
		}
	}
	return nil
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
	*connState
	started bool // a byte has been read (by the serving goroutine, the only reader)
}

// errTLSOnPlainPort: the client began a TLS handshake on a plain-HTTP
// connection. fasthttp would wait for a request line until the read
// timeout, then answer 408; refused at once instead.
var errTLSOnPlainPort = errors.New("a TLS handshake on a plain-HTTP port")

// Read refuses a connection whose first byte opens a TLS handshake record
// (0x16), which no HTTP request line starts with.
func (c *limitedConn) Read(p []byte) (int, error) {
	n, err := c.connState.read(c.Conn, p)
	if !c.started && n > 0 {
		c.started = true
		if p[0] == 0x16 {
			return 0, errTLSOnPlainPort
		}
	}
	return n, err
}

func (c *limitedConn) SetReadDeadline(t time.Time) error { return c.setReadDeadline(t) }
func (c *limitedConn) SetDeadline(t time.Time) error     { return c.setDeadline(t) }
func (c *limitedConn) Close() error                      { return c.close() }

type limitedTLSConn struct {
	*tls.Conn
	*connState
}

func (c *limitedTLSConn) Read(p []byte) (int, error) { return c.connState.read(c.Conn, p) }

func (c *limitedTLSConn) SetReadDeadline(t time.Time) error { return c.setReadDeadline(t) }
func (c *limitedTLSConn) SetDeadline(t time.Time) error     { return c.setDeadline(t) }
func (c *limitedTLSConn) Close() error                      { return c.close() }

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
