package unloq

import (
	"bufio"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/countersign/countersign/engine/approval"
	"github.com/countersign/countersign/server/httpd"
	"github.com/countersign/countersign/server/jsonwire"
)

// The event stream of POST /authenticate?events=true, as UNLOQ's Node.js
// client reads it: header x-response-type: event, then chunks of
// "\n" + one JSON event + "\n", each flushed alone (the client parses one
// event per chunk it receives), a bare "\n" as a ping, and the stream
// closed after the final event.

// writeSlack is how long one write of the stream may take: the server's
// write deadline is set once before a response, so a stream longer than it
// moves the deadline on before each chunk.
const writeSlack = 10 * time.Second

// startStream answers c with the event stream. The hold runs in the
// stream writer, which fasthttp starts in a goroutine of its own the moment
// it is set, so setting it is the last use of c here: from then on c
// belongs to the writer, which releases and pools it when the stream ends.
func (s *Surface) startStream(c *reqCtx) {
	rc := c.RC
	rc.SetStatusCode(fasthttp.StatusOK)
	rc.SetContentType("application/json")
	rc.Response.Header.Set("x-response-type", "event")
	rc.Response.Header.Set(fasthttp.HeaderCacheControl, "no-store")
	rc.SetBodyStreamWriter(func(w *bufio.Writer) {
		s.stream(c, w)
		s.put(c)
	})
}

// MinEventGap is the least time between the pending event and the final
// one. UNLOQ's Node.js client parses each piece of the body it is handed
// as one event, and two events that reach it together (an OTP decided at
// once, a device answering within a millisecond) are handed over as one
// piece that does not parse: it rejects the call. Apart by this much, they
// arrive as two.
const MinEventGap = 50 * time.Millisecond

// stream writes the pending event, pings while the approval is pending,
// then the final event, at least MinEventGap after the pending one.
func (s *Surface) stream(c *reqCtx, w *bufio.Writer) {
	c.Out = append(c.Out[:0], "\n"+`{"event":"pending","data":{"approval_id":`...)
	c.Out = jsonwire.AppendString(c.Out, c.appr.ID)
	c.Out = append(c.Out, "}}\n"...)
	if !s.flush(c, w, c.Out) {
		s.withdraw(c)
		return
	}
	pendingAt := time.Now()
	e := s.holdPinging(c, w)
	if e == 0 {
		s.withdraw(c) // the client went away
		return
	}
	// The event is built apart from c.Out, which a failing store write
	// of the result token overwrites with its refusal.
	c.ev = s.appendEvent(c, c.ev[:0], e)
	if wait := MinEventGap - time.Since(pendingAt); wait > 0 {
		time.Sleep(wait)
	}
	s.flush(c, w, c.ev)
}

var ping = []byte("\n")

// holdPinging is hold, with a ping every s.ping; 0 when a ping could not
// be written (the client is gone).
func (s *Surface) holdPinging(c *reqCtx, w *bufio.Writer) end {
	final := c.deadline
	defer func() { c.deadline = final }()
	for {
		next := time.Now().Add(s.ping)
		if next.Before(final) {
			c.deadline = next
		} else {
			c.deadline = final
		}
		for {
			st, ok := s.reread(c)
			if !ok {
				return endError
			}
			if st != approval.StatusPending {
				return endOf(st)
			}
			r := c.waiter.Wait(c.deadline)
			if r == httpd.WakePublished {
				continue
			}
			if r == httpd.WakeShutdown {
				return endShutdown // not withdrawn, as in hold
			}
			break
		}
		if !time.Now().Before(final) {
			c.deadline = final
			return s.timedOut(c)
		}
		if !s.flush(c, w, ping) {
			return 0
		}
	}
}

// flush writes one chunk and sends it.
func (s *Surface) flush(c *reqCtx, w *bufio.Writer, b []byte) bool {
	if conn := c.RC.Conn(); conn != nil {
		_ = conn.SetWriteDeadline(time.Now().Add(writeSlack))
	}
	if _, err := w.Write(b); err != nil {
		return false
	}
	return w.Flush() == nil
}

// appendEvent appends the final event of a stream that ended so. Mind the
// nesting the client reads: the approved event's data.data is the result,
// a denial's data.data.security_field names what the next request needs.
func (s *Surface) appendEvent(c *reqCtx, dst []byte, e end) []byte {
	dst = append(dst, '\n')
	switch e {
	case endApproved:
		if !s.appendResult(c) {
			return appendErrorEvent(dst, "SERVER.UNAVAILABLE", "The result could not be stored; retry the request.")
		}
		dst = append(dst, `{"event":"approved","data":{"data":`...)
		dst = append(dst, c.Msg...)
		dst = append(dst, "}}"...)
	case endDenied:
		dst = append(dst, `{"event":"denied","data":{"data":{"security_field":"token"}}}`...)
	case endFailed:
		dst = append(dst, `{"event":"denied","data":{"data":{}}}`...)
	case endTimeout:
		dst = append(dst, `{"event":"timeout","data":{}}`...)
	case endShutdown:
		dst = appendErrorEvent(dst, outShutdown.code, outShutdown.message)
	default:
		dst = appendErrorEvent(dst, "SERVER.UNAVAILABLE", "The approval could not be read; retry the request.")
	}
	return append(dst, '\n')
}

func appendErrorEvent(dst []byte, code, message string) []byte {
	dst = append(dst, `{"event":"error","data":{"code":`...)
	dst = jsonwire.AppendString(dst, code)
	dst = append(dst, `,"message":`...)
	dst = jsonwire.AppendString(dst, message)
	return append(dst, "}}"...)
}
