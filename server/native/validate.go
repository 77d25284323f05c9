package native

import (
	"errors"
	"strconv"

	"github.com/valyala/fasthttp"

	"github.com/countersign/countersign/engine/biometric"
	"github.com/countersign/countersign/engine/match"
	"github.com/countersign/countersign/engine/policy"
	"github.com/countersign/countersign/server/httpd"
	"github.com/countersign/countersign/server/jsonwire"
	"github.com/countersign/countersign/server/tenant"
	"github.com/countersign/countersign/store"
)

// validate answers POST /v1/validate and POST /api/v1/validate.
//
// Order matters: authenticate, read the body, replay an idempotent answer,
// check the request, read the session (404/410, or 202 while frames are
// unscored), match values, bring the aggregate up to date with the user's
// template (rescoring, enrolling), evaluate the policy, encode the answer,
// store it durably, and only then answer it.
//
// Every read before the decision write goes through c.rd, one read view
// (store.Reader) for the request; it is closed before the write, and a
// read after the write (a replay on ErrExists) goes to the store.
func (s *Surface) validate(c *reqCtx) {
	defer c.rd.Close()
	e, ok := s.authAPIKey(c)
	if !ok || !c.ReadBody(httpd.LimitValidate) {
		return
	}
	idem, sent, ok := c.OneHeader("Idempotency-Key")
	if !ok {
		return
	}
	if sent {
		if !validIdempotencyKey(idem) { // an empty one too: sent, it must mean something
			c.Failf(httpd.ErrInvalidHeader, "Idempotency-Key must be 1 to 255 printable ASCII characters without spaces")
			return
		}
		c.hashBody()
		if s.replay(c, c.rd, idem) {
			return
		}
		if c.Status != 0 { // replay answered an error
			return
		}
	}
	r := &c.validateReq
	r.reset()
	if !c.decodeValidate(r) {
		return
	}
	if r.CID != c.org.CID {
		// Another organization's cid names no session of this one.
		c.Fail(errSessionNotFound, nil)
		return
	}
	if !c.checkSessionIDs(r.CSID, r.UserID, r.Action) {
		return
	}
	if !s.readSession(c, c.rd, r.CSID) {
		return
	}
	sess := &c.sess
	if sess.FramesScored < sess.FramesReceived {
		// A damaged template stops the scoring of the frames for good:
		// answer that (500, logged), not an endless "processing".
		if v, ok := s.readTemplate(c); ok {
			if _, ok = s.decodeTemplate(c, v != 0); ok {
				s.processing(c)
			}
		}
		return
	}

	// Values.
	if !s.matchValues(c) {
		return
	}

	// Biometrics: the aggregate must reflect the user's current template.
	// Usually it does, and only the template's version is read; its
	// vector is decoded (and checked) when frames are scored against it.
	tmplVersion, ok := s.readTemplate(c)
	if !ok {
		return
	}
	enrolled := tmplVersion != 0
	var tmpl *biometric.Template
	// Only a policy reads the decoded aggregate (rescore resets it first).
	aggOK := len(sess.Aggregate) > 0 && c.agg.DecodeForPolicy(sess.Aggregate) == nil
	if !aggOK {
		c.agg.Reset(s.dim)
	}
	if sess.FramesScored > 0 && (!aggOK || c.agg.TemplateVersion() != tmplVersion) {
		if tmpl, ok = s.decodeTemplate(c, enrolled); !ok {
			return
		}
		if !s.rescore(c, e, tmpl) {
			return
		}
	}

	userMismatch := r.UserID != sess.UserID
	if userMismatch {
		// The frames were scored against the session user's template; the
		// request names another user, whose enrollment is what the answer
		// reports (one more read, on this rare path only). No one enrolls,
		// so the session user's template is not needed again: its bytes in
		// c.tmplBuf may be overwritten.
		var err error
		c.tmplBuf, err = c.rd.TemplateInto(c.org.ID, r.UserID, c.tmplBuf[:0])
		switch {
		case errors.Is(err, store.ErrNotFound):
			enrolled = false
		case err != nil:
			c.StoreFailed(err)
			return
		default:
			enrolled = true
		}
	}
	// A session collected for another action is a violation of its own
	// (action_mismatch), so, like any violation, it enrolls no one. Either
	// side may leave the action out (IronVest documents it as optional on
	// validate); only two named actions that differ are a mismatch, since
	// one missing says nothing about what the user saw.
	actionMismatch := actionsDiffer(r.Action, sess.Action)
	hadTemplate := enrolled
	newTemplate := false
	if e.Compiled.WantsEnrollment(r.IsEnrollment, enrolled) && !userMismatch && !actionMismatch &&
		(len(c.items) == 0 || c.mres.Matched) && sess.FramesReceived > 0 {
		if tmpl == nil {
			if tmpl, ok = s.decodeTemplate(c, enrolled); !ok {
				return
			}
		}
		if !s.loadFrames(c) {
			return
		}
		sc := e.Scorer()
		refusal := sc.Enroll(c.frames, tmpl, c.newTemplateVersion(), &c.newTmpl)
		e.PutScorer(sc)
		if refusal == biometric.Enrolled {
			// The template is stored with the decision, in its batch
			// (PutDecision): a decision that is not stored enrolls no one.
			c.tmplBuf = c.newTmpl.AppendBinary(c.tmplBuf[:0])
			newTemplate = true
			c.tmpl, c.newTmpl = c.newTmpl, c.tmpl
			tmpl = &c.tmpl
			enrolled = true
			// The rescored aggregate may be saved before the decision; if
			// the decision then fails, its template version matches no
			// stored template and the next validate rescores again.
			if !s.rescore(c, e, tmpl) {
				return
			}
		}
	}

	c.input = policy.Input{
		ValuesCollected: c.mres.Collected,
		ValuesMatch:     c.mres.Matched,
		Agg:             c.agg,
		Enrolled:        enrolled,
		UserMismatch:    userMismatch,
		ActionMismatch:  actionMismatch,
		// An enrollment of a user who had no template establishes identity,
		// it does not prove it: the frames match the template built from
		// them. (Re-enrolling an existing template needs a session that
		// matched the old one, so that session was verified already.)
		FreshTemplate: newTemplate && !hadTemplate,
	}
	e.Compiled.Evaluate(&c.input, &c.verdict)

	d := &c.decision
	*d = store.Decision{
		OrgID:     c.org.ID,
		CSID:      sess.CSID,
		UserID:    r.UserID,
		CreatedAt: s.now().UnixMilli(),
		Verified:  c.verdict.VerifiedAction,
		Score:     int32(c.verdict.Score),
	}
	if newTemplate {
		d.Template, d.TemplateUser = c.tmplBuf, sess.UserID
	}
	s.db.AssignDecisionID(d) // d.ID lives in d: no string allocated
	// The log keeps the compact record; the answer is rendered from it by
	// the function that renders replays and GET /v1/decisions, so those
	// are byte for byte this answer (decisionrec.go).
	c.rec = appendDecisionRecord(c.rec[:0], &c.verdict, c.mres.Details)
	d.Response = c.rec
	var err error
	if c.Out, err = AppendValidateAnswer(c.Out[:0], c.rec, d.ID); err != nil {
		s.log.Error("decision record does not render", "org", c.org.ID.String(), "err", err)
		c.Fail(httpd.ErrInternal, nil)
		return
	}
	_ = c.rd.Close() // its reads all happened; the write must not be read past
	if err = s.db.PutDecision(d, idem, c.reqHash); err != nil {
		if errors.Is(err, store.ErrExists) && len(idem) > 0 {
			// A concurrent request with the same key was stored first:
			// answer what it answered (or 422 if it was another body).
			c.Out = c.Out[:0]
			if !s.replay(c, nil, idem) && c.Status == 0 {
				c.StoreFailed(err)
			}
			return
		}
		// Fail closed: a decision that is not stored is not made.
		c.StoreFailed(err)
		return
	}
	if newTemplate {
		s.metrics.enrollments.Inc()
	}
	s.metrics.decision(c.verdict.VerifiedAction)
	c.Status = fasthttp.StatusOK
}

// actionsDiffer reports whether validate's action and the session's are
// both named ("" is none) and differ.
func actionsDiffer(validate, session string) bool {
	return validate != "" && session != "" && validate != session
}

// validIdempotencyKey: 1 to 255 printable ASCII characters, no spaces (0x21-0x7E).
func validIdempotencyKey(k []byte) bool {
	if len(k) == 0 || len(k) > maxIdemKey {
		return false
	}
	for _, ch := range k {
		if ch < 0x21 || ch > 0x7e {
			return false
		}
	}
	return true
}

// replay answers a validate whose Idempotency-Key was used before: the stored
// response byte for byte when the body hash matches, 422 when it does not.
// It returns true when it answered 200; false with c.Status set when it
// answered an error; false with c.Status 0 when the key is new. It reads
// through rd, or (nil) the store directly: after a write it must see.
func (s *Surface) replay(c *reqCtx, rd *store.Reader, idem []byte) bool {
	var d store.Decision
	var hash [32]byte
	var err error
	if rd != nil {
		d, hash, err = rd.Idempotent(c.org.ID, idem)
	} else {
		d, hash, err = s.db.Idempotent(c.org.ID, idem)
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		return false
	case err != nil:
		return c.StoreFailed(err)
	case hash != c.reqHash:
		return c.Fail(errIdempotencyMismatch, nil)
	}
	if c.Out, err = AppendValidateAnswer(c.Out[:0], d.Response, d.ID); err != nil {
		s.log.Error("stored decision does not render", "org", c.org.ID.String(), "decision", d.ID, "err", err)
		return c.Fail(httpd.ErrInternal, nil)
	}
	c.Status = fasthttp.StatusOK
	c.RC.Response.Header.Set("Idempotent-Replayed", "true")
	return true
}

// processing answers 202 while frames of the session are unscored, and makes
// sure a job will score them (after a restart nothing else would).
func (s *Surface) processing(c *reqCtx) {
	s.frames.catchUp(c.org.ID, c.sess.CSID)
	ms := s.frames.retryAfterMS()
	s.metrics.processing.Inc()
	c.Status = fasthttp.StatusAccepted
	c.RC.Response.Header.Set(fasthttp.HeaderRetryAfter, "1") // seconds, rounded up
	c.Out = append(c.Out[:0], `{"errorMessage":"processing","retryAfterMS":`...)
	c.Out = strconv.AppendInt(c.Out, int64(ms), 10)
	c.Out = append(c.Out, '}')
}

// readTemplate reads the session user's template into c.tmplBuf and returns
// its version: 0 when the user has none. A damaged template answers 500
// (logged), as a read that fails does (false).
func (s *Surface) readTemplate(c *reqCtx) (version uint64, ok bool) {
	var err error
	c.tmplBuf, err = c.rd.TemplateInto(c.org.ID, c.sess.UserID, c.tmplBuf[:0])
	if errors.Is(err, store.ErrNotFound) {
		return 0, true
	}
	if err != nil {
		return 0, c.StoreFailed(err)
	}
	if version, err = biometric.TemplateVersionOf(c.tmplBuf); err != nil {
		return 0, s.templateCorrupt(c, err)
	}
	return version, true
}

// decodeTemplate decodes the template readTemplate read into c.tmpl, for
// scoring or enrolling; nil when the user has none (enrolled false).
func (s *Surface) decodeTemplate(c *reqCtx, enrolled bool) (*biometric.Template, bool) {
	if !enrolled {
		return nil, true
	}
	if err := c.tmpl.Decode(c.tmplBuf); err != nil {
		return nil, s.templateCorrupt(c, err)
	}
	return &c.tmpl, true
}

func (s *Surface) templateCorrupt(c *reqCtx, err error) bool {
	s.log.Error("stored template does not decode", "org", c.org.ID.String(), "user", c.sess.UserID, "err", err)
	return c.Fail(httpd.ErrInternal, nil)
}

// matchValues matches the request's sessionData against the session's
// fields into c.mres, answering 400 for a bad item. The fields are those of
// the session readSession just read, their bytes in c.sess's buffer.
func (s *Surface) matchValues(c *reqCtx) bool {
	var err error
	if c.fields, err = c.rd.SessionFields(&c.sess, c.fields[:0]); err != nil {
		if errors.Is(err, store.ErrExpired) {
			return c.Fail(errSessionExpired, nil)
		}
		if errors.Is(err, store.ErrNotFound) {
			return c.Fail(errSessionNotFound, nil)
		}
		return c.StoreFailed(err)
	}
	c.mfields = c.mfields[:0]
	for i := range c.fields {
		c.mfields = append(c.mfields, match.Field{Key: c.fields[i].Key, Value: c.fields[i].Value, TS: c.fields[i].TS})
	}
	data := c.validateReq.AdditionalData.SessionData
	c.synonyms = c.synonyms[:0]
	for i := range data {
		for _, syn := range data[i].Synonyms {
			c.synonyms = append(c.synonyms, jsonwire.StringBytes(syn))
		}
	}
	c.items = c.items[:0]
	next := 0
	for i := range data {
		it := &data[i]
		n := len(it.Synonyms)
		c.items = append(c.items, match.Item{
			Key:      jsonwire.StringBytes(it.Key),
			Value:    it.Value,
			Synonyms: c.synonyms[next : next+n : next+n],
		})
		next += n
	}
	if err := c.matcher.Match(c.items, c.mfields, &c.mres); err != nil {
		idx := strconv.Itoa(c.mres.ErrItem)
		switch {
		case errors.Is(err, match.ErrDuplicateKey):
			return c.Failf(errDuplicateKey, "additionalData.sessionData[", idx,
				"].key repeats an earlier item's key (keys compare case-insensitively)")
		case errors.Is(err, match.ErrTooManyItems):
			return c.Failf(httpd.ErrTooManyItems, "additionalData.sessionData has more than ",
				strconv.Itoa(match.MaxItems), " items")
		case errors.Is(err, match.ErrEmptyKey), errors.Is(err, match.ErrKeyTooLong):
			return c.Failf(httpd.ErrInvalidField, "additionalData.sessionData[", idx,
				"]: keys and synonyms must be 1 to ", strconv.Itoa(match.MaxKeyBytes), " bytes")
		case errors.Is(err, match.ErrTooManySynonyms):
			return c.Failf(httpd.ErrTooManyItems, "additionalData.sessionData[", idx, "].synonyms has more than ",
				strconv.Itoa(match.MaxSynonyms), " items")
		}
		return c.Failf(httpd.ErrInvalidField, "additionalData.sessionData[", idx, "].value: ", engineMessage(err))
	}
	return true
}

// loadFrames reads every stored frame of the session into c.frames, for
// enrolling (their embeddings copied into c.framesBuf: the store's bytes are
// only valid during its callback). Frames that do not decode are left out.
func (s *Surface) loadFrames(c *reqCtx) bool {
	c.frames = c.frames[:0]
	c.framesBuf = c.framesBuf[:0]
	c.embOffs = c.embOffs[:0]
	err := s.db.Frames(c.org.ID, c.sess.CSID, 0, func(index uint32, raw []byte) error {
		if raw == nil {
			return nil // damaged in the store, which logged it
		}
		var f biometric.Frame
		if err := biometric.DecodeFrame(raw, &f); err != nil {
			s.log.Error("stored frame does not decode", "org", c.org.ID.String(), "csid", c.sess.CSID, "index", index, "err", err)
			return nil
		}
		c.embOffs = append(c.embOffs, len(c.framesBuf))
		c.framesBuf = append(c.framesBuf, f.Embedding...)
		f.Embedding = nil
		c.frames = append(c.frames, f)
		return nil
	})
	if err != nil {
		if errors.Is(err, store.ErrExpired) {
			return c.Fail(errSessionExpired, nil)
		}
		return c.StoreFailed(err)
	}
	for i := range c.frames {
		end := len(c.framesBuf)
		if i+1 < len(c.embOffs) {
			end = c.embOffs[i+1]
		}
		c.frames[i].Embedding = c.framesBuf[c.embOffs[i]:end:end]
	}
	return true
}

// rescore folds every stored frame of the session into a fresh c.agg
// against tmpl, as the frame workers fold (foldStored), and saves it (best
// effort: the decision is made from c.agg either way, and a save lost to a
// race is redone by the next validate). It answers an error (false) when the
// frames cannot be read.
func (s *Surface) rescore(c *reqCtx, e *tenant.Org, tmpl *biometric.Template) bool {
	sc := e.Scorer()
	c.agg.Reset(s.dim)
	n, err := s.foldStored(sc, c.org.ID, c.sess.CSID, 0, c.agg, tmpl, &c.frame)
	e.PutScorer(sc)
	if err != nil {
		if errors.Is(err, store.ErrExpired) {
			return c.Fail(errSessionExpired, nil)
		}
		return c.StoreFailed(err)
	}
	c.aggBuf = c.agg.AppendBinary(c.aggBuf[:0])
	err = s.db.SaveAggregate(c.org.ID, c.sess.CSID, c.aggBuf, n)
	if err != nil && !errors.Is(err, store.ErrStale) {
		s.log.Warn("save rescored aggregate", "org", c.org.ID.String(), "csid", c.sess.CSID, "err", err)
	}
	return true
}
