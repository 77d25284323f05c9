package server

// bindValidate binds a validate body into r without sonic. It runs after
// checkSyntax and checkShape(shapeValidate) have accepted the body, so it
// walks a document known to be well formed and of the validate shape
// (known fields only, each at most once, each of its expected JSON type)
// and checks nothing itself. Sonic's reflection-driven binding of the same
// document cost about as much as both checks together (PERF.md, "A binder
// for the validate body"); FuzzBindValidate holds this binder to sonic's
// results.
//
// Strings without escapes are views of the body, as sonic's are; a string
// with escapes is decoded into c.strBuf (valid until the request ends).
// Values are the raw JSON token, as sonic.NoCopyRawMessage binds them.
// r must be reset (validateRequest.reset).
func (c *reqCtx) bindValidate(r *validateRequest) {
	b := c.body
	i := skipWS(b, 0) // '{'
	c.strBuf = c.strBuf[:0]
	forEachMember(b, i, &c.check, func(name []byte, v int) int {
		switch string(name) {
		case "cid":
			r.CID, v = c.bindString(v)
		case "csid":
			r.CSID, v = c.bindString(v)
		case "userID":
			r.UserID, v = c.bindString(v)
		case "action":
			r.Action, v = c.bindString(v)
		case "isEnrollment":
			r.IsEnrollment = b[v] == 't'
			v = skipScalar(b, v)
		case "additionalData":
			if b[v] == 'n' {
				return v + 4
			}
			v = forEachMember(b, v, &c.check, func(name []byte, v int) int {
				// sessionData is the only member the shape allows.
				if b[v] == 'n' {
					return v + 4
				}
				return c.bindSessionData(r, v)
			})
		}
		return v
	})
}

// bindSessionData binds the sessionData array starting at b[i] == '[' and
// returns the offset after it.
func (c *reqCtx) bindSessionData(r *validateRequest, i int) int {
	b := c.body
	items := r.AdditionalData.SessionData[:0]
	i = skipWS(b, i+1)
	if b[i] == ']' {
		r.AdditionalData.SessionData = items
		return i + 1
	}
	for {
		// reset left the elements past len zero but for their synonyms'
		// capacity, which the item reuses.
		if len(items) < cap(items) {
			items = items[:len(items)+1]
		} else {
			items = append(items, sessionDataItem{})
		}
		it := &items[len(items)-1]
		it.Synonyms = it.Synonyms[:0]
		i = forEachMember(b, i, &c.check, func(name []byte, v int) int {
			switch string(name) {
			case "key":
				it.Key, v = c.bindString(v)
			case "value":
				end := skipScalar(b, v)
				it.Value = b[v:end:end]
				v = end
			case "synonyms":
				if b[v] == 'n' {
					it.Synonyms = nil
					return v + 4
				}
				v = skipWS(b, v+1)
				if b[v] == ']' {
					return v + 1
				}
				for {
					var s string
					s, v = c.bindString(skipWS(b, v))
					it.Synonyms = append(it.Synonyms, s)
					if v = skipWS(b, v); b[v] == ']' {
						return v + 1
					}
					v++ // ','
				}
			}
			return v
		})
		if i = skipWS(b, i); b[i] == ']' {
			r.AdditionalData.SessionData = items
			return i + 1
		}
		i++ // ','
		i = skipWS(b, i)
	}
}

// forEachMember calls f for each member of the object starting at b[i] ==
// '{' with its unescaped name (valid during the call) and the offset of its
// value; f returns the offset after the value. forEachMember returns the
// offset after the object.
func forEachMember(b []byte, i int, chk *jsonChecker, f func(name []byte, v int) int) int {
	i = skipWS(b, i+1)
	if b[i] == '}' {
		return i + 1
	}
	for {
		end, escaped := scanString(b, i)
		name := chk.unescapeKey(b[i+1:end-1], escaped)
		i = skipWS(b, skipWS(b, end)+1) // past ':'
		i = skipWS(b, f(name, i))
		if b[i] == '}' {
			return i + 1
		}
		i = skipWS(b, i+1) // past ','
	}
}

// bindString returns the string starting at c.body[i] == '"' and the offset
// after it: a view of the body, or of c.strBuf when it has escapes.
func (c *reqCtx) bindString(i int) (string, int) {
	b := c.body
	end, escaped := scanString(b, i)
	raw := b[i+1 : end-1]
	if !escaped {
		return bytesToString(raw), end
	}
	start := len(c.strBuf)
	c.strBuf = appendUnescaped(c.strBuf, raw)
	// A later append may move c.strBuf; this string keeps the array it was
	// written in.
	return bytesToString(c.strBuf[start:len(c.strBuf):len(c.strBuf)]), end
}

// skipScalar returns the offset after the string, number or literal
// starting at b[i].
func skipScalar(b []byte, i int) int {
	switch b[i] {
	case '"':
		return skipString(b, i)
	case 't', 'n':
		return i + 4
	case 'f':
		return i + 5
	}
	return skipNumber(b, i)
}
