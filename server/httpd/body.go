package httpd

import (
	"bytes"
	"errors"
	"io"
	"runtime"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/valyala/fasthttp"
)

// compressMin is the smallest response body worth compressing.
const compressMin = 512

// isJSONContentType reports whether a Content-Type header names
// application/json (parameters such as charset are allowed).
func isJSONContentType(ct []byte) bool {
	ct = bytes.TrimSpace(ct)
	if i := bytes.IndexByte(ct, ';'); i >= 0 {
		ct = bytes.TrimSpace(ct[:i])
	}
	return bytes.EqualFold(ct, []byte("application/json"))
}

// zstdEncoder compresses responses. EncodeAll is safe for concurrent use and
// keeps its own pool of block encoders.
var zstdEncoder = func() *zstd.Encoder {
	e, err := zstd.NewWriter(nil,
		zstd.WithEncoderLevel(zstd.SpeedFastest),
		zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)),
		zstd.WithLowerEncoderMem(true),
		zstd.WithWindowSize(1<<20))
	if err != nil {
		panic(err)
	}
	return e
}()

var errTooLarge = errors.New("httpd: decoded body too large")

// ReadBody checks the Content-Type and Content-Encoding of a JSON request
// and leaves the decoded body, at most limit bytes, in c.Body. It never
// aliases fasthttp's request buffer: c.Body belongs to the pooled context,
// so decoded strings may refer into it for the duration of the request.
func (c *Ctx) ReadBody(limit int) bool {
	ctx := c.RC
	if !isJSONContentType(ctx.Request.Header.ContentType()) {
		return c.Fail(ErrUnsupportedMediaType, nil)
	}
	raw := ctx.PostBody()
	if len(raw) > limit {
		return c.failTooLarge(limit)
	}
	c.Body = c.Body[:0]
	enc := bytes.TrimSpace(ctx.Request.Header.ContentEncoding())
	switch {
	case len(enc) == 0 || bytes.EqualFold(enc, []byte("identity")):
		c.Body = append(c.Body, raw...)
		return true
	case bytes.EqualFold(enc, []byte("gzip")):
		c.br.Reset(raw)
		var err error
		if c.gzr == nil {
			c.gzr, err = gzip.NewReader(&c.br)
		} else {
			err = c.gzr.Reset(&c.br)
		}
		if err == nil {
			c.Body, err = readLimited(c.Body, c.gzr, limit)
		}
		return c.decodeResult(err, "gzip", limit)
	case bytes.EqualFold(enc, []byte("zstd")):
		if c.zsr == nil {
			// Concurrency 1 decodes synchronously: no goroutines, so a
			// context dropped by its pool leaks nothing.
			zr, err := zstd.NewReader(nil,
				zstd.WithDecoderConcurrency(1),
				zstd.WithDecoderLowmem(true),
				zstd.WithDecoderMaxWindow(maxZstdWindow))
			if err != nil {
				return c.Fail(ErrInternal, nil)
			}
			c.zsr = zr
		}
		// The frame header says what the decoder would only find out
		// midway (and then report vaguely): a window it will not hold, or
		// a declared size over the limit.
		var zh zstd.Header
		if zh.Decode(raw) == nil && !zh.Skippable {
			switch {
			case !zh.SingleSegment && zh.WindowSize > maxZstdWindow:
				return c.zstdWindowTooLarge()
			case zh.HasFCS && zh.FrameContentSize > uint64(limit):
				return c.decodeResult(errTooLarge, "zstd", limit)
			}
		}
		c.br.Reset(raw)
		err := c.zsr.Reset(&c.br)
		if err == nil {
			c.Body, err = readLimited(c.Body, c.zsr, limit)
		}
		_ = c.zsr.Reset(nil)
		return c.decodeResult(err, "zstd", limit)
	default:
		return c.Fail(ErrUnsupportedEncoding, nil)
	}
}

// maxZstdWindow is the largest zstd window a body may need: the decoder
// holds that much per request being decoded. zstd's levels up to 19 stay
// within it; --ultra levels and --long ask for more.
const maxZstdWindow = 8 << 20

// zstdWindowTooLarge refuses a zstd body whose frame needs a window over
// maxZstdWindow.
func (c *Ctx) zstdWindowTooLarge() bool {
	c.Msg = append(c.Msg[:0], "The zstd request body was compressed with a window larger than "...)
	c.Msg = AppendSize(c.Msg, maxZstdWindow)
	c.Msg = append(c.Msg, ", the most this server decodes: compress it at level 19 or below, without --long."...)
	return c.Fail(ErrBodyTooLarge, c.Msg)
}

func (c *Ctx) decodeResult(err error, enc string, limit int) bool {
	switch {
	case err == nil:
		return true
	case errors.Is(err, zstd.ErrDecoderSizeExceeded):
		// A frame that must be decoded whole, declaring more than the
		// decoder takes: too large, not corrupt.
		return c.decodeResult(errTooLarge, enc, limit)
	case err == errTooLarge:
		c.Msg = append(c.Msg[:0], "The "...)
		c.Msg = append(c.Msg, enc...)
		c.Msg = append(c.Msg, " body decompresses to more than "...)
		c.Msg = AppendSize(c.Msg, limit)
		c.Msg = append(c.Msg, ", the limit of this route."...)
		return c.Fail(ErrBodyTooLarge, c.Msg)
	default:
		c.Msg = append(c.Msg[:0], "The "...)
		c.Msg = append(c.Msg, enc...)
		c.Msg = append(c.Msg, " request body is corrupt and could not be decompressed."...)
		return c.Fail(ErrBadEncoding, c.Msg)
	}
}

// readLimited appends everything r yields to dst, failing with errTooLarge as
// soon as more than limit bytes were produced.
func readLimited(dst []byte, r io.Reader, limit int) ([]byte, error) {
	for {
		if len(dst) > limit {
			return dst, errTooLarge
		}
		if len(dst) == cap(dst) {
			dst = append(dst, 0)[:len(dst)]
		}
		end := min(cap(dst), limit+1)
		n, err := r.Read(dst[len(dst):end])
		dst = dst[:len(dst)+n]
		if err == io.EOF {
			if len(dst) > limit {
				return dst, errTooLarge
			}
			return dst, nil
		}
		if err != nil {
			return dst, err
		}
	}
}

// AppendSize appends n bytes in the largest unit that divides it (MiB,
// KiB, bytes), for sentences that name a limit.
func AppendSize(dst []byte, n int) []byte {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		dst = fasthttp.AppendUint(dst, n>>20)
		return append(dst, " MiB"...)
	case n >= 1<<10 && n%(1<<10) == 0:
		dst = fasthttp.AppendUint(dst, n>>10)
		return append(dst, " KiB"...)
	}
	dst = fasthttp.AppendUint(dst, n)
	return append(dst, " bytes"...)
}

// responseEncoding picks the response Content-Encoding from Accept-Encoding:
// zstd when acceptable, else gzip, else none. A coding with q=0 is refused.
func responseEncoding(ae []byte) string {
	gz, zs := false, false
	for len(ae) > 0 {
		var tok []byte
		if i := bytes.IndexByte(ae, ','); i >= 0 {
			tok, ae = ae[:i], ae[i+1:]
		} else {
			tok, ae = ae, nil
		}
		name := tok
		if i := bytes.IndexByte(tok, ';'); i >= 0 {
			name = tok[:i]
			if qZero(tok[i+1:]) {
				continue
			}
		}
		name = bytes.TrimSpace(name)
		switch {
		case bytes.EqualFold(name, []byte("zstd")):
			zs = true
		case bytes.EqualFold(name, []byte("gzip")), bytes.EqualFold(name, []byte("x-gzip")):
			gz = true
		}
	}
	switch {
	case zs:
		return "zstd"
	case gz:
		return "gzip"
	}
	return ""
}

// qZero reports whether the parameters of an Accept-Encoding element set q to 0.
func qZero(params []byte) bool {
	p := bytes.TrimSpace(params)
	if len(p) < 2 || (p[0] != 'q' && p[0] != 'Q') {
		return false
	}
	p = bytes.TrimSpace(p[1:])
	if len(p) == 0 || p[0] != '=' {
		return false
	}
	p = bytes.TrimSpace(p[1:])
	for _, ch := range p {
		if ch != '0' && ch != '.' {
			return false
		}
	}
	return true
}

// appendWriter lets a compressor append to a byte slice.
type appendWriter struct{ b []byte }

func (w *appendWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

// compress appends body compressed with enc ("gzip" or "zstd") to dst.
func (c *Ctx) compress(dst []byte, enc string, body []byte) []byte {
	if enc == "zstd" {
		return zstdEncoder.EncodeAll(body, dst)
	}
	c.zw.b = dst
	if c.gzw == nil {
		c.gzw, _ = gzip.NewWriterLevel(&c.zw, gzip.BestSpeed)
	} else {
		c.gzw.Reset(&c.zw)
	}
	_, _ = c.gzw.Write(body)
	_ = c.gzw.Close()
	out := c.zw.b
	c.zw.b = nil
	return out
}
