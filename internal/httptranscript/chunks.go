package httptranscript

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"time"
)

// maxChunks bounds the chunks ExchangeChunks reads of one answer.
const maxChunks = 1024

// ExchangeChunks is Exchange for an answer whose chunks matter (a stream
// of events, each flushed alone): it reads the answer's framing itself, so
// that Answer.Chunks holds the body's chunks as sent, and Body their
// concatenation. An answer that is not chunked has its body as one chunk.
func ExchangeChunks(addr string, raw []byte, timeout time.Duration) (*Answer, error) {
	c, err := send(addr, raw, timeout)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	br := bufio.NewReader(c)
	tp := textproto.NewReader(br)
	status, err := tp.ReadLine()
	if err != nil {
		if why := noAnswer(err, timeout); why != "" {
			return &Answer{NoAnswer: why}, nil
		}
		return nil, fmt.Errorf("httptranscript: reading the status line: %w", err)
	}
	h, err := tp.ReadMIMEHeader()
	if err != nil {
		return nil, fmt.Errorf("httptranscript: reading the answer's headers: %w", err)
	}
	a := &Answer{Status: status, Header: http.Header(h)}
	if !strings.EqualFold(h.Get("Transfer-Encoding"), "chunked") {
		n, err := strconv.Atoi(h.Get("Content-Length"))
		if err != nil || n < 0 || n > maxAnswerBody {
			return nil, fmt.Errorf("httptranscript: an answer neither chunked nor of a usable Content-Length (%q)", h.Get("Content-Length"))
		}
		a.Body = make([]byte, n)
		if _, err := io.ReadFull(br, a.Body); err != nil {
			return nil, fmt.Errorf("httptranscript: reading the answer's body: %w", err)
		}
		a.Chunks = [][]byte{a.Body}
		return a, nil
	}
	for len(a.Chunks) < maxChunks {
		line, err := tp.ReadLine()
		if err != nil {
			return nil, fmt.Errorf("httptranscript: reading a chunk's size: %w", err)
		}
		sizeText, _, _ := strings.Cut(line, ";")
		size, err := strconv.ParseInt(strings.TrimSpace(sizeText), 16, 32)
		if err != nil || size < 0 || len(a.Body)+int(size) > maxAnswerBody {
			return nil, fmt.Errorf("httptranscript: a chunk size line %q", line)
		}
		if size == 0 {
			if _, err := tp.ReadMIMEHeader(); err != nil && !errors.Is(err, io.EOF) { // the trailer
				return nil, fmt.Errorf("httptranscript: reading the trailer: %w", err)
			}
			return a, nil
		}
		chunk := make([]byte, size+2)
		if _, err := io.ReadFull(br, chunk); err != nil {
			return nil, fmt.Errorf("httptranscript: reading a chunk: %w", err)
		}
		if string(chunk[size:]) != "\r\n" {
			return nil, fmt.Errorf("httptranscript: a chunk of %d bytes not followed by CRLF", size)
		}
		a.Chunks = append(a.Chunks, chunk[:size])
		a.Body = append(a.Body, chunk[:size]...)
	}
	return nil, fmt.Errorf("httptranscript: more than %d chunks", maxChunks)
}

// renderChunks writes the chunks one to a line, Go-quoted, so that a
// transcript shows where each chunk ends and every newline inside one.
func renderChunks(b *strings.Builder, chunks [][]byte) {
	for _, c := range chunks {
		b.WriteString("chunk ")
		b.WriteString(strconv.Quote(string(c)))
		b.WriteByte('\n')
	}
}
