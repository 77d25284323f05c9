package native

import (
	"github.com/countersign/countersign/engine/match"
	"github.com/countersign/countersign/internal/jsonstr"
	"github.com/countersign/countersign/server/jsonwire"
)

// bindValidate binds a validate body into r without sonic, and reports
// whether the body has the validate shape (shapeValidate); it runs after
// checkSyntax has accepted the body, so it walks a document known to be
// well formed. On false, r holds a partial bind and the caller runs
// checkShape, which names the problem: the binder checks what checkShape
// checks but leaves the wording of refusals to it. Checking the shape and
// binding in one walk replaced two (checkShape, then sonic's
// reflection-driven bind, which cost about as much as both checks
// together: PERF.md, "Validate's own work, leaner"). FuzzBindValidate
// holds it to checkShape's verdicts and to sonic's results.
//
// Strings without escapes are views of the body, as sonic's are; a string
// with escapes is decoded into c.strBuf (valid until the request ends).
// Values are the raw JSON token, as sonic.NoCopyRawMessage binds them.
// r must be reset (validateRequest.reset).
func (c *reqCtx) bindValidate(r *validateRequest) bool {
	b := c.Body
	i := jsonwire.SkipWS(b, 0)
	if b[i] != '{' {
		return false
	}
	c.strBuf = c.strBuf[:0]
	const cid, csid, userID, action, additionalData, isEnrollment = 1, 2, 4, 8, 16, 32
	var seen uint8
	end := forEachMember(b, i, &c.Check, func(name []byte, v int) int {
		var bit uint8
		switch string(name) {
		case "cid":
			bit, v = cid, c.bindStringAt(v, &r.CID)
		case "csid":
			bit, v = csid, c.bindStringAt(v, &r.CSID)
		case "userID":
			bit, v = userID, c.bindStringAt(v, &r.UserID)
		case "action":
			bit, v = action, c.bindStringAt(v, &r.Action)
		case "isEnrollment":
			bit = isEnrollment
			switch b[v] {
			case 't':
				r.IsEnrollment, v = true, v+4
			case 'f':
				r.IsEnrollment, v = false, v+5
			default:
				v = -1
			}
		case "additionalData":
			bit = additionalData
			switch b[v] {
			case 'n':
				v += 4
			case '{':
				var sdSeen bool
				v = forEachMember(b, v, &c.Check, func(name []byte, v int) int {
					if string(name) != "sessionData" || sdSeen {
						return -1
					}
					sdSeen = true
					switch b[v] {
					case 'n':
						return v + 4
					case '[':
						return c.bindSessionData(r, v)
					}
					return -1
				})
			default:
				v = -1
			}
		default:
			return -1
		}
		return once(&seen, bit, v)
	})
	return end >= 0 && seen&(cid|csid|userID) == cid|csid|userID // action is optional
}

// once records the member bit in *seen and returns v, the offset after its
// value, or -1 when the member was seen before (a name given twice).
func once(seen *uint8, bit uint8, v int) int {
	if *seen&bit != 0 {
		return -1
	}
	*seen |= bit
	return v
}

// bindStringAt binds the string at c.Body[i] into *dst and returns the
// offset after it, or -1 when the value there is not a string.
func (c *reqCtx) bindStringAt(i int, dst *string) int {
	if c.Body[i] != '"' {
		return -1
	}
	*dst, i = c.bindString(i)
	return i
}

// bindSessionData binds the sessionData array starting at b[i] == '[' and
// returns the offset after it, or -1 when it is not an array of at most
// match.MaxItems items of the sessionData item shape.
func (c *reqCtx) bindSessionData(r *validateRequest, i int) int {
	b := c.Body
	items := r.AdditionalData.SessionData[:0]
	defer func() { r.AdditionalData.SessionData = items }()
	i = jsonwire.SkipWS(b, i+1)
	if b[i] == ']' {
		return i + 1
	}
	for {
		if len(items) == match.MaxItems || b[i] != '{' {
			return -1
		}
		// reset left the elements past len zero but for their synonyms'
		// capacity, which the item reuses.
		if len(items) < cap(items) {
			items = items[:len(items)+1]
		} else {
			items = append(items, sessionDataItem{})
		}
		it := &items[len(items)-1]
		it.Synonyms = it.Synonyms[:0]
		const key, value, synonyms = 1, 2, 4
		var seen uint8
		i = forEachMember(b, i, &c.Check, func(name []byte, v int) int {
			var bit uint8
			switch string(name) {
			case "key":
				bit, v = key, c.bindStringAt(v, &it.Key)
			case "value":
				bit = value
				if b[v] == '{' || b[v] == '[' {
					return -1
				}
				end := skipScalar(b, v)
				it.Value, v = b[v:end:end], end
			case "synonyms":
				bit, v = synonyms, c.bindSynonyms(it, v)
			default:
				return -1
			}
			return once(&seen, bit, v)
		})
		if i < 0 || seen&(key|value) != key|value {
			return -1
		}
		if i = jsonwire.SkipWS(b, i); b[i] == ']' {
			return i + 1
		}
		i = jsonwire.SkipWS(b, i+1) // past ','
	}
}

// bindSynonyms binds the synonyms value at c.Body[i] (null, or an array of
// at most match.MaxSynonyms strings) into it, returning the offset after
// it or -1.
func (c *reqCtx) bindSynonyms(it *sessionDataItem, i int) int {
	b := c.Body
	switch b[i] {
	case 'n':
		it.Synonyms = nil
		return i + 4
	case '[':
	default:
		return -1
	}
	if i = jsonwire.SkipWS(b, i+1); b[i] == ']' {
		return i + 1
	}
	for {
		var s string
		if len(it.Synonyms) == match.MaxSynonyms {
			return -1
		}
		if i = c.bindStringAt(i, &s); i < 0 {
			return -1
		}
		it.Synonyms = append(it.Synonyms, s)
		if i = jsonwire.SkipWS(b, i); b[i] == ']' {
			return i + 1
		}
		i = jsonwire.SkipWS(b, i+1) // past ','
	}
}

// forEachMember calls f for each member of the object starting at b[i] ==
// '{' with its unescaped name (valid during the call) and the offset of its
// value; f returns the offset after the value, or -1 to stop. forEachMember
// returns the offset after the object, or -1 when f stopped it.
func forEachMember(b []byte, i int, chk *jsonwire.Checker, f func(name []byte, v int) int) int {
	i = jsonwire.SkipWS(b, i+1)
	if b[i] == '}' {
		return i + 1
	}
	for {
		end, escaped := jsonwire.ScanString(b, i)
		name := chk.UnescapeKey(b[i+1:end-1], escaped)
		i = jsonwire.SkipWS(b, jsonwire.SkipWS(b, end)+1) // past ':'
		if i = f(name, i); i < 0 {
			return -1
		}
		if i = jsonwire.SkipWS(b, i); b[i] == '}' {
			return i + 1
		}
		i = jsonwire.SkipWS(b, i+1) // past ','
	}
}

// bindString returns the string starting at c.Body[i] == '"' and the offset
// after it: a view of the body, or of c.strBuf when it has escapes.
func (c *reqCtx) bindString(i int) (string, int) {
	b := c.Body
	end, escaped := jsonwire.ScanString(b, i)
	raw := b[i+1 : end-1]
	if !escaped {
		return jsonwire.BytesToString(raw), end
	}
	start := len(c.strBuf)
	c.strBuf, _ = jsonstr.Append(c.strBuf, raw) // checkSyntax accepted it
	// A later append may move c.strBuf; this string keeps the array it was
	// written in.
	return jsonwire.BytesToString(c.strBuf[start:len(c.strBuf):len(c.strBuf)]), end
}

// skipScalar returns the offset after the string, number or literal
// starting at b[i].
func skipScalar(b []byte, i int) int {
	switch b[i] {
	case '"':
		return jsonwire.SkipString(b, i)
	case 't', 'n':
		return i + 4
	case 'f':
		return i + 5
	}
	return jsonwire.SkipNumber(b, i)
}
