package server

import (
	"bytes"
	"errors"
	"reflect"

	"github.com/bytedance/sonic/decoder"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/valyala/fasthttp"

	"github.com/countersign/countersign/engine/biometric"
	"github.com/countersign/countersign/engine/match"
	"github.com/countersign/countersign/engine/policy"
	"github.com/countersign/countersign/server/jsonwire"
	"github.com/countersign/countersign/store"
)

// reqCtx is the pooled per-request context: every scratch slice a request
// needs, reset by truncation, so that a warmed-up server answers without
// allocating for its own work. Nothing in it may be kept after the request:
// the strings sonic decodes refer into body, which the next request
// overwrites. Whatever outlives a request (a queued frame job, a cache key)
// is copied first.
type reqCtx struct {
	srv         *Server
	ctx         *fasthttp.RequestCtx
	route       route
	status      int
	contentType string

	out  []byte // the response body
	msg  []byte // an error sentence being built
	body []byte // the request body, decompressed; sonic's strings refer into it
	zbuf []byte // the compressed response

	br  bytes.Reader
	gzr *gzip.Reader
	zsr *zstd.Decoder
	gzw *gzip.Writer
	zw  appendWriter // the gzip writer's output
	mw  appendWriter // /metrics output

	check  jsonwire.Checker
	dec    decoder.Decoder
	strBuf []byte // strings of the body that had escapes (bindValidate)

	createReq   createSessionRequest
	eventsReq   eventsRequest
	validateReq validateRequest

	org  store.Org
	sess store.Session

	// events
	storeFields []store.FieldValue
	frameIns    []store.FrameIn
	blobBuf     []byte
	embBuf      []byte
	frame       biometric.Frame

	// validate
	// rd is validate's read view (session, fields, template, idempotency
	// key): one Pebble iterator for the request's reads, closed before the
	// decision is written and, at the latest, when validate returns.
	rd        *store.Reader
	fields    []store.FieldValue
	mfields   []match.Field
	items     []match.Item
	synonyms  [][]byte
	matcher   match.Matcher
	mres      match.Result
	agg       *biometric.Aggregate
	tmpl      biometric.Template
	newTmpl   biometric.Template
	tmplBuf   []byte
	aggBuf    []byte
	frames    []biometric.Frame
	framesBuf []byte
	embOffs   []int
	framesEnd uint32 // loadFrames: last arrival index read + 1
	input     policy.Input
	verdict   policy.Verdict
	decision  store.Decision
	rec       []byte // the decision's record (decisionrec.go)
	reqHash   [32]byte
	idBuf     [8]byte
}

func newReqCtx(s *Server) *reqCtx {
	return &reqCtx{srv: s, agg: biometric.NewAggregate(s.dim), rd: s.db.NewReader()}
}

// maxRetained is the largest buffer a pooled context keeps between requests;
// a larger one (a big events body) is dropped so that idle contexts stay small.
const maxRetained = 256 << 10

func trim(b []byte) []byte {
	if cap(b) > maxRetained {
		return nil
	}
	return b[:0]
}

// release makes c ready for the pool.
func (c *reqCtx) release() {
	c.ctx = nil
	c.route = routeUnknown
	c.status = 0
	c.contentType = ""
	c.out = trim(c.out)
	c.msg = trim(c.msg)
	c.body = trim(c.body)
	c.strBuf = trim(c.strBuf)
	c.zbuf = trim(c.zbuf)
	c.blobBuf = trim(c.blobBuf)
	c.embBuf = trim(c.embBuf)
	c.framesBuf = trim(c.framesBuf)
	c.br.Reset(nil)
	// Drop every reference into the body (strings sonic decoded, path keys),
	// so a large body dropped above is not kept alive by them.
	c.check.Release()
	c.createReq = createSessionRequest{}
	c.eventsReq.reset()
	c.validateReq.reset()
	clear(c.items[:cap(c.items)])
	c.items = c.items[:0]
	clear(c.synonyms[:cap(c.synonyms)])
	c.synonyms = c.synonyms[:0]
	clear(c.mfields[:cap(c.mfields)])
	c.mfields = c.mfields[:0]
	clear(c.mres.Details[:cap(c.mres.Details)])
	c.mres.Details = c.mres.Details[:0]
	c.org = store.Org{}
	c.decision = store.Decision{}
	c.frame = biometric.Frame{}
	clear(c.frames[:cap(c.frames)])
	c.frames = c.frames[:0]
	clear(c.frameIns[:cap(c.frameIns)])
	c.frameIns = c.frameIns[:0]
	clear(c.storeFields[:cap(c.storeFields)])
	c.storeFields = c.storeFields[:0]
	clear(c.fields[:cap(c.fields)])
	c.fields = c.fields[:0]
	c.input = policy.Input{}
}

// fail answers e with msg (or the catalog sentence when msg is empty) and
// returns false, so handlers can write `return c.fail(...)`.
func (c *reqCtx) fail(e *apiError, msg []byte) bool {
	c.status = e.status
	c.contentType = ""
	c.out = appendError(c.out[:0], e, msg)
	if e.status == fasthttp.StatusServiceUnavailable || e.status == fasthttp.StatusTooManyRequests {
		c.ctx.Response.Header.Set(fasthttp.HeaderRetryAfter, "1")
	}
	return false
}

// failf answers e with a sentence built from parts.
func (c *reqCtx) failf(e *apiError, parts ...string) bool {
	c.msg = c.msg[:0]
	for _, p := range parts {
		c.msg = append(c.msg, p...)
	}
	return c.fail(e, c.msg)
}

// failTooLarge answers 413 naming the route's limit.
func (c *reqCtx) failTooLarge(limit int) bool {
	c.msg = append(c.msg[:0], "The request body is larger than "...)
	c.msg = appendSize(c.msg, limit)
	c.msg = append(c.msg, ", the limit of this route."...)
	return c.fail(errBodyTooLarge, c.msg)
}

// storeFailed answers a store error that is not the request's fault: 503,
// nothing decided or changed. ErrExpired and ErrNotFound are handled by the
// caller, which knows what they mean for its route.
func (c *reqCtx) storeFailed(err error) bool {
	c.srv.log.Error("store", "route", c.route.String(), "err", err)
	if errors.Is(err, store.ErrClosed) {
		return c.fail(errNotReady, nil)
	}
	if errors.Is(err, store.ErrFatal) {
		// The store gave up (in this request or an earlier one): fail
		// closed from now on, as the panic handler does.
		c.srv.markStoreDead(err)
	}
	return c.fail(errStoreUnavailable, nil)
}

// send writes c's response, compressed when the client accepts it and the
// body is worth it.
func (c *reqCtx) send() {
	ctx := c.ctx
	ctx.SetStatusCode(c.status)
	if c.contentType != "" {
		ctx.SetContentType(c.contentType)
	} else {
		ctx.Response.Header.SetContentTypeBytes(contentTypeJSON)
	}
	body := c.out
	if len(body) >= compressMin {
		ctx.Response.Header.Set(fasthttp.HeaderVary, "Accept-Encoding")
		if enc := responseEncoding(ctx.Request.Header.Peek(fasthttp.HeaderAcceptEncoding)); enc != "" {
			c.zbuf = c.compress(c.zbuf[:0], enc, body)
			body = c.zbuf
			ctx.Response.Header.SetContentEncoding(enc)
		}
	}
	ctx.SetBody(body)
}

var contentTypeJSON = []byte("application/json")

// decodeOptions make sonic as strict as the shape check: exact field names,
// unknown fields refused, strings validated. Strings are not copied: they
// refer into c.body for the duration of the request.
const decodeOptions = decoder.OptionDisableUnknown | decoder.OptionCaseSensitive | decoder.OptionValidateString

// oneHeader returns the value of the request header name and whether it
// was sent. A header sent more than once fails the request (400
// invalid_header, ok false): a credential or a key given twice has no one
// meaning, and taking the first would let a proxy's header and a client's
// disagree unseen. So does one sent only in a chunked body's trailer,
// which fasthttp merges into the headers: proxies that check headers do
// not see trailers.
func (c *reqCtx) oneHeader(name string) (v []byte, sent, ok bool) {
	all := c.ctx.Request.Header.PeekAll(name)
	switch len(all) {
	case 0:
		return nil, false, true
	case 1:
		// Only a chunked body has a trailer (its length is then -1, or 0
		// when empty), so only then is the raw header block scanned.
		if cl := c.ctx.Request.Header.ContentLength(); cl == -1 || cl == 0 {
			if raw := c.ctx.Request.Header.RawHeaders(); len(raw) > 0 && !rawHasHeader(raw, name) {
				return nil, true, c.failf(errInvalidHeader, name, " must come with the request's headers, not in a trailer")
			}
		}
		return all[0], true, true
	}
	return nil, true, c.failf(errInvalidHeader, name, " is given more than once")
}

// rawHasHeader reports whether the raw header block (fasthttp's
// RawHeaders: "Name: value" lines) has a line for name, compared without
// regard to ASCII case.
func rawHasHeader(raw []byte, name string) bool {
	for start := 0; start < len(raw); {
		line := raw[start:]
		if end := bytes.IndexByte(line, '\n'); end >= 0 {
			line, start = line[:end], start+end+1
		} else {
			start = len(raw)
		}
		if len(line) > len(name) && line[len(name)] == ':' && asciiEqualFold(line[:len(name)], name) {
			return true // (fasthttp refuses blanks before the colon)
		}
	}
	return false
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

// decode checks c.body against sh and binds it into v (a pointer to one of
// c's request structs, already reset).
func (c *reqCtx) decode(sh *jsonwire.Shape, v any) bool {
	if !c.check.CheckSyntax(c.body) {
		return c.fail(problemErrors[c.check.Problem], c.check.Msg)
	}
	if r, ok := v.(*validateRequest); ok && sh == shapeValidate {
		// The hottest body is checked and bound in one walk
		// (bindvalidate.go); one it refuses goes the general way, whose
		// shape check names the problem.
		if c.bindValidate(r) {
			return true
		}
		r.reset()
	}
	if !c.check.CheckShape(c.body, sh) {
		return c.fail(problemErrors[c.check.Problem], c.check.Msg)
	}
	c.dec.Reset(jsonwire.BytesToString(c.body))
	c.dec.SetOptions(decodeOptions)
	if err := c.dec.Decode(v); err != nil {
		// The checks above accept only what binds; reaching here is a gap
		// between them and sonic, answered as a bad request all the same.
		c.srv.log.Warn("sonic refused a checked body", "route", c.route.String(), "type", reflect.TypeOf(v).String(), "err", err)
		return c.failf(errInvalidJSON, "The request body could not be decoded: ", err.Error())
	}
	return true
}
