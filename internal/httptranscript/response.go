package httptranscript

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// maxAnswerBody bounds what Exchange reads of one answer.
const maxAnswerBody = 64 << 20

// Answer is what the server sent back to one request, its body decompressed.
type Answer struct {
	Status   string      // "HTTP/1.1 200 OK", as sent
	Header   http.Header // every header
	Body     []byte      // decompressed when Encoding is set
	Encoding string      // the Content-Encoding the body was sent in: "", "gzip" or "zstd"
	// Chunks are the body's chunks as sent, read by ExchangeChunks; nil
	// from Exchange. Render shows them one to a line when set.
	Chunks [][]byte
	// NoAnswer, when not empty, says why no answer came (the connection
	// closed or was reset first): for a server that refuses a request by
	// closing, that is the answer.
	NoAnswer string
}

// Exchange writes raw on a new TCP connection to addr and reads one answer
// with net/http's parser, a client independent of the server's own code.
// The request is written in the background: a server may answer and close
// before it has read all of it, and that answer must still be read.
func Exchange(addr string, raw []byte, method string, timeout time.Duration) (*Answer, error) {
	c, err := send(addr, raw, timeout)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	res, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: method})
	if err != nil {
		if why := noAnswer(err, timeout); why != "" {
			return &Answer{NoAnswer: why}, nil
		}
		return nil, fmt.Errorf("httptranscript: reading the answer: %w", err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, maxAnswerBody))
	if err != nil {
		return nil, fmt.Errorf("httptranscript: reading the answer's body: %w", err)
	}
	a := &Answer{Status: res.Proto + " " + res.Status, Header: res.Header, Body: body}
	if res.Close && res.ProtoAtLeast(1, 1) && a.Header.Get("Connection") == "" {
		// net/http takes "Connection: close" out of the headers into Close.
		a.Header.Set("Connection", "close")
	}
	switch enc := strings.ToLower(res.Header.Get("Content-Encoding")); enc {
	case "", "identity":
	case "gzip", "zstd":
		if a.Body, err = decompress(enc, body); err != nil {
			return nil, fmt.Errorf("httptranscript: the answer's %s body: %w", enc, err)
		}
		a.Encoding = enc
	default:
		return nil, fmt.Errorf("httptranscript: the answer has Content-Encoding %q, which this reader cannot decode", enc)
	}
	return a, nil
}

// send dials addr and writes raw in the background: a server may answer
// and close before it has read all of it, and that answer must still be
// read. The connection's deadline is timeout from now.
func send(addr string, raw []byte, timeout time.Duration) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, fmt.Errorf("httptranscript: dial %s: %w", addr, err)
	}
	_ = c.SetDeadline(time.Now().Add(timeout))
	go func() { _, _ = c.Write(raw) }()
	return c, nil
}

// noAnswer describes an error that means the server sent nothing, or ""
// for any other error.
func noAnswer(err error, timeout time.Duration) string {
	var ne net.Error
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "the connection closed without an answer"
	case errors.Is(err, syscall.ECONNRESET):
		return "the connection was reset without an answer"
	case errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "no answer within " + timeout.String()
	}
	return ""
}

func decompress(enc string, b []byte) ([]byte, error) {
	if enc == "gzip" {
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			return nil, err
		}
		return io.ReadAll(zr)
	}
	zr, err := zstd.NewReader(nil)
	if err != nil {
		return nil, err
	}
	defer zr.Close()
	return zr.DecodeAll(b, nil)
}

// DefaultHeaders are the answer headers every transcript shows: those a
// client acts on. Connection is shown only when it says close.
var DefaultHeaders = []string{"Content-Type", "Content-Encoding", "Retry-After", "Allow", "Connection"}

// Render writes the answer as a transcript shows it: the status line, the
// headers named in show (in that order, each value as sent), a blank line
// and the body's exact bytes (decompressed, which the Content-Encoding line
// says). A body that is not printable UTF-8 is shown Go-quoted on one line,
// so that the transcript stays a text file.
func (a *Answer) Render(show []string) string {
	if a.NoAnswer != "" {
		return "(" + a.NoAnswer + ")\n"
	}
	var b strings.Builder
	b.WriteString(a.Status)
	b.WriteByte('\n')
	for _, name := range show {
		name = textproto.CanonicalMIMEHeaderKey(name)
		for _, v := range a.Header.Values(name) {
			switch {
			case name == "Connection" && !strings.EqualFold(strings.TrimSpace(v), "close"):
				continue
			case name == "Content-Encoding" && a.Encoding != "":
				v += " (body shown decompressed)"
			}
			b.WriteString(name + ": " + v + "\n")
		}
	}
	if len(a.Body) == 0 {
		return b.String()
	}
	b.WriteByte('\n')
	if a.Chunks != nil {
		renderChunks(&b, a.Chunks)
		return b.String()
	}
	if printable(a.Body) {
		b.Write(a.Body)
	} else {
		b.WriteString("(not printable UTF-8, quoted) " + strconv.Quote(string(a.Body)))
	}
	b.WriteByte('\n')
	return b.String()
}

func printable(b []byte) bool {
	if !utf8.Valid(b) {
		return false
	}
	for _, c := range b {
		if c < 0x20 && c != '\n' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}
