package ivalt

import (
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/countersign/countersign/server/httpd"
	"github.com/countersign/countersign/server/jsonwire"
)

// The iVALT surface's catalog entries, beside the core's (httpd.Err*). Their
// codes carry the prefix ivalt_ so that they cannot collide with another
// surface's; the envelope drops it and upper-cases the rest, so that a
// client reads iVALT's own words (INVALID_GEOFENCE, RATE_LIMIT_EXCEEDED).
// Keep them sorted by status; the OpenAPI document and the README list the
// same codes.
var (
	// 401: credentials. A missing x-api-key is 401; one that is not a
	// backend key of any organization is 403, as iVALT's gateway answers
	// a disabled or unknown key.
	errAPIKeyMissing    = httpd.Register(401, "ivalt_api_key_missing", "The x-api-key header is missing.")
	errAuthTokenInvalid = httpd.Register(401, "ivalt_invalid_auth_token", "The auth_token is not one this organization was issued, or it has expired; generate a new one.")
	errClientInvalid    = httpd.Register(401, "ivalt_invalid_client", "client_id and client_secret are not this organization's client id and one of its API keys.")
	errFaceTokenInvalid = httpd.Register(401, "ivalt_invalid_face_auth_token", "The face_auth_token does not match an approved request of this organization, was used already, or has expired.")

	errAPIKeyInvalid = httpd.Register(403, "ivalt_invalid_api_key", "The x-api-key header is not a valid API key.")
	// 403: the user's answer, or the rules, refused the request.
	errAuthDenied    = httpd.Register(403, "ivalt_auth_denied", "The user denied the request on their phone.")
	errAuthExpired   = httpd.Register(403, "ivalt_auth_timeout", "The user did not answer the request in time.")
	errAuthCancelled = httpd.Register(403, "ivalt_auth_cancelled", "The request was cancelled before the user answered.")
	errAuthFailed    = httpd.Register(403, "ivalt_auth_failed", "The user answered, but a factor failed.")
	errGeofence      = httpd.Register(403, "ivalt_invalid_geofence", "The device is outside the allowed geofencing area.")
	errTimezone      = httpd.Register(403, "ivalt_invalid_timezone", "The request came outside the allowed time window in its timezone.")

	// 422: the user has not answered yet; ask again.
	errAuthPending = httpd.Register(422, "ivalt_auth_pending", "The user has not answered the request yet; poll again.")

	// 429: too many requests for the user (push-bombing limits).
	errRateLimit = httpd.Register(429, "ivalt_rate_limit_exceeded", "Too many requests for this user; retry after the Retry-After seconds.")
)

// codePrefix marks this surface's own catalog codes.
const codePrefix = "ivalt_"

// appendWireCode appends the iVALT spelling of e's code: the catalog code
// without codePrefix, upper-cased (user_not_found reads USER_NOT_FOUND).
// Every 429 reads RATE_LIMIT_EXCEEDED, whoever answers it (the connection
// limit too), since that is the one code iVALT's clients know for it.
func appendWireCode(dst []byte, e *httpd.Error) []byte {
	if e.Status == 429 {
		return append(dst, "RATE_LIMIT_EXCEEDED"...)
	}
	code := strings.TrimPrefix(e.Code, codePrefix)
	for i := 0; i < len(code); i++ {
		ch := code[i]
		if ch >= 'a' && ch <= 'z' {
			ch -= 'a' - 'A'
		}
		dst = append(dst, ch)
	}
	return dst
}

// titles are the short human titles of the statuses the surface answers,
// the problem-details "title".
func title(status int) string {
	switch status {
	case 400:
		return "Bad Request"
	case 401:
		return "Unauthorized"
	case 403:
		return "Forbidden"
	case 404:
		return "Not Found"
	case 405:
		return "Method Not Allowed"
	case 408:
		return "Request Timeout"
	case 409:
		return "Conflict"
	case 413:
		return "Payload Too Large"
	case 415:
		return "Unsupported Media Type"
	case 422:
		return "Unprocessable Entity"
	case 423:
		return "Locked"
	case 429:
		return "Too Many Requests"
	case 431:
		return "Request Header Fields Too Large"
	case 503:
		return "Service Unavailable"
	}
	return "Internal Server Error"
}

// kind is the problem's "type": what sort of refusal it is, for a client
// that branches on categories rather than codes.
func kind(status int) string {
	switch {
	case status == 401 || status == 403:
		return "authentication_error"
	case status == 404:
		return "not_found_error"
	case status == 422:
		return "pending"
	case status == 429:
		return "rate_limit_error"
	case status >= 500:
		return "server_error"
	}
	return "validation_error"
}

// envelopeNow is the clock of debug.timestamp: the surface's, set by New.
// The envelope is called with no request context (the core's panic
// recovery calls it too), so the clock is the package's; a process serves
// one countersign, whose clock it is.
var envelopeNow atomic.Pointer[func() time.Time]

func errorTime() time.Time {
	if now := envelopeNow.Load(); now != nil {
		return (*now)()
	}
	return time.Now()
}

// activity numbers the error answers, so that an operator can find one in
// the logs from what a client reports (debug.activityId).
var activity atomic.Uint64

// AppendError is the iVALT error envelope:
//
//	{"status":"error","message":...,"error":{"code","type","title","status",
//	 "detail","instance"},"debug":{"timestamp","activityId"}}
//
// msg replaces the catalog sentence when non-empty; it is both the message
// and error.detail, which iVALT's clients read (the OpenVPN plugin looks
// for "geofencing" and "timezone" in it). It renders every error of the
// surface's routes, the panic recovery's included.
func AppendError(dst []byte, e *httpd.Error, msg []byte) []byte {
	return append(appendErrorOpen(dst, e, msg), '}')
}

// appendErrorOpen is AppendError without its closing brace, for an answer
// that adds members (a result's "data").
func appendErrorOpen(dst []byte, e *httpd.Error, msg []byte) []byte {
	sentence := func(dst []byte) []byte {
		if len(msg) > 0 {
			return jsonwire.AppendBytes(dst, msg)
		}
		return jsonwire.AppendString(dst, e.Message)
	}
	id := activity.Add(1)
	dst = append(dst, `{"status":"error","message":`...)
	dst = sentence(dst)
	dst = append(dst, `,"error":{"code":"`...)
	dst = appendWireCode(dst, e)
	dst = append(dst, `","type":"`...)
	dst = append(dst, kind(e.Status)...)
	dst = append(dst, `","title":"`...)
	dst = append(dst, title(e.Status)...)
	dst = append(dst, `","status":`...)
	dst = strconv.AppendInt(dst, int64(e.Status), 10)
	dst = append(dst, `,"detail":`...)
	dst = sentence(dst)
	dst = append(dst, `,"instance":"urn:countersign:activity:`...)
	dst = strconv.AppendUint(dst, id, 10)
	dst = append(dst, `"},"debug":{"timestamp":"`...)
	dst = errorTime().UTC().AppendFormat(dst, time.RFC3339)
	dst = append(dst, `","activityId":"`...)
	dst = strconv.AppendUint(dst, id, 10)
	return append(dst, `"}`...)
}
