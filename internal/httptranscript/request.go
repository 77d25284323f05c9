package httptranscript

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// Errors of building a request from its text.
var (
	ErrNoRequestLine = errors.New("httptranscript: the request has no request line")
	ErrUnknownVar    = errors.New("httptranscript: unknown variable")
	ErrBadEscape     = errors.New("httptranscript: bad escape")
	ErrBadHeader     = errors.New("httptranscript: header line without a colon")
)

// Vars holds the values a transcript substitutes for $name: the ones the
// test sets up (credentials, ids) and the ones captured from answers.
type Vars map[string]string

// Expand replaces $name and ${name} in s by their values and $$ by a dollar
// sign. A name is a letter or underscore followed by letters, digits and
// underscores. A name with no value is an error, so that a typing mistake in
// a transcript is not sent as literal text.
func (v Vars) Expand(s string) (string, error) {
	if !strings.Contains(s, "$") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' {
			b.WriteByte(s[i])
			continue
		}
		if i+1 < len(s) && s[i+1] == '$' {
			b.WriteByte('$')
			i++
			continue
		}
		var name string
		if i+1 < len(s) && s[i+1] == '{' {
			end := strings.IndexByte(s[i+2:], '}')
			if end < 0 {
				return "", fmt.Errorf("%w: ${ without a closing brace at byte %d", ErrUnknownVar, i)
			}
			name = s[i+2 : i+2+end]
			i += 2 + end
		} else {
			j := i + 1
			for j < len(s) && isNameByte(s[j], j == i+1) {
				j++
			}
			name = s[i+1 : j]
			i = j - 1
		}
		val, ok := v[name]
		if !ok || name == "" {
			return "", fmt.Errorf("%w $%s (set: %s)", ErrUnknownVar, name, strings.Join(v.names(), ", "))
		}
		b.WriteString(val)
	}
	return b.String(), nil
}

func isNameByte(c byte, first bool) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || !first && c >= '0' && c <= '9'
}

func (v Vars) names() []string {
	out := make([]string, 0, len(v))
	for k := range v {
		out = append(out, "$"+k)
	}
	slices.Sort(out)
	return out
}

// Unescape turns the escapes of the raw form into bytes: \r, \n, \t, \0,
// \\ and \xNN. Every other backslash is an error, so that a JSON escape
// written into a raw request is noticed rather than sent changed.
func Unescape(s string) ([]byte, error) {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			out = append(out, s[i])
			continue
		}
		if i+1 == len(s) {
			return nil, fmt.Errorf("%w: a backslash ends the text", ErrBadEscape)
		}
		i++
		switch s[i] {
		case 'r':
			out = append(out, '\r')
		case 'n':
			out = append(out, '\n')
		case 't':
			out = append(out, '\t')
		case '0':
			out = append(out, 0)
		case '\\':
			out = append(out, '\\')
		case 'x':
			b, err := hexByte(s, i+1)
			if err != nil {
				return nil, err
			}
			out = append(out, b)
			i += 2
		default:
			return nil, fmt.Errorf(`%w \%c at byte %d (write \\ for a backslash)`, ErrBadEscape, s[i], i-1)
		}
	}
	return out, nil
}

// unescapeHex turns only \xNN into bytes: the body escape of the request
// form, which JSON text never contains, so JSON's own escapes pass through.
func unescapeHex(s string) ([]byte, error) {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) && s[i+1] == 'x' {
			b, err := hexByte(s, i+2)
			if err != nil {
				return nil, err
			}
			out = append(out, b)
			i += 3
			continue
		}
		out = append(out, s[i])
	}
	return out, nil
}

func hexByte(s string, at int) (byte, error) {
	if at+2 > len(s) {
		return 0, fmt.Errorf(`%w: \x needs two hex digits at byte %d`, ErrBadEscape, at-2)
	}
	n, err := strconv.ParseUint(s[at:at+2], 16, 8)
	if err != nil {
		return 0, fmt.Errorf(`%w: \x%s at byte %d`, ErrBadEscape, s[at:at+2], at-2)
	}
	return byte(n), nil
}

// RequestOptions are the arguments of a request case.
type RequestOptions struct {
	Host     string // sent when the request gives no Host header
	Encoding string // "gzip" or "zstd": compress the body
	Chunked  bool   // send the body as one chunk
	Bytes    bool   // \xNN escapes in the body are bytes
}

// BuildRequest turns the text of a request case (variables already
// expanded) into the bytes to send: the request line and headers end in
// CRLF; Host, Content-Encoding and Content-Length are added unless the text
// gives them (no Content-Length with Transfer-Encoding, where the text frames
// the body itself, its line endings then CRLF too); the body is compressed
// or chunked when asked. It also returns the request's method, which reading
// the answer needs (a HEAD answer has no body).
func BuildRequest(text string, o RequestOptions) (raw []byte, method string, err error) {
	text = strings.ReplaceAll(text, "\r\n", "\n")
	head, body, _ := strings.Cut(text, "\n\n")
	lines := strings.Split(head, "\n")
	if strings.TrimSpace(lines[0]) == "" {
		return nil, "", ErrNoRequestLine
	}
	method, _, _ = strings.Cut(lines[0], " ")
	var has struct{ host, length, te, enc bool }
	for _, l := range lines[1:] {
		name, _, ok := strings.Cut(l, ":")
		if !ok {
			return nil, "", fmt.Errorf("%w: %q", ErrBadHeader, l)
		}
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "host":
			has.host = true
		case "content-length":
			has.length = true
		case "transfer-encoding":
			has.te = true
		case "content-encoding":
			has.enc = true
		}
	}
	var b []byte
	if o.Bytes {
		if b, err = unescapeHex(body); err != nil {
			return nil, "", err
		}
	} else {
		b = []byte(body)
	}
	if has.te {
		b = bytes.ReplaceAll(b, []byte("\n"), []byte("\r\n"))
	}
	switch o.Encoding {
	case "":
	case "gzip":
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		_, _ = zw.Write(b)
		_ = zw.Close()
		b = buf.Bytes()
	case "zstd":
		zw, _ := zstd.NewWriter(nil)
		b = zw.EncodeAll(b, nil)
		_ = zw.Close()
	default:
		return nil, "", fmt.Errorf("httptranscript: unknown body encoding %q (gzip or zstd)", o.Encoding)
	}
	if o.Chunked {
		var c []byte
		if len(b) > 0 {
			c = fmt.Appendf(c, "%x\r\n", len(b))
			c = append(c, b...)
			c = append(c, "\r\n"...)
		}
		b = append(c, "0\r\n\r\n"...)
	}

	var out []byte
	for i, l := range lines {
		out = append(out, l...)
		out = append(out, "\r\n"...)
		if i == 0 && !has.host && o.Host != "" && strings.HasSuffix(l, "HTTP/1.1") {
			out = append(out, "Host: "+o.Host+"\r\n"...)
		}
	}
	if o.Encoding != "" && !has.enc {
		out = append(out, "Content-Encoding: "+o.Encoding+"\r\n"...)
	}
	switch {
	case o.Chunked:
		if !has.te {
			out = append(out, "Transfer-Encoding: chunked\r\n"...)
		}
	case !has.length && !has.te && (len(b) > 0 || method == "POST" || method == "PUT" || method == "PATCH"):
		out = fmt.Appendf(out, "Content-Length: %d\r\n", len(b))
	}
	out = append(out, "\r\n"...)
	return append(out, b...), method, nil
}
