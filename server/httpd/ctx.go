package httpd

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"strconv"
	"time"

	"github.com/bytedance/sonic/decoder"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/valyala/fasthttp"

	"github.com/countersign/countersign/server/jsonwire"
	"github.com/countersign/countersign/server/tenant"
	"github.com/countersign/countersign/store"
)

// Ctx is the surface-neutral part of the pooled per-request context: the
// buffers every request needs (the response, an error sentence, the
// decompressed body), the body decompressors and response compressors, and
// the JSON checks. Each surface embeds it in its own pooled context type
// beside its own scratch, so a warmed-up server answers without allocating
// for its own work.
//
// Nothing in it may be kept after the request: strings decoded from Body
// refer into it, and the next request overwrites it. Whatever outlives a
// request (a queued job, a cache key) is copied first.
type Ctx struct {
	Srv         *Server
	RC          *fasthttp.RequestCtx
	Route       *Route
	Status      int
	ContentType string // "" for application/json

	Out  []byte // the response body
	Msg  []byte // an error sentence being built
	Body []byte // the request body, decompressed; decoded strings refer into it
	zbuf []byte // the compressed response

	br  bytes.Reader
	gzr *gzip.Reader
	zsr *zstd.Decoder
	gzw *gzip.Writer
	zw  appendWriter // the gzip writer's output
	mw  appendWriter // AppendFrom's writer

	Check jsonwire.Checker
	dec   decoder.Decoder
	env   Envelope
}

// Start readies c for a request of route r.
func (c *Ctx) Start(srv *Server, rc *fasthttp.RequestCtx, r *Route) {
	c.Srv, c.RC, c.Route = srv, rc, r
	c.env = srv.envelope(r)
}

// maxRetained is the largest buffer a pooled context keeps between requests;
// a larger one (a big events body) is dropped so that idle contexts stay small.
const maxRetained = 256 << 10

// Trim truncates b for reuse, or drops it when it grew past what a pooled
// context keeps.
func Trim(b []byte) []byte {
	if cap(b) > maxRetained {
		return nil
	}
	return b[:0]
}

// Release makes c's part ready for the pool.
func (c *Ctx) Release() {
	c.RC = nil
	c.Route = RouteUnknown
	c.Status = 0
	c.ContentType = ""
	c.env = nil
	c.Out = Trim(c.Out)
	c.Msg = Trim(c.Msg)
	c.Body = Trim(c.Body)
	c.zbuf = Trim(c.zbuf)
	c.br.Reset(nil)
	// Drop every reference into the body (path keys), so a large body
	// dropped above is not kept alive by them.
	c.Check.Release()
}

// Admit answers what the core refuses before a surface's handler runs (a
// path that matches no route, a method the route does not take, a route
// that uses a store that has failed) and reports whether the request goes
// on to the handler.
func (c *Ctx) Admit() bool {
	r := c.Route
	if r == RouteUnknown {
		return c.Fail(ErrRouteNotFound, nil)
	}
	if m := r.Method; string(c.RC.Method()) != m && !(m == fasthttp.MethodGet && c.RC.IsHead()) {
		c.RC.Response.Header.Set(fasthttp.HeaderAllow, m)
		return c.Fail(ErrMethodNotAllowed, nil)
	}
	if r.UsesStore && c.Srv.StoreDead() {
		// What the store holds in memory may include writes that never
		// became durable: answer nothing from it (see Server.Failed).
		return c.Fail(c.Srv.StoreError(), nil)
	}
	return true
}

// Fail answers e with msg (or the catalog sentence when msg is empty), in
// the envelope of the route's surface, and returns false, so handlers can
// write `return c.Fail(...)`.
func (c *Ctx) Fail(e *Error, msg []byte) bool {
	c.Status = e.Status
	c.ContentType = ""
	c.Out = c.env(c.Out[:0], e, msg)
	if e.Status == fasthttp.StatusServiceUnavailable || e.Status == fasthttp.StatusTooManyRequests {
		c.RC.Response.Header.Set(fasthttp.HeaderRetryAfter, "1")
	}
	return false
}

// Failf answers e with a sentence built from parts.
func (c *Ctx) Failf(e *Error, parts ...string) bool {
	c.Msg = c.Msg[:0]
	for _, p := range parts {
		c.Msg = append(c.Msg, p...)
	}
	return c.Fail(e, c.Msg)
}

// failTooLarge answers 413 naming the route's limit.
func (c *Ctx) failTooLarge(limit int) bool {
	c.Msg = appendTooLarge(c.Msg[:0], limit)
	return c.Fail(ErrBodyTooLarge, c.Msg)
}

// appendTooLarge appends the sentence of a body over limit.
func appendTooLarge(dst []byte, limit int) []byte {
	dst = append(dst, "The request body is larger than "...)
	dst = AppendSize(dst, limit)
	return append(dst, ", the limit of this route."...)
}

// StoreFailed answers a store error that is not the request's fault: 503,
// nothing decided or changed. ErrExpired and ErrNotFound are handled by the
// caller, which knows what they mean for its route.
func (c *Ctx) StoreFailed(err error) bool {
	if errors.Is(err, store.ErrFatal) {
		// The store gave up (in this request or an earlier one): fail
		// closed from now on, as the panic recovery does. Logged once, by
		// MarkStoreDead: a full disk met by every request must not write
		// a line for each.
		c.Srv.MarkStoreDead(err)
		return c.Fail(c.Srv.StoreError(), nil)
	}
	c.Srv.log.Error("store", "route", c.Route.String(), "err", err)
	if errors.Is(err, store.ErrClosed) {
		return c.Fail(ErrNotReady, nil)
	}
	return c.Fail(ErrStoreUnavailable, nil)
}

// OrgApprovals is org's compiled approval configuration, its rules and
// settings (tenant.Approvals), for every surface that creates or decides
// approvals; ok false after answering when it cannot be had: a stored
// configuration that does not compile is the server's fault (500, logged,
// never decided under defaults), a store failure 503.
func (c *Ctx) OrgApprovals(orgs *tenant.Cache, org store.OrgID) (*tenant.Approvals, bool) {
	a, err := orgs.Approvals(org)
	if err != nil {
		if errors.Is(err, tenant.ErrConfig) {
			c.Srv.log.Error("organization approval configuration", "route", c.Route.String(), "err", err)
			return nil, c.Fail(ErrInternal, nil)
		}
		return nil, c.StoreFailed(err)
	}
	return a, true
}

// RetryAt sets Retry-After to the whole seconds from now until at, at
// least 1, rounded up so that a client retrying on time is not refused
// again.
func (c *Ctx) RetryAt(at, now time.Time) {
	secs := int64((at.Sub(now) + time.Second - 1) / time.Second)
	c.RC.Response.Header.Set(fasthttp.HeaderRetryAfter, strconv.FormatInt(max(secs, 1), 10))
}

// Send writes c's response, compressed when the client accepts it and the
// body is worth it.
func (c *Ctx) Send() {
	ctx := c.RC
	ctx.SetStatusCode(c.Status)
	if c.ContentType != "" {
		ctx.SetContentType(c.ContentType)
	} else {
		ctx.Response.Header.SetContentTypeBytes(contentTypeJSON)
	}
	body := c.Out
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

// AppendFrom sets c.Out to what write writes (a text format written through
// an io.Writer, such as the Prometheus one).
func (c *Ctx) AppendFrom(write func(w io.Writer)) {
	c.mw.b = c.Out[:0]
	write(&c.mw)
	c.Out = c.mw.b
	c.mw.b = nil
}

// DecodeOptions make sonic as strict as the shape check: exact field names,
// unknown fields refused, strings validated. Strings are not copied: they
// refer into c.Body for the duration of the request.
const DecodeOptions = decoder.OptionDisableUnknown | decoder.OptionCaseSensitive | decoder.OptionValidateString

// OneHeader returns the value of the request header name and whether it
// was sent. A header sent more than once fails the request (400
// invalid_header, ok false): a credential or a key given twice has no one
// meaning, and taking the first would let a proxy's header and a client's
// disagree unseen. So does one sent only in a chunked body's trailer,
// which fasthttp merges into the headers: proxies that check headers do
// not see trailers.
func (c *Ctx) OneHeader(name string) (v []byte, sent, ok bool) {
	all := c.RC.Request.Header.PeekAll(name)
	switch len(all) {
	case 0:
		return nil, false, true
	case 1:
		// Only a chunked body has a trailer (its length is then -1, or 0
		// when empty), so only then is the raw header block scanned.
		if cl := c.RC.Request.Header.ContentLength(); cl == -1 || cl == 0 {
			if raw := c.RC.Request.Header.RawHeaders(); len(raw) > 0 && !rawHasHeader(raw, name) {
				return nil, true, c.Failf(ErrInvalidHeader, name, " must come with the request's headers, not in a trailer")
			}
		}
		return all[0], true, true
	}
	return nil, true, c.Failf(ErrInvalidHeader, name, " is given more than once")
}

// Decode checks c.Body against sh and binds it into v (a pointer to one of
// the surface's request structs, already reset).
func (c *Ctx) Decode(sh *jsonwire.Shape, v any) bool {
	return c.CheckSyntax() && c.Bind(sh, v)
}

// CheckSyntax answers 400 unless c.Body is one well-formed JSON value: the
// first step of Decode, for a surface that binds its hottest body itself and
// calls Bind only for what its binder refuses.
func (c *Ctx) CheckSyntax() bool {
	if !c.Check.CheckSyntax(c.Body) {
		return c.Fail(problemErrors[c.Check.Problem], c.Check.Msg)
	}
	return true
}

// Bind checks c.Body, known to be well formed, against sh and binds it into
// v with sonic.
func (c *Ctx) Bind(sh *jsonwire.Shape, v any) bool {
	if !c.Check.CheckShape(c.Body, sh) {
		return c.Fail(problemErrors[c.Check.Problem], c.Check.Msg)
	}
	c.dec.Reset(jsonwire.BytesToString(c.Body))
	opts := DecodeOptions
	if sh.Open {
		// The shape check skipped the members it does not name; sonic
		// skips them too. Only a top-level Open shape may bind this way:
		// the option is the decoder's, not the member's.
		opts &^= decoder.OptionDisableUnknown
	}
	c.dec.SetOptions(opts)
	if err := c.dec.Decode(v); err != nil {
		// The checks above accept only what binds; reaching here is a gap
		// between them and sonic, answered as a bad request all the same.
		c.Srv.log.Warn("sonic refused a checked body", "route", c.Route.String(), "type", reflect.TypeOf(v).String(), "err", err)
		return c.Failf(ErrInvalidJSON, "The request body could not be decoded: ", err.Error())
	}
	return true
}
