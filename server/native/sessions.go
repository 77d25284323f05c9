package native

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"strconv"
	"strings"

	"github.com/bytedance/sonic"
	"github.com/valyala/fasthttp"

	"github.com/countersign/countersign/engine/biometric"
	"github.com/countersign/countersign/engine/match"
	"github.com/countersign/countersign/server/httpd"
	"github.com/countersign/countersign/server/jsonwire"
	"github.com/countersign/countersign/store"
)

// Limits of the native surface beyond the engine's own (match.Max*,
// biometric.MaxFrames).
const (
	maxEventFields = 512 // fields in one events request
	maxEventFrames = 64  // frames in one events request
	maxIDBytes     = 256 // userID and action
	minCSID        = 8
	maxCSID        = 128
	maxIdemKey     = 255 // Idempotency-Key header

	// MaxSessionFields caps the distinct field names one session collects.
	// Every validate reads and matches all of its session's fields, and
	// anyone with the publishable cid can open a session, so without a cap
	// one client could make every validate of its session arbitrarily slow
	// and its stored fields arbitrarily large.
	MaxSessionFields = 1024

	// An event's ts (Unix milliseconds, the device's clock) must lie from
	// MinEventTS to MaxEventTSAhead past the server's clock. The latest ts
	// decides which value of a field counts (of names equal up to case) and
	// the frames' order, so one far in the future would outrank every later
	// correction for good; the floor refuses negative and zero times and a
	// ts sent in seconds instead of milliseconds (1.7e9 ms is January 1970),
	// the ceiling one sent in microseconds. A day ahead, not less, because
	// devices' clocks are wrong by hours more often than by minutes (a time
	// zone set by hand is up to 14 h off), and refusing such a device
	// outright costs more than a value that outranks corrections for the
	// one session (30 minutes by default) it was collected in.
	MinEventTS      = 1577836800000 // 2020-01-01T00:00:00Z
	MaxEventTSAhead = 24 * 60 * 60 * 1000
)

// Request bodies. Field names are exactly the wire names (sonic is case
// sensitive here); strings refer into the request context's body.

type createSessionRequest struct {
	CSID   string `json:"csid"`
	UserID string `json:"userID"`
	Action string `json:"action"`
}

type eventField struct {
	Key   string                 `json:"key"`
	Value sonic.NoCopyRawMessage `json:"value"`
	TS    int64                  `json:"ts"`
}

type eventFrame struct {
	Seq       uint64  `json:"seq"`
	TS        int64   `json:"ts"`
	Type      string  `json:"type"`
	Faces     int32   `json:"faces"`
	Quality   float64 `json:"quality"`
	Liveness  float64 `json:"liveness"`
	DocType   string  `json:"docType"`
	Embedding string  `json:"embedding"`
}

type eventsRequest struct {
	Fields []eventField `json:"fields"`
	Frames []eventFrame `json:"frames"`
	Final  bool         `json:"final"`
}

type sessionDataItem struct {
	Key      string                 `json:"key"`
	Value    sonic.NoCopyRawMessage `json:"value"`
	Synonyms []string               `json:"synonyms"`
}

type additionalData struct {
	SessionData []sessionDataItem `json:"sessionData"`
}

type validateRequest struct {
	CID            string         `json:"cid"`
	CSID           string         `json:"csid"`
	UserID         string         `json:"userID"`
	Action         string         `json:"action"`
	AdditionalData additionalData `json:"additionalData"`
	IsEnrollment   bool           `json:"isEnrollment"`
}

// reset empties r for decoding, keeping the capacity of its slices (and of
// each item's synonyms) without leaving a previous request's values behind:
// sonic decodes into existing elements, so a stale element would otherwise
// keep a field the new body does not have.
func (r *validateRequest) reset() {
	items := r.AdditionalData.SessionData[:cap(r.AdditionalData.SessionData)]
	for i := range items {
		items[i] = sessionDataItem{Synonyms: items[i].Synonyms[:0]}
	}
	*r = validateRequest{AdditionalData: additionalData{SessionData: items[:0]}}
}

func (r *eventsRequest) reset() {
	fields := r.Fields[:cap(r.Fields)]
	clear(fields)
	frames := r.Frames[:cap(r.Frames)]
	clear(frames)
	*r = eventsRequest{Fields: fields[:0], Frames: frames[:0]}
}

// Shapes of the bodies, for the checks before binding.
var (
	shapeCreateSession = &jsonwire.Shape{Kind: jsonwire.KindObject, Desc: "an object", Fields: []jsonwire.FieldShape{
		{Name: "csid", Shape: jsonwire.ShapeString, Required: true},
		{Name: "userID", Shape: jsonwire.ShapeString, Required: true},
		{Name: "action", Shape: jsonwire.ShapeString},
	}}

	shapeEventField = &jsonwire.Shape{Kind: jsonwire.KindObject, Desc: "an object", Fields: []jsonwire.FieldShape{
		{Name: "key", Shape: jsonwire.ShapeString, Required: true},
		{Name: "value", Shape: jsonwire.ShapeScalar, Required: true},
		{Name: "ts", Shape: jsonwire.ShapeInt64},
	}}
	shapeEventFrame = &jsonwire.Shape{Kind: jsonwire.KindObject, Desc: "an object", Fields: []jsonwire.FieldShape{
		{Name: "seq", Shape: jsonwire.ShapeUint64, Required: true},
		{Name: "ts", Shape: jsonwire.ShapeInt64, Required: true},
		{Name: "type", Shape: jsonwire.ShapeString, Required: true},
		{Name: "faces", Shape: &jsonwire.Shape{Kind: jsonwire.KindInt, PosMax: biometric.MaxFaces, Desc: "an integer from 0 to 64"}},
		{Name: "quality", Shape: jsonwire.ShapeUnit},
		{Name: "liveness", Shape: jsonwire.ShapeUnit},
		{Name: "docType", Shape: jsonwire.ShapeString},
		{Name: "embedding", Shape: jsonwire.ShapeString, Required: true},
	}}
	shapeEvents = &jsonwire.Shape{Kind: jsonwire.KindObject, Desc: "an object", Fields: []jsonwire.FieldShape{
		{Name: "fields", Shape: &jsonwire.Shape{Kind: jsonwire.KindArray, Nullable: true, Elem: shapeEventField, MaxItems: maxEventFields, Desc: "an array"}},
		{Name: "frames", Shape: &jsonwire.Shape{Kind: jsonwire.KindArray, Nullable: true, Elem: shapeEventFrame, MaxItems: maxEventFrames, Desc: "an array"}},
		{Name: "final", Shape: jsonwire.ShapeBool},
	}}

	shapeSessionDataItem = &jsonwire.Shape{Kind: jsonwire.KindObject, Desc: "an object", Fields: []jsonwire.FieldShape{
		{Name: "key", Shape: jsonwire.ShapeString, Required: true},
		{Name: "value", Shape: jsonwire.ShapeScalar, Required: true},
		{Name: "synonyms", Shape: &jsonwire.Shape{Kind: jsonwire.KindArray, Nullable: true, Elem: jsonwire.ShapeString, MaxItems: match.MaxSynonyms, Desc: "an array of strings"}},
	}}
	shapeValidate = &jsonwire.Shape{Kind: jsonwire.KindObject, Desc: "an object", Fields: []jsonwire.FieldShape{
		{Name: "cid", Shape: jsonwire.ShapeString, Required: true},
		{Name: "csid", Shape: jsonwire.ShapeString, Required: true},
		{Name: "userID", Shape: jsonwire.ShapeString, Required: true},
		{Name: "action", Shape: jsonwire.ShapeString},
		{Name: "additionalData", Shape: &jsonwire.Shape{Kind: jsonwire.KindObject, Nullable: true, Desc: "an object", Fields: []jsonwire.FieldShape{
			{Name: "sessionData", Shape: &jsonwire.Shape{Kind: jsonwire.KindArray, Nullable: true, Elem: shapeSessionDataItem, MaxItems: match.MaxItems, Desc: "an array"}},
		}}},
		{Name: "isEnrollment", Shape: jsonwire.ShapeBool},
	}}
)

// validCSID reports whether s is 8 to 128 characters of [A-Za-z0-9._:-].
func validCSID[S string | []byte](s S) bool {
	if len(s) < minCSID || len(s) > maxCSID {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch ch := s[i]; {
		case ch >= 'a' && ch <= 'z', ch >= 'A' && ch <= 'Z', ch >= '0' && ch <= '9',
			ch == '.', ch == '_', ch == ':', ch == '-':
		default:
			return false
		}
	}
	return true
}

// validID reports whether s is a usable userID or action: 1 to maxIDBytes
// bytes, no control characters, C0, DEL or C1 (the JSON checks already
// ensured UTF-8, in which U+0080..U+009F are 0xC2 0x80..0x9F).
func validID(s string) bool {
	return len(s) > 0 && validOptionalID(s)
}

// validOptionalID is validID allowing the empty string: an action is
// optional, and the empty one means none (the session status answers
// "action":"" for a session opened without one).
func validOptionalID(s string) bool {
	if len(s) > maxIDBytes {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20 || c == 0x7f:
			return false
		case c == 0xc2 && i+1 < len(s) && s[i+1] <= 0x9f:
			return false // a C1 control (the next byte is a continuation, >= 0x80)
		}
	}
	return true
}

const (
	msgCSID   = "csid must be 8 to 128 characters of A-Z, a-z, 0-9, '.', '_', ':' and '-'"
	msgUserID = "userID must be 1 to 256 bytes without control characters"
	msgAction = "action, when given, must be at most 256 bytes without control characters"
)

// createSession answers POST /v1/sessions.
func (s *Surface) createSession(c *reqCtx) {
	if !s.authClientID(c) || !c.ReadBody(httpd.LimitSmall) {
		return
	}
	r := &c.createReq
	*r = createSessionRequest{}
	if !c.Decode(shapeCreateSession, r) {
		return
	}
	if !c.checkSessionIDs(r.CSID, r.UserID, r.Action) {
		return
	}
	sess, token, err := s.db.CreateSession(c.org.ID, r.CSID, r.UserID, r.Action)
	if err != nil {
		switch {
		case errors.Is(err, store.ErrExists):
			c.Fail(errCSIDInUse, nil)
		case errors.Is(err, store.ErrNotFound): // the organization is gone
			c.Fail(errInvalidClientID, nil)
		default:
			c.StoreFailed(err)
		}
		return
	}
	c.Status = fasthttp.StatusCreated
	c.Out = append(c.Out, `{"csid":`...)
	c.Out = jsonwire.AppendString(c.Out, sess.CSID)
	c.Out = append(c.Out, `,"collectToken":`...)
	c.Out = jsonwire.AppendString(c.Out, token)
	c.Out = append(c.Out, `,"expiresAt":`...)
	c.Out = strconv.AppendInt(c.Out, sess.ExpiresAt, 10)
	c.Out = append(c.Out, '}')
}

// appendEvents answers POST /v1/sessions/{csid}/events.
func (s *Surface) appendEvents(c *reqCtx, csidParam []byte) {
	if !s.authClientID(c) {
		return
	}
	if !validCSID(csidParam) {
		c.Fail(errSessionNotFound, nil)
		return
	}
	csid := jsonwire.BytesToString(csidParam)
	// Through the Reader: a session this process is receiving events for
	// is read from the session cache, record and aggregate, with no Pebble
	// read (the aggregate has a record of its own, which a read of Pebble
	// without a Reader gets with a second Get).
	defer c.rd.Close()
	if !s.readSession(c, c.rd, csid) {
		return
	}
	token, _, ok := c.OneHeader("x-collect-token")
	if !ok {
		return
	}
	if !s.db.CheckCollectToken(&c.sess, token) {
		c.Fail(errInvalidCollectToken, nil)
		return
	}
	if !c.ReadBody(httpd.LimitEvents) {
		return
	}
	r := &c.eventsReq
	r.reset()
	if !c.Decode(shapeEvents, r) {
		return
	}
	now := s.now().UnixMilli()
	if !c.checkFields(r.Fields, now) || !c.checkFrames(r.Frames, s.dim, now) {
		return
	}
	if c.sess.Final {
		// A final session takes no new events, but a post it holds in
		// full is a client retrying one whose answer it lost: answer it
		// as it was answered, not with a refusal the client cannot tell
		// from losing its last events. Final never reverts and a final
		// session gains nothing, so this read needs no lock; a session
		// made final after the read above is the store's to refuse, under
		// its lock (store.ErrFinal). Answered here, before the queue is
		// asked for a place, so a full queue does not hide the refusal.
		held, err := s.db.EventsHeld(c.org.ID, csid, c.storeFields, c.frameIns)
		switch {
		case err != nil:
			c.eventsStoreFailed(err)
		case !held:
			c.Fail(errSessionFinal, nil)
		default:
			c.eventsAccepted(r, c.sess.FramesReceived)
		}
		return
	}
	// A frame the session already holds (same seq, same bytes: the client
	// retrying after a lost response) is accepted again but neither stored
	// nor scored again. The store decides that, and checks the final flag
	// and the session's field and frame caps, under its lock on the
	// session, so concurrent requests cannot together get past them; it
	// counts only the frames it stores against the frame cap.
	queued := len(r.Frames) > 0
	if queued && !s.frames.tryReserve() {
		// A full queue refuses frames to score, not a retry of frames the
		// session holds already (nothing to score: no place needed).
		held, err := s.db.EventsHeld(c.org.ID, csid, nil, c.frameIns)
		switch {
		case err != nil:
			c.eventsStoreFailed(err)
			return
		case !held:
			s.metrics.queueRejections.Inc()
			c.Fail(errQueueFull, nil)
			return
		}
		queued = false
	}
	var first uint32
	var stored int
	var scored bool
	var err error
	if queued && s.foldInline(c, csid) {
		fold := store.Fold{Aggregate: c.aggBuf, From: c.sess.FramesReceived}
		first, stored, scored, err = s.db.AppendEventsScored(c.org.ID, csid, c.storeFields, c.frameIns, r.Final,
			MaxSessionFields, biometric.MaxFrames, &fold)
	} else {
		first, stored, err = s.db.AppendEventsOnce(c.org.ID, csid, c.storeFields, c.frameIns, r.Final,
			MaxSessionFields, biometric.MaxFrames)
	}
	if queued && (err != nil || stored == 0) {
		s.frames.Unreserve()
	}
	if err != nil {
		c.eventsStoreFailed(err)
		return
	}
	switch {
	case !queued || stored == 0:
	case scored:
		s.frames.Unreserve()
		s.metrics.framesScored.Add(stored)
		c.sess.FramesScored = first + uint32(stored)
	default:
		s.frames.enqueue(c.org.ID, csid)
	}
	c.eventsAccepted(r, first+uint32(stored))
}

// foldInline folds the post's frames into the session's aggregate from the
// request's own decoded bytes, into c.aggBuf, for the store to save with
// the frames in their synced batch (store.AppendEventsScored): a validate
// right after the final post then finds every frame scored, no worker
// reads the frames back, and the session record is written once per post.
// It folds only when the aggregate the request read covers every frame the
// session held (nothing unscored), no job of the session is queued or
// running, the pool is not paused (FramePool.Pause holds every frame
// unscored), and the template the aggregate was scored with is the user's
// current one. The store takes the fold only if, under its lock, the
// session still holds exactly those frames and every frame of the post is
// new; otherwise, and when this reports false, the post queues a job,
// which reads the frames from the store as before.
func (s *Surface) foldInline(c *reqCtx, csid string) bool {
	sess := &c.sess
	if s.frames.paused.Load() || sess.FramesScored != sess.FramesReceived || s.frames.busy(c.org.ID, csid) {
		return false
	}
	first := sess.FramesReceived
	e, err := s.orgs.ByID(c.org.ID)
	if err != nil {
		return false
	}
	defer c.rd.Close()
	var tmpl *biometric.Template
	switch c.tmplBuf, err = c.rd.TemplateInto(c.org.ID, sess.UserID, c.tmplBuf[:0]); {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return false
	default:
		if c.tmpl.Decode(c.tmplBuf) != nil {
			return false // the worker logs and counts a damaged template
		}
		tmpl = &c.tmpl
	}
	if first == 0 {
		c.agg.Reset(s.dim)
	} else if len(sess.Aggregate) == 0 || c.agg.Decode(sess.Aggregate) != nil || c.agg.TemplateVersion() != templateVersion(tmpl) {
		return false // a rescore of every stored frame: the worker's
	}
	sc := e.Scorer()
	for i := range c.frameIns {
		if biometric.DecodeFrame(c.frameIns[i].Raw, &c.frame) != nil {
			e.PutScorer(sc)
			return false
		}
		sc.Fold(c.agg, &c.frame, tmpl)
	}
	e.PutScorer(sc)
	c.aggBuf = c.agg.AppendBinary(c.aggBuf[:0])
	return true
}

// eventsStoreFailed answers a store error of an events call.
func (c *reqCtx) eventsStoreFailed(err error) {
	var limit *store.LimitError
	switch {
	case errors.As(err, &limit) && errors.Is(limit.Limit, store.ErrFieldLimit):
		c.Failf(errSessionFields, "The session would have more than ", strconv.FormatUint(limit.Max, 10),
			" distinct fields; a session holds at most ", strconv.FormatUint(limit.Max, 10), ".")
	case errors.As(err, &limit):
		c.Failf(errSessionFrames, "The session would have ", strconv.FormatUint(limit.Would, 10),
			" frames; a session holds at most ", strconv.FormatUint(limit.Max, 10), ".")
	case errors.Is(err, store.ErrFinal):
		c.Fail(errSessionFinal, nil)
	case errors.Is(err, store.ErrExpired):
		c.Fail(errSessionExpired, nil)
	case errors.Is(err, store.ErrNotFound):
		c.Fail(errSessionNotFound, nil)
	default:
		c.StoreFailed(err)
	}
}

// eventsAccepted answers 202 to an events call of r, the session now holding
// received frames.
func (c *reqCtx) eventsAccepted(r *eventsRequest, received uint32) {
	pending := uint32(0)
	if received > c.sess.FramesScored {
		pending = received - c.sess.FramesScored
	}
	c.Status = fasthttp.StatusAccepted
	c.Out = append(c.Out, `{"accepted":{"fields":`...)
	c.Out = strconv.AppendInt(c.Out, int64(len(r.Fields)), 10)
	c.Out = append(c.Out, `,"frames":`...)
	c.Out = strconv.AppendInt(c.Out, int64(len(r.Frames)), 10)
	c.Out = append(c.Out, `},"pending":`...)
	c.Out = strconv.AppendUint(c.Out, uint64(pending), 10)
	c.Out = append(c.Out, '}')
}

// checkSessionIDs answers 400 naming the first of csid, userID and action
// that is malformed; session creation and validate take the same three, the
// action being optional on both (as IronVest documents validate).
func (c *reqCtx) checkSessionIDs(csid, userID, action string) bool {
	switch {
	case !validCSID(csid):
		return c.Failf(httpd.ErrInvalidField, msgCSID)
	case !validID(userID):
		return c.Failf(httpd.ErrInvalidField, msgUserID)
	case !validOptionalID(action):
		return c.Failf(httpd.ErrInvalidField, msgAction)
	}
	return true
}

// readSession reads the organization's session csid into c.sess, answering
// 404 (unknown, or another organization's), 410 or 503. The user id and
// action are views of c.sess's buffer (store.SessionInPlace), valid for this
// request only: every caller uses them while it answers and keeps nothing.
// It reads through rd, or (nil) the store directly.
func (s *Surface) readSession(c *reqCtx, rd *store.Reader, csid string) bool {
	var err error
	if rd != nil {
		err = rd.SessionInPlace(c.org.ID, csid, &c.sess)
	} else {
		err = s.db.SessionInPlace(c.org.ID, csid, &c.sess)
	}
	switch {
	case err == nil:
		return true
	case errors.Is(err, store.ErrNotFound):
		return c.Fail(errSessionNotFound, nil)
	case errors.Is(err, store.ErrExpired):
		return c.Fail(errSessionExpired, nil)
	}
	return c.StoreFailed(err)
}

// checkTS answers 400 naming list[i].ts when ts is outside MinEventTS to
// MaxEventTSAhead past now (Unix milliseconds, the server's clock).
func (c *reqCtx) checkTS(list string, i int, ts, now int64) bool {
	if ts >= MinEventTS && ts <= now+MaxEventTSAhead {
		return true
	}
	return c.Failf(httpd.ErrInvalidField, list, "[", strconv.Itoa(i), "].ts must be Unix milliseconds from ",
		strconv.FormatInt(MinEventTS, 10), " (2020-01-01T00:00:00Z) to 24 h past the server's clock, ",
		strconv.FormatInt(now+MaxEventTSAhead, 10), " now; got ", strconv.FormatInt(ts, 10))
}

// checkFields validates the fields of an events request and fills
// c.storeFields; now is the server's clock in Unix milliseconds. A field's
// ts is optional: absent (0) it is not checked, and the value ranks below
// any with a ts.
func (c *reqCtx) checkFields(fields []eventField, now int64) bool {
	c.storeFields = c.storeFields[:0]
	for i := range fields {
		f := &fields[i]
		if len(f.Key) == 0 || len(f.Key) > match.MaxKeyBytes {
			return c.Failf(httpd.ErrInvalidField, "fields[", strconv.Itoa(i), "].key must be 1 to ",
				strconv.Itoa(match.MaxKeyBytes), " bytes")
		}
		if f.TS != 0 && !c.checkTS("fields", i, f.TS, now) {
			return false
		}
		if err := match.ValidateValue(f.Value); err != nil {
			return c.Failf(httpd.ErrInvalidField, "fields[", strconv.Itoa(i), "].value: ", engineMessage(err))
		}
		c.storeFields = append(c.storeFields, store.FieldValue{Key: jsonwire.StringBytes(f.Key), Value: f.Value, TS: f.TS})
	}
	return true
}

// checkFrames validates the frames of an events request, base64-decodes
// their embeddings and fills c.frameIns with their seqs and stored encoding;
// now is the server's clock in Unix milliseconds.
func (c *reqCtx) checkFrames(frames []eventFrame, dim int, now int64) bool {
	embBytes := 4 * dim
	b64Len := base64.StdEncoding.EncodedLen(embBytes)
	if need := len(frames) * embBytes; cap(c.embBuf) < need {
		c.embBuf = make([]byte, need)
	}
	c.embBuf = c.embBuf[:len(frames)*embBytes]
	c.blobBuf = c.blobBuf[:0]
	f := &c.frame
	for i := range frames {
		in := &frames[i]
		if !c.checkTS("frames", i, in.TS, now) {
			return false
		}
		idx := strconv.Itoa(i)
		t, ok := biometric.ParseFrameType(jsonwire.StringBytes(in.Type))
		if !ok {
			return c.Failf(httpd.ErrInvalidField, "frames[", idx, `].type must be "face" or "document"`)
		}
		doc := biometric.DocOther
		if in.DocType != "" {
			if doc, ok = biometric.ParseDocType(jsonwire.StringBytes(in.DocType)); !ok {
				return c.Failf(httpd.ErrInvalidField, "frames[", idx, `].docType must be "driver_license", "passport", "id_card" or "other"`)
			}
		}
		if len(in.Embedding) != b64Len {
			return c.Failf(httpd.ErrInvalidField, "frames[", idx, "].embedding must be standard base64 of ",
				strconv.Itoa(embBytes), " bytes (", strconv.Itoa(dim), " little-endian float32), ",
				strconv.Itoa(b64Len), " characters; got ", strconv.Itoa(len(in.Embedding)), " characters")
		}
		emb := c.embBuf[i*embBytes : (i+1)*embBytes]
		n, err := base64.StdEncoding.Decode(emb, jsonwire.StringBytes(in.Embedding))
		if err != nil || n != embBytes {
			return c.Failf(httpd.ErrInvalidField, "frames[", idx, "].embedding is not valid standard base64")
		}
		*f = biometric.Frame{
			Seq:       in.Seq,
			TS:        in.TS,
			Type:      t,
			Faces:     in.Faces,
			DocType:   doc,
			Quality:   float32(in.Quality),
			Liveness:  float32(in.Liveness),
			Embedding: emb,
		}
		if err := f.Validate(dim); err != nil {
			return c.Failf(httpd.ErrInvalidField, "frames[", idx, "]: ", engineMessage(err))
		}
		c.blobBuf = biometric.AppendFrame(c.blobBuf, f)
	}
	// Slice the blobs only now: appending may have moved blobBuf.
	c.frameIns = c.frameIns[:0]
	for i, off := 0, 0; off < len(c.blobBuf); i++ {
		n := biometric.FrameLen(c.blobBuf[off:], embBytes)
		c.frameIns = append(c.frameIns, store.FrameIn{Seq: frames[i].Seq, Raw: c.blobBuf[off : off+n]})
		off += n
	}
	return true
}

// engineMessage is an engine error's text without its package prefix.
func engineMessage(err error) string {
	msg := err.Error()
	if i := strings.Index(msg, ": "); i >= 0 && i < 12 {
		return msg[i+2:]
	}
	return msg
}

// sessionStatus answers GET /v1/sessions/{csid}.
func (s *Surface) sessionStatus(c *reqCtx, csidParam []byte) {
	if _, ok := s.authAPIKey(c); !ok {
		return
	}
	if !validCSID(csidParam) {
		c.Fail(errSessionNotFound, nil)
		return
	}
	csid := jsonwire.BytesToString(csidParam)
	if !s.readSession(c, nil, csid) {
		return
	}
	var err error
	if c.fields, err = s.db.Fields(c.org.ID, csid, c.fields[:0]); err != nil {
		if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrExpired) {
			s.readSession(c, nil, csid)
			return
		}
		c.StoreFailed(err)
		return
	}
	sess := &c.sess
	c.Status = fasthttp.StatusOK
	c.Out = append(c.Out, `{"csid":`...)
	c.Out = jsonwire.AppendString(c.Out, sess.CSID)
	c.Out = append(c.Out, `,"userID":`...)
	c.Out = jsonwire.AppendString(c.Out, sess.UserID)
	c.Out = append(c.Out, `,"action":`...)
	c.Out = jsonwire.AppendString(c.Out, sess.Action)
	c.Out = append(c.Out, `,"createdAt":`...)
	c.Out = strconv.AppendInt(c.Out, sess.CreatedAt, 10)
	c.Out = append(c.Out, `,"expiresAt":`...)
	c.Out = strconv.AppendInt(c.Out, sess.ExpiresAt, 10)
	c.Out = append(c.Out, `,"fields":`...)
	c.Out = strconv.AppendInt(c.Out, int64(len(c.fields)), 10)
	c.Out = append(c.Out, `,"framesReceived":`...)
	c.Out = strconv.AppendUint(c.Out, uint64(sess.FramesReceived), 10)
	c.Out = append(c.Out, `,"framesScored":`...)
	c.Out = strconv.AppendUint(c.Out, uint64(sess.FramesScored), 10)
	c.Out = append(c.Out, `,"final":`...)
	c.Out = jsonwire.AppendBool(c.Out, sess.Final)
	c.Out = append(c.Out, '}')
}

// validDecisionID reports whether id can be a store decision id (Crockford
// base32, DecisionIDLen characters); anything else is answered 404 unread.
func validDecisionID(id []byte) bool {
	if len(id) != store.DecisionIDLen {
		return false
	}
	for _, ch := range id {
		if !(ch >= '0' && ch <= '9' || ch >= 'A' && ch <= 'Z') {
			return false
		}
	}
	return true
}

// AppendDecision appends the stored decision d as GET /v1/decisions/{id}
// answers it, {"decisionID","csid","userID","createdAt","verifiedAction",
// "ivScore","response"}, the response being the answer validate gave, byte
// for byte. The admin audit trail lists decisions in the same shape. On a
// record that does not decode it returns dst unchanged and the error.
func AppendDecision(dst []byte, d *store.Decision) ([]byte, error) {
	start := len(dst)
	dst = append(dst, `{"decisionID":`...)
	dst = jsonwire.AppendString(dst, d.ID)
	dst = append(dst, `,"csid":`...)
	dst = jsonwire.AppendString(dst, d.CSID)
	dst = append(dst, `,"userID":`...)
	dst = jsonwire.AppendString(dst, d.UserID)
	dst = append(dst, `,"createdAt":`...)
	dst = strconv.AppendInt(dst, d.CreatedAt, 10)
	dst = append(dst, `,"verifiedAction":`...)
	dst = jsonwire.AppendBool(dst, d.Verified)
	dst = append(dst, `,"ivScore":`...)
	dst = strconv.AppendInt(dst, int64(d.Score), 10)
	dst = append(dst, `,"response":`...)
	dst, err := AppendValidateAnswer(dst, d.Response, d.ID)
	if err != nil {
		return dst[:start], err
	}
	return append(dst, '}'), nil
}

// decision answers GET /v1/decisions/{id}: the answer validate gave, byte
// for byte (rendered from the stored record by the function validate
// rendered it with), with what it was about.
func (s *Surface) decision(c *reqCtx, idParam []byte) {
	if _, ok := s.authAPIKey(c); !ok {
		return
	}
	if !validDecisionID(idParam) {
		c.Fail(errDecisionNotFound, nil)
		return
	}
	d, err := s.db.Decision(c.org.ID, jsonwire.BytesToString(idParam))
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			c.Fail(errDecisionNotFound, nil)
			return
		}
		c.StoreFailed(err)
		return
	}
	if c.Out, err = AppendDecision(c.Out[:0], &d); err != nil {
		s.log.Error("stored decision does not render", "org", c.org.ID.String(), "decision", d.ID, "err", err)
		c.Out = c.Out[:0]
		c.Fail(httpd.ErrInternal, nil)
		return
	}
	c.Status = fasthttp.StatusOK
}

// newTemplateVersion draws a random template version: nonzero and never
// biometric.MixedTemplates.
func (c *reqCtx) newTemplateVersion() uint64 {
	for {
		_, _ = rand.Read(c.idBuf[:])
		v := binary.LittleEndian.Uint64(c.idBuf[:])
		if v != 0 && v != biometric.MixedTemplates {
			return v
		}
	}
}

// hashBody is the idempotency hash of the decompressed request body.
func (c *reqCtx) hashBody() {
	c.reqHash = sha256.Sum256(c.Body)
}
