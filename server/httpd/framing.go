package httpd

import (
	"bytes"

	"github.com/valyala/fasthttp"
)

// rawLines walks fasthttp's raw header block (RawHeaders: the lines after
// the request line, as received) one line at a time, without the line
// ends. fasthttp has already parsed the block; what it no longer shows is
// how a header was written (in the block or in a trailer, folded or not),
// and that is what the scans below look at.
type rawLines struct{ raw []byte }

// next returns the next line, and false after the last.
func (l *rawLines) next() ([]byte, bool) {
	if len(l.raw) == 0 {
		return nil, false
	}
	line := l.raw
	if end := bytes.IndexByte(line, '\n'); end >= 0 {
		line, l.raw = line[:end], l.raw[end+1:]
	} else {
		l.raw = nil
	}
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, true
}

// rawHasHeader reports whether the raw header block has a line for name,
// compared without regard to ASCII case.
func rawHasHeader(raw []byte, name string) bool {
	l := rawLines{raw}
	for line, ok := l.next(); ok; line, ok = l.next() {
		if isHeaderLine(line, name) {
			return true
		}
	}
	return false
}

// isHeaderLine reports whether line is the "name: value" line of name
// (fasthttp refuses blanks before the colon, so none are looked for).
func isHeaderLine(line []byte, name string) bool {
	return len(line) > len(name) && line[len(name)] == ':' && asciiEqualFold(line[:len(name)], name)
}

// framingProblem names what makes a request's framing ambiguous, or "":
// both Transfer-Encoding and Content-Length (RFC 9112 section 6.3: an
// intermediary may have framed the body by the other one, so what follows
// the body here may be a request it never saw: request smuggling), or a
// header folded onto a continuation line (obsolete line folding, section
// 5.2, which proxies join or split differently). fasthttp accepts both,
// framing by Transfer-Encoding and joining folded lines; the core refuses
// them with 400 and closes the connection.
//
// The raw block is scanned, not the parsed header: once a chunked body is
// read fasthttp sets the Content-Length to the body's, and the header it
// was sent with is gone. Each line costs a look at its first byte, and a
// name comparison only for lines that start like one of the two names.
func framingProblem(h *fasthttp.RequestHeader) string {
	var te, cl bool
	l := rawLines{h.RawHeaders()}
	for line, ok := l.next(); ok; line, ok = l.next() {
		if len(line) == 0 {
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			return "a header is folded onto a continuation line (obsolete line folding)"
		}
		switch line[0] | 0x20 { // lower case
		case 't':
			te = te || isHeaderLine(line, fasthttp.HeaderTransferEncoding)
		case 'c':
			cl = cl || isHeaderLine(line, fasthttp.HeaderContentLength)
		}
	}
	if te && cl {
		return "Transfer-Encoding and Content-Length are both given"
	}
	return ""
}

// asciiEqualFold is bytes.EqualFold for ASCII names, without allocating.
func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		x, y := b[i], s[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}
