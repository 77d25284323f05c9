package native

import (
	"github.com/countersign/countersign/engine/approval"
	"github.com/countersign/countersign/engine/biometric"
	"github.com/countersign/countersign/engine/match"
	"github.com/countersign/countersign/engine/policy"
	"github.com/countersign/countersign/server/httpd"
	"github.com/countersign/countersign/store"
)

// reqCtx is the native surface's pooled per-request context: the core's
// (httpd.Ctx: buffers, body codecs, JSON checks) and every scratch slice the
// native routes need, reset by truncation, so that a warmed-up server
// answers without allocating for its own work. Nothing in it may be kept
// after the request: the strings sonic decodes refer into the body, which
// the next request overwrites. Whatever outlives a request (a queued frame
// job, a cache key) is copied first.
type reqCtx struct {
	httpd.Ctx

	strBuf []byte // strings of the body that had escapes (bindValidate)

	createReq   createSessionRequest
	eventsReq   eventsRequest
	validateReq validateRequest
	approvalReq createApprovalRequest
	otpReq      otpRequest

	org  store.Org
	sess store.Session

	// approvals
	appr   approval.Approval
	ustate approval.UserState
	values []approval.Value
	seed   []byte // the user's TOTP seed, opened for one check and cleared

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
	input     policy.Input
	verdict   policy.Verdict
	decision  store.Decision
	rec       []byte // the decision's record (decisionrec.go)
	reqHash   [32]byte
	idBuf     [8]byte
}

func newReqCtx(s *Surface) *reqCtx {
	return &reqCtx{agg: biometric.NewAggregate(s.dim), rd: s.db.NewReader()}
}

// release makes c ready for the pool.
func (c *reqCtx) release() {
	c.Ctx.Release()
	c.strBuf = httpd.Trim(c.strBuf)
	c.blobBuf = httpd.Trim(c.blobBuf)
	c.embBuf = httpd.Trim(c.embBuf)
	c.framesBuf = httpd.Trim(c.framesBuf)
	// Drop every reference into the body (strings sonic decoded), so a
	// large body dropped above is not kept alive by them.
	c.createReq = createSessionRequest{}
	c.eventsReq.reset()
	c.validateReq.reset()
	c.approvalReq.reset()
	c.otpReq = otpRequest{}
	clear(c.values[:cap(c.values)])
	c.values = c.values[:0]
	c.appr.Reset()
	clear(c.appr.Values[:cap(c.appr.Values)])
	clear(c.appr.Factors[:cap(c.appr.Factors)])
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

// decodeValidate checks and binds a validate body into r (reset). The
// hottest body is checked and bound in one walk (bindvalidate.go); one the
// binder refuses goes the general way, whose shape check names the problem.
func (c *reqCtx) decodeValidate(r *validateRequest) bool {
	if !c.CheckSyntax() {
		return false
	}
	if c.bindValidate(r) {
		return true
	}
	r.reset()
	return c.Bind(shapeValidate, r)
}
