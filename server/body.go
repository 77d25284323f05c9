package server

import (
	"bytes"
	"errors"
	"io"
	"runtime"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/valyala/fasthttp"
)

// Request body limits, per route, in bytes. They bound both what is read from
// the connection (an announced Content-Length above the limit is answered 413
// before the body is read) and what a compressed body may decompress to.
const (
	// limitSmall is for session creation and bodiless routes: three short strings.
	limitSmall = 4 << 10
	// limitValidate fits the largest sessionData match.* allows in practice
	// (256 items of realistic size); pathological 4 KiB values on all 256
	// items do not fit, and are refused with 413.
	limitValidate = 1 << 20
	// limitEvents fits maxEventFields fields of ordinary size and maxEventFrames
	// frames of 512-d embeddings (64 x ~2.8 KiB of base64) with ample room.
	limitEvents = 4 << 20
	// limitMax is the largest of the above: fasthttp's own cap for a request
	// whose path could not be classified when its headers arrived.
	limitMax = limitEvents
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

var errTooLarge = errors.New("server: decoded body too large")

// readBody checks the Content-Type and Content-Encoding of a JSON request
// and leaves the decoded body in c.body. It never aliases fasthttp's request
// buffer: c.body belongs to the pooled context, so sonic may refer into it
// for the duration of the request.
func (c *reqCtx) readBody(ctx *fasthttp.RequestCtx, limit int) bool {
	if !isJSONContentType(ctx.Request.Header.ContentType()) {
		return c.fail(errUnsupportedMediaType, nil)
	}
	raw := ctx.PostBody()
	if len(raw) > limit {
		return c.failTooLarge(limit)
	}
	c.body = c.body[:0]
	enc := bytes.TrimSpace(ctx.Request.Header.ContentEncoding())
	switch {
	case len(enc) == 0 || bytes.EqualFold(enc, []byte("identity")):
		c.body = append(c.body, raw...)
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
			c.body, err = readLimited(c.body, c.gzr, limit)
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
				return c.fail(errInternal, nil)
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
			c.body, err = readLimited(c.body, c.zsr, limit)
		}
		_ = c.zsr.Reset(nil)
		return c.decodeResult(err, "zstd", limit)
	default:
		return c.fail(errUnsupportedEncoding, nil)
	}
}

// maxZstdWindow is the largest zstd window a body may need: the decoder
// holds that much per request being decoded. zstd's levels up to 19 stay
// within it; --ultra levels and --long ask for more.
const maxZstdWindow = 8 << 20

// zstdWindowTooLarge refuses a zstd body whose frame needs a window over
// maxZstdWindow.
func (c *reqCtx) zstdWindowTooLarge() bool {
	c.msg = append(c.msg[:0], "The zstd request body was compressed with a window larger than "...)
	c.msg = appendSize(c.msg, maxZstdWindow)
	c.msg = append(c.msg, ", the most this server decodes: compress it at level 19 or below, without --long."...)
	return c.fail(errBodyTooLarge, c.msg)
}

func (c *reqCtx) decodeResult(err error, enc string, limit int) bool {
	switch {
	case err == nil:
		return true
	case errors.Is(err, zstd.ErrDecoderSizeExceeded):
		// A frame that must be decoded whole, declaring more than the
		// decoder takes: too large, not corrupt.
		return c.decodeResult(errTooLarge, enc, limit)
	case err == errTooLarge:
		c.msg = append(c.msg[:0], "The "...)
		c.msg = append(c.msg, enc...)
		c.msg = append(c.msg, " body decompresses to more than "...)
		c.msg = appendSize(c.msg, limit)
		c.msg = append(c.msg, ", the limit of this route."...)
		return c.fail(errBodyTooLarge, c.msg)
	default:
		c.msg = append(c.msg[:0], "The "...)
		c.msg = append(c.msg, enc...)
		c.msg = append(c.msg, " request body is corrupt and could not be decompressed."...)
		return c.fail(errBadEncoding, c.msg)
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

func appendSize(dst []byte, n int) []byte {
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
func (c *reqCtx) compress(dst []byte, enc string, body []byte) []byte {
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
